"""The Annotator hosted by marimo (``mo.ui.anywidget``), driven with the keyboard in Chromium.

A marimo notebook shows an Annotator on the sample library; in edit mode (where marimo's own
single-key commands live: ``a`` creates a cell, ``x`` cuts one) and in run mode (an app), the
label keys label clips, the labels reach the SQLite store on disk, and the keys the widget
handles never reach marimo: they stop inside the widget's shadow root, no cell is added or
removed and no dialog opens. Waits are condition-based, bounded by the harness's time-out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from annotator_page import ROOT, TASK
from harness import TIMEOUT_MS
from marimo_host import DEEP_JS, write_marimo_notebook

pytestmark = pytest.mark.browser

# The widget's root, its current clip id, whether its preview is decoded, its save state.
STATE_JS = """(sel) => {
  const root = window.__vaDeep(sel);
  if (!root) return null;
  const card = root.querySelector('[data-testid=clip][aria-current=true]');
  const img = card && card.querySelector('img.va-on');
  return { clip: root.dataset.clipId || '', saved: root.dataset.saved, pending: root.dataset.pending,
           cards: root.querySelectorAll('[data-testid=batch] [data-testid=clip]').length,
           decoded: !!(img && img.complete && img.naturalWidth > 0),
           focused: root.getRootNode().activeElement === root };
}"""

# Record, in the bubbling phase, every keydown that reaches the element hosting the widget's
# shadow root (marimo's <marimo-anywidget>) and the document: what marimo's handlers can see.
LISTEN_JS = """(sel) => {
  const host = window.__vaDeep(sel).getRootNode().host;
  window.__vaHost = host ? host.tagName.toLowerCase() : null;
  window.__vaReached = [];
  const note = (where) => (e) => window.__vaReached.push(`${where}:${e.key}`);
  if (host) host.addEventListener('keydown', note('host'));
  document.addEventListener('keydown', note('document'));
}"""

CELLS_JS = "() => document.querySelectorAll('[data-cell-id]').length"
DIALOGS_JS = "() => document.querySelectorAll('[role=dialog], [role=alertdialog]').length"


def _state(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(STATE_JS, ROOT))


def _press(page: Any, key: str) -> str:
    """Press a label key on the current clip; wait until another clip is current."""
    clip = _state(page)["clip"]
    assert clip, "no current clip to label"
    page.keyboard.press(key)
    page.wait_for_function(
        "([sel, old]) => { const v = window.__vaDeep(sel).dataset.clipId; return !!v && v !== old; }",
        arg=[ROOT, clip],
    )
    return str(clip)


@pytest.mark.parametrize("mode", ["edit", "run"])
def test_label_with_keyboard_in_marimo(
    page: Any,
    start_marimo: Any,
    sample_library: Path,
    tmp_path: Path,
    mode: Literal["edit", "run"],
) -> None:
    """`a` / `x` label clips in marimo; the store on disk has them; marimo never sees the keys."""
    from va_widgets.store import LabelStore

    store = tmp_path / "labels.sqlite"
    notebook = write_marimo_notebook(
        tmp_path / "annotate.py",
        [
            "import marimo as mo\n"
            "import va_widgets as va\n"
            f"lib = va.ClipLibrary.open({str(sample_library)!r})\n"
            f"task = va.Task(lib, {TASK!r}, store={str(store)!r})\n"
            "ann = mo.ui.anywidget(va.Annotator(lib, task=task))\n"
            "ann",
        ],
    )
    server = start_marimo(notebook, mode=mode)
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(DEEP_JS)
    page.goto(server.url, wait_until="domcontentloaded")

    # the cards render, the current clip's preview is decoded
    page.locator(f"{ROOT} [data-testid=clip]").first.wait_for(state="visible")
    page.wait_for_function(
        "(sel) => { const s = (" + STATE_JS + ")(sel); return !!(s && s.clip && s.decoded); }",
        arg=ROOT,
    )
    assert _state(page)["cards"] > 1
    cells = page.evaluate(CELLS_JS)
    if mode == "edit":
        assert cells == 1
    dialogs = page.evaluate(DIALOGS_JS)
    page.evaluate(LISTEN_JS, ROOT)
    assert page.evaluate("() => window.__vaHost") == "marimo-anywidget"

    # focus in the widget (inside marimo's shadow root), then the label keys
    page.locator(ROOT).focus()
    page.wait_for_function(
        "(sel) => { const r = window.__vaDeep(sel); return r.getRootNode().activeElement === r; }",
        arg=ROOT,
    )
    accepted = _press(page, "a")
    rejected = _press(page, "x")
    page.wait_for_function(
        "(sel) => { const r = window.__vaDeep(sel);"
        " return r.dataset.saved === 'true' && r.dataset.pending === '0'; }",
        arg=ROOT,
    )

    # the keys stopped in the widget: nothing above it saw them, no cell added or cut, no dialog
    assert page.evaluate("() => window.__vaReached") == []
    assert page.evaluate(CELLS_JS) == cells
    assert page.evaluate(DIALOGS_JS) == dialogs
    assert _state(page)["focused"], "the widget lost the keyboard"
    # a key the widget leaves alone does go on to the page (the listeners above do listen)
    page.keyboard.press("F9")
    page.wait_for_function("() => window.__vaReached.join() === 'host:F9,document:F9'")

    # the labels, on disk, read by this process while marimo's kernel holds the store open
    with LabelStore(store) as db:
        current = db.current(TASK)
    on_disk = dict(zip(current["clip_id"], current["label"].astype(bool), strict=True))
    assert on_disk == {accepted: True, rejected: False}


def test_the_view_reports_marimo_s_dark_theme(
    page: Any, start_marimo: Any, sample_library: Path, tmp_path: Path
) -> None:
    """In marimo's dark theme the view tells the kernel (``ann.theme``), so figures follow."""
    seen = tmp_path / "theme.txt"
    notebook = write_marimo_notebook(
        tmp_path / "theme.py",
        [
            "import marimo as mo\n"
            "from pathlib import Path\n"
            "import va_widgets as va\n"
            f"lib = va.ClipLibrary.open({str(sample_library)!r})\n"
            f"w = va.Annotator(lib, task={TASK!r}, store={str(tmp_path / 'l.sqlite')!r})\n"
            f"w.observe(lambda change: Path({str(seen)!r}).write_text(change['new']), 'theme')\n"
            "mo.ui.anywidget(w)",
        ],
    )
    server = start_marimo(notebook, mode="run", theme="dark")
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(DEEP_JS)
    page.goto(server.url, wait_until="domcontentloaded")
    page.locator(f"{ROOT} [data-testid=clip]").first.wait_for(state="visible")
    assert page.evaluate("() => document.body.dataset.theme") == "dark"
    for _ in range(TIMEOUT_MS // 100):  # the kernel writes what the view reported
        if seen.exists() and seen.read_text() == "dark":
            break
        page.wait_for_timeout(100)
    assert seen.exists() and seen.read_text() == "dark"
