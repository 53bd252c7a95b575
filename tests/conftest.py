"""Fixtures shared by every test: the local Lexful server and an HTTP client for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest

from lexful_source.sandbox import DatasetSize, LexfulSandbox, SandboxSettings


class Api:
    """A thin client for tests: gets a token once and sends the documented headers."""

    def __init__(self, sandbox: LexfulSandbox, timeout: float = 10.0) -> None:
        self.sandbox = sandbox
        creds = sandbox.credentials
        self.account_id = creds["account_id"]
        self.http = httpx.Client(base_url=creds["api_base_url"], timeout=timeout)
        self.token = self.fetch_token()
        self.http.headers.update(
            {"Authorization": f"Bearer {self.token}", "X-Account-ID": self.account_id}
        )

    def fetch_token(self) -> str:
        creds = self.sandbox.credentials
        response = self.http.post(
            "/v1/auth/token",
            headers={"X-Account-Id": creds["account_id"]},
            json={"id": creds["api_key_id"], "secret": creds["api_key_secret"]},
        )
        response.raise_for_status()
        return response.json()[self.sandbox.settings.token_field]

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.http.get(path, params=params)

    def items(self, path: str, **params: object) -> list[dict]:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def all_items(self, path: str, page: int = 1000, **params: object) -> list[dict]:
        """Every item, paging with limit/offset until offset >= total."""
        out: list[dict] = []
        offset = 0
        while True:
            doc = self.get(path, limit=page, offset=offset, **params).json()
            out.extend(doc["items"])
            offset += page
            if offset >= doc["total"]:
                return out

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., LexfulSandbox]]:
    """Start sandboxes with given settings; all are stopped when the test ends."""
    with ExitStack() as stack:

        def start(**settings: object) -> LexfulSandbox:
            if "contacts" in settings:
                settings["size"] = DatasetSize(contacts=settings.pop("contacts"))  # type: ignore[arg-type]
            return stack.enter_context(LexfulSandbox(SandboxSettings(**settings)))  # type: ignore[arg-type]

        yield start


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[LexfulSandbox]:
    """A read-only sandbox for tests that only query (never mutate it in a test!)."""
    with LexfulSandbox(SandboxSettings(size=DatasetSize(contacts=300))) as sandbox:
        yield sandbox


@pytest.fixture
def api_for() -> Iterator[Callable[[LexfulSandbox], Api]]:
    clients: list[Api] = []

    def make(sandbox: LexfulSandbox, timeout: float = 10.0) -> Api:
        clients.append(Api(sandbox, timeout))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def shared_api(shared_sandbox: LexfulSandbox, api_for: Callable[[LexfulSandbox], Api]) -> Api:
    return api_for(shared_sandbox)
