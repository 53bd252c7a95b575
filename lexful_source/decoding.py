"""List pages from the response body straight to Arrow tables, without Python dicts.

Parsing a page into dicts and then converting the dicts to Arrow cost about as much as
the whole rest of a load, and all of it under the interpreter lock, so the read-ahead
thread and the conversion took turns on one core. ``pyarrow.json`` parses the body in
C++ without the lock and gives the columns typed. Paging still needs each record's id
and timestamps, and a digest needs the whole record for the few records at a cursor:
``LightRecord`` (records.py) carries the first and parses the page with orjson only when asked.

This path is an exact shortcut or nothing. A body orjson would refuse, or one without
a ``total``, decodes to None and is parsed with orjson as before; a page whose records
or tables cannot be made exactly as the dict path makes them (a value of another type,
a timestamp Arrow parses differently, a child list kept as JSON text) goes the dict
path from there (``tables.build_tables``). A column kept as JSON text is the one made
from orjson's dicts of the page. The exactness tests hold both paths to the same tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .errors import MalformedResponseError
from .records import LightRecord, ParsedPage, full_record
from .schema import TableSpec
from .settings import MARKER, MARKER_POSITION, PARENT_KEY, POSITION
from .tables import (
    RAW_TYPES,
    build_tables,
    child_arrow_table,
    child_item_type,
    column_array,
    finish_column,
    list_child_columns,
)

# Integers are exact here, unlike from Python objects: Arrow's JSON reader refuses 5.5
# and 5.0 for an int64 field (the dict path then loads 5.0 as 5 and names 5.5).
DECODED_TYPES: dict[str, pa.DataType] = {**RAW_TYPES, "bigint": pa.int64()}
# Bodies orjson refuses that Arrow's reader would take: NaN, Inf and Infinity literals,
# invalid UTF-8 and a byte-order mark (see _strict_json).
_NON_FINITE = (re.compile(rb"NaN"), re.compile(rb"Inf"))
_SPACE = b" \t\n\r\f\v"
_BOM = b"\xef\xbb\xbf"
_REFUSED = (pa.ArrowException, ValueError, TypeError, KeyError)
LIGHT_KEYS = ("id", "updated_at", "deleted_at")


class DecodedPage(ParsedPage):
    """A list answer Arrow's reader parsed. Its ``total`` is known at once. Its records
    are made by ``make_items`` on the thread that gets the page, which reads the first
    and last of them to check the page against the one before (paging.py); its tables
    by ``rows``, only when records of it are loaded. A page whose records the decoder
    cannot make exactly becomes orjson's dicts, and one whose tables it cannot make is
    converted from them, as if never decoded. The page does not keep the records it
    made (they point to it): no cycle is left for the collector, which a run calls
    rarely."""

    def __init__(self, decoder: PageDecoder, raw: bytes, total: int, parsed: pa.Array) -> None:
        self.decoder, self.raw, self.total = decoder, raw, total
        self.where = "a list request"  # fetch_page names the request
        self.count = 0  # records made
        self._parsed: pa.Array | None = parsed
        self._records: list[dict[str, Any]] | None = None
        self._fields: dict[str, pa.Array] = {}  # the parsed columns, until the tables are made
        self._tables: Tables | None = None

    def make_items(self) -> list[dict[str, Any]]:
        """The records, once: light ones, or orjson's dicts when a record lacks what
        paging reads of every one."""
        parsed, self._parsed = self._parsed, None
        made = self.decoder.light_records(self, parsed) if parsed is not None else None
        items = self.records() if made is None else made
        self.count = len(items)
        return items

    def records(self) -> list[dict[str, Any]]:
        """The page's records as orjson parses them, kept for the page's other records."""
        if self._records is None:
            self._records = self._parse()
        return self._records

    def _parse(self) -> list[dict[str, Any]]:
        """The records as orjson parses them, not kept: a page's dicts stay out of memory
        while its records wait in a batch."""
        if self._records is not None:
            return self._records
        try:
            return orjson.loads(self.raw)["items"]
        except orjson.JSONDecodeError:
            raise MalformedResponseError(f"{self.where} answered a body that is not JSON") from None

    def rows(self, rows: list[int]) -> list[tuple[str, pa.Table]] | None:
        """The tables for these page rows (in page order) and their child rows; None when
        the page's values cannot make them exactly. Made on first use: a run that loads
        none of a page's records (a run with no changes) makes no table at all."""
        if self._tables is None:
            fields, self._fields = self._fields, {}
            self._tables = self.decoder.tables(fields, self._parse) or ([], {})
        tables, child_rows = self._tables
        if not tables or len(rows) == self.count:
            return tables or None
        (name, parent), *children = tables
        first, count = rows[0], len(rows)
        run = rows[-1] - first + 1 == count  # a run of rows: sliced, not copied
        keep = None if run else np.asarray(rows, dtype=np.int64)
        chosen = [(name, parent.slice(first, count) if run else parent.take(pa.array(keep)))]
        for child, table in children:
            of = child_rows[child]
            mask = (of >= first) & (of < first + count) if run else np.isin(of, keep)
            chosen.append((child, table.filter(pa.array(mask))))
        return chosen


Tables = tuple[list[tuple[str, pa.Table]], dict[str, np.ndarray]]


class PageDecoder:
    """Decodes one spec's list pages; ``None`` for a page the dict path must take."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.schema = _page_schema(spec)

    def __call__(self, raw: bytes) -> DecodedPage | None:
        """The parse, on the thread that fetched the page (Arrow's reader releases the
        interpreter lock); None when the body is not one the reader takes as orjson would
        or lacks a ``total``. Records and tables are checked later, when made."""
        if self.schema is None or not _strict_json(raw):
            return None
        try:
            doc = pj.read_json(
                pa.BufferReader(raw),
                read_options=pj.ReadOptions(use_threads=False, block_size=len(raw) + 1),
                parse_options=pj.ParseOptions(
                    explicit_schema=self.schema, unexpected_field_behavior="infer"
                ),
            )
        except _REFUSED:
            return None
        if doc.num_rows != 1 or doc.column("items").null_count:
            return None
        total = doc.column("total")[0].as_py()
        if total is None:
            return None  # null or missing: the dict path tells which
        return DecodedPage(self, raw, total, doc.column("items").chunk(0).flatten())

    def light_records(self, page: DecodedPage, items: pa.Array) -> list[LightRecord] | None:
        """The page's records as ids and timestamps; None when one lacks them (or an
        item is null), which the dict path then names. No Arrow compute function runs
        here: their first call imports pandas, which a run that loads nothing skips."""
        if items.null_count:
            return None
        kind = items.type
        names = [kind.field(i).name for i in range(kind.num_fields)]
        fields = dict(zip(names, items.flatten(), strict=True))
        light = [fields[key] for key in LIGHT_KEYS]
        ids, updated, deleted = (column.to_pylist() for column in light)
        if light[0].null_count or light[1].null_count or "" in ids:
            return None
        page._fields = fields
        return _light_records(page, ids, updated, deleted)

    def tables(
        self, fields: dict[str, pa.Array], records: Callable[[], list[dict[str, Any]]]
    ) -> Tables | None:
        """The page's tables from its parsed columns; None for a value they cannot take
        exactly (the records are then converted from orjson's dicts). A column kept as
        JSON text is the one column made from ``records`` (orjson's dicts of the page):
        its text must be orjson's, which Arrow's parse cannot give back."""
        try:
            return self._tables(fields, records)
        except _REFUSED:
            return None

    def _tables(
        self, fields: dict[str, pa.Array], records: Callable[[], list[dict[str, Any]]]
    ) -> Tables | None:
        spec, ids = self.spec, fields["id"]
        arrays, dicts = [], None
        for column, data_type in spec.columns.items():
            key = spec.keys[column]
            if data_type == "json":
                dicts = records() if dicts is None else dicts
                values = [record.get(key) for record in dicts]
                arrays.append(column_array(values, data_type, f"{spec.name}.{column}"))
                continue
            array = finish_column(fields[key], data_type)
            if array is None:
                return None
            arrays.append(array)
        schema = pa.schema(
            [
                pa.field(c, a.type, nullable=c != "id")
                for c, a in zip(spec.columns, arrays, strict=True)
            ]
        )
        tables = [(spec.name, pa.Table.from_arrays(arrays, schema=schema))]
        child_rows = {}
        for child in spec.children:
            if child.field == "references":
                columns = _reference_columns(fields.get("references"), ids)
            else:
                lists = fields[child.field]
                columns = list_child_columns(child, lists, ids)
                if columns is not None:
                    columns[_ROW] = _rows_of(lists)
            if columns is None:
                return None
            child_rows[child.name] = columns.pop(_ROW)
            tables.append((child.name, child_arrow_table(child, columns)))
        return tables, child_rows


_ROW = "_page_row"  # set aside before the table is made


def _strict_json(raw: bytes) -> bool:
    """No byte-order mark, valid UTF-8 (which Arrow's reader does not check) and no
    non-finite number (which it takes)."""
    if raw.startswith(_BOM):
        return False
    text = pa.Array.from_buffers(
        pa.large_string(),
        1,
        [None, pa.py_buffer(np.array([0, len(raw)], np.int64)), pa.py_buffer(raw)],
    )
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return not _has_non_finite(raw)


def _has_non_finite(raw: bytes) -> bool:
    """Whether a ``NaN`` or ``Inf`` (``Infinity``) stands where a value starts: after
    ``:``, ``,`` or ``[``, whitespace and a minus sign. One regular expression for all
    of that cost 6 ms a page where text held "Influencer"; a search for the word alone
    is a fast scan, and a string that merely looks like one sends its page the dict path."""
    for word in _NON_FINITE:
        for found in word.finditer(raw):
            start = found.start()
            if start and raw[start - 1] == ord("-"):
                start -= 1
            while start and raw[start - 1] in _SPACE:
                start -= 1
            if start and raw[start - 1] in b":,[":
                return True
    return False


def _page_schema(spec: TableSpec) -> pa.Schema | None:
    """The response's schema as far as this spec reads it; None when a child needs
    Python (JSON text) or two columns or children read the same key. A column kept as
    JSON text is left to the reader's inference (a page whose values it cannot infer
    one type for goes the dict path) and made from orjson's dicts."""
    fields, json_keys = [], []
    for column, data_type in spec.columns.items():
        if data_type == "json":
            json_keys.append(spec.keys[column])
            continue
        if data_type not in DECODED_TYPES:
            return None
        fields.append(pa.field(spec.keys[column], DECODED_TYPES[data_type]))
    for child in spec.children:
        if child.field == "references":
            continue  # its names are the data's: inferred
        item = child_item_type(child, DECODED_TYPES)
        if item is None:
            return None
        fields.append(pa.field(child.field, pa.list_(item)))
    names = [f.name for f in fields] + json_keys
    if len(set(names)) != len(names) or "references" in names:
        return None
    return pa.schema([pa.field("items", pa.list_(pa.struct(fields))), ("total", pa.int64())])


def _light_records(
    page: DecodedPage, ids: list[str], updated: list[str], deleted: list[str | None]
) -> list[LightRecord]:
    records = []
    for row, (key, updated_at, deleted_at) in enumerate(zip(ids, updated, deleted, strict=True)):
        record = LightRecord(id=key, updated_at=updated_at, deleted_at=deleted_at)
        record.page, record.row = page, row
        records.append(record)
    return records


def _rows_of(lists: pa.ListArray) -> np.ndarray:
    """The parent row of each child row ``list_child_columns`` makes: items, then markers."""
    parents = np.asarray(pc.list_parent_indices(lists))
    empty = np.flatnonzero(np.asarray(pc.list_value_length(lists).fill_null(0)) == 0)
    return np.concatenate([parents, empty])


def _reference_columns(references: pa.Array | None, ids: pa.Array) -> dict[str, Any] | None:
    """The references child rows, as ``records.reference_pairs`` makes them: names in
    sorted order, each name's ids in list order, an object's ``id``, nulls skipped, and
    a marker row for a record with none. None for any other shape."""
    names = _reference_names(references)
    rows, targets, within = [], [], []
    for name in names:
        found = _targets(pc.struct_field(references, name))
        if found is None:
            return None
        rows.append(found[0])
        targets.append(found[1])
        within.append(found[2])
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    rank = np.repeat(np.arange(len(rows)), [len(r) for r in rows]) if rows else row
    order = np.lexsort((np.concatenate(within), rank, row)) if rows else row
    row = row[order]
    per_record = np.bincount(row, minlength=len(ids))
    starts = np.cumsum(per_record) - per_record
    positions = np.arange(len(row), dtype=np.int64) - starts[row]
    empty = np.flatnonzero(per_record == 0)
    markers = len(empty)
    take = pa.array(order)
    name_array = pa.array(names, pa.string()).take(pa.array(rank[order]))
    target_array = pa.concat_arrays(targets).take(take) if rows else pa.array([], pa.string())
    return {
        PARENT_KEY: ids.take(pa.array(np.concatenate([row, empty]))),
        POSITION: pa.array(np.concatenate([positions, np.full(markers, MARKER_POSITION)])),
        "reference_name": pa.concat_arrays([name_array, pa.nulls(markers, pa.string())]),
        "referenced_asset_id": pa.concat_arrays([target_array, pa.nulls(markers, pa.string())]),
        MARKER: pa.array(np.concatenate([np.zeros(len(row), bool), np.ones(markers, bool)])),
        _ROW: np.concatenate([row, empty]),
    }


def _reference_names(references: pa.Array | None) -> list[str]:
    """The reference names any record of the page has, sorted."""
    if references is None or pa.types.is_null(references.type):
        return []
    if not pa.types.is_struct(references.type):
        raise TypeError("references is not an object")  # the dict path takes the page
    kind = references.type
    return sorted(kind.field(i).name for i in range(kind.num_fields))


def _targets(values: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray] | None:
    """(record row, target id, place in the name's list) of one name's references."""
    kind = values.type
    if pa.types.is_null(kind):
        return np.zeros(0, np.int64), pa.array([], pa.string()), np.zeros(0, np.int64)
    if pa.types.is_string(kind) or pa.types.is_struct(kind):
        present = np.flatnonzero(np.asarray(values.is_valid()))
        target = _id_of(values).take(pa.array(present))
        return present, target, np.zeros(len(present), np.int64)
    if pa.types.is_list(kind) and (
        pa.types.is_string(kind.value_type) or pa.types.is_null(kind.value_type)
    ):
        flat = values.flatten()
        parents = np.asarray(pc.list_parent_indices(values))
        present = np.flatnonzero(np.asarray(flat.is_valid()))
        return parents[present], flat.cast(pa.string()).take(pa.array(present)), present
    return None


def _id_of(values: pa.Array) -> pa.Array:
    """An id, or an object's ``id`` (null when it has none, as ``asset.get("id")``)."""
    if pa.types.is_string(values.type):
        return values
    if values.type.get_field_index("id") < 0:
        return pa.nulls(len(values), pa.string())
    ids = pc.struct_field(values, "id")
    if not pa.types.is_string(ids.type) and not pa.types.is_null(ids.type):
        raise TypeError("a reference's id is not text")
    return ids.cast(pa.string())


def page_tables(spec: TableSpec, records: list[dict[str, Any]]) -> list[tuple[str, pa.Table]]:
    """(table name, Arrow table) for these records: from their decoded pages when every
    one was decoded and its page's values make tables, else converted from the dicts
    (``build_tables``)."""
    parts: list[list[tuple[str, pa.Table]]] = []
    if records and all(type(r) is LightRecord for r in records):
        start = 0
        for end in range(1, len(records) + 1):
            if end == len(records) or records[end].page is not records[start].page:
                part = records[start].page.rows([r.row for r in records[start:end]])
                if part is None:
                    parts = []
                    break
                parts.append(part)
                start = end
    if not parts:
        return build_tables(spec, [full_record(r) for r in records])
    if len(parts) == 1:
        return parts[0]
    return [
        (name, pa.concat_tables([part[i][1] for part in parts]))
        for i, (name, _) in enumerate(parts[0])
    ]
