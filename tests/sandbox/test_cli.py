"""``python -m lexful_source.sandbox`` serves until stopped and prints what a user needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_serves_prints_credentials_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lexful_source.sandbox", "--port", "0", "--contacts", "30",
         "--seed", "4"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        env = dict(
            line.strip().removeprefix("export ").split("=", 1) for line in lines if "export" in line
        )
        url = env["SOURCES__LEXFUL__API_BASE_URL"]
        assert lines[0].strip() == f"Lexful sandbox serving {url}"
        assert "30 system.contact" in lines[1]
        token = httpx.post(
            f"{url}/v1/auth/token",
            headers={"X-Account-Id": env["SOURCES__LEXFUL__ACCOUNT_ID"]},
            json={
                "id": env["SOURCES__LEXFUL__API_KEY_ID"],
                "secret": env["SOURCES__LEXFUL__API_KEY_SECRET"],
            },
        ).json()["token"]
        listed = httpx.get(
            f"{url}/v1/assets/system.contact",
            headers={
                "Authorization": f"Bearer {token}",
                "X-Account-ID": env["SOURCES__LEXFUL__ACCOUNT_ID"],
            },
        ).json()
        assert listed["total"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
