"""``python -m lexful_source.sandbox``: serve a seeded Lexful account on loopback until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from .auth import EXPIRY_FIELDS, TOKEN_FIELDS
from .dataset import DatasetSize
from .faults import RETRY_AFTER_STYLES
from .server import LexfulSandbox
from .settings import SandboxSettings
from .timestamps import TIMESTAMP_STYLES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lexful_source.sandbox",
        description="Serve a seeded, Lexful-compatible API on loopback for tests and demos.",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--contacts", type=int, default=1000)
    for name in ("organizations", "locations", "configurations", "licenses"):
        p.add_argument(f"--{name}", type=int, default=None, help="default: scales with contacts")
    p.add_argument("--token-lifetime", type=int, default=3600, help="seconds")
    p.add_argument("--token-field", choices=TOKEN_FIELDS, default="token")
    p.add_argument(
        "--expiry-field", choices=[f or "none" for f in EXPIRY_FIELDS], default="expires_in"
    )
    p.add_argument("--timestamp-style", choices=TIMESTAMP_STYLES, default="millis")
    p.add_argument("--archive-bumps-updated-at", action="store_true")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests to fail")
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--rate-limit", type=int, default=None, help="requests per window, then 429")
    p.add_argument("--rate-window", type=float, default=1.0, help="seconds")
    p.add_argument("--retry-after", choices=RETRY_AFTER_STYLES, default="seconds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = SandboxSettings(
        seed=args.seed,
        size=DatasetSize(
            contacts=args.contacts,
            organizations=args.organizations,
            locations=args.locations,
            configurations=args.configurations,
            licenses=args.licenses,
        ),
        host=args.host,
        port=args.port,
        token_lifetime_s=args.token_lifetime,
        token_field=args.token_field,
        expiry_field=None if args.expiry_field == "none" else args.expiry_field,
        timestamp_style=args.timestamp_style,
        archive_bumps_updated_at=args.archive_bumps_updated_at,
        latency_s=args.latency_ms / 1000,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        rate_limit=args.rate_limit,
        rate_window_s=args.rate_window,
        retry_after=args.retry_after,
    )
    started = time.perf_counter()
    sandbox = LexfulSandbox(settings).start()
    counts = ", ".join(f"{len(c):,} {name}" for name, c in sandbox.store.asset_types.items())
    print(f"Lexful sandbox serving {sandbox.url}", flush=True)
    print(f"  data: seed {args.seed}; {counts}; built in {time.perf_counter() - started:.1f} s")
    print("  demo credentials (local server only):")
    for key, value in sandbox.env().items():
        print(f"    export {key}={value}")
    print("  Ctrl-C stops it.", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sandbox.stop())
    sandbox.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
