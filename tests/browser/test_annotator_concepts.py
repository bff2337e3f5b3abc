"""Several concepts in one sitting: `va.Annotator(lib, tasks=[...])` shows one concept at a
time; the number keys (or the tabs) switch, on the same page, so that a clip labelled for one
concept is labelled for another without leaving it; each concept keeps its own labels, and the
widget gives them as one wide table. In a real JupyterLab in headless Chromium.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from annotator_page import ROOT, current, wait_widget
from harness import cell_count, open_notebook, run_all, run_code_in_new_cell, write_notebook

pytestmark = pytest.mark.browser


def _tabs(page: Any) -> list[tuple[str, str]]:
    return [
        (t["text"], t["selected"])
        for t in page.evaluate(
            """(sel) => [...document.querySelector(sel).querySelectorAll('[data-testid=concept-tab]')]
                 .map((t) => ({ text: t.textContent, selected: t.getAttribute('aria-selected') }))""",
            ROOT,
        )
    ]


def _decisions(page: Any) -> dict[str, str]:
    return dict(
        page.evaluate(
            """(sel) => [...document.querySelector(sel).querySelectorAll('[data-testid=batch] [data-testid=clip]')]
                 .map((c) => [c.dataset.clipId, c.dataset.decision])""",
            ROOT,
        )
    )


def _wait_labels(page: Any, shown: str, n: int) -> None:
    """Concept `shown` is shown, every label acknowledged, and its tab counts `n` labels."""
    page.wait_for_function(
        """([sel, shown, n]) => { const r = document.querySelector(sel);
             const tab = r.querySelector(`[data-testid=concept-tab][data-concept="${shown}"]`);
             return r.dataset.concept === shown && r.dataset.saved === 'true'
               && tab.getAttribute('aria-selected') === 'true'
               && tab.textContent.endsWith(` · ${n}`); }""",
        arg=[ROOT, shown, n],
    )


def _stored(store: Path) -> dict[str, dict[str, bool]]:
    from va_widgets.store import LabelStore

    with LabelStore(store) as db:
        out = {}
        for task in ("car", "night"):
            cur = db.current(task)
            out[task] = dict(zip(cur["clip_id"], cur["label"].astype(bool), strict=True))
    return out


def test_several_concepts_on_one_page(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    store = tmp_path / "c.sqlite"
    server = start_jupyter("lab")
    cells = [
        "import va_widgets as va\n"
        f"lib = va.ClipLibrary.open({str(sample_library)!r})\n"
        f"ann = va.Annotator(lib, tasks=['car', 'night'], store={str(store)!r})\n"
        "ann"
    ]
    write_notebook(server.root_dir / "concepts.ipynb", cells)
    open_notebook(page, server, "concepts.ipynb")
    run_all(page)
    wait_widget(page)
    n_cells = cell_count(page)
    assert _tabs(page) == [("1 car · 0", "true"), ("2 night · 0", "false")]
    first = current(page)
    page.keyboard.press("a")
    page.keyboard.press("x")
    _wait_labels(page, "car", 2)
    second = next(c for c, d in _decisions(page).items() if d == "negative")
    on_page = list(_decisions(page))

    page.keyboard.press("2")  # night, on the same page
    _wait_labels(page, "night", 0)
    assert list(_decisions(page)) == on_page and set(_decisions(page).values()) == {""}
    page.click(f"{ROOT} [data-clip-id='{first}']")  # labelled positive for car: now for night
    page.keyboard.press("x")
    _wait_labels(page, "night", 1)
    assert _tabs(page) == [("1 car · 2", "false"), ("2 night · 1", "true")]

    page.keyboard.press("1")  # car again: its own decisions on the same cards
    _wait_labels(page, "car", 2)
    page.wait_for_function(
        "([sel, id]) => document.querySelector(sel)"
        ".querySelector(`[data-clip-id='${id}']`).dataset.decision === 'positive'",
        arg=[ROOT, first],
    )
    assert _decisions(page)[second] == "negative"
    assert _stored(store) == {"car": {first: True, second: False}, "night": {first: False}}
    assert cell_count(page) == n_cells
    cell_types = page.evaluate(
        """() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
                   return Array.from({ length: cells.length }, (_, i) => cells.get(i).type); }"""
    )
    assert set(cell_types) == {"code"}, "a number key reached JupyterLab (a heading cell)"
    wide = json.loads(run_code_in_new_cell(page, "print(ann.labels_wide().to_json())"))
    assert wide == {"car": {first: True, second: False}, "night": {first: False, second: None}}
    print(f"concepts test: {time.monotonic() - t0:.1f} s")
