"""Keeping a long load's memory flat, so a million contacts fit where ten thousand do.

Profiles of a load of 1,000,000 contacts showed the process growing through the read
although the Python objects alive stayed under 100 MB: freed memory was kept by the
allocators. Arrow's default pool (mimalloc) kept what each batch of tables had used,
and glibc raised its thresholds after the first large frees, after which it neither
returned freed memory nor served large blocks from mappings it could give back. With
Arrow on its jemalloc pool and glibc's thresholds held at their initial values, the read
stays flat (about 420 MB at a million contacts instead of 600 and rising) and is no
slower. DuckDB bounds its own memory on a first load (pipeline.FIRST_LOAD_MEMORY_LIMIT).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
import threading

log = logging.getLogger("lexful_source")
# mallopt(3) parameters, and glibc's initial value of both thresholds (128 KiB)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
GLIBC_THRESHOLD = 128 * 1024


_JEMALLOC_WANTED = threading.Event()  # set by a run; Arrow may not be imported yet


def keep_memory_flat() -> None:
    """Set the process's allocators as above; a setting the user made wins (the
    ``ARROW_DEFAULT_MEMORY_POOL`` and ``MALLOC_*_THRESHOLD_`` variables). Arrow's pool is
    set when Arrow is imported (``arrow_imported``), at once if it is already. Both last
    for the rest of the process; neither changes what is loaded."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        _JEMALLOC_WANTED.set()
        if "pyarrow" in sys.modules:
            arrow_imported()
    if platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL("libc.so.6")
    for name, parameter in (("TRIM", M_TRIM_THRESHOLD), ("MMAP", M_MMAP_THRESHOLD)):
        if f"MALLOC_{name}_THRESHOLD_" not in os.environ:
            libc.mallopt(parameter, GLIBC_THRESHOLD)


def arrow_imported() -> None:
    """Put Arrow on jemalloc if a run asked for it. Called by tables.py, the first of this
    source's modules to import Arrow: a run with nothing to load imports none of them
    (records.py), and keep_memory_flat must not import Arrow for it either."""
    if not _JEMALLOC_WANTED.is_set():
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc
        log.debug("pyarrow has no jemalloc pool; keeping %s", pa.default_memory_pool())
