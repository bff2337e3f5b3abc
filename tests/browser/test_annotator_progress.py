"""Progress in plain words: labels so far, clips left in the feed, the estimated quality and its
trend, a target= label budget as a progress bar; feeds, the auto feed's choice, the order of the
cards and the score on a card explained in words. In a real JupyterLab in headless Chromium.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from annotator_page import (
    ROOT,
    TASK,
    TRACK_JS,
    open_widget_notebook,
    press,
    switch_feed,
    wait_saved,
    wait_widget,
)
from harness import run_code_in_new_cell

pytestmark = pytest.mark.browser

FEEDS = ["auto", "search", "top", "bottom", "borderline", "random", "similar", "review"]


def _text(page: Any, testid: str) -> str:
    return str(page.locator(f"{ROOT} [data-testid={testid}]").inner_text())


def _wait_quality_of(page: Any, n_labels: int) -> None:
    page.wait_for_function(
        "([sel, n]) => document.querySelector(sel)"
        ".querySelector('[data-testid=quality]').dataset.nLabels === String(n)",
        arg=[ROOT, n_labels],
    )


def test_progress_feeds_and_order_in_plain_words(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    server = start_jupyter("lab")
    open_widget_notebook(
        page, server, sample_library, tmp_path / "p.sqlite", TASK, options="target=12"
    )
    wait_widget(page)
    page.evaluate(TRACK_JS, ROOT)
    assert _text(page, "labels") == "0 labels (0 positive, 0 negative, 0 skipped)"
    assert _text(page, "feed-left") == "36 clips left in auto"
    assert _text(page, "target-text").strip() == "0 of 12 labels"
    assert _text(page, "quality").startswith("no estimate yet")  # the task's own words
    assert page.get_attribute(f"{ROOT} [data-testid=target-bar]", "max") == "12"

    # every feed is explained: a tooltip in the selector, a line in the help
    titles = page.evaluate(
        """(sel) => Object.fromEntries([...document.querySelector(sel)
             .querySelectorAll('[data-testid=feed-select] option')].map((o) => [o.value, o.title]))""",
        ROOT,
    )
    assert sorted(titles) == sorted(FEEDS) and all(len(t) > 20 for t in titles.values()), titles
    help_rows = page.locator(f"{ROOT} [data-testid=help-feeds] tr")
    assert help_rows.count() == len(FEEDS)
    assert (
        "disagrees most"
        in page.locator(f"{ROOT} [data-testid=help-feeds] [data-feed=review]").text_content()
    )

    for key in "axaxax":
        press(page, key)
    wait_saved(page, {"positives": 3, "negatives": 3, "skipped": 0})
    _wait_quality_of(page, 6)
    assert _text(page, "labels") == "6 labels (3 positive, 3 negative, 0 skipped)"
    assert _text(page, "feed-left") == "30 clips left in auto"
    assert _text(page, "target-text").strip() == "6 of 12 labels"
    assert (
        page.evaluate(f"() => document.querySelector('{ROOT} [data-testid=target-bar]').value") == 6
    )
    info = _text(page, "feed-info")
    assert info.startswith("auto: ") and "UCB" not in info and "bonus" not in info, info

    switch_feed(page, "top")
    info = _text(page, "feed-info")
    assert re.fullmatch(
        r"ranked by model v\d+(, highest score first|, sampled: drawn at random, favouring the "
        r"highest scores)",
        info,
    ), info
    title = page.get_attribute(f"{ROOT} [aria-current=true] [data-testid=clip-score]", "title")
    assert re.fullmatch(
        rf"Score: the model's probability \(model v\d+\) that this clip shows {TASK}", title or ""
    )
    for key in "xaxaxa":
        press(page, key)
    wait_saved(page, {"positives": 6, "negatives": 6, "skipped": 0})
    _wait_quality_of(page, 12)
    assert _text(page, "target-text").strip() == "12 of 12 labels: target reached"
    assert _text(page, "feed-left") == "24 clips left in top"
    # the quality in the task's words, and its trend, as the kernel has them
    kernel = run_code_in_new_cell(page, "print(ann.quality['summary']); print(ann.quality_trend)")
    summary, trend = [*kernel.split("\n"), ""][:2]
    assert _text(page, "quality") == summary and summary
    assert _text(page, "quality-trend") == (f", {trend}" if trend else "")
    assert not trend or re.fullmatch(
        r"(up \d\.\d\d|down \d\.\d\d|steady) over the last \d+ labels", trend
    )
    print(f"progress test: {time.monotonic() - t0:.1f} s")
