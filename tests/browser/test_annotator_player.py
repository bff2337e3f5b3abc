"""The large player: f (or Enter) opens the current clip large and plays the real clip, with a
scrubber and frame stepping; the label keys label it and show the next clip; Esc returns to the
grid. In a real JupyterLab in headless Chromium.
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

PLAYER = f"{ROOT} [data-testid=player]"
VIDEO = f"{ROOT} [data-testid=player-video]"

_VIDEO_STATE_JS = """(sel) => { const v = document.querySelector(sel);
  return { src: v.currentSrc, ready: v.readyState, paused: v.paused, time: v.currentTime,
           duration: v.duration, width: v.videoWidth,
           shownWidth: v.getBoundingClientRect().width }; }"""


def _video(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(_VIDEO_STATE_JS, VIDEO))


def _wait_playing(page: Any, clip: str) -> None:
    """The player shows `clip`, its video decoded and playing."""
    page.wait_for_function(
        """([player, video, id]) => { const p = document.querySelector(player);
             const v = document.querySelector(video);
             return !p.hidden && p.dataset.clipId === id && p.dataset.ready === 'true'
               && v.readyState >= 2 && !v.paused && v.currentTime > 0; }""",
        arg=[PLAYER, VIDEO, clip],
    )


def test_large_player_scrubs_steps_and_labels(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, tmp_path / "pl.sqlite", TASK)
    wait_widget(page)
    cells = cell_count(page)
    first = current(page)
    card_width = page.locator(f"{ROOT} [data-clip-id='{first}']").bounding_box()["width"]

    page.keyboard.press("f")
    _wait_playing(page, first)
    state = _video(page)
    assert state["src"].startswith("blob:") and state["width"] > 0
    assert 1.5 < state["duration"] < 2.5  # the real 2 s clip, not its sampled frames
    assert state["shownWidth"] > 2 * card_width  # large
    assert page.get_attribute(ROOT, "data-player") == "open"

    page.keyboard.press(".")  # pause and step: frame by frame, by the clip's frame times
    # the step's seek settled (the pause alone shows the frame before it): then read the frame
    page.wait_for_function(
        "(v) => { const x = document.querySelector(v); return x.paused && !x.seeking; }",
        arg=VIDEO,
    )
    frame = int(page.get_attribute(PLAYER, "data-frame") or 0)
    page.keyboard.press(".")
    wait_data(page, PLAYER, "frame", frame + 1)
    page.keyboard.press(",")
    page.keyboard.press(",")
    wait_data(page, PLAYER, "frame", max(0, frame - 1))

    # scrub to the middle of the clip
    page.evaluate(
        """(sel) => { const s = document.querySelector(sel);
             s.value = String(Number(s.max) / 2); s.dispatchEvent(new Event('input')); }""",
        f"{ROOT} [data-testid=player-scrub]",
    )
    page.wait_for_function(
        "(v) => { const x = document.querySelector(v); return Math.abs(x.currentTime - x.duration / 2) < 0.05; }",
        arg=VIDEO,
    )
    assert "frame " in page.locator(f"{ROOT} [data-testid=player-position]").inner_text()

    page.keyboard.press("p")  # play again
    page.wait_for_function("(v) => !document.querySelector(v).paused", arg=VIDEO)

    page.keyboard.press("a")  # the same label keys: labels the clip shown, shows the next one
    page.wait_for_function(
        "([p, id]) => { const x = document.querySelector(p).dataset.clipId; return x && x !== id; }",
        arg=[PLAYER, first],
    )
    second = current(page)
    _wait_playing(page, second)
    wait_saved(page, {"positives": 1, "negatives": 0, "skipped": 0})
    assert page.get_attribute(f"{ROOT} [data-clip-id='{first}']", "data-decision") == "positive"

    page.keyboard.press("Escape")  # back to the grid
    page.wait_for_function("(p) => document.querySelector(p).hidden", arg=PLAYER)
    assert page.get_attribute(ROOT, "data-player") == "closed"
    assert page.evaluate("(sel) => document.activeElement === document.querySelector(sel)", ROOT)
    page.keyboard.press("Enter")  # Enter opens it too
    _wait_playing(page, second)
    page.keyboard.press("Enter")
    page.wait_for_function("(p) => document.querySelector(p).hidden", arg=PLAYER)
    assert cell_count(page) == cells, "a player key reached JupyterLab"
    print(f"player test: {time.monotonic() - t0:.1f} s")
