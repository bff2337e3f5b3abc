"""The Annotator in a real JupyterLab 4 / Notebook 7, driven with the keyboard in Chromium.

What a user does and sees: label clips with keys, switch feeds, undo; the labels land in the
SQLite store exactly as keyed, the widget's counters and the kernel agree, no key leaks into
JupyterLab (no cell inserted, cut or run), the widget follows the light/dark theme and shows
untrusted text as text. Waits are condition-based (DOM attributes of the widget's contract,
see js/annotator.js), every one bounded by the harness's time-out.

Screenshots: set VA_UPDATE_SCREENSHOT=1 to also write the light one to docs/annotator.png.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from annotator_page import (
    ROOT,
    TASK,
    TRACK_JS,
    counts,
    current,
    open_widget_notebook,
    press,
    switch_feed,
    undo,
    wait_saved,
    wait_widget,
)
from harness import (
    cell_count,
    open_notebook,
    run_all,
    run_code_in_new_cell,
    set_theme,
    write_notebook,
)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "docs" / "annotator.png"


def _mean_brightness(png: Path) -> float:
    from PIL import Image, ImageStat

    with Image.open(png) as im:
        stat = ImageStat.Stat(im.convert("L"))
    assert stat.stddev[0] > 5, f"{png} is (almost) a single colour"
    return float(stat.mean[0])


# -- tests --------------------------------------------------------------------------------------
def test_label_with_keyboard_in_lab(page: Any, start_jupyter: Any, tmp_path: Path) -> None:
    """Make, index and label sample clips from the keyboard; store, counters and kernel agree."""
    t0 = time.monotonic()
    from va_widgets.store import LabelStore

    store = tmp_path / "labels.sqlite"
    server = start_jupyter("lab")
    cells = [
        "import va_widgets as va\n"
        f"va.make_sample_videos({str(tmp_path / 'videos')!r}, n_videos=3, seconds_per_video=24)\n"
        f"lib = va.index_videos({str(tmp_path / 'videos')!r}, {str(tmp_path / 'cache')!r},\n"
        "                      embedder=va.PixelStatsEmbedder(), progress=False, workers=1)\n"
        "len(lib)",
        f"ann = va.Annotator(lib, task={TASK!r}, store={str(store)!r})\nann",
    ]
    write_notebook(server.root_dir / "label.ipynb", cells)
    open_notebook(page, server, "label.ipynb")
    run_all(page)
    wait_widget(page)
    page.evaluate(TRACK_JS, ROOT)
    cells_before = cell_count(page)
    assert page.get_attribute(ROOT, "data-feed") == "auto"

    labels: dict[str, bool] = {}  # what the keys said, in order; the last label of a clip wins
    skips: set[str] = set()
    decided: list[str] = []

    def key(k: str) -> None:
        clip = press(page, k)
        decided.append(clip)
        if k == "Space":
            skips.add(clip)
        else:
            labels[clip] = k == "a"

    # auto feed: 8 decisions, one of them undone and corrected (a -> x) on the way
    for k in "axaa":
        key(k)
    wrong = decided.pop()
    del labels[wrong]
    undo(page, wrong)
    key("x")
    assert decided[-1] == wrong and labels[wrong] is False
    for k in "xaax":
        key(k)

    switch_feed(page, "random")
    assert page.locator(f"{ROOT} [aria-current=true] [data-testid=clip-feed]").inner_text() == (
        "random"
    )
    for k in ["a", "x", "Space", "x", "a", "x", "x", "a"]:
        key(k)

    switch_feed(page, "borderline")
    for k in ["x", "a", "Space", "a", "x", "a", "x", "a"]:
        key(k)

    # undo the very last label: that clip is current again and has no label
    last = decided.pop()
    del labels[last]
    undo(page, last)
    assert len(labels) >= 20 and len(skips) == 2 and last not in labels

    expected = counts(labels, skips)
    wait_saved(page, expected)
    assert page.get_attribute(ROOT, "data-saved") == "true"
    assert page.get_attribute(ROOT, "data-last-saved") == ""  # the last event was undone
    assert cell_count(page) == cells_before, "a labelling key reached JupyterLab"
    version = int(page.locator("[data-testid=model-version]").inner_text())
    assert version > 0
    # the borderline feed's clips were ranked by the model of their fetch; a newer one is named
    info = page.locator(f"{ROOT} [data-testid=feed-info]").inner_text()
    # (", sampled": the sampled feeds draw at random, with known chances, from that ranking)
    why = ": drawn at random, favouring scores near 0.5 (the model is least sure of these)"
    ranked = re.fullmatch(
        r"ranked by model v(\d+), sampled(?: \(model now v(\d+)\))?" + re.escape(why), info
    )
    assert ranked, info
    assert int(ranked[2] or ranked[1]) == version and (ranked[2] is None or ranked[1] != ranked[2])
    plain = ", scores nearest 0.5 first: the model is least sure of these"
    for source, shown in [("model v1", f"ranked by model v1 (model now v{version}){plain}"),
                          ("model v1, sampled", f"ranked by model v1, sampled (model now v{version}){why}"),
                          (f"model v{version}", f"ranked by model v{version}{plain}")]:  # fmt: skip
        run_code_in_new_cell(page, f"ann.feed_source = {source!r}")  # as after a fetch then
        page.wait_for_function(
            "([sel, text]) => document.querySelector(sel)"
            ".querySelector('[data-testid=feed-info]').textContent === text",
            arg=[ROOT, shown],
        )
    # the quality estimate follows once labelling pauses (it is deferred while keys come fast)
    n_pos, n_neg = expected["positives"], expected["negatives"]
    page.wait_for_function(
        """([sel, want]) => document.querySelector(sel)
             .querySelector('[data-testid=quality]').dataset.nLabels === want""",
        arg=[ROOT, str(n_pos + n_neg)],
    )
    quality = page.locator("[data-testid=quality]").inner_text()
    got_quality = run_code_in_new_cell(
        page, "print(ann.quality['n_pos'], ann.quality['n_neg'], ann.quality['summary'])"
    )
    assert got_quality.split(maxsplit=2) == [str(n_pos), str(n_neg), quality]  # its own words

    # the store on disk, read by this process while the kernel holds it open
    with LabelStore(store) as db:
        current = db.current(TASK)
        on_disk = dict(zip(current["clip_id"], current["label"].astype(bool), strict=True))
        assert on_disk == labels
        assert list(current["clip_id"]) == [c for c in decided if c in labels]
        assert db.skipped(TASK) == skips
        assert last not in on_disk and wrong in on_disk

    got = run_code_in_new_cell(
        page, "import json; print(json.dumps(ann.task.counts(), sort_keys=True))"
    )
    assert json.loads(got) == expected
    print(f"lab keyboard test: {len(labels)} labels, {len(skips)} skips, "
          f"{time.monotonic() - t0:.1f} s")  # fmt: skip


def test_screenshots_light_and_dark(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """The widget at work in JupyterLab Light and Dark; the light one can go to docs/."""
    t0 = time.monotonic()
    server = start_jupyter("lab")
    page.set_viewport_size({"width": 1100, "height": 900})
    open_widget_notebook(page, server, sample_library, tmp_path / "l.sqlite", TASK)
    wait_widget(page)
    for k in ["a", "x", "x", "a", "Space", "x"]:
        press(page, k)
    wait_saved(page, {"positives": 2, "negatives": 3, "skipped": 1})
    widget = page.locator(ROOT)
    widget.scroll_into_view_if_needed()
    page.mouse.move(0, 0)  # no hover flipbook on a card

    light, dark = tmp_path / "annotator-light.png", tmp_path / "annotator-dark.png"
    widget.screenshot(path=str(light), animations="disabled", caret="hide")
    set_theme(page, "dark")
    wait_widget(page)
    widget.screenshot(path=str(dark), animations="disabled", caret="hide")
    b_light, b_dark = _mean_brightness(light), _mean_brightness(dark)
    print(f"mean brightness: light {b_light:.0f}, dark {b_dark:.0f}")
    assert b_dark < b_light - 60, "the widget does not follow JupyterLab's dark theme"
    bg = page.evaluate(
        "(sel) => getComputedStyle(document.querySelector(sel)).backgroundColor", ROOT
    )
    assert bg not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), bg

    if os.environ.get("VA_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(light, DOCS_SCREENSHOT)
        print(f"wrote {DOCS_SCREENSHOT}")
    print(f"screenshot test: {time.monotonic() - t0:.1f} s")


XSS = "<img src=x onerror=alert(1)>"


def test_untrusted_text_is_shown_as_text(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """A task name (and an error message) made of HTML is shown literally, never parsed."""
    t0 = time.monotonic()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    server = start_jupyter("lab")
    # an on_label callback whose error message is HTML too
    boom = (
        "def boom(clip_id, label):\n"
        "    raise ValueError('<img src=y onerror=alert(2)>')\n"
        "ann.on_label(boom)"
    )
    open_widget_notebook(page, server, sample_library, tmp_path / "x.sqlite", XSS, extra=boom)
    wait_widget(page)
    press(page, "a")
    page.wait_for_function(
        "(sel) => !document.querySelector(`${sel} [data-testid=error]`).hidden", arg=ROOT
    )
    assert page.locator(f"{ROOT} [data-testid=task-name]").inner_text() == XSS
    assert XSS in page.locator(ROOT).inner_text()
    assert (
        "<img src=y onerror=alert(2)>"
        in page.locator(f"{ROOT} [data-testid=error-text]").inner_text()
    )
    injected = page.evaluate(
        """(sel) => [...document.querySelectorAll(`${sel} img`)]
                      .filter((i) => ['x', 'y'].includes(i.getAttribute('src'))).length""",
        ROOT,
    )
    assert injected == 0
    assert (
        page.evaluate("(sel) => document.querySelector(sel).getAttribute('aria-label')", ROOT)
        == f"Annotator for task {XSS}"
    )
    assert dialogs == []
    print(f"xss test: {time.monotonic() - t0:.1f} s")


# Records each flipbook step: an <img> of a card becoming the shown frame (class va-on), with
# the time since that card's clip became current.
_FLIPS_JS = """(sel) => {
  const root = document.querySelector(sel);
  const since = new Map();
  const mark = () => {
    const id = root.dataset.clipId;
    if (id && !since.has(id)) since.set(id, performance.now());
  };
  mark();
  new MutationObserver(mark).observe(root, { attributes: true, attributeFilter: ["data-clip-id"] });
  window.__vaFlips = [];
  new MutationObserver((records) => {
    const now = performance.now();
    for (const r of records) {
      if (!r.target.classList.contains("va-on")) continue;
      const id = r.target.closest("[data-clip-id]").dataset.clipId;
      window.__vaFlips.push({ id, frame: Number(r.target.dataset.frame), ms: now - (since.get(id) ?? now) });
    }
  }).observe(root, { attributes: true, attributeFilter: ["class"], subtree: true });
}"""


def test_flipbook_plays_the_current_clip(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """The current clip plays its frames in order, showing each (the first too) for a whole
    frame time; with reduced motion it stays still."""
    t0 = time.monotonic()
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, tmp_path / "f.sqlite", TASK)
    wait_widget(page)
    page.mouse.move(0, 0)  # no card hovered
    page.evaluate(_FLIPS_JS, ROOT)
    press(page, "x")
    clip = current(page)
    flips_of = "([id, n]) => window.__vaFlips.filter((f) => f.id === id).length >= n"
    page.wait_for_function(flips_of, arg=[clip, 3])
    flips = [f for f in page.evaluate("() => window.__vaFlips") if f["id"] == clip]
    card = f"{ROOT} [data-clip-id='{clip}']"
    n_frames = page.locator(f"{card} img").count()
    where = page.locator(f"{card} .va-where").inner_text()  # e.g. "<video> 2.0 s to 4.0 s"
    start, end = (float(x) for x in re.findall(r"(\d+\.\d) s", where)[-2:])
    frame_ms = min(500.0, max(120.0, (end - start) * 1000 / n_frames))
    assert [f["frame"] for f in flips[:3]] == [1, 2, 3]
    # the first frame is shown for a whole frame time, like every other (timers only run late)
    assert flips[0]["ms"] >= frame_ms - 1, flips
    assert all(b["ms"] - a["ms"] >= frame_ms - 1 for a, b in itertools.pairwise(flips)), flips

    page.emulate_media(reduced_motion="reduce")
    press(page, "x")
    still = current(page)
    page.wait_for_timeout(4 * frame_ms)  # long enough for 3 flips, were it playing
    assert [f for f in page.evaluate("() => window.__vaFlips") if f["id"] == still] == []
    print(f"flipbook test: {time.monotonic() - t0:.1f} s")


# The clip id and the decision shown on that clip's card, in view i (0, 1) of the widget.
_VIEW_JS = """([sel, i, id]) => {
  const root = document.querySelectorAll(sel)[i];
  const card = root && id && root.querySelector(`[data-clip-id="${id}"]`);
  return root ? [root.dataset.clipId ?? "", card ? card.dataset.decision : null] : null;
}"""


def test_two_views_of_one_widget_agree(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """`ann` shown in two cells: a label, and its undo, in one view show in the other."""
    t0 = time.monotonic()
    server = start_jupyter("lab")
    open_widget_notebook(page, server, sample_library, tmp_path / "v.sqlite", TASK, extra="ann")
    page.wait_for_function(
        """(sel) => { const roots = [...document.querySelectorAll(sel)];
             return roots.length === 2 && roots.every((r) => r.dataset.clipId
               && r.dataset.clipId === roots[0].dataset.clipId); }""",
        arg=ROOT,
    )
    page.locator(ROOT).first.focus()
    clip = press(page, "a")  # in the first view
    page.wait_for_function(
        "([sel, id]) => { const [cur, d] = (" + _VIEW_JS + ")([sel, 1, id]);"
        " return d === 'positive' && cur && cur !== id; }",
        arg=[ROOT, clip],
    )
    second = page.locator(ROOT).nth(1)
    second.focus()
    page.keyboard.press("Backspace")  # undo in the second view: the label made in the first
    page.wait_for_function(
        "([sel, id]) => (" + _VIEW_JS + ")([sel, 1, id])[0] === id"
        " && (" + _VIEW_JS + ")([sel, 0, id])[1] === ''",
        arg=[ROOT, clip],
    )
    wait_saved(page, {"positives": 0, "negatives": 0, "skipped": 0})
    got = run_code_in_new_cell(page, "print(len(ann.task.labels()))")
    assert got == "0"
    print(f"two views test: {time.monotonic() - t0:.1f} s")


def test_notebook7_renders_and_labels(
    page: Any, start_jupyter: Any, sample_library: Path, tmp_path: Path
) -> None:
    """In Notebook 7 (shortcuts matched in the capture phase), 'a' labels a clip and Shift+A
    the rest of the page, and neither adds a cell."""
    t0 = time.monotonic()
    server = start_jupyter("notebook")
    open_widget_notebook(page, server, sample_library, tmp_path / "n.sqlite", TASK)
    wait_widget(page)
    cells = cell_count(page)
    clip = press(page, "a")
    wait_saved(page, {"positives": 1, "negatives": 0, "skipped": 0})
    assert page.get_attribute(ROOT, "data-last-saved") == clip
    assert cell_count(page) == cells, "'a' also inserted a cell in Notebook 7"
    got = run_code_in_new_cell(
        page, "print(ann.task.labels()[['clip_id', 'label']].values.tolist())"
    )
    assert got == str([[clip, True]])
    cells = cell_count(page)
    page.locator(ROOT).focus()
    page.keyboard.press("Shift+A")
    wait_saved(page, {"positives": 8, "negatives": 0, "skipped": 0})  # the page of 8
    assert cell_count(page) == cells, "Shift+A also inserted a cell in Notebook 7"
    page.keyboard.press("Enter")  # the large player, not Notebook 7's edit mode
    player = f"{ROOT} [data-testid=player]"
    page.wait_for_function("(p) => document.querySelector(p).dataset.ready === 'true'", arg=player)
    page.keyboard.press("Escape")
    page.wait_for_function("(p) => document.querySelector(p).hidden", arg=player)
    assert page.evaluate("() => document.activeElement?.classList.contains('cm-content')") is False
    print(f"notebook 7 test: {time.monotonic() - t0:.1f} s")
