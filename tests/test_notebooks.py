"""The tutorial notebooks run headless, top to bottom, and produce what they promise.

Each notebook is executed with nbclient in a real ``python3`` kernel whose working directory is
a fresh tmp dir (the notebooks write everything under a folder they create there), offline
(``HF_HUB_OFFLINE=1``: the CLIP weights cannot be fetched, so the notebooks must go through the
pixel-statistics fallback and say so). The committed files must carry no outputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 600  # generous: CLIP indexing, where weights exist, is slow on a CPU
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _execute(name: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits it: no hub retries
    nb = _read(name)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails
    return nb


def _outputs(nb: nbformat.NotebookNode) -> list[tuple[int, dict[str, Any]]]:
    """(cell index, output) for every output of every code cell."""
    return [
        (i, out)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    ]


def _stream(nb: nbformat.NotebookNode, name: str) -> str:
    return "".join(
        out["text"]
        for _, out in _outputs(nb)
        if out["output_type"] == "stream" and out["name"] == name
    )


def _cell_with(nb: nbformat.NotebookNode, text: str) -> int:
    hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in c.source]
    assert hits, f"no code cell contains {text!r}"
    return hits[0]


def _mimes(nb: nbformat.NotebookNode, cell: int | None = None) -> list[str]:
    return [
        mime for i, out in _outputs(nb) if cell is None or i == cell for mime in out.get("data", {})
    ]


@pytest.mark.parametrize("name", ["quickstart.ipynb", "sample_efficiency.ipynb"])
def test_notebook_is_committed_without_outputs(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{name}: clear the outputs of cells {dirty} before committing"
    absolute = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and re.search(r"""["'](/|[A-Za-z]:\\)\w""", c.source)
    ]
    assert not absolute, f"{name}: cells {absolute} use absolute paths"


@pytest.mark.slow
def test_quickstart_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _execute("quickstart.ipynb", tmp_path, monkeypatch)

    lines = [s for s in _stream(nb, "stdout").splitlines() if s.startswith("quickstart summary:")]
    assert len(lines) == 1, "the last cell prints one summary line"
    summary = json.loads(lines[0].split(":", 1)[1])

    if "pixel statistics" in summary["embedder"]:  # offline: the fallback must be visible
        assert "EmbedderFallbackWarning" in _stream(nb, "stderr")
        assert "TEXT SEARCH IS OFF" in _stream(nb, "stderr")
    assert summary["clips"] >= 100
    assert summary["labels"] == 30
    assert 2 <= summary["positives"] <= 28
    assert summary["estimated_ap"] is not None and summary["estimated_ap"] > 0.7
    assert summary["new_video_ap"] > 0.7

    # everything was written under the notebook's own working folder, in the kernel's cwd
    work = tmp_path / "va_quickstart"
    assert (work / "library" / "labels.sqlite").is_file()
    for path in summary["exported"]:
        assert not Path(path).is_absolute()
        assert (tmp_path / path).is_file() and (tmp_path / path).stat().st_size > 0
    assert {Path(p).suffix for p in summary["exported"]} == {".csv", ".parquet", ".skops"}
    assert list((work / "new_video").glob("*.mp4"))

    # the Annotator was displayed as a widget, and the figures as images
    assert WIDGET_VIEW in _mimes(nb, _cell_with(nb, "va.Annotator(lib"))
    assert "image/png" in _mimes(nb, _cell_with(nb, "ann.plot()"))
    assert "image/png" in _mimes(nb, _cell_with(nb, "clf.plot_timeline("))


@pytest.mark.slow
def test_sample_efficiency_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _execute("sample_efficiency.ipynb", tmp_path, monkeypatch)

    out = _stream(nb, "stdout")
    assert "270 simulated sessions" in out  # 3 seeds x 10 digit tasks x 9 policies
    assert _mimes(nb).count("image/png") >= 2  # the sample-video and the digits figures
    curves = _cell_with(nb, "per_task = digits.groupby")
    assert "image/png" in _mimes(nb, curves)
    tables = "".join(
        out["data"].get("text/plain", "")
        for i, out in _outputs(nb)
        if i == curves and "data" in out
    )
    assert "auto" in tables and "borderline" in tables
    bias = _cell_with(nb, "CV AP on the labels")
    assert any(
        "held-out AP" in o.get("data", {}).get("text/plain", "")
        for i, o in _outputs(nb)
        if i == bias
    )
    seconds = re.search(r"notebook ran in (\d+) s", out)
    assert seconds, "the last cell reports the run time"
    assert (tmp_path / "va_sample_efficiency" / "library").is_dir()
