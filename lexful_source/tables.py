"""Pages of records to Arrow tables: the parent table and one table per nested list.

Building the tables here instead of letting dlt normalize dicts row by row is what makes
loads fast; it also means this module owns the child tables' keys. Each child row carries
its parent's id (``asset_id``) and list position; a parent whose list is empty gets one
marker row, so a merge on ``asset_id`` removes children the parent no longer has.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import orjson
import pyarrow as pa

from .errors import MalformedResponseError
from .schema import ChildTable, TableSpec
from .settings import MARKER, MARKER_POSITION, PARENT_KEY, POSITION
from .timestamps import parse_timestamp


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


def parent_table(spec: TableSpec, records: list[dict[str, Any]]) -> pa.Table:
    arrays, names = [], []
    for column, data_type in spec.columns.items():
        key = spec.keys[column]
        values = [r.get(key) for r in records]
        arrays.append(column_array(values, data_type, f"{spec.name}.{column}"))
        names.append(column)
    fields = [pa.field(n, a.type, nullable=n != "id") for n, a in zip(names, arrays, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def child_table(child: ChildTable, records: list[dict[str, Any]]) -> pa.Table:
    rows: dict[str, list[Any]] = {c: [] for c in child.all_columns}
    for record in records:
        before = len(rows[PARENT_KEY])
        for position, item in enumerate(_child_items(child, record)):
            rows[PARENT_KEY].append(record["id"])
            rows[POSITION].append(position)
            for column, value in item.items():
                rows[column].append(value)
            rows[MARKER].append(False)
        if len(rows[PARENT_KEY]) == before:
            rows[PARENT_KEY].append(record["id"])
            for column in child.columns:
                rows[column].append(None)
            rows[POSITION].append(MARKER_POSITION)
            rows[MARKER].append(True)
    arrays = [column_array(rows[c], t, f"{child.name}.{c}") for c, t in child.all_columns.items()]
    keys = (PARENT_KEY, POSITION)  # the child table's primary key: never null
    fields = [
        pa.field(c, a.type, nullable=c not in keys)
        for c, a in zip(child.all_columns, arrays, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _child_items(child: ChildTable, record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    value = record.get(child.field)
    if child.field == "references":
        for name, target in (value or {}).items() if isinstance(value, dict) else ():
            for asset_id in target if isinstance(target, list) else [target]:
                if asset_id is not None:
                    ref = asset_id.get("id") if isinstance(asset_id, dict) else asset_id
                    yield {"reference_name": name, "referenced_asset_id": ref}
        return
    for item in value or () if isinstance(value, list) else ():
        if child.scalar:
            yield {"value": item}
        else:
            source = item if isinstance(item, dict) else {}
            yield {column: source.get(key) for column, key in child.item_keys.items()}


def build_tables(spec: TableSpec, records: list[dict[str, Any]]) -> list[tuple[str, pa.Table]]:
    """(table name, Arrow table) for the page: the parent first, then each child."""
    tables = [(spec.name, parent_table(spec, records))]
    tables.extend((child.name, child_table(child, records)) for child in spec.children)
    return tables


def loaded_digest(spec: TableSpec, record: dict[str, Any]) -> str:
    """A short digest of what a load writes for ``record``. The incremental state keeps it
    for the records stamped at the cursor, so one changed again without a new
    ``updated_at`` is still loaded; it covers loaded fields only, so no secret value
    reaches the state even hashed."""
    loaded = [record.get(key) for key in spec.keys.values()]
    loaded += [list(_child_items(child, record)) for child in spec.children]
    return hashlib.blake2b(orjson.dumps(loaded), digest_size=8).hexdigest()
