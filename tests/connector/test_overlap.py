"""Two runs of one pipeline never overlap: the second refuses, or waits with ``wait_s``."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from lexful_source.locking import ConcurrentRunError
from lexful_source.pipeline import RunSummary
from lexful_source.sandbox import LexfulSandbox, RequestInfo
from lexful_source.sandbox.catalogue import CONTACT

from .conftest import Loader
from .test_load import check


@pytest.fixture
def held_run(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> Iterator[tuple[LexfulSandbox, threading.Event, Future[RunSummary]]]:
    """A first run, held inside its first contacts page until the event is set."""
    sandbox = make_sandbox(contacts=200)
    inside, release = threading.Event(), threading.Event()

    def hold(info: RequestInfo) -> None:
        if info.path.endswith(CONTACT) and not release.is_set():
            inside.set()
            release.wait(30)

    sandbox.on_request = hold
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(duckdb_loader.run, sandbox)
        assert inside.wait(30), "the first run never reached the contacts"
        yield sandbox, release, first
        release.set()
        first.result(timeout=60)


def test_a_second_run_refuses_without_touching_state(
    duckdb_loader: Loader, held_run: tuple[LexfulSandbox, threading.Event, Future[RunSummary]]
) -> None:
    sandbox, release, first = held_run
    requests = sandbox.stats.requests
    with pytest.raises(ConcurrentRunError, match=r"another load of pipeline .* \(pid \d+"):
        duckdb_loader.run(sandbox)
    assert sandbox.stats.requests == requests, "the refused run must not call the API"
    release.set()
    first.result(timeout=60)
    check(duckdb_loader, sandbox)


def test_a_second_run_can_wait_for_the_first(
    duckdb_loader: Loader, held_run: tuple[LexfulSandbox, threading.Event, Future[RunSummary]]
) -> None:
    sandbox, release, first = held_run
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(duckdb_loader.run, sandbox, wait_s=60)
        threading.Timer(1.0, release.set).start()
        assert first.result(timeout=60).rows["system_contact"] == 200
        assert "system_contact" not in second.result(timeout=60).rows  # nothing left to load
    check(duckdb_loader, sandbox)


def test_a_killed_run_leaves_no_stale_lock(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    code = (
        "import sys, time\n"
        "from lexful_source.locking import exclusive_run\n"
        "with exclusive_run(sys.argv[1], sys.argv[2]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, duckdb_loader.pipeline_name, duckdb_loader.pipelines_dir],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    sandbox = make_sandbox(contacts=20)
    with pytest.raises(ConcurrentRunError):
        duckdb_loader.run(sandbox)
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert duckdb_loader.run(sandbox).rows["system_contact"] == 20
