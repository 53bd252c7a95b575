"""The sandbox over real HTTP: a threaded loopback server with faults, counters and a hook.

``LexfulSandbox`` is the one object tests, benchmarks and the demo use: start it (or use
it as a context manager), point a connector at ``.url`` with ``.credentials``, disturb it
through ``.store``, ``.clock``, ``.on_request`` and ``.faults``, and read ``.stats`` and
``.truth()`` afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from .app import JSON, LexfulApp, Request, RequestInfo, Response, error_body, route_of
from .auth import Authenticator
from .dataset import build_store
from .faults import Fault, FaultPlan, retry_after_header
from .settings import SandboxSettings
from .store import Store, StoreSettings
from .timestamps import SystemClock

TOKEN_PATH = "/v1/auth/token"
FREEZE_ABOVE_RECORDS = 50_000


@dataclass
class RequestRecord:
    method: str
    path: str
    params: list[tuple[str, str]]
    status: int | None  # None: no response was sent (timeout, reset)
    fault: str | None


@dataclass
class Stats:
    """Request counters: totals, per route template, per status, per fault, and a log."""

    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    by_fault: Counter[str] = field(default_factory=Counter)
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=100_000))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, method: str, path: str) -> tuple[int, str]:
        route = route_of(method, path)
        with self.lock:
            index = self.requests
            self.requests += 1
            self.by_route[route] += 1
        return index, route

    def end(self, record: RequestRecord) -> None:
        with self.lock:
            if record.status is not None:
                self.by_status[record.status] += 1
            if record.fault is not None:
                self.by_fault[record.fault] += 1
            self.log.append(record)

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.by_route.clear()
            self.by_status.clear()
            self.by_fault.clear()
            self.log.clear()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    sandbox: LexfulSandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def _serve(self) -> None:
        self.server.sandbox.serve_request(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LexfulSandbox:
    """A local, Lexful-compatible API server with seeded data and fault knobs."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = s = settings or SandboxSettings()
        self.clock = s.clock or SystemClock()
        store_settings = StoreSettings(
            timestamp_style=s.timestamp_style,
            secret_values=s.secret_values,
            archive_bumps_updated_at=s.archive_bumps_updated_at,
            reference_target_key=s.reference_target_key,
        )
        self.store = build_store(Store(self.clock, store_settings), s.seed, s.size)
        self._froze = sum(map(len, self.store.asset_types.values())) >= FREEZE_ABOVE_RECORDS
        if self._froze:
            # Millions of long-lived records would make every full garbage collection
            # walk them all (3x slower first reads); they live as long as the server.
            gc.collect()
            gc.freeze()
        self.auth = Authenticator(
            self.clock,
            account_id=self.store.account_id,
            key_id=s.api_key_id,
            key_secret=s.api_key_secret,
            lifetime_s=s.token_lifetime_s,
            token_field=s.token_field,
            expiry_field=s.expiry_field,
        )
        self.app = LexfulApp(
            self.store,
            self.auth,
            list_shape=s.list_shape,
            forbidden_types=s.forbidden_types,
            bad_credentials_status=s.bad_credentials_status,
        )
        self.faults = FaultPlan(
            rate=s.fault_rate,
            mix=s.fault_mix,
            seed=s.fault_seed,
            rate_limit=s.rate_limit,
            rate_window_s=s.rate_window_s,
            retry_after=s.retry_after,
        )
        self.on_request = s.on_request
        self.latency_s = s.latency_s
        self.stats = Stats()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> LexfulSandbox:
        httpd = _HTTPServer((self.settings.host, self.settings.port), _Handler)
        httpd.sandbox = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._froze:
            # the freeze also caught objects of other libraries, which then outlive the
            # interpreter's shutdown (DuckDB's bindings report them as leaks)
            gc.unfreeze()
            self._froze = False

    def __enter__(self) -> LexfulSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        """The connector's configuration for this server, under dlt's key names."""
        return {
            "api_base_url": self.url,
            "account_id": self.store.account_id,
            "api_key_id": self.settings.api_key_id,
            "api_key_secret": self.settings.api_key_secret,
        }

    def env(self, prefix: str = "SOURCES__LEXFUL__") -> dict[str, str]:
        return {prefix + key.upper(): value for key, value in self.credentials.items()}

    def truth(self, name: str, *, include_deleted: bool = True) -> list[dict[str, Any]]:
        return self.store.truth(name, include_deleted=include_deleted)

    # -- one request ------------------------------------------------------------
    def serve_request(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        path = split.path
        params = parse_qsl(split.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        index, route = self.stats.begin(handler.command, path)
        info = RequestInfo(index, handler.command, path, params, route)
        fault = self._choose_fault(info)
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        record = RequestRecord(handler.command, path, params, None, fault and fault.kind)
        try:
            response = self._respond(handler, info, body, fault)
            record.status = response.status if response else None
        finally:
            # counted before anything is sent: a client holding its answer finds it in the stats
            self.stats.end(record)
        self._deliver(handler, response, fault)

    def _choose_fault(self, info: RequestInfo) -> Fault | None:
        if self.on_request is not None:
            fault = self.on_request(info)
            if fault is not None:
                return fault
        if info.path == TOKEN_PATH and not self.settings.faults_on_auth:
            return None
        return self.faults.draw() or self.faults.throttle()

    def _respond(
        self, handler: _Handler, info: RequestInfo, body: bytes, fault: Fault | None
    ) -> Response | None:
        """The response to send, or None when the fault is to send none (timeout, reset)."""
        if fault is not None and fault.kind in ("timeout", "reset"):
            return None
        if fault is not None and fault.kind == "status":
            response = Response(fault.status, error_body(fault.status, "Injected fault"))
        elif fault is not None and fault.kind == "rate_limit":
            response = Response(429, error_body(429, "Rate limit exceeded, retry later"))
            value = retry_after_header(fault.retry_after, fault.seconds)
            if value is not None:
                response.headers["Retry-After"] = value
        else:
            headers = {k.lower(): v for k, v in handler.headers.items()}
            request = Request(info.method, info.path, info.params, headers, body)
            try:
                response = self.app.handle(request)
            except Exception as exc:  # the sandbox must answer, like a real server
                traceback.print_exc(file=sys.stderr)
                response = Response(500, error_body(500, f"Internal error: {exc}"))
            if fault is not None and fault.kind == "malformed" and response.status == 200:
                response = _malform(response, fault.variant)
        return response

    def _deliver(self, handler: _Handler, response: Response | None, fault: Fault | None) -> None:
        if response is None:
            if fault is not None and fault.kind == "timeout":
                self._stopping.wait(fault.seconds)
            _abort(handler)
        elif fault is not None and fault.kind == "truncate":
            _send(handler, response, truncate=True)
            _hang_up(handler)
        else:
            _send(handler, response)

    def serve_forever(self) -> None:
        """Block until interrupted; for the command line."""
        try:
            while not self._stopping.is_set():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


def _send(handler: _Handler, response: Response, *, truncate: bool = False) -> None:
    status = response.status
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    if status != 204:
        lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
    lines.extend(f"{k}: {v}" for k, v in response.headers.items())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    body = response.body[: len(response.body) // 2] if truncate else response.body
    with contextlib.suppress(OSError):
        handler.wfile.write(head + body)


def _abort(handler: _Handler) -> None:
    """Drop the connection with a TCP reset, as a crashing proxy would."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()


def _hang_up(handler: _Handler) -> None:
    """Close the connection cleanly (FIN) after what was sent, so the client does get the
    headers and the partial body; a reset here could discard them unread on the client."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_WR)


def _malform(response: Response, variant: str) -> Response:
    if variant == "not_json":
        html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return Response(200, html, content_type="text/html")
    if variant == "truncated_json":
        return Response(200, response.body[: len(response.body) // 2])
    doc = orjson.loads(response.body)
    if not isinstance(doc, dict) or "items" not in doc:
        return response
    if variant == "missing_items":
        doc["data"] = doc.pop("items")
    elif variant in ("missing_id", "missing_updated_at") and doc["items"]:
        doc["items"][0].pop(variant.removeprefix("missing_"), None)
    elif variant == "total_string" and "total" in doc:
        doc["total"] = str(doc["total"])
    elif variant == "total_null":
        doc["total"] = None
    return Response(200, orjson.dumps(doc), response.headers, JSON)
