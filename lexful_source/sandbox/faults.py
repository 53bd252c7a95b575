"""Faults the sandbox can inject: error statuses, timeouts, dropped connections, bad bodies.

A fault is chosen per request either by the test's ``on_request`` hook (exact: "fail the
third page") or at random from a configured share (soaks). Random choices come from a
seeded generator so a failing soak can be replayed.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Literal

FaultKind = Literal["status", "timeout", "reset", "truncate", "malformed", "rate_limit"]
MALFORMED_VARIANTS = (
    "not_json",
    "truncated_json",
    "missing_items",
    "missing_id",
    "missing_updated_at",
    "total_string",
    "total_null",
)
RETRY_AFTER_STYLES = ("seconds", "http-date", "zero", "none")


@dataclass(frozen=True)
class Fault:
    """What to do to one request instead of answering it normally."""

    kind: FaultKind
    status: int = 503
    seconds: float = 5.0
    variant: str = "not_json"
    retry_after: str = "seconds"

    @classmethod
    def error(cls, status: int) -> Fault:
        return cls("status", status=status)

    @classmethod
    def timeout(cls, seconds: float = 5.0) -> Fault:
        return cls("timeout", seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def truncate(cls) -> Fault:
        return cls("truncate")

    @classmethod
    def malformed(cls, variant: str) -> Fault:
        if variant not in MALFORMED_VARIANTS:
            raise ValueError(
                f"unknown malformed variant {variant!r}; use one of {MALFORMED_VARIANTS}"
            )
        return cls("malformed", variant=variant)

    @classmethod
    def rate_limited(cls, retry_after: str = "seconds", seconds: float = 1.0) -> Fault:
        if retry_after not in RETRY_AFTER_STYLES:
            raise ValueError(f"unknown Retry-After style {retry_after!r}")
        return cls("rate_limit", status=429, seconds=seconds, retry_after=retry_after)


DEFAULT_FAULT_MIX = (
    Fault.error(500),
    Fault.error(502),
    Fault.error(503),
    Fault.error(504),
    Fault.reset(),
    Fault.rate_limited("seconds", 0.0),
)


def retry_after_header(style: str, seconds: float) -> str | None:
    """The ``Retry-After`` value for a wait of ``seconds`` in the given style."""
    if style == "none":
        return None
    if style == "zero":
        return "0"
    if style == "http-date":
        # an HTTP date has whole seconds: round up, or a client honouring it comes back early
        return formatdate(math.ceil(time.time() + seconds), usegmt=True)
    return str(math.ceil(seconds))


class FaultPlan:
    """Random faults at a share of requests, plus a fixed-window rate limit."""

    def __init__(
        self,
        *,
        rate: float = 0.0,
        mix: tuple[Fault, ...] = DEFAULT_FAULT_MIX,
        seed: int = 0,
        rate_limit: int | None = None,
        rate_window_s: float = 1.0,
        retry_after: str = "seconds",
    ) -> None:
        self.rate = rate
        self.mix = mix
        self.rate_limit = rate_limit
        self.rate_window_s = rate_window_s
        self.retry_after = retry_after
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._window_count = 0

    def draw(self) -> Fault | None:
        with self._lock:
            if self.rate and self._rng.random() < self.rate:
                return self._rng.choice(self.mix)
        return None

    def throttle(self) -> Fault | None:
        """A 429 when this request is over the window's budget."""
        if self.rate_limit is None:
            return None
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.rate_window_s:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            if self._window_count <= self.rate_limit:
                return None
            wait = self.rate_window_s - (now - self._window_start)
        return Fault.rate_limited(self.retry_after, wait)
