"""Every notebook runs top to bottom on the demo load, draws its plots, and is committed
without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.analytics.conftest import Warehouse
from tests.connector.test_cli import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code), (
        f"clear the outputs of {path.name} before committing it"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_demo_load_and_draws_its_plots(
    path: Path, demo_duckdb: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in demo_duckdb.env.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},  # run from notebooks/, as Jupyter does
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    plots = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(plots) >= 2, f"{path.name} drew {len(plots)} plots"
    errors = [o for o in outputs if o.output_type == "error"]
    warnings = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not errors and not warnings, (errors, warnings)
