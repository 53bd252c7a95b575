"""A request budget, so the connector slows itself before the API has to.

Lexful does not document its rate limits (API-NOTES.md); a 429 costs a round trip and a
wait, and many of them can get an API key throttled. With ``requests_per_minute`` set,
requests are spaced evenly: never more than that many start in any minute, however many
threads share the client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestBudget:
    """Even spacing of requests at ``per_minute``; ``None`` means no budget."""

    def __init__(
        self,
        per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> float:
        """Wait for this request's slot; returns how long it waited."""
        if not self._interval:
            return 0.0
        with self._lock:  # reserve a slot, then sleep outside the lock
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
            wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def describe(self) -> str:
        return f"at most {self.per_minute:g} requests a minute" if self.per_minute else "none"
