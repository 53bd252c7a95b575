"""Every notebook runs top to bottom on the demo load, draws its plots, and is committed
without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lexful_source.sandbox import LexfulSandbox
from tests.analytics.conftest import Warehouse, current, expected_references, reachable
from tests.connector.test_cli import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def expected_lines(sandbox: LexfulSandbox) -> dict[str, str]:
    """The summary line each notebook prints, worked out from the server's truth."""
    contacts = current(sandbox.truth("system.contact"))
    n = len(contacts)
    email = sum(1 for c in contacts if not reachable(c, "Email"))
    phone = sum(1 for c in contacts if not reachable(c, "Phone", "Mobile"))
    either = sum(1 for c in contacts if not reachable(c, "Email", "Phone", "Mobile"))
    references = expected_references(sandbox)
    unresolved = sum(count for key, count in references.items() if key[-1] != "current")
    return {
        "01_what_is_in_lexful.ipynb": (
            f"{n:,} current contacts: {email:,} without an email ({email / n:.0%}), "
            f"{phone:,} without a phone ({phone / n:.0%}), {either:,} with neither"
        ),
        "02_data_health.ipynb": (
            f"{references.total():,} references; {unresolved:,} do not point to a current asset"
        ),
    }


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
    path: Path,
    demo_duckdb: Warehouse,
    demo_sandbox: LexfulSandbox,
    monkeypatch: pytest.MonkeyPatch,
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
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert expected_lines(demo_sandbox)[path.name] in printed, printed
