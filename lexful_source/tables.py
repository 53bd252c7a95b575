"""Pages of records to Arrow tables: the parent table and one table per nested list.

Building the tables here instead of letting dlt normalize dicts row by row is what makes
loads fast; it also means this module owns the child tables' keys. Each child row carries
its parent's id (``asset_id``) and list position; a parent whose list is empty gets one
marker row, so a merge on ``asset_id`` removes children the parent no longer has.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .errors import MalformedResponseError
from .memory import arrow_imported
from .records import child_items, reference_pairs
from .schema import ChildTable, TableSpec
from .settings import MARKER, MARKER_POSITION, PARENT_KEY, POSITION
from .timestamps import parse_timestamp

arrow_imported()  # the pool a run chose, before this source's first Arrow array


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _date(value: Any) -> date:
    return date.fromisoformat(value[:10])


def _whole(value: Any) -> int:
    """An integer property's value; 5.5 must fail rather than load as 5."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"{value!r} is not a whole number")


CONVERTERS: dict[str, tuple[pa.DataType, Callable[[Any], Any] | None]] = {
    "text": (pa.string(), None),
    "json": (pa.string(), _json),
    "bool": (pa.bool_(), None),
    "bigint": (pa.int64(), _whole),
    "double": (pa.float64(), float),
    "date": (pa.date32(), _date),
    "timestamp": (pa.timestamp("us", tz="UTC"), parse_timestamp),
}


def column_array(values: list[Any], data_type: str, where: str) -> pa.Array:
    """An Arrow array of one column; a value of the wrong type fails naming the column."""
    arrow_type, convert = CONVERTERS[data_type]
    try:
        if convert is not None:
            values = [None if v is None else convert(v) for v in values]
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        if data_type == "text":
            return pa.array([None if v is None else _text(v) for v in values], arrow_type)
        bad = next(v for v in values if v is not None and not _fits(v, data_type))
        raise MalformedResponseError(
            f"{where}: value {bad!r} ({type(bad).__name__}) does not fit the property's "
            f"type ({data_type})"
        ) from None


def _fits(value: Any, data_type: str) -> bool:
    arrow_type, convert = CONVERTERS[data_type]
    try:
        pa.array([convert(value) if convert else value], arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return False
    return True


def parent_table(
    spec: TableSpec, records: list[dict[str, Any]], vectorized: bool = True
) -> pa.Table:
    """The spec's parent table. Columns Arrow can convert in one C++ pass (a struct over
    the records) take that fast path; a column it refuses, or that needs Python (JSON
    text), is converted value by value, which also names a value that fits no type."""
    fast = _fast_columns(spec) if vectorized else {}
    converted = _struct_fields(records, fast)
    arrays, names = [], []
    for column, data_type in spec.columns.items():
        array = None
        if converted is not None and column in fast:
            array = finish_column(converted[column], data_type)
        if array is None:
            values = [r.get(spec.keys[column]) for r in records]
            array = column_array(values, data_type, f"{spec.name}.{column}")
        arrays.append(array)
        names.append(column)
    fields = [pa.field(n, a.type, nullable=n != "id") for n, a in zip(names, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# The Arrow type a JSON value is read as before it becomes its column's type. Types not
# here always take the value-by-value path: JSON text, and integers (Arrow would load 5.5
# as 5 without a word).
RAW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bool": pa.bool_(),
    "double": pa.float64(),
    "date": pa.string(),
    "timestamp": pa.string(),
}
_REFUSED = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError)


def _fast_columns(spec: TableSpec) -> dict[str, tuple[str, pa.DataType]]:
    """Column -> (record key, raw Arrow type), for the columns the fast path can take."""
    fast: dict[str, tuple[str, pa.DataType]] = {}
    seen: set[str] = set()
    for column, data_type in spec.columns.items():
        key = spec.keys[column]
        if data_type in RAW_TYPES and key not in seen:
            fast[column] = (key, RAW_TYPES[data_type])
            seen.add(key)
    return fast


def _struct_fields(
    records: list[Any], fast: dict[str, tuple[str, pa.DataType]]
) -> dict[str, pa.Array] | None:
    """The fast columns read as one struct array, or None when Arrow refuses a value."""
    if not fast:
        return None
    raw = pa.struct([pa.field(key, raw_type) for key, raw_type in fast.values()])
    try:
        struct = pa.array(records, raw)
    except _REFUSED:
        return None
    return {column: struct.field(i) for i, column in enumerate(fast)}


def finish_column(raw: pa.Array, data_type: str) -> pa.Array | None:
    """A raw column as its final type; None when Arrow's parsing differs from ours (a
    naive or nanosecond timestamp, a datetime in a date column): the caller then
    converts that column value by value."""
    target = CONVERTERS[data_type][0]
    if raw.type == target:
        return raw
    try:
        return pc.cast(raw, target)
    except _REFUSED:
        return None


def child_table(
    child: ChildTable, records: list[dict[str, Any]], vectorized: bool = True
) -> pa.Table:
    """The child rows of a page, plus a marker row for each parent whose list is empty."""
    columns = None
    if vectorized:
        if child.field == "references":
            columns = _reference_columns(child, records)
        else:
            columns = _fast_child_columns(child, records)
    if columns is None:
        columns = _child_columns(child, records)
    return child_arrow_table(child, columns)


def child_arrow_table(child: ChildTable, columns: dict[str, pa.Array]) -> pa.Table:
    arrays = [columns[c] for c in child.all_columns]
    keys = (PARENT_KEY, POSITION)  # the child table's primary key: never null
    fields = [
        pa.field(c, a.type, nullable=c not in keys)
        for c, a in zip(child.all_columns, arrays, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _child_columns(child: ChildTable, records: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """Child rows value by value: the reference semantics, for any shape of list."""
    rows: dict[str, list[Any]] = {c: [] for c in child.all_columns}
    parent_key, position_of, marker = rows[PARENT_KEY], rows[POSITION], rows[MARKER]
    item_columns = [(c, rows[c]) for c in child.columns]
    for record in records:
        record_id, before = record["id"], len(parent_key)
        for position, item in enumerate(child_items(child, record)):
            parent_key.append(record_id)
            position_of.append(position)
            for column, values in item_columns:
                values.append(item[column])
            marker.append(False)
        if len(parent_key) == before:
            parent_key.append(record_id)
            for _, values in item_columns:
                values.append(None)
            position_of.append(MARKER_POSITION)
            marker.append(True)
    return {c: column_array(rows[c], t, f"{child.name}.{c}") for c, t in child.all_columns.items()}


def child_item_type(child: ChildTable, types: dict[str, pa.DataType]) -> pa.DataType | None:
    """The Arrow type of one item of an array property, its columns read as ``types``
    says (the dict path's raw types, or the decoder's); None when a column has no type
    there and so needs the value-by-value path."""
    found = [types.get(t) for t in child.columns.values()]
    if None in found:
        return None
    if child.scalar:
        return found[0]
    keys = [child.item_keys[c] for c in child.columns]
    return pa.struct([pa.field(k, t) for k, t in zip(keys, found, strict=True)])


def _fast_child_columns(
    child: ChildTable, records: list[dict[str, Any]]
) -> dict[str, pa.Array] | None:
    """Child rows of an array property from one Arrow list conversion, or None when a
    value needs the value-by-value path (JSON text, an item that is not an object, a
    value Arrow refuses)."""
    item_type = child_item_type(child, RAW_TYPES)
    if item_type is None:
        return None
    values = [r.get(child.field) for r in records]
    if any(v is not None and type(v) is not list for v in values):
        return None  # Arrow would read a string as a list of its characters
    try:
        lists = pa.array(values, pa.list_(item_type))
    except _REFUSED:
        return None
    ids = pa.array([r["id"] for r in records], pa.string())
    return list_child_columns(child, lists, ids)


def list_child_columns(
    child: ChildTable, lists: pa.ListArray, ids: pa.Array
) -> dict[str, pa.Array] | None:
    """Child rows from each parent's list already in Arrow (``ids`` are the parents'),
    or None when a value needs the value-by-value path."""
    items = lists.flatten()
    if child.scalar:
        raw = [items]
    else:
        if items.null_count:  # a null item: the value-by-value path keeps it as a row
            return None
        raw = [pc.struct_field(items, child.item_keys[c]) for c in child.columns]
    finished = [finish_column(a, t) for a, t in zip(raw, child.columns.values(), strict=True)]
    if any(a is None for a in finished):
        return None
    parents = pc.list_parent_indices(lists)
    offsets = np.asarray(lists.offsets)[:-1]
    positions = np.arange(len(items), dtype=np.int64) - offsets[np.asarray(parents)]
    empty = np.flatnonzero(np.asarray(pc.list_value_length(lists).fill_null(0)) == 0)
    markers = len(empty)
    columns = {
        PARENT_KEY: pa.concat_arrays([ids.take(parents), ids.take(pa.array(empty))]),
        POSITION: pa.array(np.concatenate([positions, np.full(markers, MARKER_POSITION)])),
        MARKER: pa.array(np.concatenate([np.zeros(len(items), bool), np.ones(markers, bool)])),
    }
    for column, array in zip(child.columns, finished, strict=True):
        columns[column] = pa.concat_arrays([array, pa.nulls(markers, array.type)])
    return columns


def _reference_columns(child: ChildTable, records: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """The references child table, in one tight loop: the widest child tables there are."""
    ids: list[str] = []
    positions: list[int] = []
    names: list[str | None] = []
    targets: list[Any] = []
    for record in records:
        record_id, position = record["id"], 0
        for name, target in reference_pairs(record.get("references")):
            ids.append(record_id)
            positions.append(position)
            names.append(name)
            targets.append(target)
            position += 1
        if not position:
            ids.append(record_id)
            positions.append(MARKER_POSITION)
            names.append(None)
            targets.append(None)
    markers = [p == MARKER_POSITION for p in positions]
    rows = {PARENT_KEY: ids, POSITION: positions, "reference_name": names,
            "referenced_asset_id": targets, MARKER: markers}  # fmt: skip
    return {c: column_array(rows[c], t, f"{child.name}.{c}") for c, t in child.all_columns.items()}


def build_tables(
    spec: TableSpec, records: list[dict[str, Any]], *, vectorized: bool = True
) -> list[tuple[str, pa.Table]]:
    """(table name, Arrow table) for the page: the parent first, then each child.
    ``vectorized=False`` converts every value in Python: the reference the fast path is
    tested against, and what it falls back to."""
    tables = [(spec.name, parent_table(spec, records, vectorized))]
    tables.extend((child.name, child_table(child, records, vectorized)) for child in spec.children)
    return tables


def batch_table(parts: list[pa.Table], drop_markers: bool) -> tuple[pa.Table, int]:
    """One table of a batch's parts, and how many marker rows it keeps. A first load
    drops its markers: its parents have no children yet to replace."""
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if MARKER not in table.column_names:
        return table, 0
    markers = pc.sum(table[MARKER]).as_py() or 0
    if drop_markers and markers:
        return table.filter(pc.invert(table[MARKER])), 0
    return table, markers
