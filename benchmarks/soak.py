"""A soak: a full load with a share of requests failing, then an incremental run after 1%
of the contacts changed, under the same faults. Each run must end equal to the local
server's truth, row by row (contact methods and references included).

The faults are the local server's default mix (HTTP 500, 502, 503, 504, dropped
connections, 429 with ``Retry-After: 0``), drawn at random from a seed, on every
route, the token request included. The connector runs with its default retry policy
unless ``--backoff-s`` says otherwise.

    python benchmarks/soak.py [--contacts 100000] [--fault-rate 0.1] [--seed 1]

Prints one line per run (elapsed time, requests, faults injected, retries, rows) and
writes the table to ``--output``.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lexful_source.sandbox import DatasetSize, LexfulSandbox, SandboxSettings  # noqa: E402
from lexful_source.sandbox.catalogue import CONTACT  # noqa: E402
from tests.connector.conftest import Loader  # noqa: E402
from tests.connector.truth import assert_matches, expected_tables  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--fault-rate", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backoff-s", type=float, default=None, help="first retry wait")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/soak.md")
    args = parser.parse_args()

    started = time.perf_counter()
    settings = SandboxSettings(
        seed=args.seed,
        size=DatasetSize(contacts=args.contacts),
        fault_rate=args.fault_rate,
        fault_seed=args.seed,
    )
    source_args = {} if args.backoff_s is None else {"backoff_s": args.backoff_s}
    rows = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        contextlib.chdir(workdir),
        LexfulSandbox(settings) as sandbox,
    ):
        print(
            f"dataset of {args.contacts:,} contacts built in {time.perf_counter() - started:.1f} s"
        )
        loader = Loader("duckdb", Path(workdir))
        for name in ("full load", "incremental, 1% of contacts changed"):
            if name.startswith("incremental"):
                for record in sandbox.truth(CONTACT, include_deleted=False)[::100]:
                    sandbox.app.edit_asset(CONTACT, record["id"], {"title": "Soaked"})
            sandbox.stats.reset()
            summary = loader.run(sandbox, source_args=source_args)
            faults = sum(sandbox.stats.by_fault.values())
            assert_matches(loader.tables(list(expected_tables(sandbox))), sandbox)
            row = (
                name,
                f"{summary.seconds:.1f}",
                f"{summary.requests:,}",
                f"{faults:,}",
                f"{summary.retries:,}",
                f"{sum(summary.rows.values()):,}",
                "yes",
            )
            rows.append(row)
            print(" | ".join(row))

    header = (
        "run",
        "elapsed s",
        "requests",
        "faults injected",
        "retries",
        "rows (all tables)",
        "equals truth",
    )
    table = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(row) + " |" for row in rows]
    )
    text = (
        f"# Soak: {args.contacts:,} contacts, {args.fault_rate:.0%} of requests failing "
        f"(seed {args.seed})\n\n`python benchmarks/soak.py --contacts {args.contacts} "
        f"--fault-rate {args.fault_rate}` on {platform.python_version()}, "
        f"{platform.machine()}\n\n{table}\n"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"\n{table}\nwritten to {args.output}")


if __name__ == "__main__":
    main()
