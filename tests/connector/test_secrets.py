"""No secret anywhere. The API key secret, every bearer token issued, and the values of
``secret`` and ``totp`` properties (served in clear here, the worst case) must never
appear in logs (every logger at DEBUG), exception messages or tracebacks, dlt's trace as
``dlt pipeline ... trace`` shows it, the pipeline state, any file in the pipeline's working
directory, or any destination table. Credentials come from environment variables, so dlt
resolves them as it would in production (and could trace them)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from dlt.pipeline.state_sync import load_pipeline_state_from_destination

from lexful_source.sandbox import Fault, LexfulSandbox, ManualClock
from lexful_source.sandbox.catalogue import CONTACT

from .conftest import Loader
from .test_incremental import (
    START,
    TOKEN_ROUTE,
    Hook,
    contact_changes_page,
    dataset_columns,
    text_values,
)

API_KEY_SECRET = "lxs_9f3Kq2VbT7nW4mZr8YpLd6HcXa1EuJ0s"  # distinctive, easy to find
LOGGERS = ("", "dlt", "lexful_source", "httpx", "httpcore", "urllib3")


@pytest.fixture
def all_logs() -> Iterator[list[str]]:
    """Every record of every logger at DEBUG, exception text included (dlt's logger does
    not propagate to the root, so it gets the handler too)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    previous = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        previous[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield lines
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(previous[name])


def leaks(secrets: set[str], text: str) -> list[str]:
    return sorted(s[:6] + "..." for s in secrets if s in text)


def test_no_secret_reaches_logs_errors_traces_state_files_or_tables(
    duckdb_loader: Loader,
    make_sandbox: Callable[..., LexfulSandbox],
    monkeypatch: pytest.MonkeyPatch,
    all_logs: list[str],
) -> None:
    clock = ManualClock(START)
    sandbox = make_sandbox(
        contacts=150,
        clock=clock,
        secret_values="clear",
        api_key_secret=API_KEY_SECRET,
        token_lifetime_s=600,
    )
    for key, value in sandbox.credentials.items():
        monkeypatch.setenv(f"SOURCES__LEXFUL__{key.upper()}", str(value))
    args = {"page_size": 50, "backoff_s": 0.01}

    # a load that retries (and logs it) and refreshes its token mid-run
    faults = iter([Fault.error(503), None])
    sandbox.on_request = Hook(
        contact_changes_page(None), lambda: next(faults, None) or clock.advance(601), at=(2, 3)
    )
    duckdb_loader.run(_Unset(), source_args=args)  # type: ignore[arg-type]
    assert sandbox.stats.by_route[TOKEN_ROUTE] == 2

    # a load that fails, for its exception and traceback
    sandbox.on_request = lambda info: Fault.error(403) if info.path.endswith(CONTACT) else None
    with pytest.raises(Exception) as failure:
        duckdb_loader.run(_Unset(), source_args=args)  # type: ignore[arg-type]
    errors = "\n".join(traceback.format_exception(failure.value))
    assert "403" in errors

    secrets = {API_KEY_SECRET, *sandbox.auth.tokens(), *sandbox.store.hidden_values()}
    assert len(sandbox.auth.tokens()) == 3 and len(secrets) > 50
    pipeline = duckdb_loader.pipeline()
    trace = subprocess.run(
        [str(Path(sys.executable).with_name("dlt")), "pipeline", "--pipelines-dir",
         duckdb_loader.pipelines_dir, duckdb_loader.pipeline_name, "trace"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    with pipeline.destination_client() as client:
        stored_state = load_pipeline_state_from_destination(pipeline.pipeline_name, client)
    files = "\n".join(
        path.read_bytes().decode("utf-8", "replace")
        for path in Path(duckdb_loader.pipelines_dir).rglob("*")
        if path.is_file()
    )
    tables = "\n".join(text_values(duckdb_loader, dataset_columns(duckdb_loader)))
    places = {
        "logs": "\n".join(all_logs),
        "exception and traceback": errors,
        "dlt pipeline trace": trace,
        "pipeline state": json.dumps(pipeline.state, default=str),
        "state stored in the destination": json.dumps(stored_state, default=str),
        "pipeline working files": files,
        "destination tables": tables,
    }
    # each place holds what was loaded or done, so a leak there would be seen
    contact = sandbox.truth(CONTACT)[0]["id"]
    assert "retry 1 of" in places["logs"] and "Bearer" not in places["logs"]
    assert duckdb_loader.pipeline_name in trace and "extract" in trace
    assert contact in tables and contact in files
    assert "cursor" in places["pipeline state"] + places["state stored in the destination"]
    found = {place: leaks(secrets, text) for place, text in places.items()}
    assert not any(found.values()), found


class _Unset:
    """No credentials passed: the source reads them from the environment, like dlt's
    config providers would in production."""

    credentials: ClassVar[dict[str, str]] = {}
