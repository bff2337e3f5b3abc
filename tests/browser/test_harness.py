"""Proof that the harness drives a real JupyterLab 4 and Notebook 7 with an anywidget.

A tiny counter widget, defined inline, takes keyboard focus and counts 'a' key presses,
calling preventDefault/stopPropagation so JupyterLab's own 'a' (insert cell above) does not
fire. Notebook 7.6 (unlike JupyterLab 4.6) matches shortcuts in the capture phase on
`document`, before the widget's listener runs; there the widget's root element also needs
the attribute `data-lm-suppress-shortcuts`, which makes Lumino ignore shortcuts for key
events coming from inside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from harness import (
    JupyterServer,
    cell_count,
    open_notebook,
    run_all,
    run_code_in_new_cell,
    screenshot,
    set_theme,
    wait_in_kernel,
    wait_theme,
    write_notebook,
)

pytestmark = pytest.mark.browser

COUNTER_CELL = '''
import anywidget
import traitlets


class Counter(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const box = document.createElement("div");
      box.className = "va-test-counter";
      box.tabIndex = 0;
      if (model.get("suppress_shortcuts")) box.setAttribute("data-lm-suppress-shortcuts", "");
      box.style.cssText = "padding: 40px; font-size: 24px; " +
        "color: var(--jp-ui-font-color1); background: var(--jp-layout-color2);";
      const show = () => { box.textContent = `count: ${model.get("value")}`; };
      show();
      model.on("change:value", show);
      box.addEventListener("keydown", (event) => {
        if (event.key !== "a") return;
        event.preventDefault();
        event.stopPropagation();
        model.set("value", model.get("value") + 1);
        model.save_changes();
      });
      el.appendChild(box);
    }
    export default { render };
    """
    value = traitlets.Int(0).tag(sync=True)
    suppress_shortcuts = traitlets.Bool(False).tag(sync=True)


counter = Counter(suppress_shortcuts=SUPPRESS)
counter
'''


def _notebook(server: JupyterServer, suppress_shortcuts: bool) -> str:
    cells = [f"x = 41\nSUPPRESS = {suppress_shortcuts}", COUNTER_CELL]
    write_notebook(server.root_dir / "counter.ipynb", cells)
    return "counter.ipynb"


def _mean_brightness(png: Path) -> float:
    from PIL import Image, ImageStat

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    with Image.open(png) as im:
        assert im.size == (1280, 800)
        stat = ImageStat.Stat(im.convert("L"))
    assert stat.stddev[0] > 5, f"{png} is (almost) a single colour"
    return float(stat.mean[0])


def _check_theme_switch(page: Any, stem: Path, now: str, then: str) -> None:
    """Screenshot the page in theme ``now``, switch to ``then``, screenshot again
    (``<stem>-<theme>.png``): the dark one must be clearly darker."""
    shots = {theme: stem.with_name(f"{stem.name}-{theme}.png") for theme in (now, then)}
    screenshot(page, shots[now])
    set_theme(page, then)
    screenshot(page, shots[then])
    assert _mean_brightness(shots["dark"]) < _mean_brightness(shots["light"]) - 60


def _wait_count(page: Any, n: int) -> None:
    page.wait_for_function(
        "(n) => document.querySelector('.va-test-counter').textContent === `count: ${n}`", arg=n
    )


def _wait_cells(page: Any, n: int) -> None:
    page.wait_for_function(
        "(n) => window.jupyterapp.shell.currentWidget.content.model.cells.length === n", arg=n
    )


def _label_with_keyboard(page: Any, suppress_shortcuts: bool) -> int:
    """Focus the widget and press keys; 'a' is counted by the widget and inserts no cell.

    Returns the widget's count. Control key 'b' (JupyterLab: insert cell below), not handled
    by the widget: without `data-lm-suppress-shortcuts` it reaches the notebook and inserts a
    cell (so the cell-count check can see a leak); with it, it does not.
    """
    box = page.locator(".va-test-counter")
    box.wait_for(state="visible")
    assert box.inner_text() == "count: 0"
    cells = cell_count(page)
    box.click()
    assert page.evaluate("() => document.activeElement.classList.contains('va-test-counter')")
    page.keyboard.press("a")
    page.keyboard.press("a")
    _wait_count(page, 2)
    assert cell_count(page) == cells, "pressing 'a' in the widget also inserted a cell"
    page.keyboard.press("b")
    if not suppress_shortcuts:
        _wait_cells(page, cells + 1)
        return 2
    page.keyboard.press("a")  # keys are handled in order: once this counts, 'b' is done
    _wait_count(page, 3)
    assert cell_count(page) == cells, "'b' reached the notebook despite the attribute"
    return 3


def test_lab_keyboard_kernel_and_themes(
    page: Any, jupyter_lab: JupyterServer, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    # JupyterLab 4 handles shortcuts in the bubble phase: stopPropagation alone is enough.
    open_notebook(page, jupyter_lab, _notebook(jupyter_lab, suppress_shortcuts=False))
    run_all(page)
    count = _label_with_keyboard(page, suppress_shortcuts=False)
    assert wait_in_kernel(page, "counter.value", str(count)) == str(count)
    assert run_code_in_new_cell(page, "print(x + 1)") == "42"

    _check_theme_switch(page, tmp_path / "lab", "light", "dark")
    print(f"lab test body: {time.monotonic() - t0:.1f} s")


def test_notebook7_dark_from_settings(page: Any, start_jupyter: Any, tmp_path: Path) -> None:
    t0 = time.monotonic()
    server = start_jupyter("notebook", theme="dark")
    # Notebook 7 handles shortcuts in the capture phase, before the widget's listener sees
    # the key: the widget must carry data-lm-suppress-shortcuts.
    open_notebook(page, server, _notebook(server, suppress_shortcuts=True))
    wait_theme(page, "dark")
    run_all(page)
    count = _label_with_keyboard(page, suppress_shortcuts=True)
    assert wait_in_kernel(page, "counter.value", str(count)) == str(count)

    _check_theme_switch(page, tmp_path / "nb7", "dark", "light")
    print(f"notebook 7 test body: {time.monotonic() - t0:.1f} s")
