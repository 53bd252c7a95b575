"""A local, Lexful-compatible API server for tests, benchmarks and the demo.

It follows ``shared/lexful-api`` (Lexful's pages and API-NOTES.md) and shares nothing with
the connector but the documented HTTP API.
"""

from .app import RequestInfo
from .dataset import DatasetSize
from .faults import MALFORMED_VARIANTS, RETRY_AFTER_STYLES, Fault
from .server import LexfulSandbox, RequestRecord, Stats
from .settings import DEMO_API_KEY_ID, DEMO_API_KEY_SECRET, SandboxSettings
from .timestamps import ManualClock, SystemClock

__all__ = [
    "DEMO_API_KEY_ID",
    "DEMO_API_KEY_SECRET",
    "MALFORMED_VARIANTS",
    "RETRY_AFTER_STYLES",
    "DatasetSize",
    "Fault",
    "LexfulSandbox",
    "ManualClock",
    "RequestInfo",
    "RequestRecord",
    "SandboxSettings",
    "Stats",
    "SystemClock",
]
