"""examples/quickstart.ipynb runs top to bottom in a fresh kernel, in an empty directory, and
shows its figure as an image (so the notebook cannot rot)."""

from __future__ import annotations

import os

import pytest
from conftest import ROOT

nbclient = pytest.importorskip("nbclient")  # the dev extra has it; a bare install skips this
nbformat = pytest.importorskip("nbformat")

pytestmark = pytest.mark.slow


def test_the_quickstart_notebook_runs_and_shows_its_figure(tmp_path, monkeypatch):
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEO_PROJECT_ROOT", str(tmp_path))
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on a failure
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 1, "the episode figure did not display as an image"
    assert not any("<Figure size" in o.get("data", {}).get("text/plain", "") for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert "ProtoNets" in text and "LEO (amortized)" in text
    assert (tmp_path / "outputs" / "runs").is_dir()  # runs land where the user is
    assert os.listdir(tmp_path / "outputs" / "runs")
