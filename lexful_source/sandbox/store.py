"""The sandbox's records: one collection per endpoint, kept in memory and indexed for paging.

Every collection keeps its rows sorted by (updated_at, id), live rows in a second list,
so the connector's hot query (``updated_at[gte]`` sorted ascending, offset inside the
result) is two bisections and a slice of pre-serialized bodies, never a scan. Mutations
go through :class:`Store`, which stamps times from the sandbox clock, so tests can edit,
insert, archive, restore and purge records while a load is paging.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .catalogue import HIDDEN_PROPERTY_TYPES
from .timestamps import Clock, TimestampStyle, format_instant

MASK = "********"
TIMESTAMP_FIELDS = ("created_at", "updated_at", "deleted_at")


class NotFound(LookupError):
    """A record or collection the caller named does not exist."""


@dataclass(slots=True, eq=False)
class Row:
    id: str
    doc: dict[str, Any]
    created_ms: int
    updated_ms: int
    deleted_ms: int | None = None
    variant: int = 0
    body: bytes | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.updated_ms, self.id)


@dataclass
class Collection:
    """Rows of one endpoint, with the field kinds the query engine needs to compare them."""

    name: str
    kinds: dict[str, str]
    hidden: frozenset[str] = frozenset()
    labels_on_expand: bool = False
    definition: dict[str, Any] | None = None
    rows: dict[str, Row] = field(default_factory=dict)
    _all: list[tuple[int, str]] = field(default_factory=list)
    _live: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, include_deleted: bool) -> list[tuple[int, str]]:
        return self._all if include_deleted else self._live

    def bulk_load(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.rows[row.id] = row
        self._all = sorted(row.key for row in self.rows.values())
        self._live = [k for k in self._all if self.rows[k[1]].deleted_ms is None]

    def add(self, row: Row) -> None:
        self.rows[row.id] = row
        bisect.insort(self._all, row.key)
        if row.deleted_ms is None:
            bisect.insort(self._live, row.key)

    def discard(self, row: Row) -> None:
        del self.rows[row.id]
        _remove(self._all, row.key)
        if row.deleted_ms is None:
            _remove(self._live, row.key)

    def live_rows(self, include_deleted: bool) -> Iterator[Row]:
        for row in self.rows.values():
            if include_deleted or row.deleted_ms is None:
                yield row


def _remove(keys: list[tuple[int, str]], key: tuple[int, str]) -> None:
    at = bisect.bisect_left(keys, key)
    if at < len(keys) and keys[at] == key:
        del keys[at]


@dataclass
class StoreSettings:
    timestamp_style: TimestampStyle = "millis"
    secret_values: str = "masked"  # masked | omit | clear: how list responses show secrets
    archive_bumps_updated_at: bool = False
    reference_target_key: str = "target_asset_types"  # or the older target_entity_types


class Store:
    """All collections, their mutations and their rendering, behind one lock."""

    def __init__(self, clock: Clock, settings: StoreSettings | None = None) -> None:
        self.clock = clock
        self.settings = settings or StoreSettings()
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        self.asset_types: dict[str, Collection] = {}
        self.related: dict[str, list[dict[str, Any]]] = {}
        self.account_id = ""
        self.system_user_id = ""
        self._variant = 0

    # -- lookup -----------------------------------------------------------------
    def collection(self, name: str) -> Collection:
        try:
            return self.collections[name]
        except KeyError:
            raise NotFound(f"no collection named {name!r}") from None

    def assets(self, type_name: str) -> Collection:
        try:
            return self.asset_types[type_name]
        except KeyError:
            raise NotFound(f"Asset type '{type_name}' not found") from None

    def find_asset(self, asset_id: str) -> tuple[str, Row] | None:
        for type_name, coll in self.asset_types.items():
            row = coll.rows.get(asset_id)
            if row is not None:
                return type_name, row
        return None

    # -- rendering --------------------------------------------------------------
    def render(self, coll: Collection, row: Row, *, with_labels: bool = False) -> dict[str, Any]:
        """The record as the API shows it: timestamps written in the configured style,
        secret and totp values masked, omitted or left in clear as configured."""
        style = self.settings.timestamp_style
        out = dict(row.doc)
        out["created_at"] = format_instant(row.created_ms, style, row.variant)
        out["updated_at"] = format_instant(row.updated_ms, style, row.variant + 1)
        out["deleted_at"] = (
            None
            if row.deleted_ms is None
            else format_instant(row.deleted_ms, style, row.variant + 2)
        )
        if coll.labels_on_expand and not with_labels:
            out.pop("labels", None)
        mode = self.settings.secret_values
        if mode != "clear":
            for name in coll.hidden:
                if name in out:
                    if mode == "omit":
                        del out[name]
                    elif out[name] is not None:
                        out[name] = MASK
        return out

    def body(self, coll: Collection, row: Row) -> bytes:
        """The record's serialized default rendering, cached until the row changes."""
        body = row.body
        if body is None:
            body = row.body = orjson.dumps(self.render(coll, row))
        return body

    def truth(self, name: str, *, include_deleted: bool = True) -> list[dict[str, Any]]:
        """What the API holds for a collection (or asset type), as it would serve it,
        ordered by id: the ground truth a destination is compared with."""
        with self.lock:
            coll = self.asset_types[name] if name in self.asset_types else self.collection(name)
            rows = sorted(coll.live_rows(include_deleted), key=lambda r: r.id)
            return [self.render(coll, r) for r in rows]

    def hidden_values(self) -> list[str]:
        """Every clear secret and totp value held, for tests that scan for leaks."""
        with self.lock:
            found = []
            for coll in self.asset_types.values():
                for row in coll.rows.values():
                    found.extend(row.doc[n] for n in coll.hidden if isinstance(row.doc.get(n), str))
            return found

    # -- mutations --------------------------------------------------------------
    def next_variant(self) -> int:
        self._variant += 1
        return self._variant

    def new_id(self) -> str:
        """A UUIDv7 for the current clock time, as the real service's ids look."""
        ms = self.clock.now_ms()
        rand = uuid.uuid4().int
        value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand & (2**12 - 1)) << 64
        value |= 0b10 << 62 | (rand >> 12) & (2**62 - 1)
        return str(uuid.UUID(int=value))

    def insert(self, coll: Collection, doc: dict[str, Any]) -> Row:
        with self.lock:
            now = self.clock.now_ms()
            doc.setdefault("id", self.new_id())
            for name in TIMESTAMP_FIELDS:
                doc.setdefault(name, None)
            row = Row(doc["id"], doc, now, now, None, self.next_variant())
            coll.add(row)
            return row

    def add_asset_type(
        self, definition: dict[str, Any], *, row_id: str | None = None, at_ms: int | None = None
    ) -> Row:
        """Register an asset type: a catalogue entry and an empty collection for its assets."""
        with self.lock:
            now = self.clock.now_ms() if at_ms is None else at_ms
            key = self.settings.reference_target_key
            references = [
                {(key if k == "target_asset_types" else k): v for k, v in ref.items()}
                for ref in definition["references"]
            ]
            row_id = row_id or self.new_id()
            doc = {
                "id": row_id,
                "account_id": self.account_id,
                **definition,
                "references": references,
                "version": 1,
                "created_at": None,
                "updated_at": None,
                "created_by": self.system_user_id,
            }
            row = Row(row_id, doc, now, now, None, self.next_variant())
            self.collection("asset_types").add(row)
            self.asset_types[definition["name"]] = asset_collection(definition)
            return row

    def update(self, coll: Collection, row_id: str, changes: dict[str, Any]) -> Row:
        """Apply a partial update and stamp ``updated_at`` with the clock's time."""
        with self.lock:
            row = self._row(coll, row_id)
            coll.discard(row)
            row.doc.update(changes)
            if "updated_by" in row.doc and "updated_by" not in changes:
                row.doc["updated_by"] = self.system_user_id
            row.updated_ms = self.clock.now_ms()
            row.body = None
            coll.add(row)
            return row

    def touch(self, coll: Collection, row_id: str) -> Row:
        return self.update(coll, row_id, {})

    def archive(self, coll: Collection, row_id: str) -> Row:
        """Soft-delete; whether ``updated_at`` moves too is a setting (unknown upstream)."""
        return self._set_deleted(coll, row_id, archived=True)

    def restore(self, coll: Collection, row_id: str) -> Row:
        return self._set_deleted(coll, row_id, archived=False)

    def purge(self, coll: Collection, row_id: str) -> None:
        """Remove a record for good: it vanishes from every query, archived or not."""
        with self.lock:
            coll.discard(self._row(coll, row_id))
            self.related.pop(row_id, None)

    def _set_deleted(self, coll: Collection, row_id: str, *, archived: bool) -> Row:
        with self.lock:
            row = self._row(coll, row_id)
            coll.discard(row)
            now = self.clock.now_ms()
            row.deleted_ms = now if archived else None
            if self.settings.archive_bumps_updated_at:
                row.updated_ms = now
            row.body = None
            coll.add(row)
            return row

    @staticmethod
    def _row(coll: Collection, row_id: str) -> Row:
        row = coll.rows.get(row_id)
        if row is None:
            raise NotFound(f"{coll.name} record '{row_id}' not found")
        return row


def asset_kinds(definition: dict[str, Any]) -> dict[str, str]:
    """Field kinds of an asset type's records, for filtering and sorting."""
    kinds = {
        "id": "string",
        "organization_id": "string",
        "organization_name": "string",
        "visibility": "string",
        "owned_by": "string",
        "name": "string",
        "references": "object",
        "labels": "array",
        "created_by": "string",
        "updated_by": "string",
        **dict.fromkeys(TIMESTAMP_FIELDS, "instant"),
    }
    for prop in definition["properties"]:
        kind = prop["type"]
        kinds[prop["name"]] = {
            "richtext": "string",
            "richtext_large": "string",
            "secret": "hidden",
            "totp": "hidden",
            "file": "object",
        }.get(kind, kind)
    return kinds


def asset_collection(definition: dict[str, Any]) -> Collection:
    hidden = frozenset(
        p["name"] for p in definition["properties"] if p["type"] in HIDDEN_PROPERTY_TYPES
    )
    return Collection(
        name=definition["name"],
        kinds=asset_kinds(definition),
        hidden=hidden,
        labels_on_expand=True,
        definition=definition,
    )
