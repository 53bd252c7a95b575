"""Cursor values as instants: Lexful writes ISO-8601 in several forms, never compare text."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(value: str) -> datetime:
    """An aware UTC datetime from any ISO-8601 date or datetime; naive values are UTC."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """The form sent in filters and kept in state: UTC, ``Z``, milliseconds as Lexful
    writes them, microseconds when a value has them (a cursor must not lose precision)."""
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")
