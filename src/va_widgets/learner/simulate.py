"""Replaying labelling sessions: the paper's protocol, and the learning curve of a real one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from va_widgets.checks import check_count
from va_widgets.learner.engine import ActiveLearningEngine
from va_widgets.learner.quality import Quality, average_precision

Policy = str | Sequence[str] | Callable[[int, ActiveLearningEngine], str]

ESTIMATE_COLUMNS = ("estimate", "estimate_low", "estimate_high")


def simulate(
    features: np.ndarray,
    oracle_labels: np.ndarray,
    *,
    budget: int,
    policy: Policy,
    prior_scores: np.ndarray | None = None,
    eval_features: np.ndarray | None = None,
    eval_labels: np.ndarray | None = None,
    eval_prior_scores: np.ndarray | None = None,
    checkpoints: Sequence[int] = (25, 50, 100, 200),
    batch_size: int = 10,
    seed: int = 0,
    **engine_kwargs: Any,
) -> pd.DataFrame:
    """Replay an annotation session against known labels; AP on a held-out split.

    Parameters
    ----------
    features : (n, d) array
        The pool the simulated annotator labels from.
    oracle_labels : (n,) bool array
        The annotator's answers.
    budget : int
        Labels to collect.
    policy : str, sequence of str, or callable(batch_index, engine) -> str
        The feed of each batch: one feed, a schedule cycled batch by batch, or a function.
    prior_scores : (n,) array, optional
        Zero-shot scores of the pool (search feed, cold start).
    eval_features, eval_labels : optional
        The held-out split; without it, ``ap`` is NaN.
    eval_prior_scores : optional
        Zero-shot scores of the held-out split, used for AP while there is no model (a run
        without a model and without them scores at the positive rate, a constant predictor).
    checkpoints : label counts at which to evaluate (batches are cut to land on them); the
        budget, the session's end, is always one.
    batch_size : labels per batch; the engine retrains after each batch.
    seed : seeds the sampled feeds and the engine.
    **engine_kwargs : passed to :class:`ActiveLearningEngine` (explore, spread, ucb_c...).

    Returns
    -------
    pandas DataFrame, one row per checkpoint reached: ``n_labels``, ``n_pos``, ``ap``
    (held-out), ``collection_ap`` (the model's AP over the whole pool, out-of-fold for the
    labelled rows: what the estimate estimates), ``estimate``, ``estimate_low`` and ``estimate_high`` (the honest estimate and
    its 90 % interval, what the user would have seen; NaN when there was none),
    ``n_sampled``, ``model_version`` and ``feeds`` (labels collected per serving feed so far).
    """
    oracle = np.asarray(oracle_labels, dtype=bool)
    if features.ndim != 2 or oracle.shape != (features.shape[0],):
        raise ValueError(
            f"oracle_labels must have one entry per feature row: features {features.shape}, "
            f"oracle_labels {oracle.shape}"
        )
    marks = check_session(budget, batch_size, policy, checkpoints)
    require_finite("features", features)
    if prior_scores is not None:
        require_finite("prior_scores", prior_scores)
    if (
        eval_features is not None
        and eval_labels is not None
        and (len(eval_features) != len(eval_labels))
    ):
        raise ValueError("eval_features and eval_labels must have the same length")
    engine = ActiveLearningEngine(features, prior_scores, seed=seed, **engine_kwargs)
    rng = np.random.default_rng(seed)
    labels: dict[int, bool] = {}
    propensities: dict[int, float] = {}
    feed_counts: dict[str, int] = {}
    out = []
    step = 0
    while len(labels) < budget:
        if callable(policy):
            feed = policy(step, engine)
        elif isinstance(policy, str):
            feed = policy
        else:
            feed = policy[step % len(policy)]
        upcoming = [m for m in marks if m > len(labels)]
        k = min(
            batch_size, budget - len(labels), (upcoming[0] if upcoming else budget) - len(labels)
        )
        rows = engine.next(feed, k, rng=rng)
        if len(rows) == 0:
            break
        arms = engine.auto_arms
        for r, q in zip(rows.tolist(), engine.last_propensities.tolist(), strict=True):
            labels[r] = bool(oracle[r])
            if np.isfinite(q):
                propensities[r] = q
            served = arms.get(r) or engine.last_feed or feed
            feed_counts[served] = feed_counts.get(served, 0) + 1
        engine.update(labels, propensities)
        step += 1
        if len(labels) in marks:
            q = engine.quality()
            out.append(
                {
                    "n_labels": len(labels),
                    "n_pos": sum(labels.values()),
                    "ap": _evaluate(engine, eval_features, eval_labels, eval_prior_scores),
                    "collection_ap": _collection_ap(engine, oracle),
                    **_estimate_columns(q),
                    "n_sampled": q.n_sampled,
                    "model_version": engine.version,
                    "feeds": dict(feed_counts),
                }
            )
    return pd.DataFrame(out)


def check_session(
    budget: int, batch_size: int, policy: Policy, checkpoints: Sequence[int]
) -> list[int]:
    """Check a replayed session's arguments, naming the bad one. Returns the checkpoints it
    evaluates at: those within the budget, and the budget itself (the session's end)."""
    check_count("budget", budget)
    check_count("batch_size", batch_size)
    schedule = not (callable(policy) or isinstance(policy, str))
    if schedule and (not isinstance(policy, Sequence) or len(policy) == 0):
        raise ValueError(
            "policy must be a feed, a non-empty list of feeds (cycled per batch) or a "
            f"function (batch index, engine) -> feed; got {policy!r}"
        )
    if isinstance(checkpoints, str | bytes) or not isinstance(checkpoints, Iterable):
        raise TypeError(f"checkpoints must be label counts, e.g. (25, 50); got {checkpoints!r}")
    marks = {check_count("checkpoints", c) for c in checkpoints}
    return sorted({m for m in marks if m <= budget} | {int(budget)})


def require_finite(name: str, values: np.ndarray, chunk_rows: int = 65536) -> None:
    """Raise naming ``name`` (and its first bad row) if it holds NaN or infinite values.

    Checked in its own dtype, a block of rows at a time: no float64 copy of the features.
    """
    values = np.asarray(values)
    count, first = 0, None
    for start in range(0, len(values), chunk_rows):
        bad = ~np.isfinite(values[start : start + chunk_rows])
        if bad.any():
            count += int(bad.sum())
            if first is None:
                first = start + int(np.argwhere(bad)[0][0])
    if first is not None:
        raise ValueError(
            f"{name} have {count} NaN or infinite value(s) (first in row {first}): "
            "drop those rows or fill them in before simulating"
        )


def _estimate_columns(q: Quality) -> dict[str, float]:
    nan = float("nan")
    values = (q.ap, q.ci_low, q.ci_high)
    return {
        c: nan if v is None else float(v) for c, v in zip(ESTIMATE_COLUMNS, values, strict=True)
    }


def _collection_ap(engine: ActiveLearningEngine, oracle: np.ndarray) -> float:
    scores = engine.honest_scores()
    return float("nan") if scores is None else average_precision(oracle, scores)


def _evaluate(engine, eval_features, eval_labels, eval_prior_scores) -> float:
    if eval_features is None or eval_labels is None:
        return float("nan")
    y = np.asarray(eval_labels, dtype=bool)
    if engine.has_model:
        return average_precision(y, engine.predict_proba(eval_features))
    if eval_prior_scores is not None:
        return average_precision(y, eval_prior_scores)
    return float(y.mean())


def learning_curve(
    features: np.ndarray,
    rows: Sequence[int],
    labels: Sequence[bool],
    propensities: Mapping[int, float] | None = None,
    *,
    points: int = 12,
    **engine_kwargs: Any,
) -> pd.DataFrame:
    """The honest AP estimate after the first n labels of a session, in the order given.

    ``rows`` and ``labels`` list the session's labels in order; ``propensities`` maps the
    sampled rows to their draw probabilities. Returns one row per checkpoint (at most
    ``points``): ``n_labels``, ``n_pos`` (positives among them), ``estimate``,
    ``estimate_low``, ``estimate_high`` (NaN while there is no estimate) and ``n_sampled``.
    """
    points = check_count("points", points)
    rows = [int(r) for r in rows]
    labels = [bool(v) for v in labels]
    if len(rows) != len(labels):
        raise ValueError(f"rows ({len(rows)}) and labels ({len(labels)}) differ in length")
    columns = ["n_labels", "n_pos", *ESTIMATE_COLUMNS, "n_sampled"]
    if not rows:
        return pd.DataFrame(columns=columns, dtype=float)
    engine = ActiveLearningEngine(features, float32_copy_mb=0, **engine_kwargs)
    props = dict(propensities or {})
    marks = np.unique(np.linspace(1, len(rows), num=min(points, len(rows))).round().astype(int))
    out = []
    for n in marks.tolist():
        engine.update(dict(zip(rows[:n], labels[:n], strict=True)), props)
        q = engine.quality()
        out.append(
            {"n_labels": n, "n_pos": q.n_pos, **_estimate_columns(q), "n_sampled": q.n_sampled}
        )
    return pd.DataFrame(out, columns=columns)
