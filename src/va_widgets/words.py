"""What the Annotator says, in plain words: the feeds, the auto feed's choice, the trend of the
quality estimate. The figures come from the task and its learner; this module only phrases
them (no jargon such as UCB in what a labeller reads).
"""

from __future__ import annotations

import math
from typing import Any

#: feed -> what it shows, for the feed selector's tooltips and the help
FEED_TEXT: dict[str, str] = {
    "auto": "picks among the feeds below for you, preferring the one whose clips have taught "
    "the model most so far",
    "search": "the clips closest to your text query (works before any label)",
    "top": "the clips the model is surest show the concept: confirm them, catch false alarms",
    "bottom": "the clips the model is surest do not: catch the positives it misses",
    "borderline": "the clips the model is least sure about (score near 0.5): their labels "
    "teach it most",
    "random": "clips drawn at random: a fair sample, for checking how good the model is",
    "similar": "clips that look like one you pick (press s on a clip)",
    "review": "clips you already labelled where the model disagrees most: catch mistakes",
}


def auto_choice_text(stats: Any) -> str:
    """Why the auto feed shows what it shows, from ``Task.feed_stats()``.

    ``stats`` is the DataFrame (one row per feed: ``pulls``, the batches it led and was
    credited for; ``mean_reward``, the mean gain of the estimated AP over them;
    ``probability``, its share of the next draws) whose ``attrs`` hold ``choice`` and
    ``reason``.
    """
    attrs = getattr(stats, "attrs", {}) or {}
    choice = str(attrs.get("choice", ""))
    reason = str(attrs.get("reason", ""))
    if not choice:
        return ""
    if reason.startswith("no model yet"):
        return reason  # the cold start says what it does in words already
    try:
        row = stats.loc[choice]
        pulls, mean = int(row["pulls"]), float(row["mean_reward"])
        share = float(row["probability"])
        others = [float(v) for f, v in stats["probability"].items() if f != choice]
    except (KeyError, TypeError, ValueError):
        return f"{choice}: {FEED_TEXT.get(choice, '')}".rstrip(": ")
    mix = f"{share:.0%} of the draws" + (f", each other feed {max(others):.0%}" if others else "")
    head = f"mostly {choice} clips ({mix})"
    if pulls == 0 or math.isnan(mean):
        return f"{head}: first in line, not credited yet"
    batches = f"{pulls} batch{'es' * (pulls != 1)}"
    return (
        f"{head}: no feed has raised the estimated quality more "
        f"({mean:+.3f} on average over the {batches} it led)"
    )


def quality_trend(history: list[tuple[int, float]], *, min_labels_apart: int = 5) -> str:
    """The change of the estimated AP since an estimate at least ``min_labels_apart`` labels
    older, e.g. "up 0.06 over the last 12 labels"; "" when there is none to compare with.

    ``history``: (labels, AP) pairs in the order they were estimated.
    """
    if len(history) < 2:
        return ""
    n_now, ap_now = history[-1]
    older = [(n, ap) for n, ap in history if n_now - n >= min_labels_apart]
    if not older:
        return ""
    n_then, ap_then = older[-1]
    delta = ap_now - ap_then
    span = f"over the last {n_now - n_then} labels"
    if abs(delta) < 0.005:
        return f"steady {span}"
    return f"{'up' if delta > 0 else 'down'} {abs(delta):.2f} {span}"
