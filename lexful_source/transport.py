"""The wire under the connector's httpx client: urllib3 sends the requests.

httpx stays the client (auth, URLs, timeouts, redirects, decompression, proxies, the
errors the retry policy reads); only the sending and reading of bytes moves. A full
load is bound by the interpreter lock, and httpx's own transport (httpcore and h11)
reads a 1 MB page in 64 KB pieces through Python: reading the 167 pages of 100,000
contacts took 0.60-0.64 CPU seconds with it and 0.23-0.28 with urllib3, which reads a
body with a known length in C (2026-12-02, one thread, the local server). In alternated
full loads into DuckDB the extract took 11% less time, the whole load 7.5% (medians
of eight pairs; the README's Speed section).

Proxies from the environment (``HTTPS_PROXY``, ``NO_PROXY``) are httpx's: the client
mounts this transport for every URL, and httpx's proxy mounts, more specific, win.
"""

from __future__ import annotations

from http.client import RemoteDisconnected

import httpx
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)


class Urllib3Transport(httpx.BaseTransport):
    """Sends an httpx request with urllib3 and gives back the body as httpx would
    read it: still encoded (httpx decompresses it), redirects not followed, no retries
    (the client's policy retries). urllib3's errors become the httpx errors httpx's own
    transport raises for the same fault, so retries and messages do not change."""

    def __init__(self, connections: int) -> None:
        self._pool = urllib3.PoolManager(
            maxsize=connections,
            block=False,
            retries=False,
            ssl_context=httpx.create_ssl_context(),  # httpx's trust: certifi, SSL_CERT_FILE
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        try:
            answer = self._pool.urlopen(
                request.method,
                str(request.url),
                body=request.read() or None,
                headers=urllib3.HTTPHeaderDict(request.headers.multi_items()),
                retries=False,
                redirect=False,
                preload_content=True,
                decode_content=False,
                timeout=urllib3.Timeout(connect=timeouts.get("connect"), read=timeouts.get("read")),
            )
        except HTTPError as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            answer.status,
            headers=list(answer.headers.items()),
            content=answer.data,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def close(self) -> None:
        self._pool.clear()


def _httpx_error(exc: HTTPError, request: httpx.Request) -> httpx.TransportError:
    message = str(exc)
    if isinstance(exc, NewConnectionError | SSLError):  # NewConnectionError first: a subclass
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, ConnectTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, ReadTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, ProtocolError):  # a reset is a read error; a hang-up, a short body not
        broken = any(
            isinstance(a, OSError) and not isinstance(a, RemoteDisconnected) for a in exc.args
        )
        kind = httpx.ReadError if broken else httpx.RemoteProtocolError
        return kind(message, request=request)
    return httpx.NetworkError(message, request=request)
