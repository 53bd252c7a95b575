"""Crashes: the pipeline command, in a child process, is SIGKILLed between pages or in the
load step. The next run completes the data, nothing is loaded twice, and no cursor ever
moves past data that was not loaded. The sandbox runs in this process, over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.pipeline.state_sync import load_pipeline_state_from_destination

from lexful_source.sandbox import LexfulSandbox, ManualClock, RequestInfo
from lexful_source.sandbox.catalogue import CONTACT
from lexful_source.settings import DEFAULT_START_DATE

from .conftest import POSTGRES_URL, Loader, make_loader
from .test_cli import COMMAND, Cli
from .test_load import check
from .truth import instant

MakeSandbox = Callable[..., LexfulSandbox]
CONTACTS_PATH = f"/v1/assets/{CONTACT}"
KILL_AT = 3  # between pages: the server kills the child when it asks for this contacts page
# Runs the command with a method patched to SIGKILL the process when it is called with
# an argument starting with a prefix (an empty prefix: on the first call). The owner is a
# class of the module, or "-" for a function of the module itself.
DIE_IN = f"""
import importlib, os, runpy, signal, sys
module, owner, method, prefix, *argv = sys.argv[1:]
cls = importlib.import_module(module)
cls = cls if owner == "-" else getattr(cls, owner)
original = getattr(cls, method)
def die(self, *args, **kwargs):
    if any(str(a).startswith(prefix) for a in (*args, "")):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, *args, **kwargs)
setattr(cls, method, die)
sys.argv = [{str(COMMAND)!r}, *argv]
runpy.run_path({str(COMMAND)!r}, run_name="__main__")
"""
PACKAGE = ("dlt.common.storages.load_package", "PackageStorage")
CHILD_JOB = "system_contact__contact_methods."  # a child table's load job
LOAD_STEP = ("dlt.pipeline.pipeline", "Pipeline", "load", "")  # extract, normalize done
JOB_RECORDED = (*PACKAGE, "complete_job", CHILD_JOB)  # dlt noted it done, not yet moved it
JOB_UNRECORDED = (*PACKAGE, "save_pending_transition", CHILD_JOB)  # in staging, not noted


@dataclass(frozen=True)
class Crash:
    incremental: bool  # in a run after edits, inserts and archives; else in the first load
    die_in: tuple[str, ...] = ()  # the dlt method the child dies in; none: between pages
    changes_after: bool = False  # Lexful changes again before the next run


def case(crash: Crash, bug: str | None = None) -> Any:
    marks = pytest.mark.xfail(reason=bug, raises=AssertionError, strict=True) if bug else ()
    return pytest.param(crash, marks=marks)


CRASHES = {
    "first load, between pages": case(Crash(False)),
    "incremental, between pages": case(Crash(True, changes_after=True)),
    "first load, before the load step": case(Crash(False, LOAD_STEP)),
    # a first load appends (no staging): a job run again must not repeat its rows
    "first load, in the load step, a job recorded": case(Crash(False, JOB_RECORDED)),
    "first load, in the load step, a job not yet recorded": case(Crash(False, JOB_UNRECORDED)),
    "incremental, in the load step, a job recorded": case(Crash(True, JOB_RECORDED)),
    "incremental, in the load step, a job not yet recorded": case(Crash(True, JOB_UNRECORDED)),
    "incremental, before the load step, changes after": case(
        Crash(True, LOAD_STEP, changes_after=True)
    ),
}


@pytest.fixture(params=["duckdb", "postgres"])
def loader(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Loader]:
    yield from make_loader(request.param, tmp_path, monkeypatch)


def change_contacts(sandbox: LexfulSandbox, clock: ManualClock, count: int) -> None:
    """Archives, inserts and edits, a millisecond apart so that they span pages."""
    live = [r["id"] for r in sandbox.truth(CONTACT, include_deleted=False)]
    org = sandbox.truth("organizations", include_deleted=False)[0]["id"]
    for n, asset_id in enumerate(live[:count]):
        clock.advance(ms=1)
        if n % 5 == 0:
            sandbox.store.archive(sandbox.store.assets(CONTACT), asset_id)
        elif n % 5 == 1:
            new = {"organization_id": org, "important": True, "first_name": f"New {n}"}
            sandbox.app.create_asset(CONTACT, new)
        else:
            methods = [{"type": "Fax", "value": str(n)}] * (n % 3)
            sandbox.app.edit_asset(
                CONTACT, asset_id, {"title": f"T{n}", "contact_methods": methods}
            )


class Command:
    """The pipeline command in a child process, in the loader's working directory and
    pipelines directory, so the loader reads what it loaded."""

    def __init__(self, loader: Loader, sandbox: LexfulSandbox) -> None:
        self.cli, self.sandbox = Cli(loader.workdir), sandbox
        self.args = ("--destination", loader.destination, "--pipeline-name",
                     loader.pipeline_name, "--dataset-name", loader.dataset, "-q")  # fmt: skip
        self.env = {
            **self.cli.base_env,
            **sandbox.env(),
            "DLT_DATA_DIR": str(loader.workdir),  # its pipelines dir: loader.pipelines_dir
            "SOURCES__LEXFUL__PAGE_SIZE": "100",
            "DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_URL,
            "LOAD__WORKERS": "1",  # one job at a time: each crash point leaves one state
        }

    def completes(self, *extra: str) -> None:
        self.cli.python(str(COMMAND), *self.args, *extra, env=self.env).summary()

    def killed(self, die_in: tuple[str, ...]) -> None:
        """A run killed by the server between pages, or by itself in a dlt method."""
        argv = ["-c", DIE_IN, *die_in] if die_in else [str(COMMAND)]
        child = subprocess.Popen(
            [sys.executable, *argv, *self.args],
            cwd=self.cli.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        pages = iter(range(1, KILL_AT + 1))

        def between_pages(info: RequestInfo) -> None:
            if info.path == CONTACTS_PATH and next(pages, None) == KILL_AT:
                os.kill(child.pid, signal.SIGKILL)

        self.sandbox.on_request = None if die_in else between_pages
        try:
            out, err = child.communicate(timeout=60)  # a guard against a hang, no more
        finally:
            self.sandbox.on_request = None
            if child.poll() is None:
                child.kill()
        assert child.returncode == -signal.SIGKILL, (child.returncode, out, err)


def cursors(state: Any) -> dict[str, datetime]:
    resources = (state or {}).get("sources", {}).get("lexful", {}).get("resources", {})
    return {name: parse(r["cursor"]) for name, r in resources.items() if "cursor" in r}


def parse(value: str | datetime) -> datetime:
    moment = instant(value) if isinstance(value, str) else value
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def pending_newest(pipeline: dlt.Pipeline, table: str) -> list[datetime]:
    """The newest updated_at of the table's rows in packages that wait to be loaded."""
    out = []
    for load_id in (*pipeline.list_extracted_load_packages(),
                    *pipeline.list_normalized_load_packages()):  # fmt: skip
        for jobs in pipeline.get_load_package_info(load_id).jobs.values():
            for job in jobs:
                info, path = job.job_file_info, job.file_path
                if info.table_name != table or info.file_format not in ("parquet", "csv"):
                    continue  # another table's, or a merge job's SQL
                if info.file_format == "parquet":
                    data = pq.read_table(path, columns=["updated_at"])
                else:
                    only = pa_csv.ConvertOptions(include_columns=["updated_at"])
                    data = pa_csv.read_csv(path, convert_options=only)
                newest = pc.max(data["updated_at"]).as_py()
                out += [parse(newest)] if newest is not None else []
    return out


def assert_no_cursor_ahead(loader: Loader) -> None:
    """No cursor is past the newest updated_at of its table: not the state committed in
    the destination (what a lost pipeline directory restores), checked against the rows
    loaded, nor the local state, against the rows loaded or in a pending package (which
    the next run loads, with that state, before it reads Lexful)."""
    pipeline = loader.pipeline()
    try:
        with pipeline.destination_client() as client:
            committed = load_pipeline_state_from_destination(loader.pipeline_name, client)
    except DestinationUndefinedEntity:  # nothing loaded yet
        committed = None
    states = {"committed": cursors(committed), "local": cursors(pipeline.state)}
    tables = loader.tables(sorted({*states["committed"], *states["local"]}))
    loaded = {t: [parse(r["updated_at"]) for r in rows] for t, rows in tables.items()}
    for kind, state in states.items():
        for name, cursor in state.items():
            pending = pending_newest(pipeline, name) if kind == "local" else []
            newest = max(loaded[name] + pending, default=parse(DEFAULT_START_DATE))
            assert cursor <= newest, f"{name}: {kind} cursor {cursor}, newest loaded {newest}"


@pytest.mark.parametrize("crash", CRASHES.values(), ids=CRASHES.keys())
def test_the_run_after_a_crash_completes_the_data(
    crash: Crash, loader: Loader, make_sandbox: MakeSandbox
) -> None:
    clock = ManualClock("2026-02-01T09:00:00Z")  # later than every generated record
    sandbox = make_sandbox(contacts=400, clock=clock)
    command = Command(loader, sandbox)
    if crash.incremental:
        loader.run(sandbox)  # a clean first load, in this process
        change_contacts(sandbox, clock, 300)  # 240 with a new updated_at: three pages
    command.killed(crash.die_in)
    assert_no_cursor_ahead(loader)
    if crash.changes_after:
        clock.advance(60)
        change_contacts(sandbox, clock, 10)
    command.completes()
    check(loader, sandbox)
    assert_no_cursor_ahead(loader)


def test_a_run_killed_while_removing_repeated_rows_leaves_that_to_the_next(
    loader: Loader, make_sandbox: MakeSandbox
) -> None:
    """A first load killed after a job committed, before dlt noted it: the next run runs
    that job again. Killed again before it removes the repeated rows, it leaves them; the
    run after that removes them."""
    sandbox = make_sandbox(contacts=400, clock=ManualClock("2026-02-01T09:00:00Z"))
    command = Command(loader, sandbox)
    command.killed(JOB_UNRECORDED)
    command.killed(("lexful_source.recovery", "-", "remove_repeated_rows", ""))
    table = CHILD_JOB.rstrip(".")  # the table whose job ran twice
    methods = loader.tables([table])[table]
    keys = [(r["asset_id"], r["position"]) for r in methods]
    assert len(keys) > len(set(keys)), "the re-run job repeated no rows: nothing is tested"
    command.completes()
    check(loader, sandbox)
    assert_no_cursor_ahead(loader)


def test_a_full_refresh_after_a_crash_drops_what_the_killed_run_left(
    loader: Loader, make_sandbox: MakeSandbox
) -> None:
    """dlt's run loads a pending package and returns without extracting: a full refresh
    that let it would load the killed run's stale package and nothing since."""
    clock = ManualClock("2026-02-01T09:00:00Z")
    sandbox = make_sandbox(contacts=400, clock=clock)
    command = Command(loader, sandbox)
    loader.run(sandbox)
    change_contacts(sandbox, clock, 50)
    command.killed(LOAD_STEP)
    assert loader.pipeline().has_pending_data
    clock.advance(60)
    change_contacts(sandbox, clock, 10)
    command.completes("--full-refresh")
    assert not loader.pipeline().has_pending_data
    check(loader, sandbox)


def test_a_full_refresh_after_a_first_load_killed_in_the_load_step_repeats_nothing(
    loader: Loader, make_sandbox: MakeSandbox
) -> None:
    """The refresh aborts the killed package, which rewinds the schema to before it: the
    table a job had committed to is not in the schema, so the refresh does not drop it,
    and must not append to it either (pipeline._tables_kept)."""
    sandbox = make_sandbox(contacts=400, clock=ManualClock("2026-02-01T09:00:00Z"))
    command = Command(loader, sandbox)
    command.killed(JOB_UNRECORDED)
    table = CHILD_JOB.rstrip(".")
    assert loader.tables([table])[table], "no job had committed: nothing is tested"
    command.completes("--full-refresh")
    check(loader, sandbox)


def test_a_reference_table_job_run_twice_repeats_no_row(
    loader: Loader, make_sandbox: MakeSandbox
) -> None:
    """dlt empties a replaced table once per package, not once per job: the users job,
    committed but not noted done when the run was killed, runs again in the next."""
    sandbox = make_sandbox(contacts=100)
    command = Command(loader, sandbox)
    command.killed((*PACKAGE, "save_pending_transition", "users."))
    assert loader.tables(["users"])["users"], "the users job had not committed: nothing is tested"
    command.completes()
    ids = [row["id"] for row in loader.tables(["users"])["users"]]
    assert sorted(ids) == sorted(u["id"] for u in sandbox.truth("users"))
    check(loader, sandbox)
