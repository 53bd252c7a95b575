"""``dbt build`` on what the pipeline loaded, on DuckDB and Postgres: every dbt test passes
(dangling references are reported, not failed), and the models say what the server holds."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg2
import pytest

from lexful_source.sandbox import DatasetSize, LexfulSandbox
from tests.analytics.conftest import DBT_PROJECT, DbtRun, Warehouse, copy_project, dbt
from tests.connector.conftest import POSTGRES_URL, require_postgres
from tests.connector.test_cli import Cli

DANGLING_TEST = "relationships_asset_references_target_asset_id__id__ref_assets_"
NEW_TYPE = {
    "name": "network_circuit",
    "display_name": "Network circuit",
    "description": "A custom type created after the first load.",
    "is_system": False,
    "properties": [
        {"name": "carrier", "type": "string", "display_name": "Carrier", "required": False},
        {"name": "bandwidth_mbps", "type": "integer", "display_name": "Mbps", "required": False},
    ],
    "references": [
        {
            "name": "site",
            "display_name": "Site",
            "required": False,
            "multiple": False,
            "target_asset_types": ["system.location"],
        }
    ],
}


def query(warehouse: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on the warehouse, models in schema ``analytics`` (or the test's own)."""
    schema = warehouse.env.get("LEXFUL_DBT_SCHEMA", "analytics")
    sql = sql.replace("analytics.", f"{schema}.")
    if "LEXFUL_DUCKDB_PATH" in warehouse.env:
        with duckdb.connect(warehouse.env["LEXFUL_DUCKDB_PATH"], read_only=True) as con:
            return con.execute(sql).fetchall()
    with psycopg2.connect(POSTGRES_URL) as con, con.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def current(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["deleted_at"] is None]


def build(warehouse: Warehouse) -> DbtRun:
    run = dbt(warehouse.project, "build", env=warehouse.env)
    assert run.returncode == 0, run.output
    return run


@pytest.fixture(scope="module")
def built_duckdb(demo_duckdb: Warehouse) -> DbtRun:
    return build(demo_duckdb)


@pytest.fixture(scope="module")
def built_postgres(
    demo_sandbox: LexfulSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Warehouse, DbtRun]]:
    """The demo dataset loaded into a Postgres dataset of its own, then built there."""
    require_postgres()
    suffix = uuid.uuid4().hex[:8]
    dataset, models = f"lexful_dbt_{suffix}", f"analytics_{suffix}"
    workdir = tmp_path_factory.mktemp("demo_postgres")
    cli, project = Cli(workdir), copy_project(workdir / "dbt")
    url = urlsplit(POSTGRES_URL)
    env = {
        "LEXFUL_DBT_TARGET": "postgres",
        "LEXFUL_PG_HOST": url.hostname or "127.0.0.1",
        "LEXFUL_PG_PORT": str(url.port or 5432),
        "LEXFUL_PG_USER": url.username or "postgres",
        "LEXFUL_PG_PASSWORD": url.password or "",
        "LEXFUL_PG_DBNAME": url.path.lstrip("/"),
        "LEXFUL_DATASET": dataset,
        "LEXFUL_DBT_SCHEMA": models,
    }
    try:
        loaded = cli(
            *("--destination", "postgres", "--dataset-name", dataset),
            *("--dbt-project", str(project)),
            sandbox=demo_sandbox,
            env={"DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_URL},
        )
        loaded.summary()
        warehouse = Warehouse(cli, project, env)
        yield warehouse, build(warehouse)
    finally:
        with psycopg2.connect(POSTGRES_URL) as con, con.cursor() as cursor:
            cursor.execute(f"drop schema if exists {dataset} cascade")
            cursor.execute(f"drop schema if exists {models} cascade")


def expected_references(sandbox: LexfulSandbox) -> Counter[tuple[Any, ...]]:
    """(source type, source id, reference, target id, target type, target status) for every
    reference of every current asset, as the server holds them."""
    types = [t["name"] for t in sandbox.truth("asset_types")]
    records = {name: sandbox.truth(name) for name in types}
    where = {r["id"]: (name, r["deleted_at"] is not None) for name in types for r in records[name]}
    found: Counter[tuple[Any, ...]] = Counter()
    for name in types:
        for record in current(records[name]):
            for reference, value in (record.get("references") or {}).items():
                for target in value if isinstance(value, list) else [value]:
                    if target is None:
                        continue
                    target_type, archived = where.get(target, (None, None))
                    status = "not loaded" if target_type is None else "current"
                    status = "archived" if archived else status
                    found[(name, record["id"], reference, target, target_type, status)] += 1
    return found


def expected_contacts(sandbox: LexfulSandbox) -> dict[str, tuple[Any, ...]]:
    """id -> (primary email, primary phone, organization name, location id)."""
    organizations = {o["id"]: o["name"] for o in sandbox.truth("organizations")}

    def first(methods: list[dict[str, Any]], kind: str) -> str | None:
        return next((m["value"] for m in methods if m["type"] == kind), None)

    out = {}
    for c in current(sandbox.truth("system.contact")):
        methods = c.get("contact_methods") or []
        phone = first(methods, "Phone") or first(methods, "Mobile")
        location = (c.get("references") or {}).get("location")
        out[c["id"]] = (
            first(methods, "Email"),
            phone,
            organizations.get(c["organization_id"]),
            location,
        )
    return out


def check_models_match_the_server(
    warehouse: Warehouse, run: DbtRun, sandbox: LexfulSandbox
) -> None:
    references = expected_references(sandbox)
    dangling = sum(n for key, n in references.items() if key[-1] != "current")
    assert dangling > 0, "the demo data should hold references to archived assets"
    statuses = run.statuses()
    warned = {uid: s for uid, s in statuses.items() if s not in ("success", "pass")}
    [(warned_test, status)] = warned.items()  # one warning, every other test passed
    assert status == "warn" and DANGLING_TEST in warned_test, warned
    failures = {r["unique_id"]: r["failures"] for r in run.results}
    assert failures[warned_test] == dangling, "the warning counts every dangling reference"

    assets = dict(query(warehouse, "select asset_type, count(*) from analytics.assets group by 1"))
    served = {
        t["name"]: len(current(sandbox.truth(t["name"]))) for t in sandbox.truth("asset_types")
    }
    assert assets == served

    loaded = Counter(
        query(
            warehouse,
            "select source_asset_type, source_asset_id, reference_name, target_asset_id, "
            "target_asset_type, target_status from analytics.asset_references",
        )
    )
    assert loaded == references

    contacts = {
        row[0]: row[1:]
        for row in query(
            warehouse,
            "select id, primary_email, primary_phone, organization_name, location_id "
            "from analytics.contacts",
        )
    }
    expected = expected_contacts(sandbox)
    assert contacts == expected
    assert any(e[0] for e in expected.values()) and any(e[1] for e in expected.values())


def test_dbt_build_on_duckdb_passes_and_its_models_match_the_server(
    demo_duckdb: Warehouse, built_duckdb: DbtRun, demo_sandbox: LexfulSandbox
) -> None:
    check_models_match_the_server(demo_duckdb, built_duckdb, demo_sandbox)


@pytest.mark.postgres
def test_dbt_build_on_postgres_passes_and_its_models_match_the_server(
    built_postgres: tuple[Warehouse, DbtRun], demo_sandbox: LexfulSandbox
) -> None:
    warehouse, run = built_postgres
    check_models_match_the_server(warehouse, run, demo_sandbox)


def test_the_committed_generated_models_are_what_the_demo_load_writes(
    demo_duckdb: Warehouse,
) -> None:
    """dbt/models/generated/ is the demo's: a change to the generator shows up here."""
    generated = Path("models") / "generated"

    def files(root: Path) -> dict[str, str]:
        base = root / generated
        return {p.relative_to(base).as_posix(): p.read_text() for p in base.rglob("*.*")}

    written, committed = files(demo_duckdb.project), files(DBT_PROJECT)
    assert written.keys() == committed.keys()
    stale = [name for name in written if written[name] != committed[name]]
    assert not stale, f"regenerate with `make demo`: {stale}"


def test_source_freshness_reads_the_newest_updated_at(
    demo_duckdb: Warehouse, built_duckdb: DbtRun, demo_sandbox: LexfulSandbox
) -> None:
    run = dbt(demo_duckdb.project, "source", "freshness", env=demo_duckdb.env)
    newest = {
        t: max(r["updated_at"] for r in demo_sandbox.truth(name))
        for t, name in [("organizations", "organizations")]
        + [(t["name"].replace(".", "_"), t["name"]) for t in demo_sandbox.truth("asset_types")]
    }
    measured = {r["unique_id"].rsplit(".", 1)[-1]: r["max_loaded_at"] for r in run.results}
    assert measured.keys() == newest.keys(), run.output
    for table, iso in newest.items():
        assert measured[table][:23] == iso[:23], table  # both as 2025-12-30T22:31:11.564
    # the demo's newest change is from 2025: older than a week, which dbt reports as an error
    assert {r["status"] for r in run.results} == {"error"}


def test_a_custom_asset_type_appears_in_the_cross_type_models_after_the_next_load(
    make_sandbox: Callable[..., LexfulSandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(contacts=200, seed=5)
    cli, project = Cli(tmp_path), copy_project(tmp_path / "dbt")
    warehouse = Warehouse(
        cli, project, {"LEXFUL_DUCKDB_PATH": str(tmp_path / "lexful_warehouse.duckdb")}
    )
    cli("--dbt-project", str(project), sandbox=sandbox).summary()
    build(warehouse)
    types = "select distinct asset_type from analytics.assets"
    assert ("network_circuit",) not in query(warehouse, types)

    sandbox.store.add_asset_type(NEW_TYPE)
    organization = current(sandbox.truth("organizations"))[0]["id"]
    site = current(sandbox.truth("system.location"))[0]["id"]
    created = [
        sandbox.app.create_asset(
            "network_circuit",
            {
                "organization_id": organization,
                "name": f"Circuit {n}",
                "carrier": "Fibre & Co",
                "bandwidth_mbps": 100 * n,
                "references": {"site": site if n < 3 else None},
            },
        ).id
        for n in range(1, 4)
    ]
    run = cli("--dbt-project", str(project), sandbox=sandbox)
    assert run.rows()["network_circuit"] == 3
    assert (project / "models/generated/stg_lexful__network_circuit.sql").is_file()
    build(warehouse)

    assert sorted(
        query(warehouse, "select id from analytics.assets where asset_type = 'network_circuit'")
    ) == sorted((i,) for i in created)
    assert sorted(
        query(
            warehouse,
            "select source_asset_id, reference_name, target_asset_id, target_asset_type "
            "from analytics.asset_references where source_asset_type = 'network_circuit'",
        )
    ) == sorted((i, "site", site, "system.location") for i in created[:2])
    assert sorted(
        query(warehouse, "select name, bandwidth_mbps from analytics.stg_lexful__network_circuit")
    ) == [("Circuit 1", 100), ("Circuit 2", 200), ("Circuit 3", 300)]


def test_an_account_without_asset_records_builds_empty_models(
    make_sandbox: Callable[..., LexfulSandbox], tmp_path: Path
) -> None:
    """A new account: no asset type has a table yet, so the cross-type models are empty,
    and contacts (which needs system.contact) is switched off as the README says."""
    sandbox = make_sandbox(size=DatasetSize(contacts=0, locations=0, configurations=0, licenses=0))
    cli, project = Cli(tmp_path), copy_project(tmp_path / "dbt")
    env = {"LEXFUL_DUCKDB_PATH": str(tmp_path / "lexful_warehouse.duckdb")}
    run = cli("--dbt-project", str(project), sandbox=sandbox)
    assert "dbt models for 0 asset types" in run.stdout, run.stdout
    assert not list((project / "models/generated").glob("stg_*.sql"))
    warehouse = Warehouse(cli, project, env)
    built = dbt(project, "build", "--vars", "{lexful_contacts: false}", env=env)
    assert built.returncode == 0, built.output
    assert set(built.statuses().values()) == {"success", "pass"}
    assert query(warehouse, "select count(*) from analytics.assets") == [(0,)]
    assert query(warehouse, "select count(*) from analytics.asset_references") == [(0,)]
    assert query(warehouse, "select count(*) from analytics.stg_lexful__organizations") != [(0,)]
