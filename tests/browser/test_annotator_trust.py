"""What the Annotator shows must be true: a view whose kernel is busy or gone says so, and the
review feed works in the view the labels were given in.

A real JupyterLab 4 in headless Chromium; the kernel is made busy (a cell that sleeps) and
restarted from the browser, as a user does with the toolbar. Waits are condition-based.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from annotator_page import (
    ROOT,
    TASK,
    TRACK_JS,
    current,
    open_widget_notebook,
    press,
    switch_feed,
    undo,
    wait_data,
    wait_saved,
    wait_widget,
)
from harness import run_all

pytestmark = pytest.mark.browser

_KERNEL = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
DECISION_TEXT = {"positive": "positive", "negative": "negative", "skip": "skipped"}


def _run_in_background(page: Any, code: str) -> None:
    """Execute `code` in the kernel without waiting (as a cell the user left running)."""
    page.evaluate(f"(code) => {{ {_KERNEL}.requestExecute({{ code }}); }}", code)
    page.wait_for_function(f"() => {_KERNEL}.status === 'busy'", polling=50)


def _status(page: Any) -> str:
    return str(page.locator(f"{ROOT} [data-testid=saved-state]").inner_text())


def _refused(page: Any, key: str) -> None:
    """Press `key`; the widget says it did not take it, and the current clip stays."""
    before = current(page)
    page.keyboard.press(key)
    page.wait_for_function(
        "(sel) => document.querySelector(sel)"
        ".querySelector('[data-testid=saved-state]').textContent.includes('key not taken')",
        arg=ROOT,
    )
    assert current(page) == before


def _card(clip: str) -> str:
    return f"{ROOT} [data-clip-id='{clip}']"


def _decision_text(page: Any, clip: str) -> str:
    return str(page.locator(f"{_card(clip)} [data-testid=clip-decision]").inner_text())


def _stored(store: Path) -> dict[str, bool]:
    from va_widgets.store import LabelStore

    with LabelStore(store) as db:
        labels = db.current(TASK)
    return dict(zip(labels["clip_id"], labels["label"].astype(bool), strict=True))


# JupyterLab 4.5+ with ipykernel 7 sends widget messages to a kernel subshell, so a running
# cell does not delay them; elsewhere (this setting off, Notebook 7 with older kernels, other
# front ends, ipykernel 6) they wait behind the cell, as here.
COMMS_WAIT_FOR_CELLS = {
    "@jupyterlab/apputils-extension:kernels-settings": {"commsOverSubshells": "disabled"}
}


def test_a_busy_kernel_is_said_and_then_a_restart(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """A label sent while another cell runs: after a few seconds without a reply the view says
    so truthfully and pauses the keys; when the reply comes it is saved and keys work again.
    Then a label waits behind a cell and the kernel is restarted: the view says it is
    disconnected, shows the label it cannot confirm, and takes no more keys."""
    t0 = time.monotonic()
    store = tmp_path / "busy.sqlite"
    server = start_jupyter("lab", settings=COMMS_WAIT_FOR_CELLS)
    open_widget_notebook(page, server, sample_library, store, TASK)
    wait_widget(page)
    _run_in_background(page, "import time; time.sleep(12)")
    clip = press(page, "a")  # the view moves on at once; the label waits behind the cell
    assert page.get_attribute(ROOT, "data-link") == "ok"
    assert _status(page) == "saving 1…"
    wait_data(page, ROOT, "link", "stalled")
    text = _status(page)
    assert text.startswith("no reply from the kernel for "), text
    assert "1 label not confirmed saved — the kernel is busy (running a cell?); keys paused" in text
    assert page.get_attribute(_card(clip), "data-state") == "unconfirmed"
    assert "(not confirmed yet)" in _decision_text(page, clip)
    _refused(page, "x")
    assert _stored(store) == {}  # still waiting behind the sleeping cell

    wait_saved(page, {"positives": 1, "negatives": 0, "skipped": 0})  # the cell ended
    assert page.get_attribute(ROOT, "data-link") == "ok"
    assert page.get_attribute(_card(clip), "data-state") == "saved"
    assert _stored(store) == {clip: True}
    second = press(page, "x")  # keys work again
    wait_saved(page, {"positives": 1, "negatives": 1, "skipped": 0})
    assert _stored(store) == {clip: True, second: False}

    _run_in_background(page, "import time; time.sleep(60)")
    lost = press(page, "a")  # waits behind the cell, which the restart kills
    page.evaluate(f"() => {_KERNEL}.restart()")  # Kernel > Restart, without its dialog
    wait_data(page, ROOT, "link", "lost")
    text = _status(page)
    assert text.startswith("the kernel was restarted"), text
    assert (
        "this view is disconnected and takes no keys; 1 label not confirmed saved (positive: "
        in text
    )
    assert text.endswith("Run the cell again to continue."), text
    assert page.get_attribute(_card(lost), "data-state") == "unsaved"
    assert "(not confirmed saved)" in _decision_text(page, lost)
    assert page.get_attribute(_card(second), "data-state") == "saved"
    _refused(page, "x")
    # What it called saved is on disk. The unconfirmed label may be too: the kernel can still
    # handle it while shutting down, after the view learnt of the restart.
    stored = _stored(store)
    assert {clip: True, second: False}.items() <= stored.items()
    assert set(stored) <= {clip, second, lost} and stored.get(lost, True) is True
    print(f"busy kernel and restart test: {time.monotonic() - t0:.1f} s")


def test_a_restarted_kernel_leaves_a_view_that_says_so(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """After a restart from the browser the old view says it is disconnected within a few
    seconds and takes no keys (it used to show "saving 1…" forever for a label never stored)."""
    t0 = time.monotonic()
    store = tmp_path / "restart.sqlite"
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, store, TASK)
    wait_widget(page)
    saved = press(page, "a")
    wait_saved(page, {"positives": 1, "negatives": 0, "skipped": 0})
    page.evaluate(f"() => {_KERNEL}.restart()")
    wait_data(page, ROOT, "link", "lost")
    assert _status(page) == (
        "the kernel was restarted: this view is disconnected and takes no keys. "
        "Run the cell again to continue."
    )
    for key in ["a", "Space", "Backspace"]:
        _refused(page, key)
    assert page.get_attribute(_card(saved), "data-state") == "saved"
    assert page.locator(f"{ROOT} [data-testid=action-positive]").is_disabled()
    assert page.locator(f"{ROOT} [data-testid=feed-select]").is_disabled()
    assert _stored(store) == {saved: True}
    print(f"restart test: {time.monotonic() - t0:.1f} s")


def test_running_the_cell_again_after_a_restart_continues_where_it_stopped(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """The view of the re-run cell shows the feed chosen before the restart and the same model
    version (saved with the labels), not a fresh start."""
    store = tmp_path / "continue.sqlite"
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, store, TASK)
    wait_widget(page)
    page.evaluate(TRACK_JS, ROOT)
    press(page, "a")
    press(page, "x")
    wait_saved(page, {"positives": 1, "negatives": 1, "skipped": 0})
    switch_feed(page, "borderline")
    version = page.locator(f"{ROOT} [data-testid=model-version]").inner_text()
    assert int(version) >= 1
    page.evaluate(f"() => {_KERNEL}.restart()")
    wait_data(page, ROOT, "link", "lost")
    run_all(page)  # the user runs the cell again: its new view replaces the old one
    wait_widget(page)
    assert page.locator(ROOT).count() == 1 and page.get_attribute(ROOT, "data-link") != "lost"
    assert page.locator(f"{ROOT} [data-testid=feed-select]").input_value() == "borderline"
    assert page.locator(f"{ROOT} [data-testid=model-version]").inner_text() == version
    wait_saved(page, {"positives": 1, "negatives": 1, "skipped": 0})


def test_review_in_the_view_that_labelled(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """Switching this view to the review feed lists the clips labelled here, each showing the
    label given before; a correction is saved, and its undo card shows what was undone."""
    t0 = time.monotonic()
    store = tmp_path / "review.sqlite"
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, store, TASK)
    wait_widget(page)
    page.evaluate(TRACK_JS, ROOT)
    given: dict[str, str] = {}
    for key in "axaxax":
        given[press(page, key)] = "positive" if key == "a" else "negative"
    wait_saved(page, {"positives": 3, "negatives": 3, "skipped": 0})

    switch_feed(page, "review")
    shown = page.evaluate(
        """(sel) => [...document.querySelector(sel).querySelectorAll('[data-testid=batch] [data-testid=clip]')]
             .map((c) => [c.dataset.clipId, c.dataset.decision, c.dataset.previous,
                          c.querySelector('[data-testid=clip-decision]').textContent])""",
        ROOT,
    )
    assert sorted(c[0] for c in shown) == sorted(given)  # every clip labelled, on one page
    for clip, decision, previous, text in shown:
        assert decision == "" and previous == given[clip]
        assert text == f"was {DECISION_TEXT[given[clip]]}"
    assert page.locator(f"{ROOT} [aria-current=true] [data-testid=clip-feed]").inner_text() == (
        "review"
    )
    clip = current(page)
    fixed = "negative" if given[clip] == "positive" else "positive"
    assert press(page, "a" if fixed == "positive" else "x") == clip
    n_pos = sum(d == "positive" for d in given.values()) + (1 if fixed == "positive" else -1)
    wait_saved(page, {"positives": n_pos, "negatives": 6 - n_pos, "skipped": 0})
    assert _stored(store)[clip] is (fixed == "positive")

    undo(page, clip)
    assert _decision_text(page, clip) == f"undone: {DECISION_TEXT[fixed]}"
    wait_saved(page, {"positives": 3, "negatives": 3, "skipped": 0})
    assert _stored(store) == {c: d == "positive" for c, d in given.items()}
    print(f"review test: {time.monotonic() - t0:.1f} s")
