"""Where a large load's memory goes: one full load into DuckDB, and optionally a merge of
every record into the loaded tables, with each step's time and a timeline of the
process's resident memory.

    python benchmarks/memory_profile.py                       # 1,000,000 contacts
    python benchmarks/memory_profile.py --merge               # then merge all of them again
    python benchmarks/memory_profile.py --first-load-memory-limit 20GB   # DuckDB unbounded

The merge loses the pipeline's working directory (and does not restore it from the
destination), so the second run reads every record again and merges it into tables
that hold it: the largest merge a run can meet. Prints figures; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_speed import child_env, local_server

PIPELINE = "memory_profile"
SAMPLE_S = 0.5
BUCKET_S = 5


def child(merge: bool, memory_limit: str | None) -> None:
    """In the measured process: the loads, and each one's step times as JSON lines."""
    import dlt

    from lexful_source import pipeline as lexful_pipeline

    if memory_limit:
        lexful_pipeline.FIRST_LOAD_MEMORY_LIMIT = memory_limit
    runs = [("full load", True)] + ([("merge of every record", False)] if merge else [])
    for label, full_refresh in runs:
        if not full_refresh:
            dlt.pipeline(PIPELINE).drop()  # the working directory only, not the dataset
            os.environ["RESTORE_FROM_DESTINATION"] = "false"
        started = time.perf_counter()
        lexful_pipeline.run_load(
            destination="duckdb", pipeline_name=PIPELINE, full_refresh=full_refresh
        )
        steps = dlt.pipeline(PIPELINE).last_trace.steps
        figures = {s.step: (s.finished_at - s.started_at).total_seconds() for s in steps}
        figures = {"label": label, "seconds": time.perf_counter() - started, **figures}
        print("RESULT " + json.dumps(figures), flush=True)


def sample(pid: int, samples: list[tuple[float, int]], done: threading.Event) -> None:
    started = time.perf_counter()
    while not done.is_set():
        try:
            with open(f"/proc/{pid}/status") as status:
                kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
            samples.append((time.perf_counter() - started, kb // 1024))
        except (OSError, StopIteration):
            pass
        done.wait(SAMPLE_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--merge", action="store_true", help="then merge every record again")
    parser.add_argument("--first-load-memory-limit", help="DuckDB's limit for the full load")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.merge, args.first_load_memory_limit)
        return
    command = [sys.executable, __file__, "--child"] + ["--merge"] * args.merge
    if args.first_load_memory_limit:
        command += ["--first-load-memory-limit", args.first_load_memory_limit]
    with local_server(args.contacts) as server, tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            command, env=child_env(server, Path(tmp)), cwd=tmp, stdout=subprocess.PIPE, text=True
        )
        samples: list[tuple[float, int]] = []
        done = threading.Event()
        sampler = threading.Thread(target=sample, args=(process.pid, samples, done))
        sampler.start()
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("RESULT "):
                figures = json.loads(line[7:])
                label = figures.pop("label")
                print(f"{label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items()))
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        sampler.join()
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"the load failed (exit {os.waitstatus_to_exitcode(status)})")
    print(f"peak resident memory: {usage.ru_maxrss / 1024:,.0f} MB")
    peaks: dict[int, int] = {}
    for at, mb in samples:
        bucket = int(at // BUCKET_S) * BUCKET_S
        peaks[bucket] = max(peaks.get(bucket, 0), mb)
    print(f"highest MB in each {BUCKET_S} s: " + " ".join(f"{t}s:{mb}" for t, mb in peaks.items()))


if __name__ == "__main__":
    main()
