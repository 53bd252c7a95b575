"""``dbt build`` on what the pipeline loaded, on DuckDB and Postgres: every dbt test passes
(dangling references are reported, not failed), and the models say what the server holds."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg2
import pytest

from lexful_source import dbt_models
from lexful_source.sandbox import DatasetSize, LexfulSandbox
from tests.analytics.conftest import (
    DEMO_CONTACTS,
    DbtRun,
    Warehouse,
    asset_tables,
    copy_project,
    current,
    dbt,
    expected_references,
    reachable,
)
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
        # named like a column the models add: it must neither replace nor hide that one
        {"name": "is_archived", "type": "boolean", "display_name": "Retired", "required": False},
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
            for schema in (dataset, f"{dataset}_staging", models):  # dlt stages merges
                cursor.execute(f"drop schema if exists {schema} cascade")


def loaded_references(warehouse: Warehouse) -> Counter[tuple[Any, ...]]:
    """asset_references as the key expected_references() uses."""
    return Counter(
        query(
            warehouse,
            "select source_asset_type, source_asset_id, reference_name, target_asset_id, "
            "target_asset_type, target_status from analytics.asset_references",
        )
    )


def expected_contacts(sandbox: LexfulSandbox) -> dict[str, tuple[Any, ...]]:
    """id -> (primary email, primary phone, organization name, location id)."""
    organizations = {o["id"]: o["name"] for o in sandbox.truth("organizations")}

    return {
        c["id"]: (
            reachable(c, "Email"),
            reachable(c, "Phone", "Mobile"),
            organizations.get(c["organization_id"]),
            (c.get("references") or {}).get("location"),
        )
        for c in current(sandbox.truth("system.contact"))
    }


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

    assert loaded_references(warehouse) == references

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


@pytest.mark.postgres
def test_a_full_refresh_on_postgres_is_not_blocked_by_the_dbt_models(
    built_postgres: tuple[Warehouse, DbtRun], demo_sandbox: LexfulSandbox
) -> None:
    """A full refresh drops the pipeline's tables; Postgres refuses to drop a table a view
    depends on, so the models that read them are tables."""
    warehouse, _ = built_postgres
    dataset = warehouse.env["LEXFUL_DATASET"]
    again = warehouse.cli(
        *("--destination", "postgres", "--dataset-name", dataset, "--full-refresh"),
        sandbox=demo_sandbox,
        env={"DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_URL},
    )
    assert again.rows()["system_contact"] == DEMO_CONTACTS
    assert build(warehouse).returncode == 0


def test_source_freshness_reads_the_newest_updated_at(
    demo_duckdb: Warehouse, built_duckdb: DbtRun, demo_sandbox: LexfulSandbox
) -> None:
    run = dbt(demo_duckdb.project, "source", "freshness", env=demo_duckdb.env)
    newest = {
        table: max(r["updated_at"] for r in demo_sandbox.truth(name))
        for table, name in asset_tables(demo_sandbox).items()
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
                "is_archived": n == 1,  # the property; the asset itself is current
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
        query(
            warehouse,
            "select name, bandwidth_mbps, property_is_archived, is_archived "
            "from analytics.base_lexful__network_circuit",
        )
    ) == [
        ("Circuit 1", 100, True, False),
        ("Circuit 2", 200, False, False),
        ("Circuit 3", 300, False, False),
    ]


def test_an_account_without_asset_records_builds_empty_models(
    make_sandbox: Callable[..., LexfulSandbox], tmp_path: Path
) -> None:
    """A new account: no asset type has a table yet, so the cross-type models are empty and
    there is no contacts model."""
    sandbox = make_sandbox(size=DatasetSize(contacts=0, locations=0, configurations=0, licenses=0))
    cli, project = Cli(tmp_path), copy_project(tmp_path / "dbt")
    env = {"LEXFUL_DUCKDB_PATH": str(tmp_path / "lexful_warehouse.duckdb")}
    run = cli("--dbt-project", str(project), sandbox=sandbox)
    assert "dbt models for 0 asset types" in run.stdout, run.stdout
    assert not list((project / "models/generated").glob("stg_*.sql"))
    warehouse = Warehouse(cli, project, env)
    built = dbt(project, "build", env=env)
    assert built.returncode == 0, built.output
    assert set(built.statuses().values()) == {"success", "pass"}
    assert not [uid for uid in built.statuses() if uid.endswith(".contacts")]
    assert query(warehouse, "select count(*) from analytics.assets") == [(0,)]
    assert query(warehouse, "select count(*) from analytics.asset_references") == [(0,)]
    assert query(warehouse, "select count(*) from analytics.stg_lexful__organizations") != [(0,)]


def test_references_to_types_left_out_of_the_load_are_reported_as_not_loaded(
    make_sandbox: Callable[..., LexfulSandbox], tmp_path: Path
) -> None:
    """Contacts loaded without locations: every location reference points to a type the
    load left out; dbt reports them (a warning), contacts still builds, without locations."""
    sandbox = make_sandbox(contacts=200, seed=6)
    cli, project = Cli(tmp_path), copy_project(tmp_path / "dbt")
    warehouse = Warehouse(
        cli, project, {"LEXFUL_DUCKDB_PATH": str(tmp_path / "lexful_warehouse.duckdb")}
    )
    cli("--asset-types", "system.contact", "--dbt-project", str(project), sandbox=sandbox).summary()
    run = build(warehouse)
    references = expected_references(sandbox, loaded=["system.contact"])
    not_loaded = sum(n for key, n in references.items() if key[-1] == "not loaded")
    assert not_loaded > 0
    assert loaded_references(warehouse) == references
    warned = [r for r in run.results if r["status"] == "warn"]
    assert [r["failures"] for r in warned] == [not_loaded]
    located = query(
        warehouse, "select count(location_id), count(location_name) from analytics.contacts"
    )
    assert located == [(sum(n for k, n in references.items() if k[2] == "location"), 0)]


def test_models_of_a_type_gone_from_the_load_are_removed(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "dbt")
    license_type = dbt_models.AssetTable("software_license", "software_license", ())
    contact = dbt_models.AssetTable("system.contact", "system_contact", ())
    dbt_models.write([contact, license_type], project)
    generated = project / dbt_models.GENERATED_DIR
    assert (generated / "stg_lexful__software_license.sql").is_file()
    assert dbt_models.write([contact], project) == 5  # 2 models gone, 3 files changed
    assert not list(generated.glob("*software_license*"))
    assert "software_license" not in (generated / "marts/assets_with_archived.sql").read_text()


def test_contacts_builds_from_contacts_alone(
    demo_duckdb: Warehouse, demo_sandbox: LexfulSandbox, tmp_path: Path
) -> None:
    """A load with contacts but none of their contact methods, references or locations
    (the else-branch of every flag in macros/contacts.sql): contacts without them."""
    database = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_duckdb.env["LEXFUL_DUCKDB_PATH"], database)
    project = copy_project(tmp_path / "dbt")
    dbt_models.write([dbt_models.AssetTable("system.contact", "system_contact", ())], project)
    contacts = (project / dbt_models.GENERATED_DIR / "marts/contacts.sql").read_text()
    assert "methods=false, references=false, locations=false" in contacts
    warehouse = Warehouse(demo_duckdb.cli, project, {"LEXFUL_DUCKDB_PATH": str(database)})
    build(warehouse)
    rows = query(
        warehouse,
        "select count(*), count(primary_email), count(primary_phone), count(location_id), "
        "count(organization_name) from analytics.contacts",
    )
    served = len(current(demo_sandbox.truth("system.contact")))
    assert rows == [(served, 0, 0, 0, served)]


def test_a_property_clash_that_cannot_be_renamed_fails_naming_both(
    make_sandbox: Callable[..., LexfulSandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(contacts=20, seed=7)
    flags = [{"name": n, "type": "boolean", "display_name": n, "required": False}
             for n in ("is_archived", "property_is_archived")]  # fmt: skip
    sandbox.store.add_asset_type({**NEW_TYPE, "properties": flags, "references": []})
    organization = current(sandbox.truth("organizations"))[0]["id"]
    sandbox.app.create_asset("network_circuit", {"organization_id": organization, "name": "x"})
    cli, project = Cli(tmp_path), copy_project(tmp_path / "dbt")
    cli("--dbt-project", str(project), sandbox=sandbox).summary()
    run = dbt(
        project, "build", env={"LEXFUL_DUCKDB_PATH": str(cli.workdir / "lexful_warehouse.duckdb")}
    )
    assert run.returncode == 1
    assert "has both is_archived and property_is_archived" in run.output, run.output


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--dbt-project", "no_such_dir"], "--dbt-project no_such_dir: no dbt_project.yml there"),
        (
            ["--destination", "filesystem", "--dbt-project", "dbt"],
            "--dbt-project needs a DuckDB or Postgres destination",
        ),
    ],
)
def test_a_dbt_project_that_cannot_be_written_fails_before_loading(
    argv: list[str], says: str, make_sandbox: Callable[..., LexfulSandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(contacts=20, seed=8)
    copy_project(tmp_path / "dbt")
    line = Cli(tmp_path)(*argv, sandbox=sandbox).error()
    assert says in line, line
    assert sandbox.stats.requests == 0, "nothing is loaded when the models cannot be written"
