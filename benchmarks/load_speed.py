"""How fast this source loads Lexful, side by side with dlt's rest_api and the floor.

One seeded local server (its own process, as ``python -m lexful_source.sandbox``), and
each case in a fresh child process, which imports what the case needs before its clock
starts (``import_lazy_modules``) and whose peak memory is that case's alone:

- floor: a plain loop fetching every page of every list with httpx and parsing it;
- this source, full load, into DuckDB, Postgres and Parquet files;
- DuckDB alone inserting the Parquet files of that DuckDB load (no dlt): how much of
  the DuckDB time is the database's own work;
- a stand-in for overlapping the load with the extract: the DuckDB load with dlt's load
  step skipped, while that insert runs on a thread alongside (nothing of it is loaded);
- dlt's ``rest_api`` source set up as a competent user would (offset paginator,
  ``updated_at`` incremental, merge on id) with dlt's defaults, and tuned (Parquet files);
- incremental runs of the pipeline command (interpreter start included): with no
  changes, and after 1% of the records changed;
- this source into DuckDB at other sizes, to show how cost grows;
- the floor and this source into DuckDB over a slower network: the same server answering
  each request ``--latency-ms`` late (50 by default), as a remote API would.

Full loads under a million contacts run three times (``--repeats``) and the run of
median time is reported: single runs moved by 10-20% here, and the ratios with them.

    python benchmarks/load_speed.py                      # 100,000 contacts; 10k and 1M too
    python benchmarks/load_speed.py --contacts 10000 --scales 10000 --skip-rest-api-default

Prints the table and the issue's targets, and writes both to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE = 1000
POSTGRES = os.environ.get(
    "LEXFUL_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/test"
)
OUTPUT = ROOT / "benchmarks/results/load_speed.md"
CHANGED_SHARE = 0.01


@dataclass
class Result:
    case: str
    contacts: int
    seconds: float
    records: int
    requests: int | None
    peak_mb: float
    note: str = ""
    cpu: float | None = None  # CPU seconds of the case's process (all its threads)
    server_cpu: float | None = None  # the local server's, from the case's start to its end
    load_step: float | None = None  # seconds of dlt's load step, for this source's loads
    imports: float | None = None  # seconds of LAZY_IMPORTS, before the clock
    rounds: list[float] = field(default_factory=list)  # each run's seconds, in run order

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


# ---- the cases, each run in a child process (``--case``) -------------------------------

# What a load through dlt imports on first use, beyond dlt and this source: Arrow (with
# numpy) and pandas, which pyarrow imports at its first ``pa.array``. Every dlt case
# imports them before its clock, as the floor imports httpx and orjson before its own.
LAZY_IMPORTS = ("pyarrow", "pyarrow.compute", "pyarrow.json", "pyarrow.parquet", "pandas")


def import_lazy_modules() -> float:
    """Import LAZY_IMPORTS; their seconds, which the report shows beside the loads.

    A load's clock measures the loading, as the floor's measures the fetching: process
    start, imports included, is what the incremental runs measure. The modules are
    imported lazily so that a run with nothing to load never pays for them; without this,
    a full load's clock held 0.3-0.4 s of imports that no other case's did."""
    started = time.perf_counter()
    for name in LAZY_IMPORTS:
        importlib.import_module(name)
    return time.perf_counter() - started


@contextmanager
def clock() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block, CPU being this process's, all threads: on two
    cores a case can be slow for lack of cores rather than for waiting."""
    figures: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield figures
    figures.update(seconds=time.perf_counter() - wall, cpu=time.process_time() - cpu)


def session(env: dict[str, str]) -> httpx.Client:
    """An authenticated httpx client for the floor and rest_api cases."""
    client = httpx.Client(base_url=env["API_BASE_URL"], timeout=120)
    answer = client.post(
        "/v1/auth/token",
        headers={"X-Account-Id": env["ACCOUNT_ID"]},
        json={"id": env["API_KEY_ID"], "secret": env["API_KEY_SECRET"]},
    )
    answer.raise_for_status()
    client.headers.update(
        {"Authorization": f"Bearer {answer.json()['token']}", "X-Account-ID": env["ACCOUNT_ID"]}
    )
    return client


def list_paths(client: httpx.Client) -> list[str]:
    """Organizations and every asset type: the lists a full load reads."""
    types = client.get("/v1/asset_types", params={"limit": PAGE}).json()["items"]
    return ["/v1/organizations", *(f"/v1/assets/{t['name']}" for t in types)]


# The query every loader here sends (the connector newest first, rest_api oldest first):
# the server answers it from its (updated_at, id) index.
LIST_QUERY = {"include_deleted": "true", "updated_at[gte]": "1970-01-01T00:00:00.000Z",
              "sort": "updated_at,id", "order": "ASC,ASC"}  # fmt: skip


def case_floor(env: dict[str, str], _: Path) -> dict[str, Any]:
    client = session(env)
    records = requests = 0
    with clock() as timed:
        for path in list_paths(client):
            offset, total = 0, 1
            while offset < total:
                params = {**LIST_QUERY, "limit": PAGE, "offset": offset}
                doc = orjson.loads(client.get(path, params=params).content)
                total, offset = doc["total"], offset + PAGE
                records += len(doc["items"])
                requests += 1
    return {**timed, "records": records, "requests": requests}


def case_ours(env: dict[str, str], workdir: Path, destination: str) -> dict[str, Any]:
    os.chdir(workdir)
    from lexful_source.pipeline import run_load

    imports = import_lazy_modules()
    with clock() as timed:
        summary = run_load(
            destination=destination,
            dataset_name="lexful_bench",
            pipeline_name=f"bench_{destination}",
            full_refresh=True,
        )
    return {**timed, "records": parent_rows(summary.rows), "requests": summary.requests,
            "load_step": load_step_seconds(f"bench_{destination}"), "imports": imports}  # fmt: skip


def load_step_seconds(pipeline_name: str) -> float | None:
    """How long dlt's load step took in the pipeline's last run, from its trace: the
    part of the run that waited for the extract to finish before it could start."""
    import dlt

    trace = dlt.attach(pipeline_name).last_trace
    steps = [s for s in trace.steps if s.step == "load"] if trace else []
    return sum((s.finished_at - s.started_at).total_seconds() for s in steps) if steps else None


def case_overlap(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """A stand-in for running the load alongside the extract: the same full DuckDB run,
    with dlt's load step skipped, while a thread started with the run inserts the
    Parquet files of the DuckDB load already in ``workdir`` into a scratch database
    (``insert_alone``). Nothing of this run is loaded. It is optimistic where a real
    overlap would wait for each package and do dlt's load bookkeeping; it competes for
    the cores as a real overlap would."""
    import threading

    import dlt

    workdir = workdir.resolve()
    files, settings = loaded_files(workdir), first_load_settings()
    pipeline_name, side_error = "bench_overlap", []
    leftovers = [workdir / "overlap_side.duckdb", workdir / f"{pipeline_name}_warehouse.duckdb",
                 workdir / "pipelines" / f"{pipeline_name}.lexful.lock"]  # fmt: skip
    # A package left by an earlier run would be finished first (through the load step
    # replaced below, which waits for the insert), timing the two one after the other.
    shutil.rmtree(workdir / "pipelines" / pipeline_name, ignore_errors=True)

    def insert() -> None:
        try:
            insert_alone(files, leftovers[0], settings)
        except BaseException as exc:  # raised again by the run
            side_error.append(exc)

    side = threading.Thread(target=insert, name="duckdb-alongside")

    def wait_for_the_insert(self: Any, *args: Any, **kwargs: Any) -> None:
        side.join()
        if side_error:
            raise side_error[0]

    dlt.Pipeline.load = wait_for_the_insert  # type: ignore[method-assign]  # this process only
    os.chdir(workdir)
    from lexful_source.pipeline import run_load

    import_lazy_modules()
    try:
        with clock() as timed:
            side.start()
            summary = run_load(destination="duckdb", dataset_name="lexful_bench",
                               pipeline_name=pipeline_name, full_refresh=True)  # fmt: skip
    finally:
        if side.is_alive():  # the run failed first: its error is the one raised
            side.join()
        shutil.rmtree(workdir / "pipelines" / pipeline_name, ignore_errors=True)
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
    return {**timed, "records": parent_rows(summary.rows), "requests": summary.requests}


def parent_rows(rows: dict[str, int]) -> int:
    """Organizations and asset types, as the floor counts them (not the reference lists)."""
    from lexful_source.pipeline import is_reference_table

    return sum(n for t, n in rows.items() if "__" not in t and not is_reference_table(t))


def loaded_files(workdir: Path) -> list[Path]:
    """The Parquet files of every finished load of the DuckDB case in ``workdir``: one
    load, as long as these cases run before the incremental ones in the same place."""
    files = sorted(workdir.glob("pipelines/bench_duckdb/**/completed_jobs/*.parquet"))
    if not files:
        raise RuntimeError(f"no Parquet files of a finished DuckDB load under {workdir}")
    return files


def table_of(loader_file: Path) -> str:
    """The table a dlt loader file belongs to: its name's first part."""
    return loader_file.name.split(".")[0]


def first_load_settings() -> dict[str, Any]:
    """The DuckDB settings the source gives a first load. Read before a case's clock:
    importing the source imports dlt (0.4-0.5 s), which no insert should be timed with."""
    from lexful_source.pipeline import DUCKDB_SETTINGS, FIRST_LOAD_MEMORY_LIMIT

    return {**DUCKDB_SETTINGS, "memory_limit": FIRST_LOAD_MEMORY_LIMIT}


def insert_alone(files: list[Path], target: Path, settings: dict[str, Any]) -> None:
    """Each of ``files`` inserted into table t0, t1... of a new database file ``target``,
    with ``settings`` (``first_load_settings``) and no dlt."""
    import duckdb

    target.unlink(missing_ok=True)
    connection = duckdb.connect(str(target), config=settings)
    for number, path in enumerate(files):
        sql = f"create table t{number} as select * from read_parquet(?)"
        connection.execute(sql, [str(path)])
    connection.close()  # the checkpoint that writes the tables is part of the work


def case_duckdb_alone(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """DuckDB by itself: ``insert_alone`` of the DuckDB load's files. About the part of
    that load's time that is DuckDB's own work (dlt appends to typed tables instead)."""
    import duckdb

    settings = first_load_settings()
    files, target = loaded_files(workdir), workdir / "duckdb_alone.duckdb"
    rows: dict[str, int] = {}
    try:
        with clock() as timed:
            insert_alone(files, target, settings)
        with duckdb.connect(str(target), read_only=True) as connection:
            for number, path in enumerate(files):
                table = table_of(path)
                if not table.startswith("_dlt"):  # as run_load's row counts leave them out
                    count = connection.execute(f"select count(*) from t{number}").fetchone()[0]
                    rows[table] = rows.get(table, 0) + count
    finally:
        target.unlink(missing_ok=True)
    return {**timed, "records": parent_rows(rows), "requests": None}


def case_dlt_alone(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """dlt by itself: the DuckDB load's own Parquet files, which that load hands dlt as
    files it wrote (loader_files.py), imported as they are (one resource per table, the
    files' schemas as hints) into a new DuckDB file with the settings of a first load. No
    request, no parse, no table building, no file writing: what dlt's extract, normalize
    and load cost for this load's files, which no source handing dlt these files can go
    below. It differs from the load in small parts: its hints carry a table name, a
    write disposition and the files' columns (the load's also carry keys), the reference
    tables are left out (a few hundred rows, which the load hands over as records), and
    the garbage collector runs as Python sets it (the load holds it back)."""
    import dlt
    import pyarrow.parquet as pq
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    # importing the source also sets its dlt configuration (dlt's _dlt_load_id, which
    # every file here has)
    from lexful_source.pipeline import is_reference_table

    workdir = workdir.resolve()
    files: dict[str, list[tuple[str, int, Any]]] = {}
    for path in loaded_files(workdir):
        name = table_of(path)
        if not name.startswith("_dlt") and not is_reference_table(name):
            schema, rows = pq.read_schema(path), pq.read_metadata(path).num_rows
            files.setdefault(name, []).append((str(path), rows, schema.empty_table()))

    def imports(parts: list[tuple[str, int, Any]]) -> Iterator[Any]:
        for path, rows, columns in parts:
            yield dlt.mark.with_file_import(path, "parquet", rows, hints=columns)

    resources = [
        dlt.resource(imports(parts), name=name, write_disposition="append")
        for name, parts in files.items()
    ]
    pipeline_name, target = "bench_dlt_alone", workdir / "dlt_alone.duckdb"
    shutil.rmtree(workdir / "pipelines" / pipeline_name, ignore_errors=True)
    credentials = DuckDbCredentials(str(target), global_config=first_load_settings())
    pipeline = dlt.pipeline(pipeline_name=pipeline_name, dataset_name="lexful_bench",
                            destination=dlt.destinations.duckdb(credentials))  # fmt: skip
    import_lazy_modules()
    try:
        with clock() as timed:
            pipeline.run(resources)
        counts = pipeline.last_trace.last_normalize_info.row_counts
        rows = {t: n for t, n in counts.items() if not t.startswith("_dlt")}
        load_step = load_step_seconds(pipeline_name)
    finally:
        shutil.rmtree(workdir / "pipelines" / pipeline_name, ignore_errors=True)
        for leftover in (target, target.with_name(f"{target.name}.wal")):
            leftover.unlink(missing_ok=True)
    return {**timed, "records": parent_rows(rows), "requests": None, "load_step": load_step}


def case_rest_api(env: dict[str, str], workdir: Path, tuned: bool) -> dict[str, Any]:
    """dlt's rest_api source, configured as its docs show for an offset-paged API."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    client = session(env)
    resources = [
        {"name": path.rsplit("/", 1)[-1].replace(".", "_"), "endpoint": {"path": path}}
        for path in list_paths(client)
    ]
    config: dict[str, Any] = {
        "client": {
            "base_url": env["API_BASE_URL"],
            "auth": {"type": "bearer", "token": client.headers["Authorization"][7:]},
            "headers": {"X-Account-ID": env["ACCOUNT_ID"]},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {
                "data_selector": "items",
                "params": {"include_deleted": "true", "sort": "updated_at,id", "order": "ASC,ASC"},
                "paginator": {"type": "offset", "limit": PAGE, "total_path": "total"},
                "incremental": {
                    "start_param": "updated_at[gte]",
                    "cursor_path": "updated_at",
                    "initial_value": "1970-01-01T00:00:00.000Z",
                },
            },
        },
        "resources": resources,
    }
    pipeline = dlt.pipeline(
        pipeline_name="bench_rest_api",
        destination=dlt.destinations.duckdb(str(workdir / "rest_api.duckdb")),
        dataset_name="lexful_rest_api",
    )
    import_lazy_modules()
    with clock() as timed:
        pipeline.run(rest_api_source(config), loader_file_format="parquet" if tuned else None)
    counts = pipeline.last_trace.last_normalize_info.row_counts
    records = sum(n for t, n in counts.items() if "__" not in t and not t.startswith("_dlt"))
    return {**timed, "records": records, "requests": None}


CASES: dict[str, Callable[[dict[str, str], Path], dict[str, Any]]] = {
    "floor": case_floor,
    "duckdb": lambda env, wd: case_ours(env, wd, "duckdb"),
    "postgres": lambda env, wd: case_ours(env, wd, "postgres"),
    "parquet": lambda env, wd: case_ours(env, wd, "filesystem"),
    "duckdb_alone": case_duckdb_alone,
    "dlt_alone": case_dlt_alone,
    "overlap": case_overlap,
    "rest_api_default": lambda env, wd: case_rest_api(env, wd, tuned=False),
    "rest_api_tuned": lambda env, wd: case_rest_api(env, wd, tuned=True),
}
# the same cases against a server answering late (``--latency-ms``)
CASES.update({f"{case}_late": CASES[case] for case in ("floor", "duckdb")})


def run_case_here(name: str, workdir: Path) -> None:
    """Child process: run one case and print its figures as one JSON line."""
    env = {k.removeprefix("SOURCES__LEXFUL__"): v for k, v in os.environ.items()}
    figures = CASES[name](env, workdir)
    print("RESULT " + json.dumps(figures), flush=True)


# ---- the parent: server, child processes, table ----------------------------------------


@dataclass
class Server:
    """The local server's SOURCES__LEXFUL__ variables and its process."""

    env: dict[str, str]
    pid: int

    @property
    def credentials(self) -> dict[str, str]:
        """Its variables without the prefix, as ``session`` takes them."""
        return {k.removeprefix("SOURCES__LEXFUL__"): v for k, v in self.env.items()}

    def cpu(self) -> float | None:
        """CPU seconds the server has used so far (None without Linux's /proc): the server
        shares the machine's cores with the case it serves."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def local_server(contacts: int, latency_ms: float = 0) -> Iterator[Server]:
    """A seeded local Lexful in its own process. It shares this machine's cores with the
    case it serves, which a remote API would not: hence its CPU seconds in the table."""
    command = [sys.executable, "-m", "lexful_source.sandbox", "--port", "0",
               "--contacts", str(contacts), "--latency-ms", str(latency_ms)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    env: dict[str, str] = {}
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if "export SOURCES__LEXFUL__" in line:
                key, _, value = line.strip().removeprefix("export ").partition("=")
                env[key] = value
            if line.strip().startswith("data:"):
                print(f"server {contacts:,} contacts: {line.strip()}", flush=True)
            if "Ctrl-C" in line:
                break
        if process.poll() is not None:
            raise RuntimeError("the local server did not start")
        yield Server(env, process.pid)
    finally:
        process.terminate()
        process.wait()


def child_env(server: Server, workdir: Path) -> dict[str, str]:
    """The server's credentials; dlt's pipelines and the DuckDB file in ``workdir``."""
    env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT), "DLT_DATA_DIR": str(workdir)}
    env.setdefault("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES)
    env.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    return env


def run_case(name: str, server: Server, contacts: int, workdir: Path) -> Result:
    command = [sys.executable, str(Path(__file__).resolve()), "--case", name,
               "--workdir", str(workdir)]  # fmt: skip
    server_before = server.cpu()
    # the case reports its own CPU over the timed part, without its imports
    out, _, peak, _ = measured(command, child_env(server, workdir), workdir)
    figures = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    result = Result(name, contacts, figures["seconds"], figures["records"],
                    figures["requests"], peak, cpu=figures["cpu"],
                    server_cpu=server_cpu(server, server_before),
                    load_step=figures.get("load_step"), imports=figures.get("imports"))  # fmt: skip
    print(f"  {name:<18} {result.seconds:7.2f} s  {result.per_second:10,.0f} records/s  "
          f"{result.peak_mb:6.0f} MB  CPU {result.cpu:5.2f} s", flush=True)  # fmt: skip
    return result


def server_cpu(server: Server, before: float | None) -> float | None:
    """The server's CPU seconds since ``before`` (None where they cannot be read)."""
    after = server.cpu()
    return None if before is None or after is None else after - before


def run_median(
    name: str,
    server: Server,
    contacts: int,
    tmp: Path,
    times: int,
    workdir: Path | None = None,
) -> Result:
    """The run of median time among ``times`` (each in a fresh directory, or all in
    ``workdir``): one run's figure moved by 10-20% on this machine, and the ratios with
    it. Its peak memory is the highest of the runs."""
    runs = []
    for n in range(times):
        where = workdir or tmp / f"{name}-{contacts}-{n}"
        where.mkdir(exist_ok=workdir is not None)
        runs.append(run_case(name, server, contacts, where))
    return median_of(runs)


def run_rounds(
    cases: list[str], server: Server, contacts: int, tmp: Path, times: int
) -> list[Result]:
    """Each case's median run, the cases taking turns: round n runs every case once. This
    shared machine's speed drifts within minutes (the floor alone took 1.25 to 2.48 s in
    four runs of one quarter hour); with each case's runs in a block, a drift between
    blocks moved the ratios, and taking turns slows or speeds every case alike. Cases in
    RUN_ONCE run once, after the rounds, which they would otherwise stretch."""
    runs: dict[str, list[Result]] = {case: [] for case in cases}
    rounds = [[c for c in cases if c not in RUN_ONCE]] * times + [
        [c for c in cases if c in RUN_ONCE]
    ]
    for n, turn in enumerate(rounds):
        for case in turn:
            where = tmp / f"{case}-{contacts}-{n}"
            where.mkdir()
            runs[case].append(run_case(case, server, contacts, where))
    return [median_of(found) for found in runs.values()]


def median_of(runs: list[Result]) -> Result:
    """The run of median time, with the highest peak memory of the runs."""
    median = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    median.peak_mb = max(r.peak_mb for r in runs)
    median.rounds = [r.seconds for r in runs]
    if len(runs) > 1:
        median.note = f"median of {len(runs)}"
    return median


def measured(command: list[str], env: dict[str, str], cwd: Path) -> tuple[str, float, float, float]:
    """(stdout, wall seconds, peak MB, CPU seconds) of one child process; wait4 reports
    that child's own peak resident memory and CPU time."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{text}\n{errors[-3000:]}")
    return text, seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def pipeline_command(
    server: Server, workdir: Path, label: str, contacts: int, **settings: str
) -> Result:
    """The pipeline command as a scheduler runs it: wall time from process start to exit.
    ``settings`` are source settings, passed as a scheduler would: in the environment."""
    command = [sys.executable, str(ROOT / "pipelines/lexful_pipeline.py"), "--quiet",
               "--pipeline-name", "bench_duckdb", "--dataset-name", "lexful_bench"]  # fmt: skip
    env = child_env(server, workdir)
    env.update({f"SOURCES__LEXFUL__{k.upper()}": v for k, v in settings.items()})
    server_before = server.cpu()
    out, seconds, peak, cpu = measured(command, env, workdir)
    summary = next(line for line in out.splitlines() if line.startswith("Loaded Lexful"))
    requests = int(summary.split(" with ")[1].split(" API requests")[0].replace(",", ""))
    rows = [line.split() for line in out.splitlines()[1:] if line.startswith("  ")]
    counts = {r[0]: r[-1].replace(",", "") for r in rows if len(r) == 2}
    records = sum(int(n) for table, n in counts.items() if n.isdigit() and "__" not in table)
    result = Result(label, contacts, seconds, records, requests, peak, cpu=cpu,
                    server_cpu=server_cpu(server, server_before))  # fmt: skip
    print(f"  {label:<18} {seconds:7.2f} s  {requests} requests, {records:,} records  "
          f"{peak:6.0f} MB  CPU {cpu:5.2f} s", flush=True)  # fmt: skip
    return result


def change_records(server: Server, share: float, seed: int = 7) -> int:
    """PATCH ``share`` of the records of every asset type, as a user editing them would."""
    client = session(server.credentials)
    rng, changed = random.Random(seed), 0
    for path in list_paths(client)[1:]:
        ids, offset, total = [], 0, 1
        while offset < total:
            doc = client.get(path, params={"limit": PAGE, "offset": offset, "fields": "id"}).json()
            ids += [item["id"] for item in doc["items"]]
            total, offset = doc["total"], offset + PAGE
        for asset_id in rng.sample(ids, max(1, int(len(ids) * share))):
            client.patch(f"{path}/{asset_id}", json={"name": f"renamed {asset_id[-6:]}"})
            changed += 1
    return changed


# ---- the report -------------------------------------------------------------------------

RUN_ONCE = {"rest_api_default"}  # one to three minutes a run
FLOOR_BAR = 2.5  # the target: a full DuckDB load within this many times the floor
FULL_LOADS = ["floor", "duckdb", "postgres", "parquet", "rest_api_tuned", "rest_api_default"]
LABELS = {
    "floor": "floor: fetch and parse every page (httpx + orjson), load nothing",
    "duckdb": "this source, full load, DuckDB",
    "postgres": "this source, full load, Postgres",
    "parquet": "this source, full load, Parquet files",
    "duckdb_alone": "DuckDB alone: the DuckDB load's Parquet files into a new database file, "
    "no dlt",
    "dlt_alone": "dlt alone: the DuckDB load's Parquet files imported by dlt as they are "
    "(extract, normalize, load), as that load hands them over; no requests, no parsing, "
    "no tables, no writing",
    "overlap": "stand-in for an overlap: the DuckDB load with dlt's load step skipped, "
    "DuckDB alone's insert on a thread alongside (nothing of this run loaded)",
    "rest_api_default": "dlt rest_api, dlt's defaults, DuckDB",
    "rest_api_tuned": "dlt rest_api, Parquet loader files, DuckDB",
    "quiet": "this source, incremental, no changes (pipeline command, process start to exit)",
    "quiet_lists": "the same, with detect_archives = false",
    "changed": "this source, incremental, 1% of records changed (pipeline command)",
    "floor_late": "floor, every answer late (see below)",
    "duckdb_late": "this source, full load, DuckDB, every answer late (see below)",
}


def report(results: list[Result], contacts: int, command: str, latency_ms: float = 0) -> str:
    main = {r.case: r for r in results if r.contacts == contacts}
    lines = [
        "# Load speed: this source, dlt's rest_api and the floor",
        "",
        f"`{command}` on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The local server runs in "
        "its own process; each case in a fresh child process (its own imports, its own "
        "peak memory). Full loads are timed around the load call, after their imports "
        f"(those a load makes on first use, {', '.join(LAZY_IMPORTS)}, took "
        f"{imports_note(main)}); incremental runs from process start to exit. Where a "
        "case ran more than once, the table shows the run of median time and the highest "
        "peak memory of its runs. The full loads at "
        f"{contacts:,} contacts took turns, one run of each a round (rest_api with dlt's "
        "defaults once, after the rounds); DuckDB alone, dlt alone and the stand-in ran "
        "after them, on the last DuckDB run's files. A target's ratio of two cases that "
        "took turns is the median of each round's own ratio. CPU seconds: the case's "
        "process, all its threads, over the timed part; the server's, over the whole case.",
        "",
        "| case | contacts | seconds | records | records/s | requests | peak MB | CPU s | "
        "server CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        label = LABELS.get(r.case, r.case) + (f" ({r.note})" if r.note else "")
        requests = "" if r.requests is None else f"{r.requests:,}"
        cpu, served = ("" if v is None else f"{v:.2f}" for v in (r.cpu, r.server_cpu))
        lines.append(
            f"| {label} | {r.contacts:,} | {r.seconds:.2f} | {r.records:,} | "
            f"{r.per_second:,.0f} | {requests} | {r.peak_mb:,.0f} | {cpu} | {served} |"
        )
    lines += ["", "| target | measured | holds |", "|---|---:|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(main, results)]
    lines += list(round_by_round(main))
    marks = list(near_the_floor(main))
    if marks:
        lines += [
            "",
            "How near the floor a DuckDB load can come, from this run's figures:",
            "",
            "| | seconds | x floor |",
            "|---|---:|---:|",
        ]
        floor = main["floor"].seconds
        lines += [f"| {label} | {value:.2f} | {value / floor:.2f}x |" for label, value in marks]
    lines += list(over_a_network(main, latency_ms))
    return "\n".join(lines) + "\n"


def over_a_network(main: dict[str, Result], latency_ms: float) -> Iterator[str]:
    """The floor and the DuckDB load against a server answering late. Not one of the
    issue's targets: over loopback a page costs its parse, over a network its round trip,
    which the floor's loop waits out page after page."""
    floor, ours = main.get("floor_late"), main.get("duckdb_late")
    if floor is None or ours is None:
        return
    yield ""
    yield (
        f"Over a slower network: the same data, the server answering every request "
        f"{latency_ms:g} ms late (as a remote API would; loopback answers take a few ms). "
        f"The floor took {floor.seconds:.2f} s, this source's DuckDB load "
        f"{ours.seconds:.2f} s: {ours.seconds / floor.seconds:.2f}x the floor."
    )


def imports_note(main: dict[str, Result]) -> str:
    """The seconds LAZY_IMPORTS took in the DuckDB load's median run."""
    ours = main.get("duckdb")
    if ours is None or ours.imports is None:
        return "an unknown time"
    return f"{ours.imports:.2f} s in the DuckDB load's median run"


def round_by_round(main: dict[str, Result]) -> Iterator[str]:
    """Each full load against the floor of its own round: the medians can pair a fast
    round's load with a slow round's floor, and one round's ratio moved by a third."""
    floor = main.get("floor")
    if floor is None or len(floor.rounds) < 2:
        return
    yield ""
    yield "Round by round, each full load's seconds and its ratio to the same round's floor:"
    yield ""
    yield "| case | " + " | ".join(f"round {n + 1}" for n in range(len(floor.rounds))) + " |"
    yield "|---|" + "---:|" * len(floor.rounds)
    for case in FULL_LOADS:
        result = main.get(case)
        if result is None or result is floor or len(result.rounds) != len(floor.rounds):
            continue
        cells = [
            f"{s:.2f} s, {s / f:.2f}x" for s, f in zip(result.rounds, floor.rounds, strict=True)
        ]
        yield f"| {LABELS.get(case, case)} | " + " | ".join(cells) + " |"


def near_the_floor(main: dict[str, Result]) -> Iterator[tuple[str, float]]:
    """Where the floor target stands, beside the DuckDB load's time.

    dlt runs its steps one after another, so an extract no slower than the floor and a
    load step no slower than DuckDB alone still add up; an estimate, not a bound (our
    extract reads lists concurrently, and dlt loads tables concurrently). The load's CPU seconds,
    its own and the server's, are a bound: no schedule runs them in less than that work
    spread evenly over the machine's cores (the server's are counted over the whole
    case, hundredths of a second more). Moving dlt's load step alongside the extract,
    with everything else as it ran, cannot beat the run without its load step; the
    overlap case is a measured stand-in for such a run. dlt alone is what dlt's steps cost
    for the same tables with no source work at all: the bar less dlt alone is what the
    bar leaves for this source's requests, parsing and tables, where only dlt's part
    before its load step could hide any of them."""
    floor, ours, alone = main.get("floor"), main.get("duckdb"), main.get("duckdb_alone")
    overlap, dlt_alone = main.get("overlap"), main.get("dlt_alone")
    if not (floor and ours):
        return
    if dlt_alone:
        yield (
            "dlt alone: the DuckDB load's files, already written, through dlt's steps "
            "(no requests, no parsing, no tables)",
            dlt_alone.seconds,
        )
        if dlt_alone.load_step is not None:
            yield (
                "dlt alone before its load step (from its trace): the part of dlt's work "
                "this source's requests can run alongside, with dlt's steps as they are",
                dlt_alone.seconds - dlt_alone.load_step,
            )
        yield (
            f"what the floor target ({FLOOR_BAR:g}x) leaves for this source's own work on "
            "top of dlt alone: requests, parsing, tables (negative: dlt alone is over it)",
            FLOOR_BAR * floor.seconds - dlt_alone.seconds,
        )
        yield (
            "what this source's own work added: the DuckDB load minus dlt alone",
            ours.seconds - dlt_alone.seconds,
        )
    if alone:
        yield (
            "floor + DuckDB alone: an extract as fast as the floor, then a load as fast "
            "as DuckDB alone",
            (floor.seconds + alone.seconds),
        )
    if ours.cpu is not None and ours.server_cpu is not None:
        cores = os.cpu_count() or 1
        yield (
            f"lower bound for this much work: the DuckDB load's CPU seconds, its "
            f"process's and the server's, over {cores} cores busy all the time",
            (ours.cpu + ours.server_cpu) / cores,
        )
    if ours.load_step is not None:
        yield (
            "the DuckDB load minus dlt's load step (from its trace): the most that moving "
            "the load step alongside the extract, all else as it ran, could bring",
            ours.seconds - ours.load_step,
        )
    if overlap:
        yield (
            "the overlap case: the DuckDB load with dlt's load step skipped while DuckDB "
            "alone's insert runs alongside on a thread (a stand-in; loads nothing)",
            overlap.seconds,
        )
    yield "the DuckDB load, as measured", ours.seconds
    if ours.imports is not None:
        yield (
            "the DuckDB load with the imports a load makes on first use inside its clock "
            "(as the runs before 2026-12-03 10:30 UTC in FINDINGS.md timed it)",
            ours.seconds + ours.imports,
        )


def paired_ratio(slower: Result, faster: Result) -> float:
    """``slower``'s time over ``faster``'s: the median of each round's own ratio where both
    took turns in the same rounds, else the ratio of their medians. The medians can pair
    one round's run with another's: at 20:10 UTC on 2026-12-03 they put the DuckDB load at
    1.80x the floor, its rounds at 2.32x, 1.78x and 2.36x."""
    if len(slower.rounds) > 1 and len(slower.rounds) == len(faster.rounds):
        return statistics.median(s / f for s, f in zip(slower.rounds, faster.rounds, strict=True))
    return slower.seconds / faster.seconds


def targets(main: dict[str, Result], results: list[Result]) -> Iterator[tuple[str, str, bool]]:
    """Each target, what this run measured, whether it holds. The ratios are of runs in
    the same round where the cases took turns (``paired_ratio``)."""
    ours = main.get("duckdb")
    if ours is None:
        return
    for name, bar in (("rest_api_default", 15.0), ("rest_api_tuned", 3.0)):
        other = main.get(name)
        if other:
            times = paired_ratio(other, ours)
            yield f"DuckDB full load >= {bar:g}x faster than {name}", f"{times:.1f}x", times >= bar
    floor = main.get("floor")
    if floor:
        times = paired_ratio(ours, floor)
        yield (
            f"DuckDB full load within {FLOOR_BAR:g}x of the floor",
            f"{times:.2f}x",
            times <= FLOOR_BAR,
        )
    for name, bar in (("postgres", 2.0), ("parquet", 1.5)):
        other = main.get(name)
        if other:
            times = paired_ratio(other, ours)
            yield f"{name} within {bar:g}x of DuckDB", f"{times:.2f}x", times <= bar
    quiet = main.get("quiet")
    if quiet:
        yield (
            "incremental, no changes: under 3 s from process start",
            f"{quiet.seconds:.2f} s",
            quiet.seconds < 3.0,
        )
    lists = main.get("quiet_lists")
    if lists:
        resources = int(lists.note.split()[0])
        yield (
            "incremental, no changes, detect_archives = false: one list request per resource "
            "(plus the token)",
            f"{lists.requests} requests, {resources} resources",
            lists.requests is not None and lists.requests <= resources + 1,
        )
    scale = sorted((r for r in results if r.case == "duckdb"), key=lambda r: r.contacts)
    if len(scale) >= 3:
        small, middle, large = scale[0], scale[len(scale) // 2], scale[-1]
        first = (middle.seconds - small.seconds) / (middle.records - small.records)
        second = (large.seconds - middle.seconds) / (large.records - middle.records)
        yield (
            f"linear: cost per extra record {middle.contacts:,}->{large.contacts:,} within "
            f"1.3x of {small.contacts:,}->{middle.contacts:,}",
            f"{second / first:.2f}x",
            second / first <= 1.3,
        )
    if scale and scale[-1].contacts >= 1_000_000:
        yield (
            f"peak memory at {scale[-1].contacts:,} contacts under 600 MB",
            f"{scale[-1].peak_mb:,.0f} MB",
            scale[-1].peak_mb < 600,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--scales", default="10000,1000000", help="more sizes, DuckDB only")
    parser.add_argument(
        "--skip-rest-api-default",
        action="store_true",
        help="leave out the slowest case (a minute or more at 100,000)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each full load under a million contacts (the median is reported; "
        "rest_api with dlt's defaults runs once)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=50,
        help="the floor and the DuckDB load again, every answer this late (0: not run)",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.case:
        run_case_here(args.case, args.workdir)
        return
    command = "python benchmarks/load_speed.py " + " ".join(sys.argv[1:])
    cases = [c for c in FULL_LOADS if not (args.skip_rest_api_default and c == "rest_api_default")]
    scales = sorted({int(s) for s in args.scales.split(",") if s} - {args.contacts})
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="lexful-bench-") as tmp:
        with local_server(args.contacts) as server:
            results += run_rounds(cases, server, args.contacts, Path(tmp), args.repeats)
            ours = Path(tmp) / f"duckdb-{args.contacts}-{args.repeats - 1}"  # its last run
            for case in ("duckdb_alone", "dlt_alone", "overlap"):
                results.append(
                    run_median(case, server, args.contacts, Path(tmp), args.repeats, ours)
                )
            results.append(pipeline_command(server, ours, "quiet", args.contacts))
            quiet = pipeline_command(server, ours, "quiet_lists", args.contacts,
                                     detect_archives="false")  # fmt: skip
            # organizations, each asset type, the catalogue, users and organization types
            quiet.note = f"{len(list_paths(session(server.credentials))) + 3} resources"
            results.append(quiet)
            changed = change_records(server, CHANGED_SHARE)
            result = pipeline_command(server, ours, "changed", args.contacts)
            result.note = f"{changed:,} records patched"
            results.append(result)
        if args.latency_ms > 0:
            with local_server(args.contacts, args.latency_ms) as server:
                late = ["floor_late", "duckdb_late"]
                results += run_rounds(late, server, args.contacts, Path(tmp), args.repeats)
        for contacts in scales:
            with local_server(contacts) as server:
                times = 1 if contacts >= 1_000_000 else args.repeats
                results.append(run_median("duckdb", server, contacts, Path(tmp), times))
        shutil.rmtree(tmp, ignore_errors=True)
    results.sort(key=lambda r: (r.contacts != args.contacts, r.contacts))
    text = report(results, args.contacts, command, args.latency_ms)
    print("\n" + text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
