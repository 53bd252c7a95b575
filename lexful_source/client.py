"""The HTTP client: one connection pool, bearer auth, bounded retries, and errors that name
the request that failed.

Retries cover what a SaaS API does under load: 429 (honouring ``Retry-After`` in seconds
or as an HTTP date, and never looping tightly on ``0``), 5xx, timeouts and dropped
connections, with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from .auth import TokenAuth
from .errors import ApiError, MalformedResponseError
from .settings import REQUEST_TIMEOUT_S, TOKEN_PATH

log = logging.getLogger("lexful_source")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one request."""

    max_attempts: int = 8
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    jitter: bool = True

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.max_backoff_s)
        base = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        return base * random.uniform(0.5, 1.0) if self.jitter else base


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now, from either of its forms."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, retry: bool) -> None:
        with self.lock:
            self.requests += 1
            self.retries += retry

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.requests, self.retries


# Every client's requests, for the run summary: a source builds its client inside dlt.
PROCESS_STATS = RequestStats()


def describe(method: str, path: str, params: Mapping[str, Any] | None) -> str:
    """How errors name a request: method, path and its offset, never a header or secret."""
    where = f"{method} {path}"
    if params and "offset" in params:
        where += f" (offset {params['offset']})"
    return where


def error_message(response: httpx.Response) -> str:
    """The message of a Fastify-shaped error body, or a short excerpt of any other body."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return response.text[:200]


class LexfulClient:
    """A session with one Lexful account."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        api_key_id: str,
        api_key_secret: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
        max_connections: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        limits = httpx.Limits(max_connections=max_connections)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, limits=limits)
        self._account_id = account_id
        self._key = {"id": api_key_id, "secret": api_key_secret}
        self.auth = TokenAuth(self._request_token, account_id)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LexfulClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request_token(self) -> httpx.Response:
        headers = {"X-Account-Id": self._account_id}
        return self._send(
            lambda: self._http.post(TOKEN_PATH, headers=headers, json=self._key),
            f"POST {TOKEN_PATH}",
        )

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a JSON document; raises ApiError or MalformedResponseError naming the request."""
        where = describe("GET", path, params)
        response = self._send(lambda: self._http.get(path, params=params, auth=self.auth), where)
        if response.status_code != 200:
            hint = ""
            if response.status_code == 403:
                hint = (
                    "; the API key may not read this; leave it out with sources.lexful.asset_types"
                )
            raise ApiError(
                f"{where} failed: HTTP {response.status_code} {error_message(response)}{hint}",
                status=response.status_code,
                endpoint=where,
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            kind = response.headers.get("content-type", "no content type")
            raise MalformedResponseError(
                f"{where} answered a body that is not JSON ({kind}, {len(response.content)} bytes)"
            ) from None

    @staticmethod
    def _count(attempt: int) -> None:
        PROCESS_STATS.count(retry=attempt > 1)

    def _send(self, send: Callable[[], httpx.Response], where: str) -> httpx.Response:
        """Send with retries; the final response may still be an error status."""
        started = time.monotonic()
        last, unreachable = "", False
        for attempt in range(1, self.retry.max_attempts + 1):
            retry_after: float | None = None
            try:
                response = send()
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                unreachable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            else:
                unreachable = False
                if response.status_code not in RETRY_STATUSES:
                    self._count(attempt)
                    return response
                last = f"HTTP {response.status_code} {error_message(response)}"
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            self._count(attempt)
            if attempt == self.retry.max_attempts:
                break
            wait = self.retry.delay(attempt, retry_after)
            log.warning("%s: %s; retry %d of %d in %.1f s", where, last, attempt,
                        self.retry.max_attempts - 1, wait)  # fmt: skip
            time.sleep(wait)
        elapsed = time.monotonic() - started
        hint = "; check sources.lexful.api_base_url" if unreachable else ""
        raise ApiError(
            f"{where} on {self.base_url} failed after {self.retry.max_attempts} attempts over "
            f"{elapsed:.1f} s; last error: {last}{hint}",
            status=None,
            endpoint=where,
        )
