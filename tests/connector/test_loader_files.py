"""DuckDB loads hand dlt the Parquet files the source wrote (loader_files.py): imported as
written, the same tables as the truth, and nothing of them left behind."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lexful_source.errors import LoaderFileError
from lexful_source.loader_files import LOAD_ID, WRITTEN_BY, LoaderFiles
from lexful_source.pipeline import is_reference_table
from lexful_source.resources import LOADER_FILES_DIR
from lexful_source.sandbox import LexfulSandbox, ManualClock
from lexful_source.sandbox.catalogue import CONTACT

from .conftest import Loader
from .truth import assert_matches, expected_tables


def loaded_files(loader: Loader) -> dict[str, list[Path]]:
    """The files of every finished load of the loader's pipeline, by load."""
    root = Path(loader.pipelines_dir) / loader.pipeline_name / "load" / "loaded"
    return {d.name: sorted(d.glob("completed_jobs/*.parquet")) for d in root.iterdir()}


def written_here(path: Path) -> bool:
    metadata = pq.read_metadata(path).metadata or {}
    return all(metadata.get(key) == value for key, value in WRITTEN_BY.items())


def test_duckdb_imports_the_source_files_as_written(
    duckdb_loader: Loader, make_sandbox: Callable[..., LexfulSandbox]
) -> None:
    clock = ManualClock("2026-02-01T09:00:00Z")
    sandbox = make_sandbox(contacts=1500, clock=clock)
    # a killed run's file, which must not be imported
    stale = Path(duckdb_loader.pipelines_dir, duckdb_loader.pipeline_name, LOADER_FILES_DIR)
    (stale / "system_contact").mkdir(parents=True)
    pq.write_table(
        pa.table({"id": ["stale"]}), stale / "system_contact" / "system_contact.0.parquet"
    )

    duckdb_loader.run(sandbox)
    assert_matches(duckdb_loader.tables(list(expected_tables(sandbox))), sandbox)
    (files,) = loaded_files(duckdb_loader).values()
    tables = {f.name.split(".")[0]: written_here(f) for f in files}
    theirs = {t for t, ours in tables.items() if not ours}
    # dlt writes its own tables' files and the reference tables' (replaced, as records)
    assert all(t.startswith("_dlt") or is_reference_table(t) for t in theirs), theirs
    assert {"organizations", "system_contact", "system_contact__contact_methods"} <= {
        t for t, ours in tables.items() if ours
    }
    assert not any(stale.rglob("*")), "the source's files outlived the run"

    live = [r["id"] for r in sandbox.truth(CONTACT, include_deleted=False)]
    clock.advance(60)
    sandbox.app.edit_asset(CONTACT, live[0], {"contact_methods": [{"type": "Fax", "value": "1"}]})
    second = duckdb_loader.run(sandbox)
    assert second.rows["system_contact"] == 1
    assert_matches(duckdb_loader.tables(list(expected_tables(sandbox))), sandbox)
    for load_files in loaded_files(duckdb_loader).values():
        contacts = [f for f in load_files if f.name.startswith("system_contact.")]
        assert contacts and all(written_here(f) for f in contacts)


def test_loader_files_one_file_per_table_and_schema(tmp_path: Path) -> None:
    files = LoaderFiles(tmp_path / "files", "1234.5")
    files.write(
        [("parent", pa.table({"id": ["a", "b"]})), ("child", pa.table({"asset_id": ["a"]}))]
    )
    files.write([("parent", pa.table({"id": ["c"]}))])
    files.write([("parent", pa.table({"id": [1]}))])  # another schema: another file
    written = files.finish()
    assert [(t, n) for t, _, n in written] == [("parent", 3), ("child", 1), ("parent", 1)]
    first = pq.read_table(written[0][1])
    assert first.column("id").to_pylist() == ["a", "b", "c"]
    assert first.column(LOAD_ID).to_pylist() == ["1234.5"] * 3
    assert not first.schema.field(LOAD_ID).nullable
    assert all(written_here(path) for _, path, _ in written)
    files.discard()
    assert not (tmp_path / "files").exists()


def test_a_file_that_cannot_be_written_is_named_with_its_table(tmp_path: Path) -> None:
    files = LoaderFiles(tmp_path / "files", "1234.5")
    shutil.rmtree(files.directory)
    files.directory.write_text("not a directory")  # the directory replaced under the run
    files.write([("parent", pa.table({"id": ["a"]}))])
    with pytest.raises(LoaderFileError) as failure:
        files.finish()
    assert "loader file of table 'parent'" in str(failure.value)
    assert str(files.directory / "parent.0.parquet") in str(failure.value)
    files.discard()  # after the failure: raises nothing more
