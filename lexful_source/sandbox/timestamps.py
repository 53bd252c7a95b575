"""Instants for the sandbox: stored as integer milliseconds, written in several ISO forms.

Lexful's backend is a Node service, so its timestamps carry millisecond precision. The
docs show both ``2024-01-15T10:30:00.000Z`` and ``2023-11-07T05:31:56Z``; the ``mixed``
style also writes ``+00:00`` and non-UTC offsets, so a connector that compares cursor
values as text instead of as instants gets caught.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Literal, Protocol

TimestampStyle = Literal["millis", "compact", "mixed"]
TIMESTAMP_STYLES: tuple[str, ...] = ("millis", "compact", "mixed")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OFFSETS = (timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)))


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def parse_instant(text: str) -> int:
    """Parse any ISO-8601 date or datetime into milliseconds; raise ValueError otherwise.

    A bare date means midnight UTC and a datetime without an offset is taken as UTC,
    so ``created_at[gte]=2024-01-01`` from the docs works as written.
    """
    value = text.strip()
    if len(value) == 10:
        return to_ms(datetime.combine(date.fromisoformat(value), datetime.min.time()))
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, tail = rest[:digits], rest[digits:]
        value = f"{head}.{(fraction + '000000')[:6]}{tail}"
    return to_ms(datetime.fromisoformat(value))


def format_instant(ms: int, style: TimestampStyle = "millis", variant: int = 0) -> str:
    """Write an instant the way the API would; ``variant`` picks the form in ``mixed``."""
    if style == "millis" or (style == "mixed" and variant % 4 == 0):
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % _utc_fields(ms)
    if style == "compact" or variant % 4 == 1:
        if ms % 1000 == 0:
            return "%04d-%02d-%02dT%02d:%02d:%02dZ" % _utc_fields(ms)[:6]
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % _utc_fields(ms)
    if variant % 4 == 2:
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00" % _utc_fields(ms)
    moment = from_ms(ms).astimezone(_OFFSETS[variant // 4 % 2])
    return moment.isoformat(timespec="milliseconds")


def _utc_fields(ms: int) -> tuple[int, ...]:
    seconds, milli = divmod(ms, 1000)
    return (*time.gmtime(seconds)[:6], milli)


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time, truncated to milliseconds like the real service."""

    def now_ms(self) -> int:
        return to_ms(datetime.now(UTC))


class ManualClock:
    """A clock that tests move by hand, so token expiry and edit times are exact."""

    def __init__(self, start: datetime | str = "2026-01-01T00:00:00Z") -> None:
        self._ms = parse_instant(start) if isinstance(start, str) else to_ms(start)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._ms

    def advance(self, seconds: float = 0.0, *, ms: int = 0) -> int:
        with self._lock:
            self._ms += int(seconds * 1000) + ms
            return self._ms

    def set(self, moment: datetime | str) -> None:
        with self._lock:
            self._ms = parse_instant(moment) if isinstance(moment, str) else to_ms(moment)
