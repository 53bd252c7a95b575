"""Every knob of the sandbox in one place, so a test states the world it runs in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .dataset import DatasetSize
from .faults import DEFAULT_FAULT_MIX, Fault
from .timestamps import Clock, TimestampStyle

if TYPE_CHECKING:
    from .app import RequestInfo

DEMO_API_KEY_ID = "lexful-demo-key"
DEMO_API_KEY_SECRET = "lexful-demo-secret-not-for-production"


@dataclass
class SandboxSettings:
    """How the local Lexful server behaves.

    Defaults are the documented behaviour; every other value is a variant the docs leave
    open (token shape, timestamp form, list shape) or a fault to ride out.
    """

    seed: int = 1
    size: DatasetSize = field(default_factory=DatasetSize)
    host: str = "127.0.0.1"
    port: int = 0
    clock: Clock | None = None  # None: the wall clock
    # auth
    api_key_id: str = DEMO_API_KEY_ID
    api_key_secret: str = DEMO_API_KEY_SECRET
    token_lifetime_s: int = 3600
    token_field: str = "token"  # token | access_token | accessToken
    expiry_field: str | None = "expires_in"  # expires_in | expires_at | expiresAt | None
    bad_credentials_status: int = 401  # 401, or 403 which the notes also say to tolerate
    # how records are shown
    timestamp_style: TimestampStyle = "millis"  # millis | compact | mixed
    secret_values: str = "masked"  # masked | omit | clear (worst case, for leak tests)
    archive_bumps_updated_at: bool = False
    reference_target_key: str = "target_asset_types"  # or the older target_entity_types
    list_shape: str = "full"  # full: items, total, limit, offset | items_only
    forbidden_types: frozenset[str] = frozenset()  # asset types answering 403
    # faults
    latency_s: float = 0.0
    fault_rate: float = 0.0
    fault_mix: tuple[Fault, ...] = DEFAULT_FAULT_MIX
    fault_seed: int = 0
    faults_on_auth: bool = True
    rate_limit: int | None = None  # requests per window, then 429
    rate_window_s: float = 1.0
    retry_after: str = "seconds"  # seconds | http-date | zero | none
    on_request: Callable[[RequestInfo], Fault | None] | None = None
