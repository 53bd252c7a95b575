"""One load per pipeline at a time.

Two scheduled runs of the same pipeline would read and write the same cursors; the second
could record a cursor past data the first has not loaded yet. A lock file beside dlt's
pipeline directory serializes them. ``flock`` is released by the kernel when its holder
dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from dlt.common.pipeline import get_dlt_pipelines_dir

from .errors import LexfulError

POLL_S = 0.2


class ConcurrentRunError(LexfulError):
    """Another load of the same pipeline is running."""


@contextmanager
def exclusive_run(
    pipeline_name: str, pipelines_dir: str | None = None, wait_s: float = 0.0
) -> Iterator[None]:
    """Hold the pipeline's lock for the duration; wait up to ``wait_s`` for it, then refuse."""
    path = Path(pipelines_dir or get_dlt_pipelines_dir()) / f"{pipeline_name}.lexful.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    with open(path, "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.seek(0)
                    holder = lock.read().strip() or "another process"
                    raise ConcurrentRunError(
                        f"another load of pipeline '{pipeline_name}' is running ({holder}); "
                        "this run stopped before touching its state. Use --wait SECONDS "
                        "to queue behind it"
                    ) from None
                time.sleep(POLL_S)
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        lock.flush()
        try:
            yield
        finally:
            lock.seek(0)
            lock.truncate()
