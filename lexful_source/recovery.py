"""Finishing what a killed run left behind, without repeating a row.

A run killed after extracting leaves a load package, which the next run loads before it
reads Lexful (dlt resumes it where it stopped). A load job that the destination had
committed, but that dlt had not yet noted as done, then runs a second time. A merged
table shrugs that off (its staged rows are deduplicated by key), but a first load
appends (resources.TableWriter), so that job's rows would be there twice. After a
resumed package is loaded, every appended table it wrote is brought back to one row per
key. The tables to check are written down before that load and crossed off after the
check, so a run killed in between leaves the note to the run after it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dlt
from dlt.common.schema.utils import get_columns_names_with_prop

log = logging.getLogger("lexful_source")
NOTE = "lexful_repeats_to_remove.json"  # in the pipeline's working directory
# The column that tells two equal rows apart; Parquet files are rewritten whole by a
# re-run job, so a filesystem dataset cannot hold a job's rows twice.
ROW_ADDRESS = {"duckdb": "rowid", "postgres": "ctid"}


def finish_interrupted_run(
    pipeline: dlt.Pipeline, destination: str, full_refresh: bool
) -> dict[str, int]:
    """Load what a killed run left, then remove rows a re-run load job repeated; returns
    the rows loaded per table. A full refresh drops the leftovers instead: it reloads
    everything, and dlt would otherwise load them and skip the refresh."""
    note = Path(pipeline.working_dir) / NOTE
    counts: dict[str, int] = {}
    if pipeline.has_pending_data and full_refresh:
        log.warning("dropping what an interrupted run left: the full refresh reloads it")
        pipeline.drop_pending_packages()
        note.unlink(missing_ok=True)
    elif pipeline.has_pending_data:
        log.warning("loading what an interrupted run of '%s' left behind", pipeline.pipeline_name)
        counts.update(pipeline.normalize().row_counts)
        if destination in ROW_ADDRESS:
            tables = set(_appended_tables(pipeline)) | set(_noted(note))
            if tables:
                note.write_text(json.dumps(sorted(tables)))
        pipeline.load()
    if note.exists():
        remove_repeated_rows(pipeline, ROW_ADDRESS[destination], _noted(note))
        note.unlink()
    return counts


def _noted(note: Path) -> list[str]:
    return json.loads(note.read_text()) if note.exists() else []


def _appended_tables(pipeline: dlt.Pipeline) -> list[str]:
    """The keyed tables that packages waiting to be loaded append to."""
    schema, names = pipeline.default_schema, set()
    for load_id in pipeline.list_normalized_load_packages():
        for jobs in pipeline.get_load_package_info(load_id).jobs.values():
            names.update(job.job_file_info.table_name for job in jobs)
    return sorted(
        name
        for name in names
        if name in schema.tables
        and schema.tables[name].get("write_disposition") == "append"
        and get_columns_names_with_prop(schema.tables[name], "primary_key")
    )


def remove_repeated_rows(pipeline: dlt.Pipeline, row_address: str, tables: list[str]) -> None:
    """Keep one row per primary key in each table (repeats are copies of one row)."""
    schema = pipeline.default_schema
    with pipeline.sql_client() as client:
        for table in tables:
            if table not in schema.tables:
                continue  # dropped since the note was written
            keys = get_columns_names_with_prop(schema.tables[table], "primary_key")
            name = client.make_qualified_table_name(table)
            by = ", ".join(client.escape_column_name(k) for k in keys)
            numbered = (
                f"select {row_address} as address, row_number() over (partition by {by}) as n "
                f"from {name}"
            )
            client.execute_sql(
                f"delete from {name} where {row_address} in "
                f"(select address from ({numbered}) as numbered where n > 1)"
            )
            log.info("%s: removed rows a re-run load job repeated", table)
