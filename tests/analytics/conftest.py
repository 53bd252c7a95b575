"""The dbt project and the notebooks, run as a data team runs them: on what the pipeline
command loaded from the local server's demo dataset, dbt and Jupyter in processes of
their own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lexful_source.sandbox import DatasetSize, LexfulSandbox, SandboxSettings
from lexful_source.schema import table_name
from tests.connector.test_cli import ISOLATED_PREFIXES, REPO, Cli

DBT_PROJECT = REPO / "dbt"
DEMO_CONTACTS = 5000  # pipelines/lexful_pipeline.py --demo: the same seed and size


def copy_project(to: Path) -> Path:
    """A copy of dbt/ to generate into and build in, so tests never touch the repository's."""
    ignore = shutil.ignore_patterns("target", "logs", "generated", ".user.yml")  # a developer's
    return Path(shutil.copytree(DBT_PROJECT, to, ignore=ignore))


@dataclass
class DbtRun:
    returncode: int
    output: str
    results: list[dict[str, Any]]  # target/run_results.json, or sources.json for freshness

    def statuses(self) -> dict[str, str]:
        return {r["unique_id"]: r["status"] for r in self.results}


def dbt(project: Path, *args: str, env: dict[str, str]) -> DbtRun:
    """Runs the dbt command installed beside this Python, in the project's directory."""
    command = Path(sys.executable).with_name("dbt")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    done = subprocess.run(
        [str(command), *args],
        cwd=project,
        env={**clean, "HOME": str(project), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    name = "sources.json" if args[0] == "source" else "run_results.json"
    path = project / "target" / name
    results = json.loads(path.read_text())["results"] if path.is_file() else []
    path.unlink(missing_ok=True)  # a later run that fails early leaves none behind
    return DbtRun(done.returncode, done.stdout + done.stderr, results)


@pytest.fixture(scope="session")
def demo_sandbox() -> Iterator[LexfulSandbox]:
    """The demo's dataset (read-only: tests that change data start their own)."""
    with LexfulSandbox(SandboxSettings(size=DatasetSize(contacts=DEMO_CONTACTS))) as sandbox:
        yield sandbox


@dataclass
class Warehouse:
    cli: Cli
    project: Path
    env: dict[str, str]  # how dbt and the notebooks find it


@pytest.fixture(scope="session")
def demo_duckdb(demo_sandbox: LexfulSandbox, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """The demo dataset loaded into DuckDB by the pipeline command, dbt models generated."""
    workdir = tmp_path_factory.mktemp("demo_duckdb")
    cli, project = Cli(workdir), copy_project(workdir / "dbt")
    cli("--dbt-project", str(project), sandbox=demo_sandbox).summary()
    database = workdir / "lexful_warehouse.duckdb"
    return Warehouse(cli, project, {"LEXFUL_DUCKDB_PATH": str(database)})


def current(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["deleted_at"] is None]


def expected_references(
    sandbox: LexfulSandbox, loaded: list[str] | None = None
) -> Counter[tuple[Any, ...]]:
    """(source type, source id, reference, target id, target type, target status) for every
    reference of every current asset of the ``loaded`` types (default: all), as the
    server holds them."""
    names = [t["name"] for t in sandbox.truth("asset_types")]
    records = {name: sandbox.truth(name) for name in loaded or names}
    where = {
        r["id"]: (name, r["deleted_at"] is not None) for name in records for r in records[name]
    }
    found: Counter[tuple[Any, ...]] = Counter()
    for name, rows in records.items():
        for record in current(rows):
            for reference, value in (record.get("references") or {}).items():
                for target in value if isinstance(value, list) else [value]:
                    if target is None:
                        continue
                    target_type, archived = where.get(target, (None, False))
                    status = "not loaded" if target_type is None else "current"
                    status = "archived" if archived else status
                    found[(name, record["id"], reference, target, target_type, status)] += 1
    return found


def reachable(contact: dict[str, Any], *types: str) -> str | None:
    """The first value of a contact method of the first of ``types`` the contact has."""
    for kind in types:
        for method in contact.get("contact_methods") or []:
            if method["type"] == kind and (method.get("value") or "").strip():
                return method["value"]
    return None


def asset_tables(sandbox: LexfulSandbox) -> dict[str, str]:
    """Table -> Lexful name of every asset type, and organizations."""
    names = [t["name"] for t in sandbox.truth("asset_types")]
    return {"organizations": "organizations", **{table_name(n): n for n in names}}
