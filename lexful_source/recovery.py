"""Finishing what a killed run left behind, without repeating a row.

A run killed after extracting leaves a load package, which the next run loads before it
reads Lexful (dlt resumes it where it stopped). A load job that the destination had
committed, but that dlt had not yet noted as done, then runs a second time. A merged
table shrugs that off (its staged rows are deduplicated by key); other tables do not.

A replaced table (the reference data) is emptied by dlt once per package, not once per
job, so the re-run job would add its rows a second time (on Postgres it fails on the
unique ``_dlt_id``, and every run after fails the same way). Before a resumed package
is loaded, a replaced table none of whose jobs completed is emptied again: its jobs
all run and fill it.

A first load appends (resources.TableWriter). After a resumed package is loaded, every
keyed table it appended to is brought back to one row per key. The tables to check are
written down before that load and crossed off after the check, so a run killed in
between leaves the note to the run after it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from dlt.common.schema.utils import get_columns_names_with_prop

from .errors import LexfulError

log = logging.getLogger("lexful_source")
NOTE = "lexful_repeats_to_remove.json"  # in the pipeline's working directory
# The column that tells two equal rows apart; Parquet files are rewritten whole by a
# re-run job, so a filesystem dataset cannot hold a job's rows twice.
ROW_ADDRESS = {"duckdb": "rowid", "postgres": "ctid"}


def finish_interrupted_run(
    pipeline: dlt.Pipeline, destination: str, full_refresh: bool
) -> dict[str, int]:
    """Load what a killed run left, then remove rows a re-run load job repeated; returns
    the rows loaded per table. A full refresh aborts the leftovers instead: it reloads
    everything, and dlt would otherwise load them and skip the refresh. Aborting rewinds
    the local state and schema to before the killed run; rows its jobs had committed
    stay, in tables the refresh then merges into (pipeline._tables_kept)."""
    note = Path(pipeline.working_dir) / NOTE
    counts: dict[str, int] = {}
    if full_refresh:  # whatever the note names, the refresh drops or merges into
        note.unlink(missing_ok=True)
        if pipeline.has_pending_data:
            log.warning("dropping what an interrupted run left: the full refresh reloads it")
            pipeline.abort_packages()
        return counts
    if pipeline.has_pending_data:
        log.warning("loading what an interrupted run of '%s' left behind", pipeline.pipeline_name)
        counts.update(pipeline.normalize().row_counts)
        if destination in ROW_ADDRESS:
            jobs = list(_pending_jobs(pipeline))
            tables = set(_appended_tables(pipeline, jobs)) | set(_noted(note))
            if tables:
                _write_atomically(note, json.dumps(sorted(tables)))
            _empty_replaced_tables(pipeline, jobs)
        pipeline.load()
    if note.exists() and destination in ROW_ADDRESS:
        remove_repeated_rows(pipeline, ROW_ADDRESS[destination], _noted(note))
    note.unlink(missing_ok=True)
    return counts


def _noted(note: Path) -> list[str]:
    return json.loads(note.read_text()) if note.exists() else []


def _write_atomically(path: Path, text: str) -> None:
    """A run killed mid-write must not leave a note the next run cannot read."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _pending_jobs(pipeline: dlt.Pipeline) -> Iterator[tuple[str, str]]:
    """(job state, table) of every job in the packages waiting to be loaded."""
    for load_id in pipeline.list_normalized_load_packages():
        for state, jobs in pipeline.get_load_package_info(load_id).jobs.items():
            yield from ((state, job.job_file_info.table_name) for job in jobs)


def _appended_tables(pipeline: dlt.Pipeline, jobs: list[tuple[str, str]]) -> list[str]:
    """The keyed tables that the pending ``jobs`` append to."""
    schema = pipeline.default_schema
    return sorted(
        {
            name
            for _, name in jobs
            if name in schema.tables
            and schema.tables[name].get("write_disposition") == "append"
            and get_columns_names_with_prop(schema.tables[name], "primary_key")
        }
    )


def _empty_replaced_tables(pipeline: dlt.Pipeline, jobs: list[tuple[str, str]]) -> None:
    """Empty each replaced table that pending ``jobs`` write and none of whose jobs
    completed: all of them run now, and one may have committed before the kill."""
    schema = pipeline.default_schema
    completed = {name for state, name in jobs if state == "completed_jobs"}
    tables = sorted(
        {
            name
            for state, name in jobs
            if state in ("new_jobs", "started_jobs")
            and name not in completed
            and schema.tables.get(name, {}).get("write_disposition") == "replace"
        }
    )
    if not tables:
        return
    with pipeline.destination_client() as job_client:
        client = job_client.sql_client  # type: ignore[attr-defined]
        for table in _held(job_client, tables):
            client.execute_sql(f"delete from {client.make_qualified_table_name(table)}")


def _held(job_client: Any, tables: list[str]) -> set[str]:
    """Those of ``tables`` the destination has (one may be gone since it was noted)."""
    return {table for table, columns in job_client.get_storage_tables(tables) if columns}


def remove_repeated_rows(pipeline: dlt.Pipeline, row_address: str, tables: list[str]) -> None:
    """Keep one row per primary key in each table (repeats are copies of one row)."""
    schema = pipeline.default_schema
    with pipeline.destination_client() as job_client:
        client = job_client.sql_client  # type: ignore[attr-defined]
        held = _held(job_client, tables)
        for table in tables:
            if table not in schema.tables or table not in held:
                continue  # dropped since the note was written
            if row_address in schema.tables[table].get("columns", {}):
                raise LexfulError(
                    f"{table}: a column named {row_address!r} hides the row address that "
                    "removing repeated rows needs; remove them by hand, then delete "
                    f"{Path(pipeline.working_dir) / NOTE}"
                )
            keys = get_columns_names_with_prop(schema.tables[table], "primary_key")
            by = ", ".join(client.escape_column_name(k) for k in keys)
            name = client.make_qualified_table_name(table)
            repeats = (
                f"select address from (select {row_address} as address, row_number() over "
                f"(partition by {by}) as n from {name}) as numbered where n > 1"
            )
            [(count,)] = client.execute_sql(f"select count(*) from ({repeats}) as r")
            if count:
                client.execute_sql(f"delete from {name} where {row_address} in ({repeats})")
                log.warning("%s: removed %d rows a re-run load job repeated", table, count)
