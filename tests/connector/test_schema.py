"""Column types come from the asset-type definitions: right even for all-null properties."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

from lexful_source.parquet_views import create_views
from lexful_source.pipeline import DEFAULT_PARQUET_DIR
from lexful_source.sandbox import LexfulSandbox

from .conftest import Loader

# dlt type -> how each destination spells it
SPELLING = {
    "duckdb": {"text": "varchar", "bigint": "bigint", "double": "double", "bool": "boolean",
               "date": "date", "timestamp": "timestamp with time zone"},
    "postgres": {"text": "character varying", "bigint": "bigint", "double": "double precision",
                 "bool": "boolean", "date": "date", "timestamp": "timestamp with time zone"},
}  # fmt: skip
SPELLING["filesystem"] = SPELLING["duckdb"]

EXPECTED = {
    "software_license": {
        "product": "text",
        "seats": "bigint",
        "annual_cost": "double",
        "auto_renew": "bool",
        "starts_on": "date",
        "renews_at": "timestamp",
        "cancelled_on": "date",  # null in every record
        "terms": "text",
        "full_text": "text",
        "agreement": "text",  # a file object, as JSON text
        "created_at": "timestamp",
        "deleted_at": "timestamp",
    },
    "system_configuration": {
        "cpu_cores": "bigint",
        "ram_gb": "double",
        "is_managed": "bool",
        "purchased_on": "date",
        "warranty_expires_at": "timestamp",
        "ext_asset_tag": "text",
        "ext_decommissioned_on": "date",  # null in every record
    },
    "system_contact__contact_methods": {"asset_id": "text", "position": "bigint", "type": "text"},
    "system_contact__references": {"reference_name": "text", "referenced_asset_id": "text"},
    "organizations": {"is_primary": "bool", "parent_id": "text", "deleted_at": "timestamp"},
}
NEVER = {"system_configuration": {"ext_admin_password"},
         "software_license": {"license_key", "portal_mfa"}}  # fmt: skip


def column_types(loader: Loader, table: str) -> dict[str, str]:
    if loader.destination != "filesystem":
        return loader.column_types(table)
    con = duckdb.connect()
    create_views(con, loader.workdir / DEFAULT_PARQUET_DIR / loader.dataset, "current")
    rows = con.execute(f'describe current."{table}"').fetchall()
    return {row[0]: row[1].lower() for row in rows}


def test_columns_are_typed_from_the_definitions(
    loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    loader.run(make_sandbox(contacts=40))
    spelling = SPELLING[loader.destination]
    for table, columns in EXPECTED.items():
        actual = column_types(loader, table)
        for column, data_type in columns.items():
            assert actual.get(column) == spelling[data_type], (table, column, actual.get(column))
        assert not NEVER.get(table, set()) & set(actual), f"{table} holds a secret column"


@pytest.mark.parametrize("key", ["target_asset_types", "target_entity_types"])
def test_catalogue_tables(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox], key: str
) -> None:
    sandbox = make_sandbox(contacts=10, reference_target_key=key)
    duckdb_loader.run(sandbox)
    tables = duckdb_loader.tables(["asset_types", "asset_types__properties", "users"])
    assert {r["name"] for r in tables["asset_types"]} == {
        t["name"] for t in sandbox.truth("asset_types")
    }
    props = {(r["name"], r["type"]) for r in tables["asset_types__properties"]}
    assert ("license_key", "secret") in props  # the catalogue names it; no value is loaded
    assert {r["id"] for r in tables["users"]} == {u["id"] for u in sandbox.truth("users")}


def test_reference_data_is_replaced_when_it_changed_and_after_a_full_refresh(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    """Unchanged reference data is left as loaded (no load package for a quiet run); a
    change reloads it; a full refresh, which drops every table, loads it again."""
    sandbox = make_sandbox(contacts=10)
    names = ["asset_types", "users", "organization_types"]
    first = duckdb_loader.run(sandbox)
    assert first.unchanged == [] and first.rows["users"] == len(sandbox.truth("users"))
    quiet = duckdb_loader.run(sandbox)
    assert quiet.unchanged == sorted(names) and "users" not in quiet.rows
    sandbox.store.add_asset_type({"name": "x.new", "properties": [], "references": []})
    changed = duckdb_loader.run(sandbox)
    assert changed.unchanged == ["organization_types", "users"]
    assert changed.rows["asset_types"] == len(sandbox.truth("asset_types"))
    refreshed = duckdb_loader.run(sandbox, full_refresh=True)
    assert refreshed.unchanged == []
    tables = duckdb_loader.tables(names)
    assert {r["id"] for r in tables["users"]} == {u["id"] for u in sandbox.truth("users")}
    assert len(tables["asset_types"]) == len(sandbox.truth("asset_types"))
    assert len(tables["organization_types"]) > 0
