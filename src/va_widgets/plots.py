"""Matplotlib figures of a labelling task: learning curve, score distributions, feed usage.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so calling these
functions never opens windows or leaks figures; Jupyter displays the returned figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from va_widgets.task import Task

POSITIVE, NEGATIVE, OTHER = "#2e7d32", "#d32f2f", "#9e9e9e"


def plot_learning_curve(task: Task, ax: Axes) -> None:
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
    ax.plot(valid["n_labels"], valid["estimate"], marker="o", label="estimated AP")
    ax.legend(loc="lower right", fontsize="small")
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
    if choice:
        ax.text(
            0.99,
            0.97,
            f"auto feed now: {choice}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize="small",
        )
    ax.legend(fontsize="small", loc="upper left")


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
    scores: pd.DataFrame, *, threshold: float = 0.5, title: str | None = None
) -> Figure:
    """Where in each video the concept occurs: one row per video, clip scores over time.

    ``scores`` has one row per clip with ``video``, ``start_seconds``, ``end_seconds`` and
    ``score`` (as returned by ``VideoClassifier.score_videos``); clips scoring at least
    ``threshold`` are shaded.
    """
    from pathlib import Path

    videos = list(dict.fromkeys(scores["video"]))
    fig = _figure(figsize=(10, 0.9 + 1.1 * max(1, len(videos))))
    axes = fig.subplots(max(1, len(videos)), 1, sharex=False, squeeze=False)[:, 0]
    if not videos:
        _note(axes[0], "no clips to show")
    for ax, video in zip(axes, videos, strict=False):
        clips = scores[scores["video"] == video].sort_values("start_seconds")
        edges = np.r_[clips["start_seconds"].to_numpy(), clips["end_seconds"].to_numpy()[-1:]]
        values = clips["score"].to_numpy(dtype=float)
        ax.stairs(values, edges, color=POSITIVE, linewidth=1.2)
        ax.stairs(
            np.where(values >= threshold, values, 0), edges, fill=True, color=POSITIVE, alpha=0.25
        )
        ax.axhline(threshold, color=OTHER, linewidth=0.8, linestyle="--")
        ax.set_ylim(0, 1)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylabel(Path(str(video)).name, rotation=0, ha="right", va="center", fontsize="small")
        ax.set_yticks([0, threshold, 1])
    axes[-1].set_xlabel("seconds")
    if title:
        fig.suptitle(f"{title}: score over time (shaded: score ≥ {threshold:g})")
    return fig


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
