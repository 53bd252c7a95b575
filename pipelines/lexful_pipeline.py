"""Load Lexful into DuckDB, Postgres or Parquet files.

    python pipelines/lexful_pipeline.py                      # ./lexful_warehouse.duckdb
    python pipelines/lexful_pipeline.py --destination postgres
    python pipelines/lexful_pipeline.py --destination filesystem --asset-types 'system.*'
    python pipelines/lexful_pipeline.py --demo               # a local seeded server, no credentials

The demo has its own pipeline (lexful_demo: ./lexful_demo_warehouse.duckdb, or dataset
lexful_demo elsewhere), so its cursors and rows never mix with a real load's.

Idempotent: run it as often as you like (cron, Airflow, ...); each run loads what
changed since the last one. Exit code 0 on success; otherwise one line says why (130
after Ctrl-C and 120 when the summary cannot be written come without it: see leave).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import logging
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lexful_source.pipeline import DESTINATIONS, explain, run_load

DEMO_CONTACTS = 5000
DEMO_PIPELINE = "lexful_demo"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--destination", choices=DESTINATIONS, default="duckdb")
    p.add_argument("--dataset-name", help="default: lexful (lexful_demo for a demo not in DuckDB)")
    p.add_argument(
        "--pipeline-name",
        help="default: lexful (DuckDB), lexful_postgres, lexful_filesystem; --demo: lexful_demo*",
    )
    p.add_argument("--asset-types", help="comma-separated names or glob patterns (default: all)")
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop this source's tables and state, then load everything",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="load a seeded local Lexful server (no credentials needed)",
    )
    p.add_argument("--demo-contacts", type=int, default=DEMO_CONTACTS, help=argparse.SUPPRESS)
    p.add_argument(
        "--reconcile",
        action="store_true",
        help="after loading, remove what Lexful no longer has and reload what changed unseen "
        "(an id-only scan: one request per 1,000 records)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if a load of this pipeline is running, wait this long for it (default: refuse)",
    )
    p.add_argument(
        "--dbt-project",
        metavar="DIR",
        help="after loading, write the dbt models for the loaded asset types into this dbt "
        "project (e.g. dbt): models/generated/",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only the summary and errors")
    return p.parse_args(argv)


def demo_names(destination: str, pipeline: str | None, dataset: str | None) -> tuple[str, str]:
    """A demo never shares cursors, a DuckDB file or (outside DuckDB) a dataset with a real
    load: otherwise the real load after ``make demo`` would skip every record older than
    the demo's cursors, and the demo's records would stay among the real ones."""
    if destination == "duckdb":  # a file of its own; schema lexful, as in the README's SQL
        return pipeline or DEMO_PIPELINE, dataset or "lexful"
    return pipeline or f"{DEMO_PIPELINE}_{destination}", dataset or DEMO_PIPELINE


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asset_types = args.asset_types.split(",") if args.asset_types else None
    pipeline_name, dataset_name = args.pipeline_name, args.dataset_name or "lexful"
    if args.demo:
        pipeline_name, dataset_name = demo_names(args.destination, pipeline_name, args.dataset_name)
    kwargs = dict(
        destination=args.destination,
        dataset_name=dataset_name,
        pipeline_name=pipeline_name,
        asset_types=asset_types,
        full_refresh=args.full_refresh,
        wait_s=args.wait,
        reconcile=args.reconcile,
        dbt_project=args.dbt_project,
    )
    try:
        if args.demo:
            from lexful_source.sandbox import DatasetSize, LexfulSandbox, SandboxSettings

            settings = SandboxSettings(size=DatasetSize(contacts=args.demo_contacts))
            with LexfulSandbox(settings) as sandbox:
                print(f"Demo: a seeded local Lexful server at {sandbox.url}", flush=True)
                summary = run_load(**kwargs, source_args=sandbox.credentials)
        else:
            summary = run_load(**kwargs)
    except KeyboardInterrupt:
        print(
            "error: interrupted; nothing past the last completed load was recorded", file=sys.stderr
        )
        return 130
    except Exception as exc:  # every failure ends as one line and a non-zero exit
        print(f"error: {explain(exc)}", file=sys.stderr)
        return 1
    print(summary.render())
    return 0


def leave(code: int) -> NoReturn:
    """Exit with ``code`` as Python would, less its teardown of every object the run made.

    That teardown frees the run's objects one by one, for memory the operating system
    takes back at once: about 0.4 s of a run with nothing to load. What this command
    relies on from an exit is done first, as CPython does it: other threads finish
    (thread pools told to stop), the exit handlers run (logging's flush, DuckDB's and
    dlt's clean-up) and the output is flushed, C's buffers too. What is skipped: the
    clean-up of objects still alive at exit (``__del__``, files left open), which nothing
    of this command needs. Two codes are its own: 130 when a second Ctrl-C stops the
    wait for other threads, and 120 (Python's) when a successful run's output cannot be
    written, as into ``| head``. Where those steps cannot be taken ahead (another
    Python), it exits the usual way."""
    # CPython's own first steps of an exit, in its order; neither is public API
    join_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if join_threads is None or run_exit_handlers is None:
        sys.exit(code)
    try:
        join_threads()
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, as Python's own exit does
        code = 130  # this command's code for an interrupt (main returns it too)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        if stream is None or stream.closed:  # Python's exit skips these too
            continue
        try:
            stream.flush()
        except OSError:  # the reader is gone (`| head`)
            code = code or 120  # a failed run keeps its own code
    with contextlib.suppress(OSError, AttributeError, TypeError):  # no C library to call
        ctypes.CDLL(None).fflush(None)  # what C code printed: os._exit would drop it
    os._exit(code)


if __name__ == "__main__":
    leave(main())
