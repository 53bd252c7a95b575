"""The pipeline command as a user runs it: a subprocess in a fresh directory, configured by
environment variables, checked by its exit code, its output and the requests the local
Lexful server saw."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from lexful_source.sandbox import LexfulSandbox

REPO = Path(__file__).resolve().parents[2]
COMMAND = REPO / "pipelines" / "lexful_pipeline.py"
ENV = "SOURCES__LEXFUL__"
TOKEN = "POST /v1/auth/token"
WRONG_SECRET = "wrong-secret-4f1c9a"  # a value that must never be printed
# Variables of the developer's shell that would change what the command does.
ISOLATED_PREFIXES = ("SOURCES__", "DESTINATION__", "DLT_", "RUNTIME__", "LEXFUL_")
SUMMARY = re.compile(
    r"^Loaded Lexful into (?P<destination>\w+) dataset '(?P<dataset>\w+)' \((?P<location>.+)\) "
    r"in \d+\.\d s with (?P<requests>[\d,]+) API requests \(\d+ retried\)$",
    re.MULTILINE,
)
ROW = re.compile(r"^  (\w+) +([\d,]+)$", re.MULTILINE)
# The real retry policy gives a closed port 30-60 s; the test bounds it (see the report).


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, str]:
        assert self.returncode == 0, self.stderr
        assert "Traceback" not in self.stderr
        found = SUMMARY.search(self.stdout)
        assert found, self.stdout
        return found.groupdict()

    def rows(self) -> dict[str, int]:
        self.summary()
        return {t: int(n.replace(",", "")) for t, n in ROW.findall(self.stdout)}

    def error(self, *secrets: str, retries: bool = False) -> str:
        """The one `error:` line; fails on a traceback, a leaked secret or other output."""
        assert self.returncode == 1, (self.stdout, self.stderr)
        assert "Traceback" not in self.stderr
        assert self.stdout == ""
        for secret in secrets:
            assert secret not in self.stdout + self.stderr
        *before, line = self.stderr.rstrip("\n").splitlines()
        assert line.startswith("error: "), self.stderr
        assert all("retry" in b for b in before) if retries else not before, self.stderr
        return line


class Cli:
    """Runs Python in a working directory of its own, with dlt's state kept inside it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)},
            "PYTHONPATH": str(REPO),
            "DLT_DATA_DIR": str(workdir / "dlt_data"),  # dlt's pipelines dir, not ~/.dlt
            "HOME": str(workdir / "home"),
        }

    def python(
        self, *argv: str, sandbox: LexfulSandbox | None = None, env: Mapping[str, str | None] = {}
    ) -> Run:
        merged = {**self.base_env, **(sandbox.env() if sandbox else {}), **env}
        done = subprocess.run(
            [sys.executable, *argv],
            cwd=self.workdir,
            env={k: v for k, v in merged.items() if v is not None},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def __call__(
        self, *args: str, sandbox: LexfulSandbox | None = None, env: Mapping[str, str | None] = {}
    ) -> Run:
        return self.python(str(COMMAND), *args, sandbox=sandbox, env=env)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def sandbox(make_sandbox: Callable[..., LexfulSandbox]) -> LexfulSandbox:
    return make_sandbox(contacts=300, seed=2)  # not the demo's seed: another account


def asset_tables(rows: Mapping[str, int], sandbox: LexfulSandbox) -> list[str]:
    roots = {"organizations", *(t["name"].replace(".", "_") for t in sandbox.truth("asset_types"))}
    return [t for t in rows if t.split("__")[0] in roots]


def count(database: Path, table: str) -> int:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(f"select count(*) from lexful.{table}").fetchone()[0]  # type: ignore[index]


def test_demo_needs_no_configuration_and_writes_a_duckdb_file(cli: Cli) -> None:
    run = cli("--demo", "--demo-contacts", "300")
    assert run.stdout.startswith("Demo: a seeded local Lexful server at http://127.0.0.1:")
    summary, rows = run.summary(), run.rows()
    database = cli.workdir / "lexful_demo_warehouse.duckdb"
    assert (summary["destination"], summary["dataset"]) == ("duckdb", "lexful")
    assert summary["location"] == str(database)
    assert int(summary["requests"]) > 0
    assert rows["system_contact"] == 300
    assert {t: count(database, t) for t in rows} == rows


def test_the_quick_exit_keeps_the_code_the_output_the_handlers_and_the_threads(cli: Cli) -> None:
    """The command ends with ``leave``, which skips Python's teardown of every object but
    nothing a caller sees: the exit code, output still in the pipes' buffers, the exit
    handlers (here logging's, which writes a held record out), a thread still at work and
    a thread pool never shut down."""
    script = textwrap.dedent(
        f"""
        import atexit, logging, logging.handlers, sys, threading, time
        from concurrent.futures import ThreadPoolExecutor
        sys.path.insert(0, {str(COMMAND.parent)!r})
        from lexful_pipeline import leave
        held = logging.handlers.MemoryHandler(100, logging.CRITICAL, logging.StreamHandler())
        logging.getLogger().addHandler(held)
        logging.warning("logged, held until logging shuts down")
        atexit.register(print, "exit handler ran")
        def late(what):
            time.sleep(0.3)
            print(what)
        threading.Thread(target=late, args=("thread finished",)).start()
        ThreadPoolExecutor(1).submit(late, "pool task finished")
        print("buffered", end="")  # a pipe's stdout holds this until a flush
        print("partial", end="", file=sys.stderr)
        leave(3)
        """
    )
    run = cli.python("-c", script, env={"PYTHONUNBUFFERED": None})  # buffered, as in cron
    assert run.returncode == 3, run.stderr
    assert run.stdout.startswith("buffered")
    assert sorted(run.stdout.removeprefix("buffered").splitlines()) == [
        "exit handler ran",
        "pool task finished",
        "thread finished",
    ]
    assert run.stdout.endswith("exit handler ran\n")  # after the threads, as Python does it
    assert run.stderr == "partiallogged, held until logging shuts down\n"


def test_runs_after_a_demo_load_everything_then_only_changes(
    cli: Cli, sandbox: LexfulSandbox
) -> None:
    cli("--demo", "--demo-contacts", "300").summary()  # must not lend its cursors to real runs
    first = cli(sandbox=sandbox)
    assert first.summary()["location"] == str(cli.workdir / "lexful_warehouse.duckdb")
    assert first.rows()["system_contact"] == len(sandbox.truth("system.contact"))
    assert int(first.summary()["requests"]) == sandbox.stats.requests

    sandbox.stats.reset()
    again = cli(sandbox=sandbox)
    assert asset_tables(again.rows(), sandbox) == []
    assert int(again.summary()["requests"]) == sandbox.stats.requests
    assert sandbox.stats.by_route[TOKEN] == 1

    assert cli("--full-refresh", sandbox=sandbox).rows() == first.rows()


def imported(run: Run, module: str) -> bool:
    """Whether the run imported ``module``, from its ``PYTHONPROFILEIMPORTTIME`` lines."""
    lines = (line for line in run.stderr.splitlines() if line.startswith("import time:"))
    return any(line.rsplit("|", 1)[-1].strip() == module for line in lines)


def test_a_run_with_nothing_new_never_imports_arrow_and_a_small_change_loads_exactly(
    cli: Cli, sandbox: LexfulSandbox
) -> None:
    """Importing Arrow (pyarrow with numpy) took 0.36 to 0.46 s of a run that finds
    nothing new. The first load decodes its pages with Arrow; the run after it reads a
    few records per list, through the dict path, and imports none of it. A few changed
    records then load through the dict path too, exactly."""
    timed = {"PYTHONPROFILEIMPORTTIME": "1"}
    first = cli(sandbox=sandbox, env=timed)
    assert first.rows()["system_contact"] == len(sandbox.truth("system.contact"))
    assert imported(first, "pyarrow")

    again = cli(sandbox=sandbox, env=timed)
    assert asset_tables(again.rows(), sandbox) == []
    assert not imported(again, "pyarrow") and not imported(again, "numpy")

    changed = [c["id"] for c in sandbox.truth("system.contact")[:3]]
    for n, contact in enumerate(changed):
        sandbox.app.edit_asset("system.contact", contact, {"title": f"Changed {n}"})
    small = cli(sandbox=sandbox, env=timed)
    assert small.rows()["system_contact"] == 3
    database = cli.workdir / "lexful_warehouse.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        titles = dict(con.execute("select id, title from lexful.system_contact").fetchall())
    assert [titles[c] for c in changed] == ["Changed 0", "Changed 1", "Changed 2"]
    merged = every_table(database)

    fresh = Cli(cli.workdir / "fresh")  # the same data read whole, through Arrow
    fresh.workdir.mkdir()
    assert imported(fresh(sandbox=sandbox, env=timed), "pyarrow")
    assert merged == every_table(fresh.workdir / "lexful_warehouse.duckdb")


def every_table(database: Path) -> dict[str, list[tuple[object, ...]]]:
    """Each table's rows, sorted, without dlt's columns and tables."""
    tables: dict[str, list[tuple[object, ...]]] = {}
    with duckdb.connect(str(database), read_only=True) as con:
        found = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'lexful' order by table_name, ordinal_position"
        ).fetchall()
        columns: dict[str, list[str]] = {}
        for table, column in found:
            if not table.startswith("_dlt") and not column.startswith("_dlt"):
                columns.setdefault(table, []).append(f'"{column}"')
        for table, names in columns.items():
            rows = con.execute(f'select {", ".join(names)} from lexful."{table}"').fetchall()
            tables[table] = sorted(rows, key=repr)
    return tables


@dataclass(frozen=True)
class Failure:
    says: tuple[str, ...]
    routes: Mapping[str, int]  # the requests the server saw: no retry storm, no data read
    args: tuple[str, ...] = ()
    env: Mapping[str, str | None] = field(default_factory=dict)
    settings: Mapping[str, object] = field(default_factory=dict)
    first: tuple[str, ...] | None = None  # a successful run before the failing one


REFUSED = {TOKEN: 1}
FAILURES = {
    "wrong secret": Failure(
        ("HTTP 401", "sources.lexful.api_key_secret"),
        REFUSED,
        env={ENV + "API_KEY_SECRET": WRONG_SECRET},
    ),
    "wrong account": Failure(
        ("HTTP 401", "sources.lexful.account_id"), REFUSED, env={ENV + "ACCOUNT_ID": "not-mine"}
    ),
    "403 for bad credentials": Failure(
        ("HTTP 403", "sources.lexful.api_key_secret"),
        REFUSED,
        env={ENV + "API_KEY_SECRET": WRONG_SECRET},
        settings={"bad_credentials_status": 403},
    ),
    "unknown asset type": Failure(
        ("'system.nope'", "available:", "system.contact", "system.location"),
        {TOKEN: 1, "GET /v1/asset_types": 1},
        args=("--asset-types", "system.nope"),
    ),
    "missing secret": Failure(
        ("sources.lexful.api_key_secret", ".dlt/secrets.toml", ENV + "API_KEY_SECRET"),
        {},
        env={ENV + "API_KEY_SECRET": None},
    ),
    "pipeline of another destination": Failure(
        ("pipeline 'lexful'", "into duckdb", "--pipeline-name", "--full-refresh"),
        {},
        args=("--destination", "filesystem", "--pipeline-name", "lexful"),
        first=(),
    ),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_a_failure_is_one_line_naming_what_to_fix(
    case: Failure, cli: Cli, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    server = make_sandbox(contacts=50, **case.settings)
    if case.first is not None:
        cli(*case.first, sandbox=server).summary()
        server.stats.reset()
    line = cli(*case.args, sandbox=server, env=case.env).error(
        WRONG_SECRET, server.settings.api_key_secret
    )
    for fragment in case.says:
        assert fragment in line
    assert dict(server.stats.by_route) == case.routes
    assert not (cli.workdir / "lexful_data").exists()


def closed_port_env() -> dict[str, str | None]:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {
        ENV + "API_BASE_URL": f"http://127.0.0.1:{port}",
        ENV + "ACCOUNT_ID": "account",
        ENV + "API_KEY_ID": "key",
        ENV + "API_KEY_SECRET": WRONG_SECRET,
        ENV + "MAX_ATTEMPTS": "2",  # the retry policy, set as a user would
        ENV + "BACKOFF_S": "0.05",
    }


def unreachable_error(cli: Cli) -> str:
    env = closed_port_env()
    line = cli(env=env).error(WRONG_SECRET, retries=True)
    return line.replace(str(env[ENV + "API_BASE_URL"]), "<api_base_url>")


def test_an_unreachable_server_is_one_line_after_the_retries(cli: Cli) -> None:
    line = unreachable_error(cli)
    assert "POST /v1/auth/token on <api_base_url> failed after 2 attempts" in line
    assert "Connection refused" in line


def test_an_unreachable_server_error_names_the_setting_to_check(cli: Cli) -> None:
    line = unreachable_error(cli)
    assert "<api_base_url>" in line
    assert "sources.lexful.api_base_url" in line


def parquet_views(cli: Cli, sandbox: LexfulSandbox) -> Path:
    """A Parquet load and its current-state views, made as the README says."""
    summary = cli("--destination", "filesystem", sandbox=sandbox).summary()
    dataset = cli.workdir / "lexful_data" / "lexful"
    assert summary["location"] == str(dataset)
    assert list((dataset / "system_contact").glob("*.parquet"))
    views = cli.python(
        "-m", "lexful_source.parquet_views", "lexful_data/lexful", "--database", "cur.duckdb"
    )
    assert views.returncode == 0, views.stderr
    return cli.workdir / "cur.duckdb"


def test_filesystem_writes_parquet_that_the_views_read_as_the_current_state(
    cli: Cli, sandbox: LexfulSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = parquet_views(cli, sandbox)
    monkeypatch.chdir(cli.workdir)  # where the user made the views
    contacts = sandbox.truth("system.contact")
    assert any(c["deleted_at"] for c in contacts)  # archived records count too
    assert count(database, "system_contact") == len(contacts)


def test_parquet_views_work_from_any_directory(cli: Cli, sandbox: LexfulSandbox) -> None:
    assert count(parquet_views(cli, sandbox), "system_contact") > 0
