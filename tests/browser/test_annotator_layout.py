"""Layout and theme: the widget takes the keyboard once when its cell is run (so `a` right after
Shift+Enter labels instead of inserting a cell), fits 1024 px and narrower without overflow
(head, toolbar and status wrap), and `ann.plot()` follows JupyterLab's dark theme. In a real
JupyterLab in headless Chromium.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import pytest
from annotator_page import ROOT, TASK, wait_saved
from harness import (
    cell_count,
    open_notebook,
    run_code_in_new_cell,
    set_theme,
    wait_in_kernel,
    wait_kernel_idle,
    write_notebook,
)

pytestmark = pytest.mark.browser

# Parts of the widget that stick out of it, at the current width: [testid or class, overflow px].
_OVERFLOW_JS = """(sel) => {
  const root = document.querySelector(sel);
  const box = root.getBoundingClientRect();
  const out = [];
  for (const el of root.querySelectorAll('*')) {
    if (el.closest('[hidden]') || el.closest('.va-help') || el.closest('.va-player')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const over = Math.max(r.right - box.right, box.left - r.left);
    if (over > 1) out.push([el.dataset.testid || el.className || el.tagName, Math.round(over)]);
  }
  return { out, scroll: root.scrollWidth - root.clientWidth, width: box.width };
}"""


def _png_brightness(page: Any, cell: int) -> float:
    """Mean brightness (0-255) of the PNG that cell `cell` shows."""
    from PIL import Image, ImageStat

    data = page.evaluate(
        """(i) => window.jupyterapp.shell.currentWidget.content.widgets[i]
                 .model.outputs.toJSON().map((o) => (o.data || {})['image/png']).find(Boolean)""",
        cell,
    )
    assert data, "the cell shows no PNG"
    with Image.open(io.BytesIO(base64.b64decode(data))) as im:
        return float(ImageStat.Stat(im.convert("L")).mean[0])


def test_focus_on_run_layout_and_plot_theme(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    server = start_jupyter("lab")
    page.set_viewport_size({"width": 1024, "height": 768})
    cells = [
        f"import va_widgets as va\nlib = va.ClipLibrary.open({str(sample_library)!r})",
        f"ann = va.Annotator(lib, task={TASK!r}, store={str(tmp_path / 'f.sqlite')!r}, "
        "target=50)\nann",
    ]
    write_notebook(server.root_dir / "focus.ipynb", cells)
    open_notebook(page, server, "focus.ipynb")
    page.evaluate(
        """() => { const nb = window.jupyterapp.shell.currentWidget.content;
                   nb.activeCellIndex = 0; nb.mode = 'command'; nb.node.focus(); }"""
    )
    page.keyboard.press("Shift+Enter")  # the first cell; the widget's cell becomes active
    wait_kernel_idle(page)
    page.keyboard.press("Shift+Enter")  # run the widget's cell, as a user does
    page.wait_for_function(
        """(sel) => { const r = document.querySelector(sel);
             return r && r.dataset.clipId && r.querySelector('[aria-current=true] img.va-on'); }""",
        arg=ROOT,
    )
    n_cells = cell_count(page)
    page.keyboard.press("a")  # no click: the widget took the keyboard when its cell ran
    wait_saved(page, {"positives": 1, "negatives": 0, "skipped": 0})
    assert cell_count(page) == n_cells, "'a' reached JupyterLab"

    # fits 1024 px, and narrower, without sticking out: the head, toolbar and status wrap
    for width in (1024, 800, 640):
        page.set_viewport_size({"width": width, "height": 768})
        page.wait_for_timeout(200)  # a resize is laid out on the next frames
        got = page.evaluate(_OVERFLOW_JS, ROOT)
        assert got["out"] == [] and got["scroll"] <= 0, (width, got)
        query = page.locator(f"{ROOT} [data-testid=query-input]").bounding_box()
        assert query["width"] >= 120, (width, query)
    page.set_viewport_size({"width": 1024, "height": 768})

    # ann.plot() in JupyterLab Light, then Dark: the figure follows the theme
    run_code_in_new_cell(page, "ann.plot()")
    light = _png_brightness(page, cell_count(page) - 1)
    set_theme(page, "dark")
    page.wait_for_function(
        "() => !!document.querySelector('[data-testid=va-annotator]')", polling=100
    )
    assert wait_in_kernel(page, "ann.theme", "dark") == "dark"  # the view told the kernel
    run_code_in_new_cell(page, "ann.plot()")
    dark = _png_brightness(page, cell_count(page) - 1)
    print(f"plot brightness: light {light:.0f}, dark {dark:.0f}")
    assert light > 180 and dark < 80, (light, dark)
    print(f"layout test: {time.monotonic() - t0:.1f} s")
