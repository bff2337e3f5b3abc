"""A page at a time: Shift+A / Shift+X label every undecided clip of the page, click and
Shift+click (or Shift+arrow) select cards that a / x then label; each is ONE action in the
store, and one undo step undoes it whole. In a real JupyterLab in headless Chromium.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from annotator_page import (
    ROOT,
    TASK,
    current,
    open_widget_notebook,
    wait_data,
    wait_saved,
    wait_widget,
)
from harness import cell_count

pytestmark = pytest.mark.browser


def _cards(page: Any) -> list[dict[str, str]]:
    """The cards of the current page: clip id, decision, selected, decision text."""
    return list(
        page.evaluate(
            """(sel) => [...document.querySelector(sel).querySelectorAll('[data-testid=batch] [data-testid=clip]')]
                 .map((c) => ({ id: c.dataset.clipId, decision: c.dataset.decision,
                                selected: c.getAttribute('aria-selected'),
                                text: c.querySelector('[data-testid=clip-decision]').textContent }))""",
            ROOT,
        )
    )


def _actions(store: Path) -> list[list[str]]:
    """The store's live label events grouped by action, in order (clip ids)."""
    import pandas as pd

    from va_widgets.store import LabelStore

    with LabelStore(store) as db:
        history = db.history(TASK)
    undone = set(history["undoes"].dropna().astype(int))
    live = history[(history["kind"] == "label") & ~history["event_id"].isin(undone)]
    groups: dict[int, list[str]] = {}
    for event_id, action, clip_id in zip(
        live["event_id"], live["action"], live["clip_id"], strict=True
    ):
        key = int(event_id) if pd.isna(action) else int(action)
        groups.setdefault(key, []).append(str(clip_id))
    return [groups[k] for k in sorted(groups)]


def test_page_and_selection_labels_are_one_action_each(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    store = tmp_path / "pages.sqlite"
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, store, TASK)
    wait_widget(page)
    cells = cell_count(page)
    first_page = [c["id"] for c in _cards(page)]
    assert len(first_page) == 8

    page.keyboard.press("x")  # one clip
    page.keyboard.press("Shift+A")  # the 7 undecided others, with one key
    page.wait_for_function(
        "([sel, ids]) => !ids.includes(document.querySelector(sel).dataset.clipId)",
        arg=[ROOT, first_page],
    )
    wait_saved(page, {"positives": 7, "negatives": 1, "skipped": 0})
    assert _actions(store) == [first_page[:1], first_page[1:]]  # two actions
    assert cell_count(page) == cells, "Shift+A reached JupyterLab"

    page.keyboard.press("Backspace")  # one step undoes the whole page
    wait_data(page, ROOT, "clipId", first_page[1])
    wait_saved(page, {"positives": 0, "negatives": 1, "skipped": 0})
    cards = {c["id"]: c for c in _cards(page)}
    assert set(first_page) <= set(cards)
    assert all(cards[c]["decision"] == "" for c in first_page[1:])
    assert all(cards[c]["text"] == "undone: positive" for c in first_page[1:])
    assert _actions(store) == [first_page[:1]]

    # click the 3rd card, Shift+click the 5th: three selected, visibly; x labels them at once
    card = f"{ROOT} [data-clip-id='{{}}']"
    page.click(card.format(first_page[2]))
    page.click(card.format(first_page[4]), modifiers=["Shift"])
    wait_data(page, ROOT, "selected", 3)
    assert [c["id"] for c in _cards(page) if c["selected"] == "true"] == first_page[2:5]
    status = page.locator(f"{ROOT} [data-testid=saved-state]").inner_text()
    assert "3 selected: a / x label them, Esc clears" in status
    page.keyboard.press("x")
    wait_saved(page, {"positives": 0, "negatives": 4, "skipped": 0})
    wait_data(page, ROOT, "selected", 0)
    assert _actions(store) == [first_page[:1], first_page[2:5]]
    assert current(page) == first_page[5]  # the next undecided after the selection

    # from the keyboard: Shift+→ twice selects three cards from the current one; a labels them
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    wait_data(page, ROOT, "selected", 3)
    assert [c["id"] for c in _cards(page) if c["selected"] == "true"] == first_page[5:8]
    page.keyboard.press("a")
    wait_saved(page, {"positives": 3, "negatives": 4, "skipped": 0})
    assert _actions(store)[-1] == first_page[5:8]
    assert current(page) == first_page[1]  # the one undecided clip left on the page

    # Ctrl+click adds one card; Esc clears the selection without labelling
    page.click(card.format(first_page[1]), modifiers=["Control"])
    wait_data(page, ROOT, "selected", 1)
    page.keyboard.press("Escape")
    wait_data(page, ROOT, "selected", 0)
    page.keyboard.press("Shift+X")  # the page's last undecided clip
    wait_saved(page, {"positives": 3, "negatives": 5, "skipped": 0})
    assert _actions(store)[-1] == first_page[1:2]
    assert cell_count(page) == cells
    print(f"page and selection test: {time.monotonic() - t0:.1f} s")


# The spare grid: the next page, laid out ahead, hidden from the user and from assistive
# technology; each of its cards tagged so that the test can tell the same elements apart.
SPARE_JS = """(sel) => {
  const root = document.querySelector(sel);
  const spare = [...root.querySelectorAll('.va-grid')].find((g) => g.dataset.testid !== 'batch');
  if (!spare) return null;
  const cards = [...spare.querySelectorAll('[data-testid=clip]')];
  cards.forEach((c) => (c.__vaSpare = true));
  return { ids: cards.map((c) => c.dataset.clipId), hidden: spare.getAttribute('aria-hidden'),
           inert: spare.inert, current: cards.filter((c) => c.hasAttribute('aria-current')).length };
}"""


def test_the_next_page_is_laid_out_ahead_and_swapped_in_by_the_page_label(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, tmp_path / "spare.sqlite", TASK)
    wait_widget(page)
    first_page = [c["id"] for c in _cards(page)]
    page.wait_for_function(f"(sel) => ({SPARE_JS})(sel)?.ids.length === 8", arg=ROOT)
    spare = page.evaluate(SPARE_JS, ROOT)
    assert spare["hidden"] == "true" and spare["inert"] and spare["current"] == 0
    assert not set(spare["ids"]) & set(first_page)

    page.keyboard.press("Shift+X")
    wait_data(page, ROOT, "clipId", spare["ids"][0])
    shown = page.evaluate(
        """(sel) => [...document.querySelectorAll(`${sel} [data-testid=batch] [data-testid=clip]`)]
             .map((c) => [c.dataset.clipId, c.__vaSpare === true])""",
        ROOT,
    )
    assert shown == [[c, True] for c in spare["ids"]]  # the very cards built ahead
    wait_saved(page, {"positives": 0, "negatives": 8, "skipped": 0})
    # refilled after the swap with the page after it
    page.wait_for_function(
        f"([sel, ids]) => {{ const s = ({SPARE_JS})(sel); "
        "return s && s.ids.length === 8 && !s.ids.some((id) => ids.includes(id)); }",
        arg=[ROOT, spare["ids"] + first_page],
    )
