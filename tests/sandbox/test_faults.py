"""Every fault knob of the sandbox, over real HTTP on loopback.

Later connector tests lean on these behaviours (statuses, 429 with ``Retry-After``,
timeouts, dropped and truncated connections, malformed bodies, the ``on_request`` hook,
latency, random faults, counters, token expiry), so each one is pinned down here.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from lexful_source.sandbox import (
    MALFORMED_VARIANTS,
    RETRY_AFTER_STYLES,
    Fault,
    LexfulSandbox,
    ManualClock,
    RequestInfo,
)

if TYPE_CHECKING:
    from tests.conftest import Api

CONTACT = "system.contact"
LIST = f"/v1/assets/{CONTACT}"
LIST_ROUTE = "GET /v1/assets/{type}"
TOKEN_ROUTE = "POST /v1/auth/token"
ITEM_ROUTE = "GET /v1/assets/{type}/{id}"

Hook = Callable[[RequestInfo], Fault | None]
MakeSandbox = Callable[..., LexfulSandbox]
ApiFor = Callable[..., "Api"]
Check = Callable[[httpx.Response, httpx.Response], None]  # (malformed, clean) responses


# -- helpers ----------------------------------------------------------------------
def script(*faults: Fault | None, route: str = LIST_ROUTE) -> Hook:
    """A hook giving the n-th request on ``route`` the n-th fault (None: answer normally)."""
    seen = itertools.count()

    def hook(info: RequestInfo) -> Fault | None:
        if info.route != route:
            return None
        n = next(seen)
        return faults[n] if n < len(faults) else None

    return hook


def assert_fastify_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"statusCode", "error", "message"}
    assert body["statusCode"] == status
    assert body["error"] == HTTPStatus(status).phrase
    assert isinstance(body["message"], str) and body["message"]


def outcome(send: Callable[[], httpx.Response]) -> str:
    """The status code as text, or the name of the transport error raised."""
    try:
        return str(send().status_code)
    except httpx.TransportError as exc:
        return type(exc).__name__


def signature(fault: Fault) -> tuple[str, int | None]:
    """What the request log shows for a fault: its kind and the status sent, if any."""
    if fault.kind in ("reset", "timeout"):
        return fault.kind, None
    return fault.kind, 200 if fault.kind == "malformed" else fault.status


# -- error statuses -----------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 504, 403])
def test_error_status_has_fastify_body(
    make_sandbox: MakeSandbox, api_for: ApiFor, status: int
) -> None:
    if status == 403:
        sandbox = make_sandbox(contacts=10, forbidden_types=frozenset({CONTACT}))
    else:
        sandbox = make_sandbox(contacts=10, on_request=script(Fault.error(status)))
    api = api_for(sandbox)
    assert_fastify_error(api.get(LIST), status)
    assert api.get("/v1/assets/system.location").status_code == 200


# -- rate limit ---------------------------------------------------------------------
@pytest.mark.parametrize("style", RETRY_AFTER_STYLES)
@pytest.mark.parametrize("source", ["window", "hook"])
def test_rate_limit_answers_429_with_retry_after(
    make_sandbox: MakeSandbox, api_for: ApiFor, source: str, style: str
) -> None:
    if source == "window":
        budget, min_wait, max_wait = 3, 0.0, 2.0
        sandbox = make_sandbox(
            contacts=10, rate_limit=budget, rate_window_s=max_wait, retry_after=style,
            faults_on_auth=False,
        )  # fmt: skip
    else:
        budget, min_wait, max_wait = 0, 0.5, 0.5
        sandbox = make_sandbox(contacts=10, on_request=script(Fault.rate_limited(style, 0.5)))
    api = api_for(sandbox)
    assert [api.get(LIST, limit=1).status_code for _ in range(budget)] == [200] * budget
    before = time.time()
    response = api.get(LIST, limit=1)
    after = time.time()
    assert_fastify_error(response, 429)
    value = response.headers.get("Retry-After")
    if style == "none":
        assert value is None
    elif style == "zero":
        assert value == "0"
    elif style == "seconds":
        assert value is not None and value.isdigit()
        assert min_wait <= int(value) <= max_wait + 1
    else:
        assert value is not None
        when = parsedate_to_datetime(value).timestamp()
        assert before + min_wait <= when <= after + max_wait + 1
    assert sandbox.stats.by_fault == Counter({"rate_limit": 1})


def test_rate_limit_budget_refreshes_after_the_window(
    make_sandbox: MakeSandbox, api_for: ApiFor
) -> None:
    sandbox = make_sandbox(contacts=10, rate_limit=2, rate_window_s=1.0, faults_on_auth=False)
    api = api_for(sandbox)

    def burst() -> list[int]:
        return [api.get(LIST, limit=1).status_code for _ in range(3)]

    assert burst() == [200, 200, 429]
    retry_after = api.get(LIST, limit=1).headers["Retry-After"]
    time.sleep(int(retry_after))  # honouring the header is enough to get a fresh budget
    assert burst() == [200, 200, 429]


# -- timeouts, resets, truncation -----------------------------------------------------
def test_timeout_fault_times_the_client_out_and_the_server_keeps_serving(
    make_sandbox: MakeSandbox, api_for: ApiFor
) -> None:
    sandbox = make_sandbox(contacts=10, on_request=script(Fault.timeout(1.0)))
    api = api_for(sandbox)
    with pytest.raises(httpx.ReadTimeout):
        api.http.get(LIST, timeout=httpx.Timeout(10.0, read=0.2))
    # logged at once, with no status; and served while the stalled request still sleeps
    assert [(r.status, r.fault) for r in sandbox.stats.log if r.fault] == [(None, "timeout")]
    assert api.get(LIST).status_code == 200


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.reset(), httpx.TransportError), (Fault.truncate(), httpx.RemoteProtocolError)],
    ids=["reset", "truncate"],
)
def test_dropped_connection_raises_and_next_request_succeeds(
    make_sandbox: MakeSandbox, api_for: ApiFor, fault: Fault, error: type[Exception]
) -> None:
    sandbox = make_sandbox(contacts=10, on_request=script(fault))
    api = api_for(sandbox)
    with pytest.raises(error):
        api.get(LIST)
    assert len(api.items(LIST)) == len(sandbox.truth(CONTACT, include_deleted=False))


def test_truncate_sends_full_headers_then_half_the_body(
    make_sandbox: MakeSandbox, api_for: ApiFor
) -> None:
    sandbox = make_sandbox(contacts=20, on_request=script(Fault.truncate()))
    api = api_for(sandbox)
    received = bytearray()
    with api.http.stream("GET", LIST) as response:
        assert response.status_code == 200
        declared = int(response.headers["Content-Length"])
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_raw():
                received += chunk
    clean = api.get(LIST).content
    assert declared == len(clean)
    assert bytes(received) == clean[: len(clean) // 2]


# -- malformed bodies ---------------------------------------------------------------
def _first_item_lacks(key: str) -> Check:
    def check(response: httpx.Response, clean: httpx.Response) -> None:
        items = response.json()["items"]
        assert key not in items[0]
        assert all(key in item for item in items[1:])
        assert len(items) == len(clean.json()["items"])

    return check


def _not_json(response: httpx.Response, clean: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<html")


def _truncated_json(response: httpx.Response, clean: httpx.Response) -> None:
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert response.content == clean.content[: len(clean.content) // 2]


def _missing_items(response: httpx.Response, clean: httpx.Response) -> None:
    doc = response.json()
    assert "items" not in doc
    assert doc["total"] == clean.json()["total"]


def _total_string(response: httpx.Response, clean: httpx.Response) -> None:
    doc = response.json()
    assert doc["total"] == str(clean.json()["total"])
    assert doc["items"] == clean.json()["items"]


def _total_null(response: httpx.Response, clean: httpx.Response) -> None:
    doc = response.json()
    assert doc["total"] is None
    assert doc["items"] == clean.json()["items"]


MALFORMED_CHECKS: dict[str, Check] = {
    "not_json": _not_json,
    "truncated_json": _truncated_json,
    "missing_items": _missing_items,
    "missing_id": _first_item_lacks("id"),
    "missing_updated_at": _first_item_lacks("updated_at"),
    "total_string": _total_string,
    "total_null": _total_null,
}


def test_every_malformed_variant_is_checked() -> None:
    assert set(MALFORMED_CHECKS) == set(MALFORMED_VARIANTS)


@pytest.mark.parametrize("variant", MALFORMED_VARIANTS)
def test_malformed_variant(make_sandbox: MakeSandbox, api_for: ApiFor, variant: str) -> None:
    sandbox = make_sandbox(contacts=20, on_request=script(Fault.malformed(variant)))
    api = api_for(sandbox)
    response = api.get(LIST, limit=5)
    clean = api.get(LIST, limit=5)  # the hook faults the first list request only
    assert response.status_code == 200
    MALFORMED_CHECKS[variant](response, clean)


def test_malformed_rejects_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown malformed variant"):
        Fault.malformed("no_such_variant")


# -- the on_request hook ------------------------------------------------------------
def test_hook_sees_every_request(make_sandbox: MakeSandbox, api_for: ApiFor) -> None:
    seen: list[RequestInfo] = []
    sandbox = make_sandbox(contacts=10, on_request=lambda info: seen.append(info))
    api = api_for(sandbox)
    first = api.items(LIST, limit=3, sort="updated_at", order="ASC")[0]
    api.get(f"{LIST}/{first['id']}")
    org = first["organization_id"]
    api.get(f"/v1/organizations/{org}")

    assert [i.index for i in seen] == [0, 1, 2, 3]
    assert [(i.method, i.route) for i in seen] == [
        ("POST", TOKEN_ROUTE),
        ("GET", LIST_ROUTE),
        ("GET", ITEM_ROUTE),
        ("GET", "GET /v1/organizations/{id}"),
    ]
    assert [i.path for i in seen[1:]] == [LIST, f"{LIST}/{first['id']}", f"/v1/organizations/{org}"]
    listing = seen[1]
    assert listing.params == [("limit", "3"), ("sort", "updated_at"), ("order", "ASC")]
    assert listing.param("limit") == "3"
    assert listing.param("offset") is None
    assert listing.param("offset", "0") == "0"


def test_edit_during_offset_paging_skips_a_record(
    make_sandbox: MakeSandbox, api_for: ApiFor
) -> None:
    """The classic offset-pagination hazard the connector must defend against."""
    page = 10
    sandbox = make_sandbox(contacts=40, clock=ManualClock("2030-01-01T00:00:00Z"))
    api = api_for(sandbox)
    order = dict(sort="updated_at", order="ASC")
    expected = [item["id"] for item in api.all_items(LIST, **order)]
    assert len(expected) > 2 * page
    edited = expected[0]  # on page 1, served before the edit

    def hook(info: RequestInfo) -> None:
        if info.route == LIST_ROUTE and info.param("offset") == str(page):
            sandbox.store.touch(sandbox.store.assets(CONTACT), edited)

    sandbox.on_request = hook
    served = [item["id"] for item in api.all_items(LIST, page=page, **order)]

    assert len(served) == len(expected)
    assert set(expected) - set(served) == {expected[page]}  # shifted onto page 1: never served
    assert served.count(edited) == 2  # and the edited record comes twice, last time at the end
    assert served[-1] == edited


# -- latency ------------------------------------------------------------------------
def test_latency_is_a_lower_bound(make_sandbox: MakeSandbox, api_for: ApiFor) -> None:
    sandbox = make_sandbox(contacts=10, latency_s=0.2)
    api = api_for(sandbox)
    started = time.monotonic()
    assert api.get(LIST, limit=1).status_code == 200
    assert time.monotonic() - started >= 0.2


# -- random faults ------------------------------------------------------------------
def random_outcomes(
    make_sandbox: MakeSandbox, api_for: ApiFor, n: int = 100, **settings: Any
) -> tuple[LexfulSandbox, list[str]]:
    sandbox = make_sandbox(contacts=10, fault_rate=0.3, faults_on_auth=False, **settings)
    api = api_for(sandbox)
    return sandbox, [outcome(lambda: api.get(LIST, limit=1)) for _ in range(n)]


@pytest.mark.parametrize(
    "mix",
    [None, (Fault.error(502), Fault.malformed("total_null")), (Fault.reset(),)],
    ids=["default", "502-or-malformed", "reset-only"],
)
def test_random_faults_share_and_mix(
    make_sandbox: MakeSandbox, api_for: ApiFor, mix: tuple[Fault, ...] | None
) -> None:
    sandbox, outcomes = random_outcomes(
        make_sandbox, api_for, fault_seed=11, **({} if mix is None else {"fault_mix": mix})
    )
    allowed = {signature(f) for f in sandbox.settings.fault_mix}
    records = [r for r in sandbox.stats.log if r.path == LIST]
    faulted = [(r.fault, r.status) for r in records if r.fault is not None]
    assert 0.15 <= len(faulted) / len(records) <= 0.45
    assert set(faulted) <= allowed
    assert all(r.status == 200 for r in records if r.fault is None)
    # what the client saw matches the log, request by request (no status: a transport error)
    assert [o if o.isdigit() else None for o in outcomes] == [
        None if r.status is None else str(r.status) for r in records
    ]


def test_random_faults_replay_with_the_same_seed(
    make_sandbox: MakeSandbox, api_for: ApiFor
) -> None:
    runs = [random_outcomes(make_sandbox, api_for, fault_seed=s)[1] for s in (5, 5, 6)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert set(runs[0]) - {"200"}  # some faults did occur


@pytest.mark.parametrize("faults_on_auth", [True, False])
def test_faults_on_auth(make_sandbox: MakeSandbox, api_for: ApiFor, faults_on_auth: bool) -> None:
    sandbox = make_sandbox(
        contacts=10, fault_mix=(Fault.error(503),), faults_on_auth=faults_on_auth
    )
    api = api_for(sandbox)
    sandbox.faults.rate = 1.0  # from now on every request is drawn a fault
    assert api.get(LIST).status_code == 503

    def token_status() -> int:
        try:
            api.fetch_token()
        except httpx.HTTPStatusError as exc:
            return exc.response.status_code
        return 200

    assert {token_status() for _ in range(5)} == {503 if faults_on_auth else 200}


# -- counters -------------------------------------------------------------------------
def test_request_counters_and_reset(make_sandbox: MakeSandbox, api_for: ApiFor) -> None:
    hook = script(None, Fault.error(503), Fault.reset(), Fault.rate_limited(), Fault.timeout(0.5))
    sandbox = make_sandbox(contacts=10, on_request=hook)
    api = api_for(sandbox)
    first = api.items(LIST, limit=5)[0]
    seen = [outcome(lambda: api.get(LIST, limit=5)) for _ in range(3)]
    with pytest.raises(httpx.ReadTimeout):
        api.http.get(LIST, params={"limit": 5}, timeout=httpx.Timeout(10.0, read=0.1))
    assert api.get(f"{LIST}/{first['id']}").status_code == 200
    assert api.get(f"{LIST}/00000000-0000-7000-8000-000000000000").status_code == 404
    # every request is counted before its client gets an answer (or its timeout)

    stats = sandbox.stats
    assert seen[0] == "503" and not seen[1].isdigit() and seen[2] == "429"
    assert stats.requests == 8
    assert stats.by_route == Counter({TOKEN_ROUTE: 1, LIST_ROUTE: 5, ITEM_ROUTE: 2})
    assert stats.by_status == Counter({200: 3, 503: 1, 429: 1, 404: 1})
    assert stats.by_fault == Counter({"status": 1, "reset": 1, "rate_limit": 1, "timeout": 1})
    assert Counter((r.method, r.status, r.fault) for r in stats.log) == Counter(
        {
            ("POST", 200, None): 1,
            ("GET", 200, None): 2,
            ("GET", 503, "status"): 1,
            ("GET", None, "reset"): 1,
            ("GET", 429, "rate_limit"): 1,
            ("GET", None, "timeout"): 1,
            ("GET", 404, None): 1,
        }
    )
    assert (stats.log[1].path, stats.log[1].params) == (LIST, [("limit", "5")])

    stats.reset()
    assert (stats.requests, stats.by_route, stats.by_status, stats.by_fault) == (0, {}, {}, {})
    assert not stats.log
    api.get(LIST, limit=1)
    assert stats.requests == 1 and len(stats.log) == 1


# -- token lifetime -------------------------------------------------------------------
@pytest.mark.parametrize("how", ["expire", "revoke"])
def test_token_stops_working(make_sandbox: MakeSandbox, api_for: ApiFor, how: str) -> None:
    clock = ManualClock()
    sandbox = make_sandbox(contacts=10, clock=clock, token_lifetime_s=60)
    api = api_for(sandbox)
    clock.advance(59)
    assert api.get(LIST, limit=1).status_code == 200
    if how == "expire":
        clock.advance(2)
    else:
        assert sandbox.auth.revoke_all() == 1
    assert_fastify_error(api.get(LIST, limit=1), 401)
    fresh = {"Authorization": f"Bearer {api.fetch_token()}"}
    assert api.http.get(LIST, params={"limit": 1}, headers=fresh).status_code == 200
