"""dlt resources: one per asset type and one per reference endpoint, built in loops.

Asset types and organizations load incrementally (see ``paging.WindowScan``) and merge on
``id``; their child tables merge on ``asset_id``. Reference data is small and replaced on
every run. Each resource's cursor lives in dlt's resource state, which dlt commits only
with the load that carries the data, so no cursor moves past data that was not loaded.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlt
import orjson
from dlt.extract.resource import DltResource

from .client import LexfulClient
from .errors import ApiError
from .loader_files import FILE_HINTS, LoaderFiles, import_item
from .paging import WindowScan, fetch_page, scan_all
from .records import OnDemandDecoder, full_record, loaded_digest
from .schema import TableSpec, dlt_columns
from .settings import CATALOGUE_RESOURCES, PARENT_KEY, POSITION, PURGED
from .timestamps import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("lexful_source")
PROGRESS_EVERY_S = 10.0
MERGE: Any = {"disposition": "merge", "strategy": "delete-insert"}
# Marker rows written per child table, so a run summary can count real rows only.
MARKER_ROWS: Counter[str] = Counter()
# What reconcile runs did, for the run summary.
RECONCILED: Counter[str] = Counter()
# Reference resources left out of a run because they equal what the last load wrote.
UNCHANGED: set[str] = set()
REFERENCE_DIGESTS = "reference_digests"  # source state: resource -> digest of its last load
# Resources skipped on a 403 (``on_forbidden = "skip"``) -> why, for the run summary.
# Per process, like the counters above: one run at a time per process is what they assume.
SKIPPED: dict[str, str] = {}
LOOKUP_BATCH = 100
# Records per yielded table: dlt's cost per item (hints, schema checks) is paid once per
# batch instead of once per page, and memory stays bounded on any account size.
BATCH_RECORDS = 5_000
LOADER_FILES_DIR = "lexful_loader_files"  # in the pipeline's working directory
_MARKER_LOCK = threading.Lock()


def incremental_resource(
    client: LexfulClient,
    spec: TableSpec,
    start: datetime,
    page_size: int,
    detect_archives: bool = True,
    skip_forbidden: bool = False,
    destination_tables: Collection[str] | None = None,
    parquet_files: bool = False,
) -> DltResource:
    """Merge new and changed records; with ``detect_archives``, also those archived
    without a new ``updated_at`` (Lexful's docs leave open whether archiving bumps it).
    A first load appends instead (see ``TableWriter`` and ``_first_load``). With
    ``parquet_files`` the tables reach dlt as Parquet files the resource wrote
    (loader_files.py), which a destination must take as they are."""

    def digest(record: dict[str, Any]) -> str:
        return loaded_digest(spec, full_record(record))

    def records() -> Iterator[Any]:
        state = dlt.current.resource_state()
        files = _loader_files(spec.name) if parquet_files else None
        tables = TableWriter(spec, _first_load(spec, state, destination_tables), files)
        try:
            yield from read_changes(state, tables)
            yield from tables.finish()
        finally:
            if files is not None:
                files.discard()

    def read_changes(state: dict[str, Any], tables: TableWriter) -> Iterator[Any]:
        since = parse_timestamp(state["cursor"]) if "cursor" in state else start
        at_once, decode = client.concurrent_requests, OnDemandDecoder(spec)
        changes = WindowScan(
            client,
            spec.path,
            since,
            _versions(state, ""),
            page_size,
            digest,
            in_flight=at_once,
            decode=decode,
        )
        watching = detect_archives and "archive_cursor" in state
        seeding = detect_archives and not watching and since == start  # a first run
        # id -> deleted_at as emitted this run, so the archive scan repeats no record
        emitted: dict[str, str | None] = {}
        archived_at_upper: dict[str, str] = {}
        reported = time.monotonic()
        for page in changes:
            if watching:
                emitted.update((r["id"], r.get("deleted_at")) for r in page)
            if seeding:
                archived_at_upper.update(
                    (r["id"], digest(r))
                    for r in page
                    if r.get("deleted_at") and _at(r["deleted_at"], changes.cursor)
                )
            yield from tables.add(page)
            if not changes.page_waiting:
                # dlt then takes a page of another resource, so every list reads at once.
                # Not while a page waits here: when every resource yields None in a round,
                # dlt sleeps (extract.futures_poll_interval, 10 ms).
                yield None
            if time.monotonic() - reported > PROGRESS_EVERY_S:
                reported = time.monotonic()
                log.info("%s: %d of about %s records", spec.name, changes.records, changes.expected)
        yield from tables.flush()
        assert changes.cursor is not None
        state["cursor"] = format_timestamp(changes.cursor)
        _keep_versions(state, "", changes.versions_at_cursor)
        if not detect_archives:
            return
        if not watching:
            if seeding:
                # A first run read every record as it is now: watch archives from here on.
                state["archive_cursor"] = state["cursor"]
                _keep_versions(state, "archive_", archived_at_upper)
            else:
                # Switched on for a pipeline that has loaded before: archives made since
                # its last run kept their updated_at, so look from that run onwards.
                state["archive_cursor"] = format_timestamp(since)
                _keep_versions(state, "archive_", {})
            return
        archives = WindowScan(
            client,
            spec.path,
            parse_timestamp(state["archive_cursor"]),
            _versions(state, "archive_"),
            page_size,
            digest,
            cursor_field="deleted_at",
            in_flight=at_once,
            decode=decode,
        )
        held: list[datetime] = []  # archived after this run emitted them: load next run
        for page in archives:
            fresh = [r for r in page if r["id"] not in emitted]
            held += [
                parse_timestamp(r["deleted_at"])
                for r in page
                if r["id"] in emitted and not _same_instant(emitted[r["id"]], r["deleted_at"])
            ]
            if fresh:
                yield from tables.write(fresh)
        assert archives.cursor is not None
        cursor, known = archives.cursor, archives.versions_at_cursor
        if held and min(held) <= cursor:
            # Emitting them again in this run would load their child rows twice.
            cursor, known = min(held), {}
        state["archive_cursor"] = format_timestamp(cursor)
        _keep_versions(state, "archive_", known)

    read = _skipping_forbidden(spec.name, records) if skip_forbidden else records
    if parquet_files:
        return dlt.resource(read, name=spec.name, **FILE_HINTS)
    return dlt.resource(read, name=spec.name, write_disposition=MERGE)


def _loader_files(resource_name: str) -> LoaderFiles:
    """The resource's own loader files, in the pipeline's working directory."""
    pipeline = dlt.current.pipeline()
    load_id = dlt.current.load_package_state()["load_id"]
    return LoaderFiles(Path(pipeline.working_dir) / LOADER_FILES_DIR / resource_name, load_id)


def _skipping_forbidden(
    name: str, read: Callable[[], Iterator[Any]]
) -> Callable[[], Iterator[Any]]:
    """``read``, except that a 403 ends it with a warning instead of failing the run. The
    state updates that ``read`` had not reached stay undone, so nothing is skipped for good."""

    def guarded() -> Iterator[Any]:
        try:
            yield from read()
        except ApiError as exc:
            if exc.status != 403:
                raise
            _note_skipped(name, exc)

    return guarded


def _note_skipped(name: str, exc: ApiError) -> None:
    log.warning("skipped %s: %s", name, exc)
    SKIPPED[name] = str(exc)


def _first_load(
    spec: TableSpec, state: dict[str, Any], destination_tables: Collection[str] | None
) -> bool:
    """Nothing of this type was ever loaded (a first run, a full refresh, a type new in
    the catalogue): no cursor, and none of its tables in the schema or the destination.
    The destination has the last word: a killed package dropped by a full refresh,
    another pipeline on the same dataset or a lost working directory leave rows that
    the local state does not know of, and appending to them would repeat them. Without
    the destination's tables (``None``: the source run outside ``run_load``, which
    alone finishes killed runs) every load merges."""
    if destination_tables is None or "cursor" in state:
        return False
    schema = dlt.current.source_schema()
    names = {schema.naming.normalize_table_identifier(t) for t in spec.table_names}
    return names.isdisjoint(schema.tables) and names.isdisjoint(destination_tables)


class TableWriter:
    """Pages of records into the spec's Arrow tables, each with its hints.

    A page becomes tables at once (a tenth of the memory its dicts take); tables are
    handed to dlt in batches of BATCH_RECORDS parent rows, so dlt's cost per item (hints,
    schema checks) is paid once per batch. Every table gets its own hints variant: a
    variant starts from the resource's hints, so the resource itself carries none that
    would leak into the child tables.

    A ``first_load`` appends: the tables are empty and one run emits each record once, so
    a merge would only copy every row through the staging dataset twice (it halves the
    load step) and dedupe nothing. Its parents need no markers, as they have no children
    to replace. The one way it could repeat rows, a load job run again after a crash,
    is undone when the package is finished (recovery.py).

    With ``files`` (loader_files.py) the batches go to Parquet files instead, which
    ``finish`` hands to dlt once the resource has read everything."""

    def __init__(
        self, spec: TableSpec, first_load: bool = False, files: LoaderFiles | None = None
    ) -> None:
        self.spec, self.first_load, self.files = spec, first_load, files
        disposition = "append" if first_load else MERGE
        self.hints = {
            spec.name: dlt.mark.make_hints(
                table_name=spec.name,
                write_disposition=disposition,
                primary_key="id",
                columns=dlt_columns(spec.columns, primary_key="id", merged=not first_load),
            )
        }
        self.hints.update(
            (
                child.name,
                dlt.mark.make_hints(
                    table_name=child.name,
                    write_disposition=disposition,
                    merge_key=PARENT_KEY,
                    # a key lets dlt drop rows staged twice when a killed load is retried
                    primary_key=[PARENT_KEY, POSITION],
                    columns=dlt_columns(
                        child.all_columns, [PARENT_KEY, POSITION], merged=not first_load
                    ),
                ),
            )
            for child in spec.children
        )
        self._pending: dict[str, list[pa.Table]] = {}
        self._rows = 0

    def add(self, page: list[dict[str, Any]]) -> Iterator[Any]:
        """Convert a page; yields a batch when enough rows are pending."""
        from .decoding import page_tables  # Arrow, with the first page to convert

        for name, table in page_tables(self.spec, page):
            self._pending.setdefault(name, []).append(table)
        self._rows += len(page)
        if self._rows >= BATCH_RECORDS:
            yield from self.flush()

    def flush(self) -> Iterator[Any]:
        """Yield every pending table."""
        pending, self._pending, self._rows = self._pending, {}, 0
        if not pending:
            return
        from .tables import batch_table  # imported with the pages' conversion already

        batch = []
        for name, parts in pending.items():
            table, markers = batch_table(parts, drop_markers=self.first_load)
            if markers:
                with _MARKER_LOCK:
                    MARKER_ROWS[name] += markers
            if self.files is None:
                yield dlt.mark.with_hints(table, self.hints[name], create_table_variant=True)
            else:
                batch.append((name, table))
        if self.files is not None:
            self.files.write(batch)

    def finish(self) -> Iterator[Any]:
        """Yield every pending table, then the files written, if any: each as one item."""
        yield from self.flush()
        if self.files is not None:
            for name, path, rows in self.files.finish():
                yield import_item(path, rows, self.hints[name])

    def write(self, records: list[dict[str, Any]]) -> Iterator[Any]:
        """Convert and yield at once."""
        yield from self.add(records)
        yield from self.flush()


def reconcile_resource(
    client: LexfulClient,
    spec: TableSpec,
    loaded: dict[str, str | None],
    page_size: int,
    skip_forbidden: bool = False,
) -> DltResource:
    """Make the destination's table equal Lexful's, whatever the incremental reads missed.

    An id-only scan (three fields per record) lists what Lexful holds. Records the
    destination lacks or shows in another archive state (a restore that kept
    ``updated_at``) are fetched again; records Lexful no longer has at all, confirmed by a
    direct lookup, get a tombstone that deletes them and their child rows.
    """
    tables = TableWriter(spec)

    def records() -> Iterator[Any]:
        fields = {"include_deleted": "true", "sort": "id", "order": "ASC",
                  "fields": "id,updated_at,deleted_at"}  # fmt: skip
        present, stale = set(), []
        for page in scan_all(client, spec.path, page_size, fields):
            for item in page:
                present.add(item["id"])
                if item["id"] not in loaded or not _same_instant(
                    loaded[item["id"]], item.get("deleted_at")
                ):
                    stale.append(item["id"])
        candidates = [record_id for record_id in loaded if record_id not in present]
        refetched = list(_lookup(client, spec.path, stale))
        still_there = {r["id"] for r in _lookup(client, spec.path, candidates)}
        purged = [record_id for record_id in candidates if record_id not in still_there]
        with _MARKER_LOCK:
            RECONCILED["refetched"] += len(refetched)
            RECONCILED["purged"] += len(purged)
        if refetched:
            yield from tables.write(refetched)
        if purged:
            yield from tables.write([{"id": record_id, PURGED: True} for record_id in purged])

    read = _skipping_forbidden(spec.name, records) if skip_forbidden else records
    return dlt.resource(read, name=f"reconcile_{spec.name}", write_disposition=MERGE)


def _lookup(client: LexfulClient, path: str, ids: list[str]) -> Iterator[dict[str, Any]]:
    """The records with these ids, archived ones included, LOOKUP_BATCH ids a request."""
    for start in range(0, len(ids), LOOKUP_BATCH):
        batch = ids[start : start + LOOKUP_BATCH]
        params = {"id[in]": ",".join(batch), "include_deleted": "true"}
        yield from fetch_page(client, path, params, 0, len(batch)).items


def _versions(state: dict[str, Any], prefix: str) -> dict[str, str]:
    """The records loaded at a cursor, id -> digest. (State from before digests listed
    ids only; without it those few records load once more, merged, never lost.)"""
    return dict(state.get(f"{prefix}versions_at_cursor", {}))


def _keep_versions(state: dict[str, Any], prefix: str, versions: dict[str, str]) -> None:
    state.pop(f"{prefix}ids_at_cursor", None)
    state[f"{prefix}versions_at_cursor"] = dict(sorted(versions.items()))


def _at(value: str, moment: datetime | None) -> bool:
    return moment is not None and parse_timestamp(value) == moment


def _same_instant(first: str | None, second: str | None) -> bool:
    if first is None or second is None:
        return first is second
    return parse_timestamp(first) == parse_timestamp(second)


def catalogue_resources(
    client: LexfulClient, page_size: int, skip_forbidden: bool = False, reload: bool = False
) -> list[DltResource]:
    """Organization types and users: read whole when the source is made, and replaced
    when they changed since the last load.

    A resource that yields nothing still replaces its table with nothing, so one the API
    key may not read (``skip_forbidden``) must be left out of the run altogether, and only
    asking tells which."""
    # sorted, so an edit while paging cannot shift one record past another
    params = {"include_deleted": "true", "sort": "id", "order": "ASC"}
    resources = []
    for name, path in CATALOGUE_RESOURCES.items():
        try:
            records = [r for page in scan_all(client, path, page_size, params) for r in page]
        except ApiError as exc:
            if not (skip_forbidden and exc.status == 403):
                raise
            _note_skipped(name, exc)
            continue
        resource = reference_resource(name, records, reload, columns=JSON_LISTS.get(name))
        if resource is not None:
            resources.append(resource)
    return resources


def reference_resource(
    name: str, records: list[dict[str, Any]], reload: bool = False, **hints: Any
) -> DltResource | None:
    """A replace resource for reference data read whole, or None when it equals what the
    last load wrote: a run with nothing new then writes no load package at all.
    ``reload`` loads it regardless (a full refresh drops the tables after this check)."""
    digest = hashlib.blake2b(orjson.dumps(records), digest_size=16).hexdigest()
    loaded = _source_state().get(REFERENCE_DIGESTS, {})
    if not reload and loaded.get(name) == digest:
        UNCHANGED.add(name)
        return None

    def read() -> Iterator[list[dict[str, Any]]]:
        if records:
            yield records
        # committed with the load that carries the records, like every cursor
        dlt.current.source_state().setdefault(REFERENCE_DIGESTS, {})[name] = digest

    return dlt.resource(read, name=name, write_disposition="replace", primary_key="id", **hints)


def _source_state() -> dict[str, Any]:
    """The source's state, or nothing when the source is built outside a pipeline."""
    try:
        return dict(dlt.current.source_state())
    except Exception:  # no active pipeline: dlt raises its own context errors
        return {}


_DELETED_AT = {"deleted_at": {"data_type": "timestamp", "timezone": True, "nullable": True}}
# Typed even when null in every row; lists of plain values kept as JSON, not child tables.
JSON_LISTS: dict[str, Any] = {
    "organization_types": _DELETED_AT,
    "users": {
        **_DELETED_AT,
        "account_scopes": {"data_type": "json"},
        "organization_scopes": {"data_type": "json"},
        "external_ids": {"data_type": "json"},
    },
}


def asset_types_resource(
    definitions: list[dict[str, Any]], reload: bool = False
) -> DltResource | None:
    """The catalogue as read at the start of the run, properties and references nested;
    None when it is unchanged since the last load."""
    for definition in definitions:  # older API versions say target_entity_types
        for ref in definition.get("references") or []:
            if "target_entity_types" in ref and "target_asset_types" not in ref:
                ref["target_asset_types"] = ref.pop("target_entity_types")
    return reference_resource(
        "asset_types",
        definitions,
        reload,
        max_table_nesting=1,  # properties and references as tables, deeper lists as JSON
        columns=_DELETED_AT,
    )
