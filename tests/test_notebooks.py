"""The example notebooks run headless (nbclient) without an error; 03 needs weights."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the 'notebooks' extra is not installed")
nbclient = pytest.importorskip("nbclient", reason="the 'notebooks' extra is not installed")
pytest.importorskip("ipykernel", reason="the 'notebooks' extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize(
    "name", ["01_quickstart.ipynb", "02_agent_tool.ipynb", "03_real_models.ipynb"]
)
def test_notebooks_are_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} is committed with outputs"
            assert cell.execution_count is None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_agent_tool.ipynb"])
def test_notebook_runs_headless(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout
    monkeypatch.setenv("SEAL_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{name} displayed no picture"


@pytest.mark.slow
def test_the_real_models_notebook_skips_cleanly_without_weights(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    notebook = nbformat.read(EXAMPLES / "03_real_models.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "Skipping the real-model cells" in printed
    assert "HF_HUB_OFFLINE" in printed
