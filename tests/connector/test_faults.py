"""The fault matrix: every fault a SaaS API throws at a 3 a.m. load, driven through the
local server over real HTTP. What the connector rides out must leave the destination equal
to the server's truth; what it must fail on must fail once, with a message naming what
was wrong and where, and leave the destination and every cursor as they were.

Each case adds a row to the table of fault -> outcome printed at the end of the session.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
import pytest

from lexful_source.pipeline import RunSummary, explain
from lexful_source.resources import LOADER_FILES_DIR
from lexful_source.sandbox import Fault, LexfulSandbox, ManualClock, RequestInfo
from lexful_source.sandbox.catalogue import CONTACT, LOCATION
from lexful_source.sandbox.faults import MALFORMED_VARIANTS

from .conftest import FAULT_MATRIX, Loader
from .test_incremental import (
    CONTACT_PATH,
    START,
    TOKEN_ROUTE,
    Hook,
    contact_changes_page,
    page_at,
)
from .test_load import check
from .truth import expected_tables

MakeSandbox = Callable[..., LexfulSandbox]
FAST = {"page_size": 50, "max_attempts": 4, "backoff_s": 0.01}  # retries in milliseconds
SECOND_PAGE, THIRD_PAGE = page_at(1, FAST["page_size"]), page_at(2, FAST["page_size"])
WAIT = re.compile(r"retry \d+ of \d+ in ([\d.]+) s")
LOCATION_PATH = f"/v1/assets/{LOCATION}"


@dataclass
class Snapshot:
    """What a failed run must leave alone: every loaded row and every cursor."""

    tables: dict[str, list[dict[str, Any]]]
    sources_state: Any


def snapshot(loader: Loader, sandbox: LexfulSandbox) -> Snapshot:
    tables = loader.tables(list(expected_tables(sandbox)))
    ordered = {
        n: sorted(rows, key=lambda r: sorted(map(str, r.items()))) for n, rows in tables.items()
    }
    return Snapshot(ordered, loader.pipeline().state.get("sources"))


def run(loader: Loader, sandbox: LexfulSandbox, **source_args: Any) -> RunSummary:
    return loader.run(sandbox, source_args={**FAST, **source_args})


@pytest.fixture
def loaded(duckdb_loader: Loader, make_sandbox: MakeSandbox) -> Iterator[LexfulSandbox]:
    """A sandbox already loaded once, so a failing run has cursors and rows to keep."""
    sandbox = make_sandbox(contacts=200, clock=ManualClock(START))
    run(duckdb_loader, sandbox)
    sandbox.clock.advance(60)  # type: ignore[attr-defined]
    for record in sandbox.truth(CONTACT, include_deleted=False)[:120]:
        sandbox.app.edit_asset(CONTACT, record["id"], {"title": "Changed"})
    sandbox.stats.reset()
    yield sandbox


def fails_untouched(loader: Loader, sandbox: LexfulSandbox, fault: str, **source_args: Any) -> str:
    """Run, expect a failure; the destination and the cursors must be as before, and a
    clean run afterwards must complete the data. Returns the one-line error."""
    before = snapshot(loader, sandbox)
    with pytest.raises(Exception) as failure:
        run(loader, sandbox, **source_args)
    message = explain(failure.value)
    assert snapshot(loader, sandbox) == before, "a failed run changed the destination or state"
    sandbox.on_request = None
    sandbox.stats.reset()
    run(loader, sandbox)
    check(loader, sandbox)
    FAULT_MATRIX.append((fault, f"fails, state untouched, next run complete: {message}"))
    return message


def waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [float(m) for r in caplog.records for m in WAIT.findall(r.getMessage())]


# -- ridden out ---------------------------------------------------------------------------
TRANSIENT = {
    "HTTP 500": Fault.error(500),
    "HTTP 502": Fault.error(502),
    "HTTP 503": Fault.error(503),
    "HTTP 504": Fault.error(504),
    "timeout (no answer within request_timeout_s)": Fault.timeout(3.0),
    "dropped connection": Fault.reset(),
    "body cut off mid-transfer": Fault.truncate(),
    "429, Retry-After: 1 (seconds)": Fault.rate_limited("seconds", 1.0),
    "429, Retry-After as an HTTP date": Fault.rate_limited("http-date", 1.0),
    "429, Retry-After: 0": Fault.rate_limited("zero"),
    "429 without Retry-After": Fault.rate_limited("none"),
}


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_transient_faults_are_retried_and_lose_nothing(
    duckdb_loader: Loader,
    make_sandbox: MakeSandbox,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    sandbox = make_sandbox(contacts=200)
    sandbox.on_request = hook = Hook(contact_changes_page(SECOND_PAGE), lambda: TRANSIENT[name])
    caplog.set_level(logging.WARNING, "lexful_source")
    summary = run(duckdb_loader, sandbox, request_timeout_s=0.5)
    assert hook.fired == 1 and summary.retries == 1
    check(duckdb_loader, sandbox)
    [wait] = waits(caplog)
    assert "retry policy: up to 4 attempts, waits from 0.01 s" in caplog.text
    fault = TRANSIENT[name]
    if fault.kind == "rate_limit" and fault.retry_after in ("seconds", "http-date"):
        assert 0.9 <= wait <= 2.0  # as the server asked (a date has whole seconds)
    else:  # the backoff, never an immediate retry: a Retry-After of 0 is no tight loop
        assert 0 < wait <= FAST["backoff_s"]
    FAULT_MATRIX.append((name, f"ridden out: 1 retry after {wait:.3f} s, equals the truth"))


def test_a_request_budget_keeps_under_the_rate_limit(
    make_sandbox: MakeSandbox, tmp_path: Any
) -> None:
    """The server allows 10 requests a second. Without a budget the load meets 429s (and
    rides them out); with 540 a minute it meets none."""
    outcomes = []
    for budget in (None, 540):
        sandbox = make_sandbox(contacts=400, rate_limit=10, rate_window_s=1.0)
        loader = Loader("duckdb", tmp_path / f"budget_{budget}")
        summary = run(loader, sandbox, page_size=20, requests_per_minute=budget)
        check(loader, sandbox)
        outcomes.append((summary.requests, sandbox.stats.by_status.get(429, 0)))
    (_, unbudgeted_429s), (requests, budgeted_429s) = outcomes
    assert unbudgeted_429s > 0, "the server's rate limit never bit: the test proves nothing"
    assert budgeted_429s == 0
    FAULT_MATRIX.append(
        (
            "rate limit of 10 requests/s",
            f"without a budget {unbudgeted_429s} 429s ridden out; with "
            f"requests_per_minute = 540, 0 of {requests} requests throttled",
        )
    )


@pytest.mark.parametrize("how", ["lifetime over", "revoked early"])
def test_an_expired_token_is_refreshed_once(
    duckdb_loader: Loader, make_sandbox: MakeSandbox, how: str
) -> None:
    clock = ManualClock(START)
    sandbox = make_sandbox(contacts=200, clock=clock, token_lifetime_s=600)

    def expire() -> None:
        if how == "revoked early":
            sandbox.auth.revoke_all()
        else:
            clock.advance(601)

    sandbox.on_request = Hook(contact_changes_page(THIRD_PAGE), expire)
    run(duckdb_loader, sandbox)
    check(duckdb_loader, sandbox)
    tokens = sandbox.stats.by_route[TOKEN_ROUTE]
    assert tokens == 2
    FAULT_MATRIX.append(
        (f"token {how} mid-run", f"ridden out: {tokens - 1} token refresh, equals the truth")
    )


# -- failures -----------------------------------------------------------------------------
def test_a_token_refused_right_after_issue_fails_without_looping(
    duckdb_loader: Loader, loaded: LexfulSandbox
) -> None:
    def revoke_every_time(info: RequestInfo) -> None:
        if info.path == CONTACT_PATH:
            loaded.auth.revoke_all()

    loaded.on_request = revoke_every_time
    message = fails_untouched(duckdb_loader, loaded, "401 on every token, even a fresh one")
    assert "HTTP 401" in message and "sources.lexful.account_id" in message


@pytest.mark.parametrize("setting", ["api_key_secret", "account_id"])
def test_wrong_credentials_fail_on_the_first_token_request(
    duckdb_loader: Loader, loaded: LexfulSandbox, setting: str
) -> None:
    message = fails_untouched(duckdb_loader, loaded, f"wrong {setting}", **{setting: "wrong"})
    assert f"sources.lexful.{setting}" in message
    assert "wrong" not in message


def test_wrong_credentials_make_one_token_request_and_no_other(
    duckdb_loader: Loader, loaded: LexfulSandbox
) -> None:
    with pytest.raises(Exception, match="refused the API key"):
        run(duckdb_loader, loaded, api_key_secret="wrong")
    assert loaded.stats.requests == loaded.stats.by_route[TOKEN_ROUTE] == 1


def test_missing_configuration_names_the_key_and_where_to_put_it(
    duckdb_loader: Loader, loaded: LexfulSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCES__LEXFUL__API_KEY_SECRET", raising=False)
    before = snapshot(duckdb_loader, loaded)
    with pytest.raises(Exception) as failure:
        run(duckdb_loader, loaded, api_key_secret=None)  # None: dlt must find it, and can't
    message = explain(failure.value)
    assert "sources.lexful.api_key_secret" in message
    assert "SOURCES__LEXFUL__API_KEY_SECRET" in message
    assert loaded.stats.requests == 0
    assert snapshot(duckdb_loader, loaded) == before
    FAULT_MATRIX.append(("api_key_secret not configured", f"fails before any request: {message}"))


def test_a_forbidden_type_fails_the_run_by_default(
    duckdb_loader: Loader, loaded: LexfulSandbox
) -> None:
    loaded.on_request = lambda info: Fault.error(403) if info.path == LOCATION_PATH else None
    message = fails_untouched(duckdb_loader, loaded, "403 on one asset type (on_forbidden = fail)")
    assert f"GET {LOCATION_PATH}" in message and "on_forbidden" in message


def test_a_forbidden_type_can_be_skipped_with_a_warning(
    duckdb_loader: Loader, loaded: LexfulSandbox
) -> None:
    forbidden = (LOCATION_PATH, "/v1/users")
    loaded.on_request = lambda info: Fault.error(403) if info.path in forbidden else None
    users = duckdb_loader.tables(["users"])["users"]
    location = loaded.truth(LOCATION)[0]["id"]
    loaded.app.edit_asset(LOCATION, location, {"name": "Changed while forbidden"})
    skip = {**FAST, "on_forbidden": "skip"}
    summary = duckdb_loader.run(loaded, reconcile=True, source_args=skip)  # both passes skip
    assert sorted(summary.skipped) == ["system_location", "users"]
    assert "WARNING skipped system_location" in summary.render()
    assert summary.rows["system_contact"] == 120  # the other types loaded their changes
    assert len(users) > 0 and duckdb_loader.tables(["users"])["users"] == users  # kept
    loaded.on_request = None
    # the location cursor did not move: the edit made while it was forbidden loads now
    assert run(duckdb_loader, loaded, on_forbidden="skip").rows["system_location"] == 1
    check(duckdb_loader, loaded)
    FAULT_MATRIX.append(
        (
            "403 on one asset type and users (on_forbidden = skip)",
            "skipped with a warning in the summary, its cursor and rows kept; the rest loaded",
        )
    )


@pytest.mark.parametrize("variant", MALFORMED_VARIANTS)
def test_a_malformed_page_fails_naming_endpoint_and_offset(
    duckdb_loader: Loader, loaded: LexfulSandbox, variant: str
) -> None:
    loaded.on_request = Hook(contact_changes_page(SECOND_PAGE), lambda: Fault.malformed(variant))
    message = fails_untouched(duckdb_loader, loaded, f"malformed page: {variant}")
    assert f"GET {CONTACT_PATH} (offset {SECOND_PAGE})" in message


def test_a_user_without_an_id_fails_naming_endpoint_and_offset(
    duckdb_loader: Loader, loaded: LexfulSandbox
) -> None:
    loaded.on_request = lambda info: (
        Fault.malformed("missing_id") if info.path == "/v1/users" else None
    )
    message = fails_untouched(duckdb_loader, loaded, "malformed page of users: missing_id")
    assert "GET /v1/users (offset 0): record without an 'id'" in message


def test_a_full_disk_under_the_loader_files_fails_naming_table_and_file(
    duckdb_loader: Loader, loaded: LexfulSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a full disk cannot be made here: Arrow's writer raises what it raises on one, once
    # (then space is freed for the next run), for the source's files only: dlt writes its
    # own tables' files with the same writer
    write_table, full = pq.ParquetWriter.write_table, [True]

    def disk_full(writer: pq.ParquetWriter, table: Any, *args: Any, **kwargs: Any) -> None:
        if full and LOADER_FILES_DIR in str(writer.where):
            full.clear()
            raise OSError(errno.ENOSPC, "No space left on device")
        write_table(writer, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)
    message = fails_untouched(duckdb_loader, loaded, "disk full writing a loader file")
    assert "loader file of table 'system_contact'" in message
    assert f"{LOADER_FILES_DIR}/system_contact/system_contact.0.parquet" in message
    assert "No space left on device" in message


def test_exhausted_retries_say_what_was_tried_how_often_and_how_long(
    duckdb_loader: Loader, loaded: LexfulSandbox
) -> None:
    loaded.on_request = lambda info: Fault.error(503) if info.path == CONTACT_PATH else None
    message = fails_untouched(duckdb_loader, loaded, "HTTP 503 on every attempt")
    assert re.search(r"failed after 4 attempts over [\d.]+ s \(HTTP 503 x4\)", message), message
    assert "Retry policy: up to 4 attempts" in message


@pytest.mark.parametrize(
    ("setting", "value"),
    [("on_forbidden", "maybe"), ("max_attempts", 0), ("requests_per_minute", "fast"),
     ("concurrent_requests", 0)],
)  # fmt: skip
def test_a_bad_setting_is_named_before_any_request(
    duckdb_loader: Loader, loaded: LexfulSandbox, setting: str, value: Any
) -> None:
    with pytest.raises(Exception) as failure:
        run(duckdb_loader, loaded, **{setting: value})
    assert f"sources.lexful.{setting}" in explain(failure.value)
    assert loaded.stats.requests == 0
