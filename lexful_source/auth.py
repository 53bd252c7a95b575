"""Bearer tokens from an API key: fetched lazily, refreshed before expiry and once on a 401.

The token response's field names are not public (API-NOTES.md), so every documented
variant is accepted: ``token``/``access_token``/``accessToken``, with the lifetime in
``expires_in`` (seconds), ``expires_at``/``expiresAt`` (an instant), or absent (60 min).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

import httpx

from .errors import ApiError, AuthenticationError, MalformedResponseError
from .settings import DEFAULT_TOKEN_LIFETIME_S, TOKEN_PATH, TOKEN_REFRESH_MARGIN_S
from .timestamps import parse_timestamp

TOKEN_KEYS = ("token", "access_token", "accessToken")


def parse_token_response(body: Any) -> tuple[str, float]:
    """(token, seconds until it expires) from any tolerated response shape."""
    if not isinstance(body, dict):
        raise MalformedResponseError(f"POST {TOKEN_PATH} answered a non-object JSON body")
    token = next((body[k] for k in TOKEN_KEYS if isinstance(body.get(k), str) and body[k]), None)
    if token is None:
        raise MalformedResponseError(
            f"POST {TOKEN_PATH} answered without a token: expected one of {', '.join(TOKEN_KEYS)}, "
            f"got keys {sorted(body)}"
        )
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float | str) and str(expires_in).replace(".", "", 1).isdigit():
        return token, float(expires_in)
    expires_at = body.get("expires_at") or body.get("expiresAt")
    if isinstance(expires_at, str):
        try:
            return token, (parse_timestamp(expires_at) - datetime.now(UTC)).total_seconds()
        except ValueError:
            pass
    return token, float(DEFAULT_TOKEN_LIFETIME_S)


class TokenAuth(httpx.Auth):
    """httpx auth that keeps a valid bearer token and the account header on every request."""

    requires_response_body = True  # read a 401's body first, so its connection is free

    def __init__(
        self,
        fetch: Callable[[], httpx.Response],
        account_id: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._account_id = account_id
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def token(self, stale: str | None = None) -> str:
        """The current token; a new one if it is near expiry or equals ``stale`` (a 401)."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._refresh_at or self._token == stale:
                response = self._fetch()
                if response.status_code in (401, 403):
                    raise AuthenticationError(
                        f"Lexful refused the API key (HTTP {response.status_code} from POST "
                        f"{TOKEN_PATH}): check sources.lexful.api_key_id, "
                        "sources.lexful.api_key_secret and sources.lexful.account_id"
                    )
                if response.status_code != 200:
                    raise ApiError(
                        f"POST {TOKEN_PATH} failed: HTTP {response.status_code}; check "
                        "sources.lexful.api_base_url (the API's root, without /v1)",
                        status=response.status_code,
                        endpoint=f"POST {TOKEN_PATH}",
                    )
                try:
                    body = response.json()
                except ValueError:
                    raise MalformedResponseError(f"POST {TOKEN_PATH} answered non-JSON") from None
                self._token, lifetime = parse_token_response(body)
                margin = min(TOKEN_REFRESH_MARGIN_S, max(lifetime, 0) / 10)
                self._refresh_at = now + lifetime - margin
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        request.headers["X-Account-ID"] = self._account_id
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(stale=token)}"
            yield request
