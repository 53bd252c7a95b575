"""The wire under the connector's httpx client: urllib3 sends the requests.

httpx stays the client (auth, URLs, timeouts, redirects, decompression, the errors the
retry policy reads); only the sending and reading of bytes moves. A full load is bound
by the interpreter lock, and httpx's own transport (httpcore and h11) reads a 1 MB page
in 64 KB pieces through Python. Read alone on one thread, the 167 pages of 100,000
contacts took 0.56-0.62 CPU seconds with it and 0.41-0.50 with urllib3, which reads a
body of known length in C (``benchmarks/wire_speed.py``). Inside a load, where threads
compete for the lock, the gain is larger: in alternated full loads into DuckDB the
extract took 11% less time, the whole load 7.5% (medians of eight pairs;
``benchmarks/DESIGN.md``).

Where the environment names a proxy (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``),
the client keeps httpx's own transport, which goes through it (``for_environment``).
"""

from __future__ import annotations

from http.client import RemoteDisconnected
from urllib.request import getproxies

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

PROXY_KEYS = ("http", "https", "all")  # what httpx reads of the environment's proxies


def for_environment(connections: int) -> Urllib3Transport | None:
    """This transport, or None (httpx's own) when the environment names a proxy: httpx
    mounts its proxy transports only for a client without a transport of its own."""
    proxies = getproxies()
    return None if any(proxies.get(key) for key in PROXY_KEYS) else Urllib3Transport(connections)


class Urllib3Transport(httpx.BaseTransport):
    """Sends an httpx request with urllib3 and gives back the response as httpx's own
    transport would: headers as bytes, the body still encoded (httpx decompresses it),
    redirects not followed, no retries (the client's policy retries). urllib3's errors
    become httpx's of the same kind (connect, timeout, read, protocol), so the retry
    policy treats a fault as before; their messages are urllib3's."""

    def __init__(self, connections: int) -> None:
        self._pool = urllib3.PoolManager(
            maxsize=connections,
            block=False,
            retries=False,
            ssl_context=httpx.create_ssl_context(),  # httpx's trust: certifi, SSL_CERT_FILE
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        headers = urllib3.HTTPHeaderDict(
            [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in request.headers.raw
            ]
        )
        try:
            answer = self._pool.urlopen(
                request.method,
                str(request.url),
                body=request.read() or None,
                headers=headers,
                retries=False,
                redirect=False,
                preload_content=True,
                decode_content=False,
                timeout=urllib3.Timeout(connect=timeouts.get("connect"), read=timeouts.get("read")),
            )
        except HTTPError as exc:
            raise _httpx_error(exc, request) from exc
        except ValueError:  # a header value http.client refuses; its message quotes the value
            raise httpx.LocalProtocolError("invalid request header", request=request) from None
        version = b"HTTP/1.0" if answer.version == 10 else b"HTTP/1.1"
        return httpx.Response(
            answer.status,
            headers=[
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.iteritems()
            ],
            stream=httpx.ByteStream(answer.data),
            extensions={
                "http_version": version,
                "reason_phrase": (answer.reason or "").encode("latin-1"),
            },
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
