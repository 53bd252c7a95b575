"""Full and incremental loads equal the server's ground truth, table by table, row by row,
in DuckDB, Postgres and Parquet."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dlt
import pyarrow as pa
import pytest

from lexful_source import lexful_source
from lexful_source.memory import keep_memory_flat
from lexful_source.pipeline import make_destination
from lexful_source.sandbox import LexfulSandbox, ManualClock
from lexful_source.sandbox.catalogue import CONFIGURATION, CONTACT, LICENSE

from .conftest import Loader, make_loader
from .truth import assert_matches, expected_tables


def check(loader: Loader, sandbox: LexfulSandbox) -> None:
    assert_matches(loader.tables(list(expected_tables(sandbox))), sandbox)


def list_requests(sandbox: LexfulSandbox) -> Counter[str]:
    return Counter(r.path for r in sandbox.stats.log if r.method == "GET" and "/v1/" in r.path)


@contextmanager
def dlt_warnings() -> Iterator[list[logging.LogRecord]]:
    """dlt's warnings while the block runs: a clean load has none for a user to wade
    through (dlt's logger does not propagate, so pytest's caplog would not see them)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("dlt")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_full_then_incremental_loads_equal_the_truth(
    loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    clock = ManualClock("2026-02-01T09:00:00Z")
    sandbox = make_sandbox(contacts=1500, clock=clock)
    with dlt_warnings() as warnings:
        first = loader.run(sandbox)
    assert not warnings, [w.getMessage()[:200] for w in warnings]
    assert first.rows["system_contact"] == 1500
    check(loader, sandbox)

    store, app = sandbox.store, sandbox.app
    contacts = store.assets(CONTACT)
    live = [r["id"] for r in sandbox.truth(CONTACT, include_deleted=False)]
    clock.advance(60)
    app.edit_asset(CONTACT, live[0], {"title": "Edited", "contact_methods": []})
    app.edit_asset(CONTACT, live[1], {"contact_methods": [{"type": "Fax", "value": "1"}]})
    app.edit_asset(CONTACT, live[2], {"references": {"location": None}})
    store.archive(contacts, live[3])
    org = sandbox.truth("organizations", include_deleted=False)[0]["id"]
    app.create_asset(CONTACT, {"organization_id": org, "important": True, "first_name": "Né"})
    config = sandbox.truth(CONFIGURATION, include_deleted=False)[0]
    app.edit_asset(CONFIGURATION, config["id"], {"references": {"ext_contacts": live[:3]}})
    sandbox.stats.reset()

    second = loader.run(sandbox)
    assert second.rows["system_contact"] == 5  # three edits, the insert and the archive
    check(loader, sandbox)

    sandbox.stats.reset()
    third = loader.run(sandbox)
    assert not any(t.startswith(("system_", "software_", "organizations")) for t in third.rows)
    requests = list_requests(sandbox)
    for definition in sandbox.truth("asset_types"):
        assert requests[f"/v1/assets/{definition['name']}"] == 2  # changes, then archives
    assert requests["/v1/organizations"] == 2
    check(loader, sandbox)


def test_without_archive_detection_a_quiet_run_is_one_request_per_resource(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    sandbox = make_sandbox(contacts=1200, archive_bumps_updated_at=True)
    options = {"detect_archives": False}
    duckdb_loader.run(sandbox, source_args=options)
    victim = sandbox.truth(CONTACT, include_deleted=False)[5]["id"]
    sandbox.store.archive(sandbox.store.assets(CONTACT), victim)
    assert duckdb_loader.run(sandbox, source_args=options).rows["system_contact"] == 1
    check(duckdb_loader, sandbox)
    sandbox.stats.reset()
    duckdb_loader.run(sandbox, source_args=options)
    requests = list_requests(sandbox)
    assert requests[f"/v1/assets/{CONTACT}"] == 1
    assert requests["/v1/organizations"] == 1


def test_a_selection_loads_only_those_types(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    sandbox = make_sandbox(contacts=50)
    summary = duckdb_loader.run(sandbox, asset_types=["system.con*"])
    loaded = {t for t in summary.rows if t.startswith(("system_", "software_"))}
    assert {t.split("__")[0] for t in loaded} == {"system_contact", "system_configuration"}
    requested = {r.path for r in sandbox.stats.log}
    assert f"/v1/assets/{LICENSE}" not in requested


def staged_tables(loader: Loader) -> set[str]:
    """The tables of the staging dataset, where dlt copies rows before a merge."""
    with loader.pipeline().sql_client() as client:
        rows = client.execute_sql(
            "select table_name from information_schema.tables where table_schema = %s",
            f"{loader.dataset}_staging",
        )
    return {r[0] for r in rows}


def test_a_first_load_appends_and_the_next_one_merges(
    sql_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    """The first load has nothing to merge with: it skips the staging copy, which is half
    of a load step; the next load merges edits, children included."""
    clock = ManualClock("2026-02-01T09:00:00Z")
    sandbox = make_sandbox(contacts=300, clock=clock)
    sql_loader.run(sandbox)
    assert not {t for t in staged_tables(sql_loader) if not t.startswith("_dlt")}
    clock.advance(60)
    live = [r["id"] for r in sandbox.truth(CONTACT, include_deleted=False)]
    sandbox.app.edit_asset(CONTACT, live[0], {"contact_methods": [{"type": "Fax", "value": "2"}]})
    sandbox.app.edit_asset(CONTACT, live[1], {"contact_methods": []})
    sql_loader.run(sandbox)
    assert "system_contact__contact_methods" in staged_tables(sql_loader)
    check(sql_loader, sandbox)


def test_a_source_run_outside_run_load_merges_from_its_first_load(
    sql_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    """Only run_load removes the rows a load job re-run after a crash repeats, so a bare
    pipeline.run never appends: its first load goes through the staging dataset too."""
    sandbox = make_sandbox(contacts=50)
    sql_loader.pipeline().run(lexful_source(**sandbox.credentials), loader_file_format="parquet")
    assert "system_contact" in staged_tables(sql_loader)
    assert len(sql_loader.tables(["system_contact"])["system_contact"]) == 50


def test_a_type_whose_tables_the_destination_holds_merges_though_the_state_is_new(
    sql_loader: Loader,
    make_sandbox: Callable[..., LexfulSandbox],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local state is not the last word on what was loaded: here the pipeline's
    working directory is lost and not restored, and the run, finding its tables in the
    destination, merges into them instead of appending a second copy."""
    sandbox = make_sandbox(contacts=50)
    sql_loader.run(sandbox)
    sql_loader.pipeline().drop()  # the working directory only, not the dataset
    monkeypatch.setenv("RESTORE_FROM_DESTINATION", "false")
    sql_loader.run(sandbox)
    assert "system_contact" in staged_tables(sql_loader)
    check(sql_loader, sandbox)


@pytest.mark.parametrize("setting", [None, "false"])
def test_postgres_loader_files_are_uncompressed_unless_configured(
    setting: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_sandbox: Callable[..., LexfulSandbox],
) -> None:
    """Gzipping the CSV files took half of a Postgres load; a user's setting still wins."""
    if setting is not None:
        monkeypatch.setenv("NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION", setting)
    loader = next(make_loader("postgres", tmp_path, monkeypatch))
    try:
        sandbox = make_sandbox(contacts=50)
        loader.run(sandbox)
        check(loader, sandbox)
        info = loader.pipeline().last_trace.last_load_info
        files = [
            Path(job.file_path)
            for package in info.load_packages
            for job in package.jobs["completed_jobs"]
            if job.job_file_info.file_format == "csv"
        ]
        assert files, "no CSV loader files: nothing is tested"
        gzipped = {f.name for f in files if f.read_bytes()[:2] == b"\x1f\x8b"}
        assert gzipped == (set() if setting is None else {f.name for f in files})
    finally:
        loader.drop()


def test_duckdb_memory_is_bounded_on_a_first_load_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first load only appends, which streams; a merge keeps DuckDB's default limit, as
    its joins and sorts slow sharply when they must spill."""
    monkeypatch.chdir(tmp_path)

    def limit(full_refresh: bool) -> str:
        destination = make_destination("duckdb", "bounded", full_refresh)[0]
        pipeline = dlt.pipeline(
            "bounded", destination=destination, dataset_name="d", pipelines_dir=str(tmp_path)
        )
        with pipeline.sql_client() as client:
            return client.execute_sql("select current_setting('memory_limit')")[0][0]

    first = limit(False)  # no DuckDB file yet; connecting creates it
    later, refresh = limit(False), limit(True)
    assert first == refresh != later
    assert first.endswith("MiB") and float(first.split()[0]) < 200, first


def test_a_run_puts_arrow_on_jemalloc_when_it_first_imports_it() -> None:
    """A run with nothing to load imports no Arrow; one that converts a page imports it
    with tables.py, which puts it on the pool the run chose."""
    code = (
        "import sys; from lexful_source.memory import keep_memory_flat; keep_memory_flat(); "
        "assert 'pyarrow' not in sys.modules; import lexful_source.tables; "
        "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "jemalloc"), done.stderr


def test_a_run_moves_arrow_to_jemalloc_unless_the_user_chose_a_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Arrow's default pool kept what every batch had used: a load of a million contacts
    grew by 200 MB more than on jemalloc."""
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.system_memory_pool())
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        keep_memory_flat()
        assert pa.default_memory_pool().backend_name == "system"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        keep_memory_flat()
        assert pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)
