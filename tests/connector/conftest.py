"""Loads into real DuckDB, Postgres and Parquet files, and reading them back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from lexful_source.parquet_views import create_views
from lexful_source.pipeline import DEFAULT_PARQUET_DIR, RunSummary, make_destination, run_load
from lexful_source.sandbox import LexfulSandbox

# (fault, outcome) rows that test_faults.py fills and the session's summary prints
FAULT_MATRIX: list[tuple[str, str]] = []

POSTGRES_URL = os.environ.get(
    "LEXFUL_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/test"
)


def postgres_reachable() -> str | None:
    """None if Postgres answers, else why not."""
    import psycopg2

    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    return None


def require_postgres() -> None:
    problem = postgres_reachable()
    if problem is None:
        return
    if os.environ.get("CI") or os.environ.get("LEXFUL_REQUIRE_POSTGRES"):
        pytest.fail(f"Postgres at {POSTGRES_URL} is required here but unreachable: {problem}")
    pytest.skip(f"no Postgres server reachable at {POSTGRES_URL} ({problem})")


class Loader:
    """Runs the pipeline against a sandbox into one destination, and reads the result."""

    def __init__(self, destination: str, workdir: Path) -> None:
        self.destination = destination
        self.workdir = workdir
        suffix = uuid.uuid4().hex[:8]
        self.pipeline_name = f"lexful_test_{suffix}"
        self.dataset = f"lexful_{suffix}"
        self.pipelines_dir = str(workdir / "pipelines")

    def run(self, sandbox: LexfulSandbox, **kwargs: Any) -> RunSummary:
        return run_load(
            destination=self.destination,
            dataset_name=self.dataset,
            pipeline_name=self.pipeline_name,
            pipelines_dir=self.pipelines_dir,
            source_args={**sandbox.credentials, **kwargs.pop("source_args", {})},
            **kwargs,
        )

    def tables(self, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        if self.destination == "filesystem":
            con = duckdb.connect()
            create_views(con, self.workdir / DEFAULT_PARQUET_DIR / self.dataset, "current")
            out = {}
            for name in names:
                try:
                    cur = con.execute(f'select * from current."{name}"')
                except duckdb.CatalogException:
                    out[name] = []
                    continue
                cols = [d[0] for d in cur.description]
                out[name] = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            return out
        out = {}
        pipeline = self.pipeline()
        with pipeline.sql_client() as client:
            for name in names:
                try:
                    with client.execute_query(
                        f"select * from {client.make_qualified_table_name(name)}"
                    ) as cur:
                        cols = [d[0] for d in cur.description]
                        out[name] = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
                except Exception as exc:
                    if "does not exist" not in str(exc) and "not found" not in str(exc).lower():
                        raise
                    out[name] = []
        return out

    def pipeline(self) -> dlt.Pipeline:
        """The loaded pipeline, with the destination it was loaded into."""
        return dlt.pipeline(
            self.pipeline_name,
            destination=make_destination(self.destination, self.pipeline_name)[0],
            dataset_name=self.dataset,
            pipelines_dir=self.pipelines_dir,
        )

    def column_types(self, table: str) -> dict[str, str]:
        with self.pipeline().sql_client() as client:
            rows = client.execute_sql(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                client.dataset_name,
                table,
            )
        return {name: kind.lower() for name, kind in rows}

    def drop(self) -> None:
        if self.destination == "postgres":
            import psycopg2

            with psycopg2.connect(POSTGRES_URL) as con, con.cursor() as cur:
                for schema in (self.dataset, f"{self.dataset}_staging"):
                    cur.execute(f'drop schema if exists "{schema}" cascade')


@pytest.fixture(params=["duckdb", "postgres", "filesystem"])
def loader(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Loader]:
    """A loader for each destination; Postgres runs in CI, skips elsewhere if unreachable."""
    yield from make_loader(request.param, tmp_path, monkeypatch)


@pytest.fixture(params=["duckdb", "postgres"])
def sql_loader(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Loader]:
    """DuckDB and Postgres: the destinations that merge, for the exactness cases."""
    yield from make_loader(request.param, tmp_path, monkeypatch)


@pytest.fixture
def duckdb_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Loader]:
    yield from make_loader("duckdb", tmp_path, monkeypatch)


def make_loader(
    destination: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Loader]:
    if destination == "postgres":
        require_postgres()
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_URL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DESTINATION__FILESYSTEM__BUCKET_URL", raising=False)
    made = Loader(destination, tmp_path)
    yield made
    made.drop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault matrix as a table: the fault, then what the connector did about it."""
    if not FAULT_MATRIX:
        return
    width = max(len(fault) for fault, _ in FAULT_MATRIX)
    terminalreporter.section("fault matrix")
    terminalreporter.write_line(f"{'fault':<{width}}  outcome")
    for fault, outcome in FAULT_MATRIX:
        terminalreporter.write_line(f"{fault:<{width}}  {outcome}")
