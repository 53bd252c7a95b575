"""From Lexful's asset-type definitions to table specifications.

Column types come from the property definitions, not from the data, so a property that is
null in every record still gets its column with the right type. ``secret`` and ``totp``
properties get no column at all. Array properties become child tables; references get one
``<table>__references`` table per asset type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlt.common.normalizers.naming.snake_case import NamingConvention

from .settings import (
    ASSET_BASE_COLUMNS,
    ASSETS_PATH,
    HIDDEN_PROPERTY_TYPES,
    MARKER,
    ORGANIZATION_COLUMNS,
    ORGANIZATIONS_PATH,
    PARENT_KEY,
    POSITION,
    PROPERTY_DATA_TYPES,
    PURGED,
    REFERENCES_TABLE_SUFFIX,
)

NAMING = NamingConvention()


@dataclass(frozen=True)
class ChildTable:
    """Rows from a list inside each record, keyed by the parent's id and list position."""

    name: str
    field: str  # the record's key: an array property, or "references"
    columns: dict[str, str]  # item columns (normalized name -> dlt data type)
    item_keys: dict[str, str]  # normalized column -> key in the item
    scalar: bool = False  # a list of plain values, kept in a ``value`` column

    @property
    def all_columns(self) -> dict[str, str]:
        return {PARENT_KEY: "text", POSITION: "bigint", **self.columns, MARKER: "bool"}


@dataclass(frozen=True)
class TableSpec:
    """One incremental resource: its endpoint, parent table and child tables."""

    name: str  # resource and table name
    path: str
    columns: dict[str, str]  # normalized column -> dlt data type
    keys: dict[str, str]  # normalized column -> key in the record
    children: tuple[ChildTable, ...] = ()

    @property
    def table_names(self) -> list[str]:
        return [self.name, *(child.name for child in self.children)]


def table_name(type_name: str) -> str:
    """``system.contact`` -> ``system_contact``, by dlt's own naming convention."""
    return NAMING.normalize_table_identifier(type_name)


def _column(name: str) -> str:
    return NAMING.normalize_identifier(name)


def asset_table_spec(definition: dict[str, Any]) -> TableSpec:
    name = table_name(definition["name"])
    columns = dict(ASSET_BASE_COLUMNS)
    keys = {c: c for c in columns}
    children: list[ChildTable] = []
    for prop in definition.get("properties") or []:
        kind, prop_name = prop.get("type"), prop["name"]
        if kind in HIDDEN_PROPERTY_TYPES:
            continue  # never a column: its value is never loaded
        if kind == "array":
            child = _array_child(name, prop)
            if child is not None:
                children.append(child)
        else:
            column = _column(prop_name)
            columns[column] = PROPERTY_DATA_TYPES.get(kind, "text")
            keys[column] = prop_name
    children.append(
        ChildTable(
            name=f"{name}__{REFERENCES_TABLE_SUFFIX}",
            field="references",
            columns={"reference_name": "text", "referenced_asset_id": "text"},
            item_keys={},
        )
    )
    columns[PURGED], keys[PURGED] = "bool", PURGED
    return TableSpec(
        name=name,
        path=ASSETS_PATH.format(type=definition["name"]),
        columns=columns,
        keys=keys,
        children=tuple(children),
    )


OWN_CHILD_COLUMNS = frozenset({PARENT_KEY, POSITION, MARKER})


def _hides_secrets(definition: dict[str, Any]) -> bool:
    """A secret or totp, or a list of them, however deeply nested."""
    if definition.get("type") in HIDDEN_PROPERTY_TYPES:
        return True
    item = definition.get("array") or {}
    return _hides_secrets(item) if item else False


def _array_child(parent: str, prop: dict[str, Any]) -> ChildTable | None:
    """The child table of an array property; None for a list of secrets."""
    name = f"{parent}__{_column(prop['name'])}"
    item = prop.get("array") or {}
    if _hides_secrets(item):
        return None
    fields = item.get("properties") if item.get("type", "object") == "object" else None
    if not fields:
        data_type = PROPERTY_DATA_TYPES.get(item.get("type", "string"), "text")
        return ChildTable(name, prop["name"], {"value": data_type}, {"value": "value"}, True)
    columns, keys = {}, {}
    for field in fields:
        if _hides_secrets(field):
            continue
        column = _column(field["name"])
        if column in OWN_CHILD_COLUMNS:  # the item's own "position" must not clash with ours
            column = f"item_{column}"
        columns[column] = PROPERTY_DATA_TYPES.get(field.get("type"), "json")
        keys[column] = field["name"]
    return ChildTable(name, prop["name"], columns, keys)


def organizations_spec() -> TableSpec:
    return TableSpec(
        name="organizations",
        path=ORGANIZATIONS_PATH,
        columns={**ORGANIZATION_COLUMNS, PURGED: "bool"},
        keys={c: c for c in [*ORGANIZATION_COLUMNS, PURGED]},
    )


def dlt_columns(
    columns: dict[str, str], primary_key: str | list[str] | None = None, merged: bool = True
) -> list[dict[str, Any]]:
    """dlt column hints for a table: every column typed, nullable but the key; the marker
    and tombstone columns delete rows when the table is ``merged`` (dlt ignores, with a
    warning, the hint on an appended one)."""
    keys = [primary_key] if isinstance(primary_key, str) else primary_key or []
    hints = []
    for name, data_type in columns.items():
        # JSON values travel as text in Arrow; hinting "json" would disagree with the data
        stored = "text" if data_type == "json" else data_type
        hint: dict[str, Any] = {"name": name, "data_type": stored, "nullable": True}
        if name in keys:
            hint.update(nullable=False, primary_key=True)
        if data_type == "timestamp":
            hint["timezone"] = True
        if merged and name in (MARKER, PURGED):
            hint["hard_delete"] = True
        hints.append(hint)
    return hints
