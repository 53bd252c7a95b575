"""List parameters and filters, evaluated the way API-NOTES.md and core-concepts.md describe.

``parse_list_query`` turns a query string into a :class:`ListQuery` (400 on anything the
API would reject), and ``run_query`` answers it: a bisection of the (updated_at, id)
index for the incremental query connectors send, a filtered, sorted scan for the rest.
Timestamps compare as instants whatever ISO form they are written in.
"""

from __future__ import annotations

import bisect
import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from .store import Collection, Row
from .timestamps import parse_instant

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
RESERVED = {"limit", "offset", "sort", "order", "include_deleted", "fields", "expand", "search"}
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
TEXT_OPS = {"like", "ilike", "contains", "startswith", "endswith"}
ARRAY_LENGTH_OPS = {f"array_length_{name}": fn for name, fn in COMPARISONS.items()}
ALL_OPS = {
    *COMPARISONS,
    "between",
    "in",
    "nin",
    "null",
    *TEXT_OPS,
    "array_contains",
    "array_empty",
    *ARRAY_LENGTH_OPS,
}
SCALAR_KINDS = {"string", "number", "integer", "boolean", "date", "datetime", "instant"}
_KEY = re.compile(r"^(?P<field>[A-Za-z0-9_.]+)(?:\[(?P<op>[A-Za-z_]+)\])?$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INSTANT_ATTR = {"created_at": "created_ms", "updated_at": "updated_ms", "deleted_at": "deleted_ms"}


INDEXED_SORTS = [
    [("updated_at", descending), *tail]
    for descending in (False, True)
    for tail in ([], [("id", descending)])
]


class BadRequest(ValueError):
    """A query the API answers with 400; the message names the parameter at fault."""


Predicate = Callable[[Row], bool]


@dataclass
class ListQuery:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    include_deleted: bool = False
    fields: list[str] | None = None
    expand: set[str] = field(default_factory=set)
    predicates: list[Predicate] = field(default_factory=list)
    updated_bounds: tuple[int, int] | None = None  # [lo, hi) over updated_ms, if indexable


def getter(coll: Collection, name: str) -> Callable[[Row], Any]:
    """A function giving a field's comparable value: instants as ms, dates as ISO text."""
    attr = _INSTANT_ATTR.get(name)
    if attr is not None:
        return operator.attrgetter(attr)
    if coll.kinds.get(name) == "datetime":

        def datetime_value(row: Row) -> int | None:
            text = row.doc.get(name)
            return None if text is None else parse_instant(text)

        return datetime_value
    return lambda row: row.doc.get(name)


def coerce(raw: str, kind: str, where: str) -> Any:
    """A filter value in the field's own terms; BadRequest names the parameter if it won't go."""
    try:
        if kind in ("instant", "datetime"):
            return parse_instant(raw)
        if kind == "date":
            text = raw.strip()
            if len(text) > 10:  # a full timestamp is accepted; its calendar date is used
                parse_instant(text)
            return date.fromisoformat(text[:10]).isoformat()
        if kind in ("number", "integer"):
            if not _NUMBER.match(raw.strip()):  # JSON numbers only: no NaN, inf or 1_000
                raise ValueError(raw)
            return float(raw)
        if kind == "boolean":
            return parse_bool(raw, where)
    except (ValueError, OverflowError):
        raise BadRequest(f"querystring/{where} must be a valid {kind}, got {raw!r}") from None
    return raw


def parse_bool(raw: str, where: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise BadRequest(f"querystring/{where} must be boolean, got {raw!r}")


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """SQL LIKE: ``%`` any run, ``_`` one character, a backslash makes the next one literal."""
    parts: list[str] = []
    escaped = False
    for c in pattern:
        if escaped or c not in "%_\\":
            parts.append(re.escape(c))
            escaped = False
        elif c == "\\":
            escaped = True
        else:
            parts.append(".*" if c == "%" else ".")
    if escaped:
        parts.append(re.escape("\\"))
    return re.compile("".join(parts), flags | re.DOTALL)


def json_contains(container: Any, wanted: Any) -> bool:
    """Postgres jsonb ``@>``: an object holds the wanted keys (recursively), an array holds
    every wanted element somewhere, scalars are equal (and ``true`` is not ``1``)."""
    if isinstance(wanted, dict):
        return isinstance(container, dict) and all(
            key in container and json_contains(container[key], value)
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(container, list) and all(
            any(json_contains(item, value) for item in container) for value in wanted
        )
    if isinstance(container, dict | list) or isinstance(container, bool) != isinstance(
        wanted, bool
    ):
        return False
    return bool(container == wanted)


def _array_predicate(op: str, raw: str, get: Callable[[Row], Any], where: str) -> Predicate:
    if op == "array_empty":
        flag = parse_bool(raw, where)
        return lambda row: (not get(row)) == flag
    if op == "array_contains":
        try:
            wanted = orjson.loads(raw)
        except orjson.JSONDecodeError:
            wanted = raw

        # an object or a scalar is looked for among the items, an array item by item
        wanted_items = wanted if isinstance(wanted, list) else [wanted]
        return lambda row: json_contains(get(row) or [], wanted_items)
    try:
        length = int(raw)
    except ValueError:
        raise BadRequest(f"querystring/{where} must be an integer, got {raw!r}") from None
    compare = ARRAY_LENGTH_OPS[op]
    return lambda row: compare(len(get(row) or ()), length)


def compile_filter(coll: Collection, name: str, op: str, raw: str) -> Predicate:
    """One ``field[op]=value`` as a predicate over rows."""
    where = f"{name}[{op}]"
    if name.startswith("references."):
        return _reference_predicate(coll, name.partition(".")[2], op, raw, where)
    kind = coll.kinds.get(name)
    if kind is None:
        raise BadRequest(f"querystring/{where}: unknown field {name!r} on {coll.name}")
    if op not in ALL_OPS:
        raise BadRequest(f"querystring/{where}: unknown operator {op!r}")
    if kind == "hidden":
        raise BadRequest(f"querystring/{where}: secret properties cannot be filtered")
    get = getter(coll, name)
    if op == "null":
        flag = parse_bool(raw, where)
        return lambda row: (get(row) is None) == flag
    if op.startswith("array_"):
        if kind != "array":
            raise BadRequest(f"querystring/{where}: {op} needs an array field, {name} is {kind}")
        return _array_predicate(op, raw, get, where)
    if kind not in SCALAR_KINDS:
        raise BadRequest(f"querystring/{where}: {op} does not apply to {kind} field {name}")
    if op in TEXT_OPS:
        if kind != "string":
            raise BadRequest(f"querystring/{where}: {op} needs a text field, {name} is {kind}")
        test: Callable[[str], bool] = {
            "like": _like(raw).fullmatch,
            "ilike": _like(raw, re.IGNORECASE).fullmatch,
            "contains": lambda v: raw in v,
            "startswith": lambda v: v.startswith(raw),
            "endswith": lambda v: v.endswith(raw),
        }[op]
        return lambda row: isinstance(v := get(row), str) and bool(test(v))
    if op in ("in", "nin", "between"):
        values = [coerce(part, kind, where) for part in raw.split(",")]
        if op == "between":
            if len(values) != 2:
                raise BadRequest(f"querystring/{where} needs two comma-separated values")
            low, high = values
            return lambda row: (v := get(row)) is not None and low <= v <= high
        wanted = set(values)
        if op == "in":
            return lambda row: get(row) in wanted
        return lambda row: (v := get(row)) is not None and v not in wanted
    value = coerce(raw, kind, where)
    compare = COMPARISONS[op]
    return lambda row: (v := get(row)) is not None and compare(v, value)


def _reference_predicate(coll: Collection, ref: str, op: str, raw: str, where: str) -> Predicate:
    names = {r["name"] for r in (coll.definition or {}).get("references", [])}
    if ref not in names:
        raise BadRequest(f"querystring/{where}: {coll.name} has no reference {ref!r}")
    if op not in ("eq", "in"):
        raise BadRequest(f"querystring/{where}: references filter only by id")
    wanted = set(raw.split(","))

    def matches(row: Row) -> bool:
        value = row.doc.get("references", {}).get(ref)
        if isinstance(value, list):
            return not wanted.isdisjoint(value)
        return value in wanted

    return matches


def _int_param(raw: str, name: str, low: int, high: int | None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"querystring/{name} must be integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise BadRequest(f"querystring/{name} must be {bound}, got {value}")
    return value


def parse_list_query(params: list[tuple[str, str]], coll: Collection) -> ListQuery:
    q = ListQuery()
    order: list[str] = []
    sort: list[str] = []
    bounds: list[tuple[str, int]] = []
    indexable = True
    for key, raw in params:
        if key == "limit":
            q.limit = _int_param(raw, "limit", 1, MAX_LIMIT)
        elif key == "offset":
            q.offset = _int_param(raw, "offset", 0, None)
        elif key == "sort":
            sort = [s.strip() for s in raw.split(",") if s.strip()]
        elif key == "order":
            order = [o.strip().upper() for o in raw.split(",") if o.strip()]
        elif key == "include_deleted":
            q.include_deleted = parse_bool(raw, "include_deleted")
        elif key == "fields":
            q.fields = [f.strip() for f in raw.split(",") if f.strip()]
            for name in q.fields:
                if name not in coll.kinds:
                    raise BadRequest(f"querystring/fields: unknown field {name!r}")
        elif key == "expand":
            q.expand = {e.strip() for e in raw.split(",") if e.strip()}
        elif key == "search":
            q.predicates.append(functools.partial(_search, needle=raw.lower(), hidden=coll.hidden))
            indexable = False
        else:
            match = _KEY.match(key)
            if match is None:
                raise BadRequest(f"querystring/{key}: not a parameter or a field[op] filter")
            name, op = match["field"], (match["op"] or "eq")
            q.predicates.append(compile_filter(coll, name, op, raw))
            if name == "updated_at" and op in ("gt", "gte", "lt", "lte", "eq"):
                bounds.append((op, parse_instant(raw)))
            else:
                indexable = False
    for value in order:
        if value not in ("ASC", "DESC"):
            raise BadRequest(f"querystring/order must be ASC or DESC, got {value!r}")
    for i, name in enumerate(sort):
        if coll.kinds.get(name) not in SCALAR_KINDS:
            raise BadRequest(f"querystring/sort: cannot sort {coll.name} by {name!r}")
        direction = order[i] if i < len(order) else (order[-1] if order else "ASC")
        q.sort.append((name, direction == "DESC"))
    if indexable and q.sort in INDEXED_SORTS:
        q.updated_bounds = _bounds(bounds)
    return q


def _bounds(bounds: list[tuple[str, int]]) -> tuple[int, int]:
    lo, hi = -(2**62), 2**62
    for op, ms in bounds:
        if op in ("gte", "eq"):
            lo = max(lo, ms)
        if op == "gt":
            lo = max(lo, ms + 1)
        if op in ("lte", "eq"):
            hi = min(hi, ms + 1)
        if op == "lt":
            hi = min(hi, ms)
    return lo, hi


def _search(row: Row, needle: str, hidden: frozenset[str] = frozenset()) -> bool:
    """Case-insensitive substring of any text at the record's root, never of a secret."""
    return any(
        isinstance(v, str) and k not in hidden and needle in v.lower() for k, v in row.doc.items()
    )


def run_query(coll: Collection, q: ListQuery) -> tuple[int, list[Row]]:
    """(total matches, the page's rows)."""
    if q.updated_bounds is not None:
        keys = coll.index(q.include_deleted)
        lo, hi = q.updated_bounds
        start = bisect.bisect_left(keys, (lo, ""))
        stop = max(start, bisect.bisect_left(keys, (hi, "")))
        if q.sort[0][1]:  # newest first: count the offset back from the end
            end = max(start, stop - q.offset)
            page = keys[max(start, end - q.limit) : end][::-1]
        else:
            page = keys[start + q.offset : min(stop, start + q.offset + q.limit)]
        return stop - start, [coll.rows[row_id] for _, row_id in page]
    rows = sorted(coll.live_rows(q.include_deleted), key=operator.attrgetter("id"))
    for predicate in q.predicates:
        rows = [row for row in rows if predicate(row)]
    for name, descending in reversed(q.sort):
        get = getter(coll, name)
        rows.sort(key=lambda row: ((v := get(row)) is None, v), reverse=descending)
    return len(rows), rows[q.offset : q.offset + q.limit]
