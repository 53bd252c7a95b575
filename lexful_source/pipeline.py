"""Running the source: destinations, the run itself, its summary and its errors.

``pipelines/lexful_pipeline.py`` is the command; this module is what it calls, so tests
and schedulers can run a load without a subprocess.
"""

from __future__ import annotations

import gc
import logging
import posixpath
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.pipeline.exceptions import PipelineStepFailed

from . import dbt_models, lexful_source
from .client import PROCESS_STATS
from .errors import ConfigurationError, LexfulError
from .locking import exclusive_run
from .memory import keep_memory_flat
from .parquet_views import create_views
from .recovery import finish_interrupted_run
from .resources import MARKER_ROWS, RECONCILED, SKIPPED, UNCHANGED
from .settings import CATALOGUE_RESOURCES, PURGED
from .timestamps import format_timestamp

log = logging.getLogger("lexful_source")
DESTINATIONS = ("duckdb", "postgres", "filesystem")
# dlt's fastest loader file for each destination (DLT-FACTS.md: insert_values is the slowest)
LOADER_FILE_FORMATS = {"duckdb": "parquet", "postgres": "csv", "filesystem": "parquet"}
DEFAULT_PARQUET_DIR = "lexful_data"
# Rows need no insertion order (every table has a key): DuckDB then loads in parallel
# with less memory.
DUCKDB_SETTINGS = {"preserve_insertion_order": False}
# A load into a new DuckDB file (a first run, a full refresh) only appends, and appends
# stream: with DuckDB's default limit (80% of RAM) a load of 1,000,000 contacts peaked
# at 1.4 GB, with this one under 600 MB, its load step 1-2 s longer (of about 60 s);
# 150 MB rather than 200 MB kept the load step's peak under the extract's.
# Merges keep the default: their joins and sorts spill when bounded, and a merge of a
# million changed contacts took half as long again at this limit and did not finish in
# 15 minutes at 150 MB (benchmarks/memory_profile.py shows the figures).
FIRST_LOAD_MEMORY_LIMIT = "150MB"
GC_THRESHOLD = 10_000  # allocations between collections of the youngest generation
# dlt gzips text loader files (Postgres' CSV) by default: writing them took half of a
# Postgres load, and they are read back at once, on this machine. A Postgres run turns
# it off for the rest of its process unless the user set it (false keeps compressing,
# which saves disk in the load packages dlt keeps after loading).
UNCOMPRESSED = "normalize.data_writer.disable_compression"


@dataclass
class RunSummary:
    destination: str
    dataset: str
    location: str
    seconds: float
    requests: int
    retries: int
    rows: dict[str, int] = field(default_factory=dict)
    reconciled: dict[str, int] | None = None  # purged / refetched, when reconciling
    skipped: dict[str, str] = field(default_factory=dict)  # resource -> the 403 it got
    unchanged: list[str] = field(default_factory=list)  # reference data left as loaded
    dbt_models: str | None = None  # where the generated dbt models went, when asked for

    def render(self) -> str:
        lines = [
            f"Loaded Lexful into {self.destination} dataset '{self.dataset}' ({self.location}) "
            f"in {self.seconds:.1f} s with {self.requests:,} API requests "
            f"({self.retries:,} retried)",
        ]
        changed = {t: n for t, n in self.rows.items() if not is_reference_table(t)}
        width = max((len(t) for t in changed), default=5)
        if changed:
            lines.append(f"  {'table':<{width}}  {'rows':>9}")
            lines.extend(f"  {t:<{width}}  {n:>9,}" for t, n in sorted(changed.items()))
        else:
            lines.append("  no new, changed or archived records in organizations or asset types")
        reference = ", ".join(
            f"{t} ({n:,})" for t, n in sorted(self.rows.items()) if is_reference_table(t)
        )
        if reference:
            lines.append(f"  reference data replaced: {reference}")
        if self.unchanged:
            lines.append(
                f"  reference data unchanged since the last load: {', '.join(self.unchanged)}"
            )
        for name, why in sorted(self.skipped.items()):
            lines.append(f"  WARNING skipped {name} (on_forbidden = skip): {why}")
        if self.reconciled is not None:
            lines.append(
                f"  reconcile: {self.reconciled.get('purged', 0):,} records gone from Lexful "
                f"removed, {self.reconciled.get('refetched', 0):,} records reloaded"
            )
        if self.dbt_models:
            lines.append(f"  {self.dbt_models}")
        return "\n".join(lines)


def is_reference_table(table: str) -> bool:
    """Tables replaced on every run, as opposed to merged from incremental reads."""
    return table.startswith("asset_types") or table in CATALOGUE_RESOURCES


def make_destination(name: str, pipeline_name: str, full_refresh: bool = False) -> tuple[Any, str]:
    """The dlt destination and a human description of where data lands."""
    if name == "duckdb":
        # not <dataset>.duckdb: DuckDB confuses a catalog and a schema of the same name
        path = Path(f"{pipeline_name}_warehouse.duckdb").resolve()
        settings = dict(DUCKDB_SETTINGS)
        if full_refresh or not path.exists():
            settings["memory_limit"] = FIRST_LOAD_MEMORY_LIMIT
        credentials = DuckDbCredentials(str(path), global_config=settings)
        return dlt.destinations.duckdb(credentials), str(path)
    if name == "postgres":
        return dlt.destinations.postgres(), "Postgres credentials from dlt config"
    if name == "filesystem":
        bucket = dlt.config.get("destination.filesystem.bucket_url")
        if not bucket:
            bucket = str(Path(DEFAULT_PARQUET_DIR).resolve())
        return dlt.destinations.filesystem(bucket_url=bucket), bucket
    raise ConfigurationError(f"unknown destination {name!r}; use one of {', '.join(DESTINATIONS)}")


def run_load(
    *,
    destination: str = "duckdb",
    dataset_name: str = "lexful",
    pipeline_name: str | None = None,
    asset_types: Sequence[str] | None = None,
    full_refresh: bool = False,
    pipelines_dir: str | None = None,
    source_args: dict[str, Any] | None = None,
    wait_s: float = 0.0,
    reconcile: bool = False,
    dbt_project: str | Path | None = None,
) -> RunSummary:
    """One load; raises LexfulError (or dlt's errors) with a message naming the problem.

    Runs of the same pipeline never overlap: a second one waits up to ``wait_s`` for the
    first, then refuses (locking.py). ``reconcile`` adds an id-only pass that removes
    what Lexful no longer has and reloads what the incremental reads cannot see.
    ``dbt_project``: after the load, write that dbt project's models for the loaded asset
    types (dbt_models.py)."""
    pipeline_name = pipeline_name or default_pipeline_name(destination)
    if dbt_project is not None:
        _check_dbt_project(Path(dbt_project), destination)
    keep_memory_flat()
    with exclusive_run(pipeline_name, pipelines_dir, wait_s), _fewer_gc_passes():
        return _run_load(
            destination=destination,
            dataset_name=dataset_name,
            pipeline_name=pipeline_name,
            asset_types=asset_types,
            full_refresh=full_refresh,
            pipelines_dir=pipelines_dir,
            source_args=source_args,
            reconcile=reconcile,
            dbt_project=dbt_project,
        )


def _run_load(
    *,
    destination: str,
    dataset_name: str,
    pipeline_name: str,
    asset_types: Sequence[str] | None,
    full_refresh: bool,
    pipelines_dir: str | None,
    source_args: dict[str, Any] | None,
    reconcile: bool,
    dbt_project: str | Path | None,
) -> RunSummary:
    if destination == "postgres" and dlt.config.get(UNCOMPRESSED) is None:  # not set by the user
        dlt.config[UNCOMPRESSED] = True
    dest, location = make_destination(destination, pipeline_name, full_refresh)
    if destination == "filesystem":
        location = f"{location.rstrip('/')}/{dataset_name}"
    if not full_refresh:  # before dlt.pipeline(), which would warn about the change first
        _refuse_other_destination(pipeline_name, destination, dest.destination_type, pipelines_dir)
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dest,
        dataset_name=dataset_name,
        pipelines_dir=pipelines_dir,
    )
    full_refresh = full_refresh or _needs_full_load(pipeline, destination)
    before, markers = PROCESS_STATS.snapshot(), MARKER_ROWS.copy()
    SKIPPED.clear()  # runs of one process are serial (one lock per pipeline, one summary)
    UNCHANGED.clear()
    started = time.perf_counter()
    args = dict(source_args or {})
    if asset_types is not None:  # an explicit None would stop dlt reading it from config
        args["asset_types"] = asset_types
    if full_refresh:  # the refresh drops the reference tables too: load them again
        args["reload_reference_data"] = True
    # A killed run left data extracted but not loaded: load it first (a full refresh
    # aborts it), then read on, so this run still brings what changed since.
    with _quiet(destination):
        counts = finish_interrupted_run(pipeline, destination, full_refresh)
    args["destination_tables"] = _tables_kept(pipeline, destination, full_refresh)
    # DuckDB reads the source's own Parquet files as they are (loader_files.py)
    args.setdefault("parquet_files", destination == "duckdb")
    source = lexful_source(**args)
    _run(pipeline, source, destination, "drop_sources" if full_refresh else None)
    for table, count in _row_counts(pipeline).items():
        counts[table] = counts.get(table, 0) + count
    reconciled = RECONCILED.copy()
    if reconcile:
        index = loaded_index(pipeline, destination, location)
        _run(pipeline, lexful_source(**args, reconcile=index), destination, None)
        for table, count in _row_counts(pipeline).items():
            counts[table] = counts.get(table, 0) + count
    reconciled = RECONCILED - reconciled
    requests, retries = (a - b for a, b in zip(PROCESS_STATS.snapshot(), before, strict=True))
    markers = MARKER_ROWS - markers
    rows = {t: n - markers[t] for t, n in counts.items() if not t.startswith("_dlt")}
    dbt_note = None
    if dbt_project is not None:
        tables = dbt_models.loaded_asset_tables(pipeline)
        changed = dbt_models.write(tables, Path(dbt_project))
        where = Path(dbt_project) / dbt_models.GENERATED_DIR
        dbt_note = f"dbt models for {len(tables)} asset types in {where} ({changed} files changed)"
    return RunSummary(
        destination=destination,
        dataset=dataset_name,
        location=location,
        seconds=time.perf_counter() - started,
        requests=requests,
        retries=retries,
        rows=rows,
        reconciled={k: reconciled[k] for k in ("purged", "refetched")} if reconcile else None,
        skipped=dict(SKIPPED),
        unchanged=sorted(UNCHANGED),
        dbt_models=dbt_note,
    )


def _check_dbt_project(project: Path, destination: str) -> None:
    """Before loading: a run that would fail at its end should not start."""
    if destination == "filesystem":
        raise ConfigurationError(
            "--dbt-project needs a DuckDB or Postgres destination; dbt does not read "
            "the Parquet dataset (see README: Parquet files)"
        )
    if not (project / "dbt_project.yml").is_file():
        raise ConfigurationError(
            f"--dbt-project {project}: no dbt_project.yml there; point it at this "
            "repository's dbt/ folder, or a copy of it"
        )


def _tables_kept(pipeline: dlt.Pipeline, destination: str, full_refresh: bool) -> list[str]:
    """The tables the destination holds that this run will not drop: a type none of whose
    tables are among them is loaded for the first time, and appends."""
    if destination == "filesystem":
        with pipeline.destination_client() as fs_client:
            fs, root = fs_client.fs_client, fs_client.dataset_path  # type: ignore[attr-defined]
            listed = fs.ls(root, detail=False) if fs.isdir(root) else []
        held = {posixpath.basename(path.rstrip("/")) for path in listed}
    else:
        with pipeline.sql_client() as client:
            dataset = client.make_qualified_table_name_path(None, quote=False)[-1]
            rows = client.execute_sql(
                "select table_name from information_schema.tables where table_schema = %s",
                dataset,
            )
        held = {row[0] for row in rows or []}
    if full_refresh and pipeline.default_schema_name:  # the refresh drops the schema's tables
        held -= set(pipeline.default_schema.tables)
    return sorted(held)


def _run(pipeline: dlt.Pipeline, source: Any, destination: str, refresh: Any) -> None:
    with _quiet(destination):
        pipeline.run(source, loader_file_format=LOADER_FILE_FORMATS[destination], refresh=refresh)


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Parsing a page makes tens of thousands of objects, and with Python's default
    threshold each page set off dozens of collections walking everything alive: half
    the parse time. Freezing what exists at the start (modules, dlt's schemas) takes it
    out of every collection, and a higher threshold makes collections rarer; they stay
    frequent enough to free the reference cycles each HTTP response leaves behind."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


@contextmanager
def _quiet(destination: str) -> Iterator[None]:
    """Silence the warnings dlt gives for what this source handles on purpose."""
    quiet = _ExpectedWarnings() if destination == "filesystem" else None
    dlt_log = logging.getLogger("dlt")
    if quiet:
        dlt_log.addFilter(quiet)
    try:
        yield
    finally:
        if quiet:
            dlt_log.removeFilter(quiet)


def _row_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    trace = pipeline.last_trace
    return dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}


def loaded_index(
    pipeline: dlt.Pipeline, destination: str, location: str
) -> dict[str, dict[str, str | None]]:
    """What the destination holds of each incremental table: id -> deleted_at."""
    tables = [
        name for name, table in pipeline.default_schema.tables.items()
        if PURGED in table.get("columns", {})
    ]  # fmt: skip
    index: dict[str, dict[str, str | None]] = {}
    if destination == "filesystem":
        con = duckdb.connect()
        create_views(con, location, "current")
        for table in tables:
            rows = con.execute(f'select id, deleted_at from current."{table}"').fetchall()
            index[table] = {i: d and format_timestamp(d) for i, d in rows}
        return index
    with pipeline.sql_client() as client:
        for table in tables:
            query = f"select id, deleted_at from {client.make_qualified_table_name(table)}"
            index[table] = {i: d and format_timestamp(d) for i, d in client.execute_sql(query)}
    return index


class _ExpectedWarnings(logging.Filter):
    """Plain Parquet cannot merge: dlt warns, per table, of what parquet_views.py handles."""

    EXPECTED = ("Falling back to `append`", 'The "hard_delete" column hint')

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.EXPECTED)


def default_pipeline_name(destination: str) -> str:
    """One pipeline (and so one set of cursors) per destination."""
    return "lexful" if destination == "duckdb" else f"lexful_{destination}"


def _refuse_other_destination(
    pipeline_name: str, destination: str, current: str, pipelines_dir: str | None
) -> None:
    """Guard the cursors: they are only true for the destination that received the data."""
    try:
        state = dlt.attach(pipeline_name, pipelines_dir=pipelines_dir).state
    except Exception:  # no such pipeline yet
        return
    previous = state.get("destination_type")
    if state.get("sources") and previous and previous != current:
        raise ConfigurationError(
            f"pipeline '{pipeline_name}' holds the cursors of a load into "
            f"{previous.rsplit('.', 1)[-1]}; loading {destination} with it would copy only "
            "what changed since. Use another --pipeline-name, or --full-refresh"
        )


def _needs_full_load(pipeline: dlt.Pipeline, destination: str) -> bool:
    """A pipeline that loaded before but whose dataset is gone (a deleted DuckDB file)."""
    if not pipeline.state.get("sources") or _dataset_exists(pipeline):
        return False
    log.warning(
        "%s has no dataset '%s' although pipeline '%s' has loaded before: "
        "starting a full load so nothing is missed",
        destination, pipeline.dataset_name, pipeline.pipeline_name,
    )  # fmt: skip
    return True


def _dataset_exists(pipeline: dlt.Pipeline) -> bool:
    try:
        with pipeline.destination_client() as client:
            return bool(client.is_storage_initialized())
    except Exception as exc:  # unreachable destination: let the run itself report it
        log.debug("could not check the destination: %s", exc)
        return True


def explain(exc: BaseException) -> str:
    """One line saying what went wrong, from the innermost error in the chain."""
    chain: list[BaseException] = []
    inner: BaseException | None = exc
    while inner is not None and inner not in chain:
        chain.append(inner)
        if isinstance(inner, LexfulError):
            return str(inner)
        if isinstance(inner, ConfigFieldMissingException):
            return _missing_config(inner)
        wrapped = (
            getattr(inner, "exception", None) if isinstance(inner, PipelineStepFailed) else None
        )
        inner = wrapped or inner.__cause__ or inner.__context__
    root = chain[-1]
    step = next((f" (dlt step {e.step})" for e in chain if isinstance(e, PipelineStepFailed)), "")
    lines = str(root).strip().splitlines()
    return f"{type(root).__name__}{step}: {lines[0] if lines else 'no message'}"


def _missing_config(exc: ConfigFieldMissingException) -> str:
    fields = list(exc.fields)
    section = "sources.lexful" if "lexful" in str(exc.spec_name).lower() else "destination"
    keys = ", ".join(f"{section}.{f}" for f in fields) if section == "sources.lexful" else fields
    env = ", ".join(f"SOURCES__LEXFUL__{f.upper()}" for f in fields)
    hint = (
        f"set it in .dlt/secrets.toml (or .dlt/config.toml) or as {env}"
        if section == "sources.lexful"
        else "see the README's destination section"
    )
    return f"missing configuration: {keys}; {hint}"
