"""The Annotator's page in a real JupyterLab / Notebook 7: open it, press keys, wait on its state.

Waits are condition-based, on the DOM attributes of the widget's contract (see
js/annotator.js: data-clip-id, data-saved, data-pending, data-feed ...), each bounded by the
harness's time-out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import JupyterServer, open_notebook, run_all, write_notebook

ROOT = "[data-testid=va-annotator]"
TASK = "ball"

# Records every value data-clip-id takes (the widget's current clip), including the transient
# "" while the queue is empty, e.g. between a feed change and its first clips: a
# MutationObserver with attributeOldValue sees each set, even several within one task.
TRACK_JS = """(sel) => {
  const root = document.querySelector(sel);
  window.__vaIds = [root.dataset.clipId ?? ""];
  const obs = new MutationObserver((records) => {
    const seq = records.map((r) => r.oldValue ?? "").concat([root.dataset.clipId ?? ""]).slice(1);
    for (const v of seq) if (v !== window.__vaIds.at(-1)) window.__vaIds.push(v);
  });
  obs.observe(root, { attributes: true, attributeFilter: ["data-clip-id"], attributeOldValue: true });
}"""


def open_widget_notebook(
    page: Any,
    server: JupyterServer,
    cache: Path,
    store: Path,
    task: str,
    extra: str = "",
    options: str = "",
) -> None:
    """Write a notebook showing an Annotator on `cache` (`options`: more keyword arguments, as
    source text; plus an `extra` cell), open it and run all its cells."""
    more = f", {options}" if options else ""
    cells = [
        "import va_widgets as va\n"
        f"lib = va.ClipLibrary.open({str(cache)!r})\n"
        f"ann = va.Annotator(lib, task={task!r}, store={str(store)!r}{more})\n"
        "ann",
    ]
    write_notebook(server.root_dir / "annotate.ipynb", cells + ([extra] if extra else []))
    open_notebook(page, server, "annotate.ipynb")
    run_all(page)


# -- helpers ------------------------------------------------------------------------------------
def current(page: Any) -> str:
    return str(page.get_attribute(ROOT, "data-clip-id") or "")


def wait_widget(page: Any) -> None:
    """The widget rendered, has a current clip whose preview is decoded, and has focus."""
    page.locator(ROOT).wait_for(state="visible")
    page.wait_for_function(
        """(sel) => { const root = document.querySelector(sel);
             const card = root.querySelector('[data-testid=clip][aria-current=true]');
             const img = card && card.querySelector('img.va-on');
             return root.dataset.clipId && img && img.complete && img.naturalWidth > 0; }""",
        arg=ROOT,
    )
    focus(page)


def wait_data(page: Any, selector: str, name: str, value: object) -> None:
    """Wait until the element at `selector` has `data-<name>` equal to `value` (`name` as in
    dataset: "clipId" for data-clip-id)."""
    page.wait_for_function(
        "([sel, k, v]) => document.querySelector(sel)?.dataset[k] === v",
        arg=[selector, name, str(value)],
    )


def focus(page: Any) -> None:
    page.locator(ROOT).focus()
    page.wait_for_function(
        "(sel) => document.activeElement === document.querySelector(sel)", arg=ROOT
    )


def press(page: Any, key: str) -> str:
    """Press a labelling key on the current clip; wait for the next clip; return the decided id."""
    clip = current(page)
    assert clip, "no current clip to label"
    page.keyboard.press(key)
    page.wait_for_function(
        "([sel, old]) => { const v = document.querySelector(sel).dataset.clipId;"
        " return !!v && v !== old; }",
        arg=[ROOT, clip],
    )
    return clip


def undo(page: Any, clip: str) -> None:
    """Backspace; wait until the undone clip is the current one again."""
    page.keyboard.press("Backspace")
    wait_data(page, ROOT, "clipId", clip)


def switch_feed(page: Any, feed: str) -> None:
    """Pick `feed` in the selector; wait until its first clip is current; refocus the widget.

    A feed change empties the queue (current clip "") and then loads the new feed's clips.
    """
    mark = page.evaluate("() => window.__vaIds.length")
    page.select_option("[data-testid=feed-select]", feed)
    page.wait_for_function(
        """([sel, feed, mark]) => {
             const ids = window.__vaIds.slice(mark);
             const i = ids.indexOf("");
             return document.querySelector(sel).dataset.feed === feed
               && i >= 0 && ids.slice(i + 1).some(Boolean) && !!ids.at(-1); }""",
        arg=[ROOT, feed, mark],
    )
    focus(page)


def wait_saved(page: Any, counts: dict[str, int]) -> None:
    """All events acknowledged (data-saved=true) and the counters show `counts`."""
    page.wait_for_function(
        """([sel, c]) => { const root = document.querySelector(sel);
             const n = (k) => root.querySelector(`[data-testid=count-${k}]`).textContent;
             return root.dataset.saved === 'true' && root.dataset.pending === '0'
               && n('positives') === String(c.positives) && n('negatives') === String(c.negatives)
               && n('skipped') === String(c.skipped); }""",
        arg=[ROOT, counts],
    )


def counts(labels: dict[str, bool], skips: set[str]) -> dict[str, int]:
    pos = sum(labels.values())
    return {"positives": pos, "negatives": len(labels) - pos, "skipped": len(skips)}
