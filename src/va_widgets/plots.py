"""Matplotlib figures of a labelling task: learning curve, score distributions, feed usage.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so calling these
functions never opens windows or leaks figures; Jupyter displays the returned figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from va_widgets.learner.quality import FEW_POSITIVES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from va_widgets.task import Task

POSITIVE, NEGATIVE, OTHER = "#2e7d32", "#d32f2f", "#9e9e9e"


def plot_learning_curve(task: Task, ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    curve = task.learning_curve()
    q = task.quality()
    ax.set_title("Learning curve")
    ax.set_xlabel("labels")
    ax.set_ylabel("estimated AP (all clips)")
    ax.set_ylim(0, 1.02)
    valid = curve.dropna(subset=["estimate"])
    if valid.empty:
        _note(ax, q.summary.replace(": ", ":\n", 1))
        return
    ax.fill_between(
        valid["n_labels"],
        valid["estimate_low"],
        valid["estimate_high"],
        alpha=0.25,
        label="90% interval",
    )
    (line,) = ax.plot(valid["n_labels"], valid["estimate"], marker="o", label="estimated AP")
    rough = valid[valid["n_pos"] < FEW_POSITIVES]  # as rough as Quality.summary calls them
    if not rough.empty:
        ax.plot(
            rough["n_labels"],
            rough["estimate"],
            linestyle="none",
            marker="o",
            markerfacecolor="white",
            markeredgecolor=line.get_color(),
            label=f"rough: under {FEW_POSITIVES} positive labels",
        )
    ax.legend(loc="best", fontsize="small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # label counts: no 8.5 labels
    if q.advice:
        ax.text(
            0.02,
            0.02,
            "plateau: see task.quality().advice",
            transform=ax.transAxes,
            fontsize="small",
            color="#616161",
        )


def plot_score_distributions(task: Task, ax: Axes) -> None:
    ax.set_title(f"Scores (model v{task.model_version})")
    ax.set_xlabel("P(positive)")
    scores = task.engine.scores()
    if scores is None:
        _note(ax, "no model yet\n(needs a positive and a negative label)")
        return
    labels = task.labels()
    rows = task.library.rows(labels["clip_id"], strict=False)
    known = rows >= 0
    y = labels["label"].to_numpy(dtype=bool)[known]
    rows = rows[known]
    unlabelled = np.ones(len(scores), dtype=bool)
    unlabelled[rows] = False
    bins = np.linspace(0, 1, 26).tolist()
    ax.hist(scores[unlabelled], bins=bins, color=OTHER, alpha=0.6, density=True, label="unlabelled")
    for mask, colour, name in ((y, POSITIVE, "positives"), (~y, NEGATIVE, "negatives")):
        if mask.any():
            ax.hist(
                scores[rows[mask]], bins=bins, color=colour, alpha=0.6, density=True, label=name
            )
    ax.set_ylabel("density")
    ax.legend(fontsize="small")


def plot_feed_usage(task: Task, ax: Axes) -> None:
    ax.set_title("Labels per feed")
    labels = task.labels()
    if labels.empty:
        _note(ax, "no labels yet")
        return
    feeds = labels["feed"].fillna("(none)").astype(str)
    table = pd.crosstab(feeds, labels["label"].astype(bool)).reindex(
        columns=[True, False], fill_value=0
    )
    x = np.arange(len(table))
    ax.bar(x, table[True], color=POSITIVE, label="positive")
    ax.bar(x, table[False], bottom=table[True], color=NEGATIVE, label="negative")
    ax.set_xticks(x, table.index.tolist(), rotation=30, ha="right")
    ax.set_ylabel("labels")
    choice = task.feed_stats().attrs.get("choice")
    # the auto feed's choice heads the legend: as free text it was drawn over the legend
    ax.legend(
        fontsize="small",
        loc="best",
        title=f"auto feed now: {choice}" if choice else None,
        title_fontsize="small",
    )


def plot_task(task: Task) -> Figure:
    """One figure: learning curve, score distributions and feed usage of ``task``."""
    fig = _figure(figsize=(13, 3.8))
    ax_curve, ax_scores, ax_feeds = fig.subplots(1, 3)
    plot_learning_curve(task, ax_curve)
    plot_score_distributions(task, ax_scores)
    plot_feed_usage(task, ax_feeds)
    fig.suptitle(
        f"Task {task.name!r}: {sum(task.counts()[k] for k in ('positives', 'negatives'))} labels"
    )
    return fig


def score_timeline(
    scores: pd.DataFrame,
    *,
    threshold: float | None = 0.5,
    title: str | None = None,
    min_gap: float = 0.0,
    min_length: float = 0.0,
    max_label: int = 28,
) -> Figure:
    """Where in each video the concept occurs: one figure, one thin strip per video.

    ``scores`` has one row per clip with ``video``, ``start_seconds``, ``end_seconds`` and
    ``score`` (as returned by ``VideoClassifier.score_videos``). Each video is a strip on a
    shared time axis (seconds) with its clip scores drawn as bars of height 0 to 1; the
    segments of :func:`va_widgets.segments.segments` (clips scoring at least ``threshold``,
    gaps up to ``min_gap`` bridged, segments shorter than ``min_length`` dropped) are
    shaded. Strips are sorted by peak score, highest on top; names are cut to ``max_label``
    characters. One Axes whatever the number of videos; the figure grows 0.25 in per strip,
    so 50 videos stay readable. ``threshold`` None takes ``scores.attrs["threshold"]``
    (else 0.5).
    """
    from pathlib import Path

    from va_widgets.segments import segments as find_segments

    found = find_segments(scores, threshold=threshold, min_gap=min_gap, min_length=min_length)
    used = float(found.attrs["threshold"])
    values = pd.to_numeric(scores["score"], errors="coerce")
    peaks = values.groupby(scores["video"], sort=False).max()
    videos = list(peaks.sort_values(ascending=False, kind="stable", na_position="last").index)
    n = len(videos)
    fig = _figure(figsize=(10, 1.2 + 0.25 * max(n, 4)))
    ax = fig.subplots()
    if not videos:
        _note(ax, "no clips to show")
        return fig
    height = 0.8  # of the 1.0 each strip has; the rest separates strips
    lane = {video: n - 1 - i for i, video in enumerate(videos)}  # highest peak on top
    for video, clips in scores.groupby("video", sort=False):
        base = lane[video] - height / 2
        clips = clips.sort_values("start_seconds")
        edges = np.r_[
            clips["start_seconds"].to_numpy(float), clips["end_seconds"].to_numpy(float)[-1:]
        ]
        heights = np.nan_to_num(pd.to_numeric(clips["score"], errors="coerce").to_numpy(float))
        starts, ends = clips["start_seconds"].to_numpy(float), clips["end_seconds"].to_numpy(float)
        contiguous = len(starts) < 2 or np.allclose(starts[1:], ends[:-1])
        if contiguous:
            ax.stairs(base + height * heights, edges, baseline=base, fill=True, color=OTHER, lw=0)
        else:
            ax.bar(
                starts,
                height * heights,
                width=ends - starts,
                bottom=base,
                align="edge",
                color=OTHER,
            )
    ax.broken_barh(
        [(0, 0)], (0, 0), facecolors=POSITIVE, alpha=0.3, label=f"segment: score ≥ {used:g}"
    )
    for row in found.itertuples(index=False):
        ax.broken_barh(
            [(row.start_seconds, row.end_seconds - row.start_seconds)],
            (lane[row.video] - 0.5, 1.0),
            facecolors=POSITIVE,
            alpha=0.3,
            linewidth=0,
        )
    bottom_up = videos[::-1]  # ticks in ascending position: the top strip comes last
    names = [_short(Path(str(v)).name, max_label) for v in bottom_up]
    ax.set_yticks(range(n), names, fontsize="small" if n <= 20 else "x-small")
    ax.set_ylim(-0.6, n - 0.4)
    end = pd.to_numeric(scores["end_seconds"], errors="coerce").max()
    ax.set_xlim(0, float(end) if np.isfinite(end) and end > 0 else 1.0)
    ax.set_xlabel("seconds")
    ax.tick_params(axis="y", length=0)
    for spine in ("top", "right", "left"):
        ax.spines[spine].set_visible(False)
    ax.legend(loc="lower right", fontsize="x-small", frameon=False, bbox_to_anchor=(1, 1), ncol=1)
    heading = "score over time, one strip per video (bar height: score 0-1)"
    ax.set_title(f"{title}: {heading}" if title else heading, fontsize="medium", loc="left")
    return fig


def _short(name: str, limit: int) -> str:
    """``name`` cut in the middle to ``limit`` characters (the end tells files apart)."""
    if len(name) <= limit:
        return name
    head = max(1, (limit - 1) // 2)
    return name[:head] + "…" + name[len(name) - max(1, limit - 1 - head) :]


def _figure(**kwargs: Any) -> Figure:
    """A figure outside pyplot's state that a notebook still displays as an image.

    IPython shows :class:`~matplotlib.figure.Figure` objects only once pyplot's inline backend
    registered its formatter; register a PNG formatter here so that a returned figure displays
    in a fresh kernel too (and pyplot never holds, or shows twice, our figures).
    """
    from matplotlib.figure import Figure

    try:
        from IPython import get_ipython
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is not None:
        from IPython.core.pylabtools import print_figure

        formatter = shell.display_formatter.formatters["image/png"]
        formatter.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
    return Figure(layout="constrained", **kwargs)


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#616161")
    ax.set_xticks([])
    ax.set_yticks([])
