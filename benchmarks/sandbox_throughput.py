"""How fast the local Lexful server serves pages, so it is never the bottleneck.

Pages of 1,000 contacts are fetched in order with the connector's incremental query
(``updated_at[gte]``, sorted by updated_at then id) and parsed with orjson. The server
runs in its own process (as ``python -m lexful_source.sandbox`` does) and, for reference,
in-process on a thread (as tests and ``--demo`` run it, sharing the client's GIL).

    python benchmarks/sandbox_throughput.py [--contacts 100000] [--passes 3]

Prints one line per pass and a table; the issue's bar is 50,000 records a second.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lexful_source.sandbox import DatasetSize, LexfulSandbox, SandboxSettings  # noqa: E402

PAGE = 1000
TYPE = "system.contact"


def token(client: httpx.Client, creds: dict[str, str]) -> dict[str, str]:
    r = client.post(
        "/v1/auth/token",
        headers={"X-Account-Id": creds["account_id"]},
        json={"id": creds["api_key_id"], "secret": creds["api_key_secret"]},
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}", "X-Account-ID": creds["account_id"]}


def fetch_page(client: httpx.Client, offset: int) -> tuple[int, int]:
    params = {
        "updated_at[gte]": "2000-01-01T00:00:00Z",
        "sort": "updated_at,id",
        "order": "ASC",
        "limit": PAGE,
        "offset": offset,
    }
    r = client.get(f"/v1/assets/{TYPE}", params=params)
    r.raise_for_status()
    doc = orjson.loads(r.content)
    return len(doc["items"]), doc["total"]


def one_pass(creds: dict[str, str], workers: int) -> tuple[int, float, int]:
    """(records, seconds, bytes) for one full read of the contacts."""
    with httpx.Client(base_url=creds["api_base_url"], timeout=60) as client:
        client.headers.update(token(client, creds))
        started = time.perf_counter()
        count, total = fetch_page(client, 0)
        offsets = range(PAGE, total, PAGE)
        if workers == 1:
            count += sum(fetch_page(client, o)[0] for o in offsets)
        else:
            with ThreadPoolExecutor(workers) as pool:
                count += sum(n for n, _ in pool.map(lambda o: fetch_page(client, o), offsets))
        return count, time.perf_counter() - started, total


def start_subprocess(contacts: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    cmd = [
        sys.executable,
        "-m",
        "lexful_source.sandbox",
        "--port",
        "0",
        "--contacts",
        str(contacts),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    creds: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().startswith("data:"):
            creds["data"] = line.strip()
        if "export SOURCES__LEXFUL__" in line:
            key, _, value = line.strip().removeprefix("export SOURCES__LEXFUL__").partition("=")
            creds[key.lower()] = value
        if "Ctrl-C" in line:
            break
    return proc, creds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/sandbox_throughput.md"))
    args = parser.parse_args()
    rows: list[tuple[str, int, float]] = []

    def run(label: str, creds: dict[str, str], workers: int) -> None:
        for i in range(args.passes):
            count, seconds, total = one_pass(creds, workers)
            assert count == total, f"served {count} of {total} records"
            print(
                f"{label}, pass {i + 1}: {count:,} records in {seconds:.2f} s "
                f"= {count / seconds:,.0f} records/s",
                flush=True,
            )
            rows.append((f"{label}, pass {i + 1}", count, seconds))

    proc, creds = start_subprocess(args.contacts)
    print(f"server {creds['data']}", flush=True)
    try:
        run("own process, 1 client thread", creds, 1)
        run("own process, 4 client threads", creds, 4)
    finally:
        proc.terminate()
        proc.wait()
    settings = SandboxSettings(size=DatasetSize(contacts=args.contacts))
    with LexfulSandbox(settings) as sandbox:
        run("in-process, 1 client thread", sandbox.credentials, 1)

    count, seconds = min(((c, s) for _, c, s in rows), key=lambda cs: cs[0] / cs[1])
    table = [
        f"| server / client ({args.contacts:,} contacts, pages of {PAGE}) "
        "| records | seconds | records/s |",
        "|---|---:|---:|---:|",
        *(f"| {label} | {n:,} | {t:.2f} | {n / t:,.0f} |" for label, n, t in rows),
    ]
    summary = (
        f"slowest pass (a cold cache included): {count / seconds:,.0f} records/s\n\n"
        f"server {creds['data']}"
    )
    print("\n" + "\n".join(table) + "\n\n" + summary)
    header = (
        "# Local server throughput\n\n"
        f"`python benchmarks/sandbox_throughput.py --contacts {args.contacts} "
        f"--passes {args.passes}` ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(header + "\n".join(table) + f"\n\n{summary}\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
