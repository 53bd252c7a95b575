"""Parquet loader files a resource writes itself, for dlt to import as they are.

Handed Arrow tables, dlt's extract checks each one's schema and writes it to a Parquet
file on the thread that makes the tables, a third of a full load's extract. Here each
table's batches go to one file per table, written on a thread of its own (Arrow's
writer does not hold the interpreter lock), and dlt imports the finished files
(``dlt.mark.with_file_import``) at the resource's end. dlt writes nothing into an
imported file, so the file carries ``_dlt_load_id`` itself; its columns are in the
order and with the nullability the resource's hints give, or dlt's normalize rewrites
it, which costs about as much again.

One resource imports the files of its parent and child tables with hints that are
functions of the item (``FILE_HINTS``): a file import with hints of its own cannot make
a table variant, and dlt merges hints a resource is given into its own.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlt.common.schema.typing import C_DLT_LOAD_ID as LOAD_ID

from .errors import LoaderFileError

if TYPE_CHECKING:  # Arrow is imported with the first table: a run with no changes has none
    import pyarrow as pa
    import pyarrow.parquet as pq

LOAD_ID_HINT = {LOAD_ID: {"name": LOAD_ID, "data_type": "text", "nullable": False}}
# dlt calls these with the item a file import carries: that table's hints (``import_item``)
FILE_HINTS: dict[str, Any] = {
    key: (lambda item, key=key: item.get(key))
    for key in ("table_name", "write_disposition", "primary_key", "merge_key", "columns")
}
WRITTEN_BY = {b"written_by": b"lexful_source"}  # in each file's metadata: what made it
_WRITER: ThreadPoolExecutor | None = None
_WRITER_LOCK = threading.Lock()


def _writer() -> ThreadPoolExecutor:
    """One writing thread for the process: the resources take turns on one extract thread,
    so their writes come one at a time anyway."""
    global _WRITER
    with _WRITER_LOCK:
        if _WRITER is None:
            _WRITER = ThreadPoolExecutor(1, thread_name_prefix="lexful-parquet")
        return _WRITER


class LoaderFiles:
    """The Parquet files of one resource's tables in ``directory``, which it empties first
    (a killed run's files are never imported). One batch at most waits to be written:
    memory stays what handing dlt the tables would take."""

    def __init__(self, directory: Path, load_id: str) -> None:
        self.directory, self.load_id = directory, load_id
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        # (table, schema) -> writer: a batch whose schema differs starts another file
        self._writers: dict[tuple[str, pa.Schema], tuple[Path, pq.ParquetWriter]] = {}
        self._rows: Counter[Path] = Counter()
        self._pending: Future[None] | None = None

    def write(self, tables: list[tuple[str, pa.Table]]) -> None:
        """Queue a batch's tables for their files once the batch before is written; raises
        that batch's error. The batch's tables go together: waiting between them held the
        thread that makes the tables for most of a batch's writing."""
        import pyarrow as pa

        self._wait()
        field, stamp = pa.field(LOAD_ID, pa.string(), nullable=False), pa.scalar(self.load_id)
        stamped = [
            (table_name, table.append_column(field, pa.repeat(stamp, table.num_rows)))
            for table_name, table in tables
        ]
        self._pending = _writer().submit(self._write_all, stamped)

    def finish(self) -> list[tuple[str, Path, int]]:
        """(table, file, rows) of every file, each written and closed."""
        self._wait()
        files = []
        for (table_name, _), (path, writer) in self._writers.items():
            with _naming(table_name, path):
                writer.close()
            files.append((table_name, path, self._rows[path]))
        self._writers.clear()
        return files

    def discard(self) -> None:
        """Remove the files: dlt has its own copies of those it imported."""
        # after a failure, the error already raised is the one that counts
        with suppress(Exception):
            self._wait()
        for _, writer in self._writers.values():
            with suppress(Exception):
                writer.close()
        self._writers.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write_all(self, tables: list[tuple[str, pa.Table]]) -> None:
        for table_name, table in tables:
            self._write(table_name, table)

    def _write(self, table_name: str, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        key = (table_name, table.schema)
        path, writer = self._writers.get(key) or (self._next_path(table_name), None)
        with _naming(table_name, path):
            if writer is None:
                schema = table.schema.with_metadata({**(table.schema.metadata or {}), **WRITTEN_BY})
                writer = pq.ParquetWriter(path, schema)
                self._writers[key] = (path, writer)
            writer.write_table(table)
        self._rows[path] += table.num_rows

    def _next_path(self, table_name: str) -> Path:
        return self.directory / f"{table_name}.{len(self._writers)}.parquet"


@contextmanager
def _naming(table_name: str, path: Path) -> Iterator[None]:
    """Arrow's errors of the disk (a full one, a directory gone) do not name the file."""
    try:
        yield
    except OSError as error:
        raise LoaderFileError(
            f"could not write the loader file of table {table_name!r} ({path}): {error}"
        ) from error


def import_item(path: Path, rows: int, hints: dict[str, Any]) -> Any:
    """The item that hands dlt one table's file; its hints become the ``FILE_HINTS``."""
    import dlt

    carried = {**hints, "columns": {**hints.get("columns", {}), **LOAD_ID_HINT}}
    return dlt.mark.with_file_import(str(path), "parquet", rows, hints=[carried])
