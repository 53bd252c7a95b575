"""urllib3 on the wire under httpx (transport.py): every answer reads, and every fault
fails, as httpx's own transport reads and fails it, over real loopback sockets. The rest
of the suite runs every request of the connector through it against the local server."""

from __future__ import annotations

import gc
import gzip
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import orjson
import pytest

from lexful_source.client import LexfulClient
from lexful_source.sandbox import LexfulSandbox
from lexful_source.settings import TOKEN_PATH
from lexful_source.transport import Urllib3Transport

DOC = {"items": [{"id": f"c{i}", "name": "ü" * i} for i in range(300)], "total": 300}
BODY = orjson.dumps(DOC)
Answer = Callable[[BaseHTTPRequestHandler], None]


def send(handler: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str]) -> None:
    handler.send_response(200)
    for name, value in {**headers, "Content-Length": str(len(body))}.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def plain(handler: BaseHTTPRequestHandler) -> None:
    send(handler, BODY, {"Content-Type": "application/json"})


def gzipped(handler: BaseHTTPRequestHandler) -> None:
    send(handler, gzip.compress(BODY), {"Content-Encoding": "gzip"})


def latin(handler: BaseHTTPRequestHandler) -> None:
    send(handler, BODY, {"X-Note": "für"})  # http.server writes headers as latin-1


def moved(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(301, "Moved Elsewhere")
    handler.send_header("Location", "/plain")
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def chunked(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for start in range(0, len(BODY), 4000):
        part = BODY[start : start + 4000]
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
    handler.wfile.write(b"0\r\n\r\n")


def truncated(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(BODY)))
    handler.end_headers()
    handler.wfile.write(BODY[:100])
    handler.close_connection = True


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True  # closed with no answer


def reset(handler: BaseHTTPRequestHandler) -> None:
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.rfile.close()  # the socket closes once its file is closed too
    handler.connection.close()  # with linger 0: a reset, not a close


def slow(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)
    plain(handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers: ClassVar[dict[str, Answer]]
    seen: ClassVar[list[str]]  # each server binds its own (``server``)

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        self.answers[self.path.split("?")[0].rsplit("/", 1)[-1]](self)

    def do_POST(self) -> None:  # the token, as a proxy forwarding to Lexful would answer it
        self.seen.append(f"POST {self.path}")
        self.rfile.read(int(self.headers["Content-Length"]))
        send(self, orjson.dumps({"token": "t0k3n", "expires_in": 3600}), {})

    def log_message(self, *args: object) -> None:
        pass


ANSWERS = {"plain": plain, "gzip": gzipped, "chunked": chunked, "latin": latin, "moved": moved,
           "truncated": truncated, "hang_up": hang_up, "reset": reset, "slow": slow}  # fmt: skip


@contextmanager
def server(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering ``/<name>`` with ``ANSWERS[name]``; its base URL
    and the request lines it saw."""
    seen: list[str] = []
    handler = type("Bound", (Handler,), {"answers": ANSWERS, "seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://localhost:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def ours() -> httpx.Client:
    """A client on this transport alone: no proxy from the environment may take over."""
    return httpx.Client(transport=Urllib3Transport(connections=2), timeout=0.5, trust_env=False)


def httpx_own() -> httpx.Client:
    return httpx.Client(timeout=0.5, trust_env=False)


def headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "date"]


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        ("plain", 200, BODY),
        ("gzip", 200, BODY),
        ("chunked", 200, BODY),
        ("latin", 200, BODY),
        ("moved", 301, b""),
    ],
)
def test_an_answer_reads_as_httpx_reads_it(answer: str, status: int, body: bytes) -> None:
    with server() as (url, seen), ours() as client, httpx_own() as reference:
        got = client.get(f"{url}/{answer}?offset=0")
        expected = reference.get(f"{url}/{answer}?offset=0")
    assert got.status_code == expected.status_code == status
    assert got.content == expected.content == body
    assert got.reason_phrase == expected.reason_phrase
    assert headers(got) == headers(expected)  # latin-1 values, no length added to chunks
    assert seen == [f"GET /{answer}?offset=0"] * 2  # a redirect is not followed


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("truncated", httpx.RemoteProtocolError),
        ("hang_up", httpx.RemoteProtocolError),
        ("reset", httpx.ReadError),
        ("slow", httpx.ReadTimeout),
    ],
)
def test_a_fault_raises_the_error_httpx_raises(answer: str, error: type[Exception]) -> None:
    with server() as (url, _), ours() as client, httpx_own() as reference:
        with pytest.raises(error) as expected:
            reference.get(f"{url}/{answer}")
        with pytest.raises(error) as got:
            client.get(f"{url}/{answer}")
        assert client.get(f"{url}/plain").json() == DOC  # the pool recovers
    assert isinstance(got.value, type(expected.value)), (got.value, expected.value)
    assert got.value.request.url.path == f"/{answer}"


def test_a_refused_connection_is_a_connect_error_as_with_httpx() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed below: nothing listens there
    with ours() as client, pytest.raises(httpx.ConnectError, match=str(port)):
        client.get(f"http://127.0.0.1:{port}/plain")


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_the_connector_sends_through_urllib3(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clear_proxies(monkeypatch)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")  # no proxy named: changes nothing
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with server() as (url, seen), LexfulClient(url, "acct", "key", "secret") as client:
        assert client.get_json("/v1/assets/plain", {"offset": 0}) == DOC
    assert seen == [f"POST {TOKEN_PATH}", "GET /v1/assets/plain?offset=0"]
    sent = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert any('"GET /v1/assets/plain?offset=0 HTTP/1.1" 200' in line for line in sent), sent


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY"])
def test_a_proxy_from_the_environment_is_used(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx goes through the environment's proxies only on its own transport, so the
    connector keeps that one when a proxy is named (transport.for_environment)."""
    with server() as (proxy, seen):
        clear_proxies(monkeypatch)
        monkeypatch.setenv(variable, proxy)
        with LexfulClient("http://lexful.invalid", "acct", "key", "secret") as client:
            assert client.get_json("/v1/assets/plain", {"offset": 0}) == DOC
    assert seen == [f"POST http://lexful.invalid{TOKEN_PATH}",
                    "GET http://lexful.invalid/v1/assets/plain?offset=0"]  # fmt: skip


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for localhost (and its key, in the same file)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate; none on PATH")
    pem = tmp_path_factory.mktemp("tls") / "localhost.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(pem), "-out", str(pem)],
        check=True, capture_output=True,
    )  # fmt: skip
    return pem


def test_tls_is_verified_against_the_certificates_httpx_trusts(
    certificate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate)
    with server(tls) as (url, seen):
        with ours() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
            client.get(f"{url}/plain")  # certifi's authorities do not know this certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # as httpx reads it
        with ours() as client:
            assert client.get(f"{url}/plain").json() == DOC
    assert seen == ["GET /plain"]


def test_a_read_response_is_freed_at_once_not_by_the_cycle_collector(
    make_sandbox: Callable[..., LexfulSandbox],
) -> None:
    """httpx's response and its stream point at each other: left so, every page's body
    waited for the cyclic collector, which a run calls rarely, and a load of 1,000,000
    contacts that handed dlt files peaked at 705 MB instead of 477 MB."""
    env = make_sandbox(contacts=50).credentials
    with LexfulClient(env["api_base_url"], env["account_id"], env["api_key_id"],
                      env["api_key_secret"]) as client:  # fmt: skip
        client.get_json("/v1/organizations", {"limit": 10})
        gc.collect()
        gc.disable()
        try:
            answer = client.get_json("/v1/assets/system.contact", {"limit": 50})
            left = [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
        finally:
            gc.enable()
    assert answer["items"], "the page came back empty"
    assert left == [], "a response outlived its request: a reference cycle keeps it"
