"""The HTTP client: httpx with urllib3 on the wire (``transport.py``), one connection pool,
bearer auth, bounded retries, and errors that name the request that failed.

Retries cover what a SaaS API does under load: 429 (honouring ``Retry-After`` in seconds
or as an HTTP date, and never looping tightly on ``0``), 5xx, timeouts and dropped
connections, with exponential backoff and jitter. An optional request budget
(``budget.py``) spaces requests so the API need not throttle them at all.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from .auth import TokenAuth
from .budget import RequestBudget
from .errors import ApiError, MalformedResponseError
from .settings import REQUEST_TIMEOUT_S, TOKEN_PATH
from .transport import for_environment

log = logging.getLogger("lexful_source")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
HINTS = {  # what a final error status asks the user to check
    401: "; Lexful refused a token it had just issued: check that the API key may use "
    "sources.lexful.account_id",
    403: "; the API key may not read this: leave it out with sources.lexful.asset_types, "
    'or set sources.lexful.on_forbidden = "skip"',
}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up on one request."""

    max_attempts: int = 8
    backoff_s: float = 0.5  # the first wait; it doubles with every retry
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 300.0  # the longest wait a 429's Retry-After gets
    jitter: bool = True

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait before retry ``attempt``. A ``Retry-After`` of 0 (or none) gets the
        backoff: answering it at once would be a tight loop."""
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self.max_retry_after_s)
        base = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        return base * random.uniform(0.5, 1.0) if self.jitter else base

    def describe(self) -> str:
        jitter = " with jitter" if self.jitter else ""
        return (
            f"up to {self.max_attempts} attempts, waits from {self.backoff_s:g} s doubling to "
            f"{self.max_backoff_s:g} s{jitter}, Retry-After honoured up to "
            f"{self.max_retry_after_s:g} s"
        )


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


def _unbind(response: httpx.Response) -> None:
    """End the reference cycle between an httpx response and its stream, read already.
    Through it every page's body (about 1 MB) waited for the cyclic garbage collector,
    which a run calls rarely (pipeline.py), and a load of 1,000,000 contacts held
    hundreds of MB of bodies read long before."""
    response.stream = httpx.ByteStream(response.content)


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
        budget: RequestBudget | None = None,
        concurrent_requests: int = 1,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.budget = budget or RequestBudget(None)
        self.timeout = timeout
        self._policy_logged = False
        self.concurrent_requests = concurrent_requests
        # Bounds the requests in flight across all threads (lists read ahead, resources
        # read at once); token requests stay outside it, so a refresh cannot wait on itself.
        self._slots = threading.BoundedSemaphore(concurrent_requests)
        connections = concurrent_requests + 1  # the token request may be one more
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections),  # for httpx's own, via a proxy
            transport=for_environment(connections),
        )
        self._account_id = account_id
        self._key = {"id": api_key_id, "secret": api_key_secret}
        self.auth = TokenAuth(self._request_token, account_id)

    def describe(self) -> str:
        """The client's policy, for the log of a run that may have to explain a failure."""
        return (
            f"retry policy: {self.retry.describe()}; request timeout {self.timeout:g} s; "
            f"request budget: {self.budget.describe()}; "
            f"at most {self.concurrent_requests} requests at once"
        )

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
            limited=False,
        )

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """GET a JSON document; raises ApiError or MalformedResponseError naming the request.
        ``decode`` reads the body first, in a faster way of its own; when it returns None,
        the body is parsed with orjson as usual."""
        where = describe("GET", path, params)
        response = self._send(lambda: self._http.get(path, params=params, auth=self.auth), where)
        if response.status_code != 200:
            hint = HINTS.get(response.status_code, "")
            raise ApiError(
                f"{where} failed: HTTP {response.status_code} {error_message(response)}{hint}",
                status=response.status_code,
                endpoint=where,
            )
        if decode is not None and (decoded := decode(response.content)) is not None:
            return decoded
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

    def _send(
        self, send: Callable[[], httpx.Response], where: str, *, limited: bool = True
    ) -> httpx.Response:
        """Send with retries; the final response may still be an error status."""
        started = time.monotonic()
        last, unreachable = "", False
        failures: Counter[str] = Counter()
        for attempt in range(1, self.retry.max_attempts + 1):
            retry_after: float | None = None
            try:
                if limited:
                    with self._slots:  # the budget's slot is taken once a request may go
                        self.budget.acquire()
                        response = send()
                else:
                    self.budget.acquire()
                    response = send()
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                failures[type(exc).__name__] += 1
                unreachable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            else:
                unreachable = False
                _unbind(response)
                if response.status_code not in RETRY_STATUSES:
                    self._count(attempt)
                    return response
                last = f"HTTP {response.status_code} {error_message(response)}"
                failures[f"HTTP {response.status_code}"] += 1
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            self._count(attempt)
            if attempt == self.retry.max_attempts:
                break
            wait = self.retry.delay(attempt, retry_after)
            if not self._policy_logged:  # once per client (per pass): what the retries follow
                self._policy_logged = True
                log.warning("%s", self.describe())
            log.warning("%s: %s; retry %d of %d in %.3f s", where, last, attempt,
                        self.retry.max_attempts - 1, wait)  # fmt: skip
            time.sleep(wait)
        elapsed = time.monotonic() - started
        hint = "; check sources.lexful.api_base_url" if unreachable else ""
        tally = ", ".join(f"{kind} x{n}" for kind, n in failures.most_common())
        raise ApiError(
            f"{where} on {self.base_url} failed after {self.retry.max_attempts} attempts over "
            f"{elapsed:.1f} s ({tally}); last error: {last}{hint}. Retry policy: "
            f"{self.retry.describe()} (sources.lexful.max_attempts and backoff_s set it)",
            status=None,
            endpoint=where,
        )
