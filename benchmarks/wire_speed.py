"""What reading the pages costs on each transport: httpx's own (httpcore and h11) and
urllib3's (lexful_source/transport.py), under the same httpx client, one thread.

A full load holds the interpreter lock through its extract, so the CPU seconds a transport
spends in Python are seconds of the load. Every page of every list of a seeded local
server is read with each transport in turn, a round at a time.

    python benchmarks/wire_speed.py                   # 100,000 contacts, 3 rounds
    python benchmarks/wire_speed.py --contacts 10000 --rounds 5

Prints CPU and wall seconds per transport and round; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from load_speed import LIST_QUERY, PAGE, list_paths, local_server, session

from lexful_source.transport import Urllib3Transport


def page_urls(client: httpx.Client) -> list[str]:
    """Every page of every list, as the floor reads them."""
    urls = []
    for path in list_paths(client):
        offset, total = 0, 1
        while offset < total:
            answer = client.get(path, params={**LIST_QUERY, "limit": PAGE, "offset": offset})
            urls.append(str(answer.request.url))
            total, offset = answer.json()["total"], offset + PAGE
    return urls


def read_all(client: httpx.Client, urls: list[str]) -> tuple[float, float, int]:
    cpu, wall, size = time.process_time(), time.perf_counter(), 0
    for url in urls:
        size += len(client.get(url).content)
    return time.process_time() - cpu, time.perf_counter() - wall, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with local_server(args.contacts) as server:
        reference = session(server.credentials)  # authenticated: its headers carry the token
        urls, headers = page_urls(reference), dict(reference.headers)
        reference.close()
        transports = {
            "httpx (httpcore)": httpx.Client(headers=headers, trust_env=False),
            "urllib3": httpx.Client(
                headers=headers, transport=Urllib3Transport(connections=1), trust_env=False
            ),
        }
        print(f"{len(urls)} pages, {args.contacts:,} contacts; CPU and wall seconds per read")
        for round_ in range(1, args.rounds + 1):
            for name, client in transports.items():
                cpu, wall, size = read_all(client, urls)
                print(f"  round {round_}  {name:<17} CPU {cpu:5.2f} s  wall {wall:5.2f} s  "
                      f"{size / 1e6:,.0f} MB")  # fmt: skip
        for client in transports.values():
            client.close()


if __name__ == "__main__":
    main()
