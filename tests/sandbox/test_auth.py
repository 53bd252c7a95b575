"""Token exchange and bearer checks, in every token-response shape the connector must accept."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from lexful_source.sandbox import LexfulSandbox, ManualClock
from lexful_source.sandbox.auth import EXPIRY_FIELDS, TOKEN_FIELDS
from lexful_source.sandbox.timestamps import parse_instant

START = "2026-03-01T12:00:00Z"


def token_response(sandbox: LexfulSandbox, **overrides: str) -> httpx.Response:
    creds = {**sandbox.credentials, **overrides}
    return httpx.post(
        f"{sandbox.url}/v1/auth/token",
        headers={"X-Account-Id": creds["account_id"]},
        json={"id": creds["api_key_id"], "secret": creds["api_key_secret"]},
    )


def list_orgs(sandbox: LexfulSandbox, token: str, account: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if account != "":
        headers["x-account-id"] = account or sandbox.store.account_id
    return httpx.get(f"{sandbox.url}/v1/organizations", headers=headers)


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status
    assert body["error"] == httpx.codes(status).phrase
    assert body["message"]


@pytest.mark.parametrize("expiry_field", EXPIRY_FIELDS)
@pytest.mark.parametrize("token_field", TOKEN_FIELDS)
def test_every_token_shape(
    make_sandbox: Callable[..., LexfulSandbox], token_field: str, expiry_field: str | None
) -> None:
    clock = ManualClock(START)
    sandbox = make_sandbox(
        contacts=3,
        clock=clock,
        token_lifetime_s=900,
        token_field=token_field,
        expiry_field=expiry_field,
    )
    response = token_response(sandbox)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [f for f in TOKEN_FIELDS if f in body] == [token_field]
    lifetime_keys = [f for f in EXPIRY_FIELDS if f and f in body]
    assert lifetime_keys == ([expiry_field] if expiry_field else [])
    if expiry_field == "expires_in":
        assert body["expires_in"] == 900
    elif expiry_field:
        assert parse_instant(body[expiry_field]) == parse_instant(START) + 900_000
    assert list_orgs(sandbox, body[token_field]).status_code == 200


@pytest.mark.parametrize(
    "override",
    [{"api_key_secret": "wrong"}, {"api_key_id": "nobody"}, {"account_id": "other-account"}],
)
@pytest.mark.parametrize("status", [401, 403])
def test_bad_credentials(
    make_sandbox: Callable[..., LexfulSandbox], override: dict[str, str], status: int
) -> None:
    sandbox = make_sandbox(contacts=3, bad_credentials_status=status)
    assert_error(token_response(sandbox, **override), status)
    assert sandbox.auth.tokens() == []


def test_token_body_must_be_json(make_sandbox: Callable[..., LexfulSandbox]) -> None:
    sandbox = make_sandbox(contacts=3)
    response = httpx.post(
        f"{sandbox.url}/v1/auth/token",
        headers={"X-Account-Id": sandbox.store.account_id},
        content=b"id=x&secret=y",
    )
    assert_error(response, 400)


def test_token_expires_on_the_sandbox_clock(make_sandbox: Callable[..., LexfulSandbox]) -> None:
    clock = ManualClock(START)
    sandbox = make_sandbox(contacts=3, clock=clock, token_lifetime_s=60)
    token = token_response(sandbox).json()["token"]
    clock.advance(59)
    assert list_orgs(sandbox, token).status_code == 200
    clock.advance(1)
    assert_error(list_orgs(sandbox, token), 401)


def test_revoked_unknown_and_missing_tokens(make_sandbox: Callable[..., LexfulSandbox]) -> None:
    sandbox = make_sandbox(contacts=3)
    token = token_response(sandbox).json()["token"]
    assert list_orgs(sandbox, token).status_code == 200
    assert sandbox.auth.revoke_all() == 1
    assert_error(list_orgs(sandbox, token), 401)
    assert_error(list_orgs(sandbox, "not-a-token"), 401)
    assert_error(httpx.get(f"{sandbox.url}/v1/organizations"), 401)


def test_account_header_is_required_and_must_match(
    make_sandbox: Callable[..., LexfulSandbox],
) -> None:
    sandbox = make_sandbox(contacts=3)
    token = token_response(sandbox).json()["token"]
    assert_error(list_orgs(sandbox, token, account=""), 400)
    assert_error(list_orgs(sandbox, token, account="someone-else"), 403)


def test_secret_never_echoed_in_errors(make_sandbox: Callable[..., LexfulSandbox]) -> None:
    sandbox = make_sandbox(contacts=3)
    response = token_response(sandbox, api_key_id="nobody")
    assert sandbox.settings.api_key_secret not in response.text
