"""Records as paging and the incremental state read them, without Arrow.

A run that finds nothing new reads a few records of each list and loads none: it needs
their ids, timestamps and digests, and nothing of Arrow, whose import (pyarrow with numpy)
took 0.36 to 0.46 s of such a run. So the Arrow modules (``decoding.py``, ``tables.py``)
are imported with the first page worth decoding or converting, and what paging and the
state need lives here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from .settings import ARROW_MIN_BODY

if TYPE_CHECKING:
    from .decoding import PageDecoder
    from .schema import ChildTable, TableSpec


class ParsedPage:
    """A list answer a decoder parsed (``decoding.DecodedPage``): its ``total`` at once,
    its records when ``make_items`` is called, its whole records from ``records``."""

    total: int
    where: str

    def make_items(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def records(self) -> list[dict[str, Any]]:
        raise NotImplementedError


class LightRecord(dict):  # type: ignore[type-arg]
    """A decoded record's id, ``updated_at`` and ``deleted_at``: what paging reads of
    every record. ``full()`` is the whole record, parsed on first use of its page."""

    __slots__ = ("page", "row")
    page: ParsedPage
    row: int

    def full(self) -> dict[str, Any]:
        return self.page.records()[self.row]


def full_record(record: dict[str, Any]) -> dict[str, Any]:
    """The whole record, whichever path read it."""
    return record.full() if isinstance(record, LightRecord) else record


class OnDemandDecoder:
    """Arrow's page decoder for one spec, made once the bodies it was given add up to
    ``ARROW_MIN_BODY`` bytes. The bodies before that take the dict path, exact for any
    body, so a run that reads only a few records per list never imports Arrow; a list
    of small pages (a small ``page_size``) is decoded from its first few dozen records.
    A batch can hold records of both paths: ``decoding.page_tables`` then converts it
    all by the dict path. A list's pages are decoded on several threads at once."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self._decoder: PageDecoder | None = None
        self._seen = 0  # bytes of the bodies so far
        self._lock = threading.Lock()

    def __call__(self, raw: bytes) -> ParsedPage | None:
        if self._decoder is None:
            with self._lock:
                self._seen += len(raw)
                if self._seen < ARROW_MIN_BODY:
                    return None
                from .decoding import PageDecoder

                self._decoder = self._decoder or PageDecoder(self.spec)
        return self._decoder(raw)


def loaded_digest(spec: TableSpec, record: dict[str, Any]) -> str:
    """A short digest of what a load writes for ``record``. The incremental state keeps it
    for the records stamped at the cursor, so one changed again without a new
    ``updated_at`` is still loaded; it covers loaded fields only, so no secret value
    reaches the state even hashed."""
    loaded = [record.get(key) for key in spec.keys.values()]
    loaded += [list(child_items(child, record)) for child in spec.children]
    return hashlib.blake2b(orjson.dumps(loaded), digest_size=8).hexdigest()


def child_items(child: ChildTable, record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The child rows of one record, as its child table holds them (markers aside)."""
    value = record.get(child.field)
    if child.field == "references":
        for name, target in reference_pairs(value):
            yield {"reference_name": name, "referenced_asset_id": target}
        return
    for item in value or () if isinstance(value, list) else ():
        if child.scalar:
            yield {"value": item}
        else:
            source = item if isinstance(item, dict) else {}
            yield {column: source.get(key) for column, key in child.item_keys.items()}


def _name(pair: tuple[str, Any]) -> str:
    return pair[0]


def reference_pairs(value: Any) -> Iterator[tuple[str, Any]]:
    """(reference name, target id) from each form a record's references take: an id, a
    list of ids, an object with an id, or null. Names come in sorted order: a JSON
    object's keys have none, so the positions must not follow the order a response
    happens to use (``decoding.py`` reads the names in that order too)."""
    for name, target in sorted(value.items(), key=_name) if isinstance(value, dict) else ():
        for asset in target if isinstance(target, list) else (target,):
            if asset is not None:
                yield name, asset.get("id") if isinstance(asset, dict) else asset
