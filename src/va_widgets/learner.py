"""Active-learning engine: classifier, scores, feeds, auto feed (bandit), review and quality.

This module works on arrays only (a feature matrix, an optional zero-shot score vector and a
``{row: bool}`` label set); it knows nothing about videos, the clip library or the label store.
It is the only module that imports modAL (behind :class:`ActiveLearningEngine`), so modAL can be
swapped for another library without touching the rest of the package.

The loop the notebook runs after every label event is::

    engine.update(labels)            # retrain on the full label set (undo-safe), bump version
    rows = engine.next("auto", 10)   # rank the cached scores of this model version

The classifier is fitted on per-dimension standardised features: the mean and standard
deviation of every column are computed once over the whole feature matrix (all clips, labelled or
not: unsupervised, so cross-validation stays honest, and stable as labels come in). CLIP-style
unit-norm embeddings have coordinates of ~0.04, on which logistic regression with C=1 is so
strongly penalised that every probability sits near 0.5; standardised, it fits.

Scoring every clip is still ONE float32 product of the RAW feature matrix with the coefficients,
the scaling folded into them (w' = w / sigma, b' = b - w' . mu; :func:`va_widgets.linalg.project`,
chunked float16 -> float32), then a sigmoid; the result is cached per model version, and every
feed ranks that cache. :attr:`ActiveLearningEngine.estimator` is a plain scikit-learn estimator
on raw features (the folded ``LogisticRegression``, or a ``Pipeline`` of a fixed
``StandardScaler`` and a custom estimator).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from va_widgets.linalg import logistic, project, top_k

__all__ = [
    "ARMS",
    "FEEDS",
    "ActiveLearningEngine",
    "Quality",
    "average_precision",
    "default_estimator",
    "simulate",
]

Feed = Literal["search", "top", "bottom", "borderline", "random", "similar", "review", "auto"]
FEEDS: tuple[str, ...] = (
    "search",
    "top",
    "bottom",
    "borderline",
    "random",
    "similar",
    "review",
    "auto",
)
#: the feeds the auto feed chooses between ("search" only when there is a zero-shot prior).
ARMS: tuple[str, ...] = ("borderline", "top", "random", "bottom", "search")
Reward = Literal["surprise", "logloss", "flip", "cv_ap"]
REWARDS: tuple[str, ...] = ("surprise", "logloss", "flip", "cv_ap")


_THREADPOOLS = None


def _one_blas_thread():
    """Context: BLAS on one thread. Fits on a few hundred labels are tiny; multi-threaded
    OpenBLAS made them 15x slower (6 -> 96 ms) on the busy 2-core development machine."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def _available_mb() -> float:
    """Memory available to new allocations in MB (page cache included, as Linux counts it)."""
    import os

    try:  # MemAvailable counts reclaimable page cache; free pages alone understate it badly
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (AttributeError, ValueError, OSError):
        return 1024.0


def _float32_copy(features: np.ndarray, chunk_rows: int = 65536) -> np.ndarray:
    """An in-memory float32 copy, converted chunk by chunk (torch converts float16 fastest)."""
    out = np.empty(features.shape, dtype=np.float32)
    if features.dtype == np.float16:
        import torch

        for start in range(0, features.shape[0], chunk_rows):
            block = np.array(features[start : start + chunk_rows])
            out[start : start + len(block)] = torch.from_numpy(block).float().numpy()
    else:
        for start in range(0, features.shape[0], chunk_rows):
            out[start : start + chunk_rows] = features[start : start + chunk_rows]
    return out


def _column_stats(features: np.ndarray, chunk_rows: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (float64, (d,)) in one chunked float32 pass.

    Deviations are taken from the first chunk's mean (no cancellation in E[x^2] - E[x]^2),
    summed in float32 within a chunk and in float64 across chunks; small chunks stay in cache
    (1M x 512 float32: 1-2 s on the busy 2-core machine; relative error of sigma ~1e-6).
    """
    n, d = features.shape
    if n == 0:
        return np.zeros(d), np.ones(d)
    half = features.dtype == np.float16
    if half:
        import torch
    shift: np.ndarray | None = None
    s1 = np.zeros(d, dtype=np.float64)
    s2 = np.zeros(d, dtype=np.float64)
    for start in range(0, n, chunk_rows):
        block = features[start : start + chunk_rows]
        if half:
            block = torch.from_numpy(np.array(block)).float().numpy()
        if shift is None:
            shift = np.asarray(block, dtype=np.float32).mean(axis=0)
        dev = np.subtract(block, shift, dtype=np.float32)
        s1 += dev.sum(axis=0)
        dev *= dev
        s2 += dev.sum(axis=0)
    assert shift is not None
    mean_dev = s1 / n
    var = np.maximum(s2 / n - mean_dev**2, 0.0)
    return shift.astype(np.float64) + mean_dev, np.sqrt(var)


def default_estimator() -> LogisticRegression:
    """The paper's classifier: logistic regression with balanced class weights and a fixed C.

    The engine fits it on standardised features (see :class:`ActiveLearningEngine`), where
    C=0.3 was best or tied in a sweep over 0.1, 0.3, 1, 3 (benchmarks/sample_efficiency.py):
    digits, auto feed, median gain over the best baseline at 50 labels +4.7/+4.3/+4.1/+3.6 AP
    with only C=0.3 and C=3 keeping the auto feed within 0.5 AP of the best fixed feed at 25
    labels; sample videos (pixel-statistics features), auto at 25 labels 98.2/98.4/98.0/97.3.
    C stays fixed: choosing it by cross-validation with a handful of positives picks absurdly
    strong regularisation (C=1e-4 with <= 3 positives) and hurts.
    """
    return LogisticRegression(C=0.3, class_weight="balanced", max_iter=1000)


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision, equal to scikit-learn's ``average_precision_score`` (ties included).

    A small NumPy version so that the bootstrap in :meth:`ActiveLearningEngine.quality` can
    afford a thousand resamples. Returns NaN when there is no positive.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    # last index of each group of tied scores: the thresholds scikit-learn uses
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = tp[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Quality:
    """Cross-validated average precision of the current classifier on the labels so far.

    Active-learning labels are NOT a random sample of the collection (the feeds pick hard,
    borderline and high-scoring clips on purpose), so this estimate describes the labelled set,
    not the whole collection; treat it as a progress signal, and label a random sample (the
    "random" feed) for an unbiased estimate.

    Attributes
    ----------
    ap : float or None
        Average precision of the out-of-fold predictions; None with too few labels.
    ci_low, ci_high : float or None
        Bootstrap 95 % interval over the out-of-fold predictions.
    n_pos, n_neg : int
        Labelled positives and negatives.
    n_folds : int
        k of the stratified k-fold (min(5, n_pos, n_neg)); 0 when not computed.
    model_version : int
        The engine's model version the estimate belongs to.
    reason : str
        Why ``ap`` is None, or a one-line description of how it was computed.
    """

    ap: float | None
    ci_low: float | None
    ci_high: float | None
    n_pos: int
    n_neg: int
    n_folds: int
    model_version: int
    reason: str

    def __str__(self) -> str:
        if self.ap is None:
            return f"AP: {self.reason}"
        return (
            f"AP {self.ap:.3f} (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}), "
            f"{self.n_pos} positives / {self.n_neg} negatives, {self.n_folds}-fold CV"
        )


class _Bandit:
    """UCB1 over the feeds, pulled one row at a time.

    value(arm) = mean reward + c * sqrt(ln N / pulls), N = all pulls; arms never tried come
    first. Inside a batch, rows already allotted but not yet labelled count as pulls with an
    unchanged mean (the usual batched-UCB device), so a batch spreads over arms only while the
    exploration bonus says so.
    """

    def __init__(self, arms: Sequence[str], c: float) -> None:
        self.arms = list(arms)
        self.c = c
        self.rewards: dict[str, list[float]] = {a: [] for a in self.arms}

    def _mean(self, arm: str) -> float:
        r = self.rewards[arm]
        if r:
            return float(np.mean(r))
        seen = [x for a in self.arms for x in self.rewards[a]]
        return float(np.mean(seen)) if seen else 0.5

    def ucb(self, arm: str, extra: Mapping[str, int] | None = None) -> float:
        extra = extra or {}
        pulls = {a: len(self.rewards[a]) + extra.get(a, 0) for a in self.arms}
        if pulls[arm] == 0:
            return math.inf
        total = max(sum(pulls.values()), 2)
        return self._mean(arm) + self.c * math.sqrt(math.log(total) / pulls[arm])

    def choose(self, extra: Mapping[str, int] | None = None) -> tuple[str, str]:
        """The arm to pull next, with a one-line reason; ``extra`` = pulls awaiting labels."""
        extra = extra or {}
        for arm in self.arms:
            if not self.rewards[arm] and not extra.get(arm):
                return arm, f"{arm}: not tried yet (each feed is tried once first)"
        values = {a: self.ucb(a, extra) for a in self.arms}
        arm = max(self.arms, key=lambda a: values[a])
        r = self.rewards[arm]
        if not r:
            return arm, f"{arm}: tried, label not back yet"
        return arm, (
            f"{arm}: highest UCB {values[arm]:.2f} = mean reward {np.mean(r):.2f} over "
            f"{len(r)} labels + exploration bonus"
        )


class ActiveLearningEngine:
    """modAL ``ActiveLearner`` around a scikit-learn classifier, with feeds and an auto feed.

    Parameters
    ----------
    features : (n, d) float16 or float32 array, possibly memory-mapped
        One row per clip; never copied.
    prior_scores : (n,) array or None
        Zero-shot scores (text-query cosine similarities); None when there is no query.
    estimator : scikit-learn classifier, optional
        Default :func:`default_estimator`. It is fitted on standardised features (see
        ``standardize``). A binary ``LogisticRegression`` is scored with one float32 product of
        the raw features with the folded coefficients; any other estimator through its
        ``predict_proba`` on standardised float32 chunks.
    standardize : bool
        Fit on per-column standardised features, (x - mu) / sigma, mu and sigma computed once
        over the whole matrix (all rows, labelled or not; a constant column keeps sigma = 1).
        Default True: unit-norm embeddings have tiny coordinates, on which a penalised
        logistic regression is badly underfit. False fits on the raw features.
    reward : {"surprise", "logloss", "flip", "cv_ap"}
        Auto-feed reward of each labelled row, from the annotator's own labels only (never an
        evaluation split), credited to the feed that picked the row: "surprise" (default) is
        |label - p|, p the probability the model gave the row when it was served (how much
        the label taught the model); "logloss" the clipped log-loss of p; "flip" 1 when the
        label contradicts the prediction; "cv_ap" the gain of cross-validated AP over the batch
        (biased to easy positives; kept for comparison only).
    ucb_c : float
        Exploration weight of the UCB bandit (rewards lie in [0, 1]).
    float32_copy_mb : float or None
        Keep a float32 copy of a float16 (or memory-mapped) matrix in RAM when it needs at
        most this many MB: scoring runs after every label, and a float32 matrix scores about
        2-3x faster than converting float16 chunk by chunk (1M x 512: ~0.1 s against 0.26-0.45
        s on the busy 2-core machine). None (default): up to a quarter of the available
        memory, at most 1 GB (500k x 512), so that a million clips stay within 2 GB of RAM
        beyond the memory-mapped features. 0 disables the copy.
    seed : int
        Seeds the engine's own random generator (random feed, when no ``rng`` is passed).
    """

    def __init__(
        self,
        features: np.ndarray,
        prior_scores: np.ndarray | None = None,
        *,
        estimator: Any = None,
        reward: Reward = "surprise",
        ucb_c: float = 0.1,
        float32_copy_mb: float | None = None,
        standardize: bool = True,
        seed: int = 0,
    ) -> None:
        from modAL.models import ActiveLearner
        from modAL.uncertainty import uncertainty_sampling

        if features.ndim != 2:
            raise ValueError(f"features must be 2-d (n, d); got shape {features.shape}")
        self.features = features
        self.n_rows, self.dim = (int(s) for s in features.shape)
        copy_mb = self.n_rows * self.dim * 4 / 2**20
        if float32_copy_mb is None:
            float32_copy_mb = min(1024.0, _available_mb() / 4)
        self._score_features = features
        if (features.dtype != np.float32 or isinstance(features, np.memmap)) and (
            copy_mb <= float32_copy_mb
        ):
            self._score_features = _float32_copy(features)
        # per-column mean and scale of the whole matrix (unsupervised, computed once)
        self.standardize = bool(standardize)
        self._mu: np.ndarray | None = None
        self._sigma: np.ndarray | None = None
        self._std_raw: np.ndarray | None = None
        if self.standardize:
            mu, std = _column_stats(self._score_features)
            sigma = std.copy()
            sigma[~(sigma > 1e-6 * max(float(np.nanmax(std, initial=0.0)), 1e-30))] = 1.0
            self._mu, self._sigma, self._std_raw = mu, sigma, std
            self._mu32 = mu.astype(np.float32)
            self._inv_sigma32 = (1.0 / sigma).astype(np.float32)
        self._raw_cache: tuple[int, Any] | None = None
        self._linear_cache: tuple[int, tuple[np.ndarray, float] | None] | None = None
        self.prior_scores: np.ndarray | None = None
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}; got {reward!r}")
        self.reward = reward
        self._estimator_template = default_estimator() if estimator is None else estimator
        # the modAL adapter: modAL owns the training set and (re)fits the estimator.
        self._learner = ActiveLearner(
            estimator=clone(self._estimator_template), query_strategy=uncertainty_sampling
        )
        self._labels: dict[int, bool] = {}
        self._fitted_labels: dict[int, bool] = {}
        self._has_model = False
        self.version = 0
        self._scores_cache: tuple[int, np.ndarray] | None = None
        self._oof_cache: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._row_norms: np.ndarray | None = None
        self._rng = np.random.default_rng(seed)
        self.arms = [a for a in ARMS if a != "search"]
        self._bandit = _Bandit(self.arms, ucb_c)
        if prior_scores is not None:
            self.set_prior(prior_scores)
        # rows served by the auto feed, awaiting their label: row -> (arm, p before, version)
        self._pending: dict[int, tuple[str, float, int]] = {}
        self._batch_rows: list[int] = []
        self._auto_reason = ""
        self._cv_before: float | None = None
        self.last_feed: str | None = None
        self.last_source: str = ""
        self.reward_log: list[tuple[str, float]] = []

    def set_prior(self, prior_scores: np.ndarray) -> None:
        """Use ``prior_scores`` (n,) as the zero-shot scores; the auto feed gains "search"."""
        prior = np.asarray(prior_scores, dtype=np.float32)
        if prior.shape != (self.n_rows,):
            raise ValueError(f"prior_scores must have shape ({self.n_rows},); got {prior.shape}")
        self.prior_scores = prior
        if "search" not in self.arms:
            self.arms.append("search")
            self._bandit.arms.append("search")
            self._bandit.rewards["search"] = []

    # ------------------------------------------------------------------ model
    @property
    def has_model(self) -> bool:
        """True once the labels hold at least one positive and one negative."""
        return self._has_model

    @property
    def estimator(self) -> Any:
        """The fitted scikit-learn classifier on RAW features (None before there is a model).

        A snapshot of the current model version (later updates do not change it). With
        ``standardize`` (the default) it is a ``LogisticRegression`` whose ``coef_`` and
        ``intercept_`` have the standardisation folded in (its ``predict_proba`` on raw rows
        equals :meth:`scores`), or, for an estimator without linear coefficients, a
        ``Pipeline`` of a fixed ``StandardScaler`` and a copy of the fitted estimator.
        """
        if not self._has_model:
            return None
        if self._raw_cache is None or self._raw_cache[0] != self.version:
            self._raw_cache = (self.version, self._raw_estimator())
        return self._raw_cache[1]

    def _scaler(self) -> StandardScaler:
        """A fitted ``StandardScaler`` holding the engine's column mean and scale."""
        assert self._mu is not None and self._sigma is not None and self._std_raw is not None
        scaler = StandardScaler()
        scaler.mean_ = self._mu.copy()
        scaler.scale_ = self._sigma.copy()
        scaler.var_ = self._std_raw**2
        scaler.n_features_in_ = self.dim
        scaler.n_samples_seen_ = self.n_rows
        return scaler

    def _raw_estimator(self) -> Any:
        est = self._learner.estimator
        if not self.standardize:
            return copy.deepcopy(est)
        folded = self._folded()
        if folded is not None:
            raw = copy.deepcopy(est)  # params, classes_, n_features_in_, n_iter_
            raw.coef_ = folded[0][None, :].copy()
            raw.intercept_ = np.array([folded[1]])
            return raw
        return Pipeline([("standardize", self._scaler()), ("classifier", copy.deepcopy(est))])

    @property
    def labels(self) -> dict[int, bool]:
        """A copy of the label set the model was last updated with."""
        return dict(self._labels)

    def _standardized(self, x: np.ndarray) -> np.ndarray:
        """(x - mu) / sigma as a new float32 array (x unchanged; a copy when not standardising)."""
        x = np.array(x, dtype=np.float32)
        if self.standardize:
            x -= self._mu32
            x *= self._inv_sigma32
        return x

    def _xy(self, rows: Sequence[int] | np.ndarray, labels: Mapping[int, bool]):
        """Standardised float32 features and 0/1 labels of ``rows`` (what the model is fitted on)."""
        rows = np.asarray(rows, dtype=np.int64)
        x = self._standardized(self._score_features[rows])
        y = np.array([int(bool(labels[int(r)])) for r in rows], dtype=np.int64)
        return x, y

    def update(self, labels: Mapping[int, bool]) -> bool:
        """Set the full current label set ``{row: bool}`` and retrain; True if it retrained.

        Pass every label each time (undo removes entries): additions are taught to modAL's
        ``ActiveLearner`` incrementally, anything else refits from the full set. The model
        version increments whenever the model changes (a retrain, or the model going away when
        undo leaves a single class).
        """
        new = {}
        for r, v in labels.items():
            ri = int(r)
            if not 0 <= ri < self.n_rows:
                raise IndexError(f"label row {ri} is outside the feature matrix (n={self.n_rows})")
            new[ri] = bool(v)
        if new == self._labels:
            return False
        prev_has_model = self._has_model
        self._labels = new
        n_pos = sum(new.values())
        n_neg = len(new) - n_pos
        if n_pos == 0 or n_neg == 0:
            if self._has_model:
                self._has_model = False
                self._fitted_labels = {}
                self.version += 1
            self._after_update(prev_has_model)
            return False
        added = {r: v for r, v in new.items() if r not in self._fitted_labels}
        additions_only = all(new.get(r) == v for r, v in self._fitted_labels.items())
        with warnings.catch_warnings(), _one_blas_thread():
            # modAL 0.4.2.1 passes check_X_y(force_all_finite=...), deprecated in scikit-learn
            # 1.6 and removed in 1.8 (hence the <1.8 pin): silence the warning, not errors.
            warnings.filterwarnings(
                "ignore", message=".*force_all_finite.*", category=FutureWarning
            )
            if self._has_model and additions_only and added:
                x, y = self._xy(list(added), added)
                self._learner.teach(x, y)
            else:
                rows = sorted(new)
                x, y = self._xy(rows, new)
                self._learner.fit(x, y)
        self._fitted_labels = dict(new)
        self._has_model = True
        self.version += 1
        self._after_update(prev_has_model)
        return True

    def _folded(self) -> tuple[np.ndarray, float] | None:
        """(w', b') of the fitted binary logistic regression on RAW features, float64.

        The model is fitted on z = (x - mu) / sigma, so
        w . z + b = (w / sigma) . x + (b - (w / sigma) . mu). None for other estimators.
        """
        est = self._learner.estimator
        if not (
            isinstance(est, LogisticRegression)
            and est.coef_.shape[0] == 1
            and list(est.classes_) == [0, 1]
        ):
            return None
        w = np.asarray(est.coef_[0], dtype=np.float64)
        b = float(est.intercept_[0])
        if self._sigma is not None and self._mu is not None:  # fitted on standardised rows
            w = w / self._sigma
            b -= float(w @ self._mu)
        return w, b

    def _linear(self) -> tuple[np.ndarray, float] | None:
        """Float32 folded coefficients and the intercept, cached per model version."""
        if self._linear_cache is not None and self._linear_cache[0] == self.version:
            return self._linear_cache[1]
        folded = self._folded()
        out = None if folded is None else (folded[0].astype(np.float32), folded[1])
        self._linear_cache = (self.version, out)
        return out

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(positive) of the current model for any feature matrix, float32 (n,)."""
        if not self._has_model:
            raise RuntimeError("no model yet: label at least one positive and one negative")
        lin = self._linear()
        if lin is not None:
            return logistic(features, lin[0], lin[1])
        out = np.empty(features.shape[0], dtype=np.float32)
        est = self._learner.estimator
        pos = list(est.classes_).index(1)
        for start in range(0, features.shape[0], 8192):
            block = self._standardized(features[start : start + 8192])
            out[start : start + len(block)] = est.predict_proba(block)[:, pos]
        return out

    def scores(self) -> np.ndarray | None:
        """P(positive) for every row (float32, cached per model version); None without a model."""
        if not self._has_model:
            return None
        if self._scores_cache is None or self._scores_cache[0] != self.version:
            self._scores_cache = (self.version, self.predict_proba(self._score_features))
        return self._scores_cache[1]

    # ------------------------------------------------------------------ helpers
    def row_norms(self) -> np.ndarray:
        """L2 norm of every feature row (float32, computed once in chunks)."""
        if self._row_norms is None:
            out = np.empty(self.n_rows, dtype=np.float32)
            for start in range(0, self.n_rows, 8192):
                block = np.asarray(self._score_features[start : start + 8192], dtype=np.float32)
                out[start : start + len(block)] = np.sqrt(np.einsum("ij,ij->i", block, block))
            np.maximum(out, 1e-12, out=out)
            self._row_norms = out
        return self._row_norms

    def cosine_to(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of every row to ``vector`` (float32, (n,))."""
        v = np.asarray(vector, dtype=np.float32)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        return project(self._score_features, v) / self.row_norms()

    def _proxy_scores(self) -> tuple[np.ndarray | None, str]:
        """Scores for model-less feeds: zero-shot prior, else by-example, else None (random)."""
        if self.prior_scores is not None:
            return self.prior_scores, "zero-shot prior"
        pos = [r for r, v in self._labels.items() if v]
        if pos:
            x = np.asarray(self._score_features[np.sort(pos)], dtype=np.float32)
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            return self.cosine_to(x.mean(axis=0)), f"similarity to {len(pos)} labelled positive(s)"
        return None, "random (no model, no prior, no positive yet)"

    def _exclude_mask(self, exclude: np.ndarray | None) -> np.ndarray:
        if exclude is None:
            mask = np.zeros(self.n_rows, dtype=bool)
            if self._labels:
                mask[np.fromiter(self._labels, dtype=np.int64)] = True
            return mask
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != (self.n_rows,):
            raise ValueError(f"exclude must be a boolean mask of shape ({self.n_rows},)")
        return exclude

    @staticmethod
    def _random(n: int, exclude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``n`` distinct random rows outside ``exclude`` (rejection sampling: no O(n) shuffle)."""
        total = exclude.shape[0]
        if n <= 0:
            return np.empty(0, dtype=np.int64)
        if 4 * n < total:
            picked: list[int] = []
            seen: set[int] = set()
            for _ in range(8):
                for r in rng.integers(0, total, size=4 * n + 16).tolist():
                    if r not in seen and not exclude[r]:
                        seen.add(r)
                        picked.append(r)
                        if len(picked) == n:
                            return np.array(picked, dtype=np.int64)
        free = np.flatnonzero(~exclude)  # dense exclusions: fall back to an exact draw
        n = min(n, len(free))
        return rng.choice(free, size=n, replace=False).astype(np.int64)

    # ------------------------------------------------------------------ feeds
    def next(
        self,
        feed: str,
        n: int,
        *,
        exclude: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        similar_to: int | None = None,
    ) -> np.ndarray:
        """Row indices to label next from ``feed`` (int64, at most ``n``, no duplicates).

        Parameters
        ----------
        feed : {"search", "top", "bottom", "borderline", "random", "similar", "review", "auto"}
        n : int
            Batch size; fewer rows come back when the pool runs out.
        exclude : (n_rows,) bool array, optional
            Rows never to return (labelled and skipped); default the labelled rows. "review"
            ignores it and returns labelled rows only.
        rng : numpy Generator, optional
            For "random" and tie-breaks; default the engine's own.
        similar_to : int, optional
            The row whose neighbours the "similar" feed returns.

        After the call, ``last_feed`` holds the feed that served (the arm "auto" chose) and
        ``last_source`` what it ranked by (model version, zero-shot prior, by-example...).
        """
        if feed not in FEEDS:
            raise ValueError(f"unknown feed {feed!r}; choose one of {FEEDS}")
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0; got {n}")
        rng = self._rng if rng is None else rng
        if feed == "review":
            self.last_feed, self.last_source = "review", "labelled rows by disagreement"
            return self.review()[:n]
        mask = self._exclude_mask(exclude)
        if feed == "auto":
            return self._auto(n, mask, rng)
        self.last_feed = feed
        return self._serve(feed, n, mask, rng, similar_to)

    def _serve(
        self, feed: str, n: int, mask: np.ndarray, rng: np.random.Generator, similar_to: int | None
    ) -> np.ndarray:
        if feed == "random":
            self.last_source = "uniform random"
            return self._random(n, mask, rng)
        if feed == "similar":
            if similar_to is None:
                raise ValueError("the 'similar' feed needs similar_to=<row index>")
            row = int(similar_to)
            if not 0 <= row < self.n_rows:
                raise IndexError(f"similar_to={row} is outside the feature matrix")
            sims = self.cosine_to(np.asarray(self._score_features[row], dtype=np.float32))
            mask = mask.copy()
            mask[row] = True
            self.last_source = f"cosine similarity to row {row}"
            return top_k(sims, n, exclude=mask)
        if feed == "search":
            proxy, source = self._proxy_scores()
            if proxy is None:
                self.last_source = source
                return self._random(n, mask, rng)
            self.last_source = source
            return top_k(proxy, n, exclude=mask)
        scores = self.scores()
        if scores is None:  # no model: serve the cold-start ranking
            proxy, source = self._proxy_scores()
            self.last_source = f"no model yet; {source}"
            if proxy is None:
                return self._random(n, mask, rng)
            return top_k(-proxy if feed == "bottom" else proxy, n, exclude=mask)
        self.last_source = f"model v{self.version}"
        if feed == "top":
            return top_k(scores, n, exclude=mask)
        if feed == "bottom":
            return top_k(-scores, n, exclude=mask)
        if feed == "borderline":
            # modAL's uncertainty_sampling ranks by 1 - max_k p_k; for two classes that is
            # min(p, 1 - p), and margin and entropy sampling give the same order (all are
            # monotone in |p - 0.5|). We apply the criterion to the cached probabilities, as
            # modAL's own query would re-run predict_proba over every row (2.2 s at 1M).
            return top_k(np.minimum(scores, 1.0 - scores), n, exclude=mask)
        raise AssertionError(feed)

    # ------------------------------------------------------------------ auto feed
    def _auto(self, n: int, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self._settle_batch()
        if not self._has_model:
            feed, why = self.cold_start_feed()
            rows = self._serve(feed, n, mask, rng, None)
            self.last_feed = feed
            self._auto_reason = f"{why}; not scored by the bandit"
            return rows
        # allot the batch's rows to arms one at a time (batched UCB), then fetch each arm's
        # best rows; an arm whose pool runs dry hands its slots to the next allotment.
        extra: dict[str, int] = {}
        order: list[str] = []
        for _ in range(n):
            arm, reason = self._bandit.choose(extra)
            if not order:
                self._auto_reason = reason
            extra[arm] = extra.get(arm, 0) + 1
            if arm not in order:
                order.append(arm)
        mask = mask.copy()
        chosen: list[np.ndarray] = []
        arms_of: list[str] = []
        short = 0
        for arm in order + [a for a in self.arms if a not in order]:
            want = extra.get(arm, 0) + short
            if want <= 0:
                continue
            rows = self._serve(arm, want, mask, rng, None)
            mask[rows] = True
            chosen.append(rows)
            arms_of += [arm] * len(rows)
            short = want - len(rows)
        rows = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
        scores = self.scores()
        assert scores is not None
        for r, arm in zip(rows.tolist(), arms_of, strict=True):
            self._pending[r] = (arm, float(scores[r]), self.version)
        self._batch_rows = rows.tolist()
        self.last_feed = order[0] if len(order) == 1 else "auto"
        self.last_source = "bandit: " + ", ".join(
            f"{a} x{arms_of.count(a)}" for a in order if arms_of.count(a)
        )
        self._cv_before = self._cv_ap() if self.reward == "cv_ap" else None
        return rows

    @property
    def auto_arms(self) -> dict[int, str]:
        """For the rows of the last auto batch still awaiting a label: the arm that chose each."""
        return {r: self._pending[r][0] for r in self._batch_rows if r in self._pending}

    def cold_start_feed(self) -> tuple[str, str]:
        """The feed the auto feed serves while there is no model, and why.

        No positive yet: "search" (zero-shot prior, else random) to find one. Positives but no
        negative: "random", because a random clip is almost always a negative for a rare
        concept and, unlike the bottom of the prior, a representative one.
        """
        n_pos = sum(self._labels.values())
        if n_pos == 0:
            src = "zero-shot search" if self.prior_scores is not None else "random clips"
            return "search", f"no model yet: {src} to find a first positive"
        return "random", "no model yet: random clips to find a first negative"

    def _row_reward(self, y: bool, p: float) -> float:
        if self.reward == "surprise":
            return abs(float(y) - p)
        if self.reward == "logloss":
            q = max(p if y else 1.0 - p, 1e-3)
            return min(-math.log(q), 3.0) / 3.0
        return float((p >= 0.5) != y)  # flip

    def _after_update(self, prev_has_model: bool) -> None:
        """Credit the arms of auto-feed rows that just got their label."""
        if not self._pending:
            return
        if self.reward == "cv_ap":
            if all(r in self._labels for r in self._batch_rows):
                self._settle_batch()
            return
        for r in [r for r in self._pending if r in self._labels]:
            arm, p, _ = self._pending.pop(r)
            rew = self._row_reward(self._labels[r], p)
            self._bandit.rewards[arm].append(rew)
            self.reward_log.append((arm, rew))

    def _cv_ap(self) -> float | None:
        q = self.quality(n_boot=0)
        return q.ap

    def _settle_batch(self) -> None:
        """Close the last auto batch: rows never labelled (skipped) earn nothing."""
        if self.reward == "cv_ap" and self._pending:
            got = [r for r in self._pending if r in self._labels]
            if got:
                before, now = self._cv_before, self._cv_ap()
                rew = (
                    0.5
                    if before is None or now is None
                    else float(np.clip(0.5 + 5.0 * (now - before), 0.0, 1.0))
                )
                for r in got:
                    arm = self._pending[r][0]
                    self._bandit.rewards[arm].append(rew)
                    self.reward_log.append((arm, rew))
        self._pending.clear()
        self._batch_rows = []

    def feed_stats(self):
        """Per-arm pulls, mean reward and UCB value of the auto feed, and its current choice.

        Returns a pandas DataFrame indexed by feed with columns ``pulls``, ``mean_reward``,
        ``ucb``, ``chosen`` and ``reason`` (filled on the chosen row); ``df.attrs`` holds
        ``choice``, ``reason`` and ``reward`` (the reward's name).
        """
        import pandas as pd

        if self._has_model:
            choice, reason = self._bandit.choose(
                {a: sum(1 for v in self._pending.values() if v[0] == a) for a in self.arms}
            )
        else:
            choice, reason = self.cold_start_feed()
        rows = []
        for arm in self.arms:
            r = self._bandit.rewards[arm]
            rows.append(
                {
                    "feed": arm,
                    "pulls": len(r),
                    "mean_reward": float(np.mean(r)) if r else float("nan"),
                    "ucb": self._bandit.ucb(arm),
                    "chosen": arm == choice,
                    "reason": reason if arm == choice else "",
                }
            )
        df = pd.DataFrame(rows).set_index("feed")
        df.attrs.update(choice=choice, reason=reason, reward=self.reward)
        return df

    # ------------------------------------------------------------------ review and quality
    def _oof(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Out-of-fold P(positive) for the labelled rows: (rows, y, p); None if too few."""
        if self._oof_cache is not None and self._oof_cache[0] == self.version:
            return self._oof_cache[1:]
        rows = np.array(sorted(self._labels), dtype=np.int64)
        if len(rows) == 0:
            return None
        x, y = self._xy(rows, self._labels)
        n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
        k = min(5, n_pos, n_neg)
        if k < 2:
            return None
        p = np.empty(len(y), dtype=np.float64)
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=0)
        with _one_blas_thread():
            for train, test in folds.split(x, y):
                est = clone(self._estimator_template).fit(x[train], y[train])
                p[test] = est.predict_proba(x[test])[:, list(est.classes_).index(1)]
        self._oof_cache = (self.version, rows, y, p)
        return rows, y, p

    def review(self) -> np.ndarray:
        """Labelled rows, most suspicious first: |label - out-of-fold P(positive)| descending.

        Out-of-fold (cross-validated) predictions stop a label from vouching for itself. With
        fewer than 2 positives and 2 negatives the in-sample model is used; without a model,
        labelled rows in row order.
        """
        oof = self._oof()
        if oof is not None:
            rows, y, p = oof
        else:
            rows = np.array(sorted(self._labels), dtype=np.int64)
            if not self._has_model:
                return rows
            y = np.array([int(self._labels[int(r)]) for r in rows])
            scores = self.scores()
            assert scores is not None
            p = scores[rows].astype(np.float64)
        disagreement = np.abs(y - p)
        return rows[np.argsort(-disagreement, kind="stable")]

    def quality(self, *, n_boot: int = 1000, seed: int = 0) -> Quality:
        """Stratified k-fold cross-validated AP with a bootstrap 95 % interval.

        k = min(5, n_pos, n_neg). With fewer than 2 positives and 2 negatives ``ap`` is None
        and ``reason`` says so. The interval resamples the out-of-fold predictions (resamples
        without a positive are dropped). Active-learning labels are not a random sample of the
        collection, so this measures the labelled set; see :class:`Quality`.
        """
        n_pos = sum(self._labels.values())
        n_neg = len(self._labels) - n_pos
        oof = self._oof()
        if oof is None:
            return Quality(
                None,
                None,
                None,
                n_pos,
                n_neg,
                0,
                self.version,
                f"not enough labels: need >= 2 positives and >= 2 negatives "
                f"(have {n_pos} and {n_neg})",
            )
        _, y, p = oof
        ap = average_precision(y, p)
        lo = hi = ap
        if n_boot > 0:
            rng = np.random.default_rng(seed)
            idx = rng.integers(0, len(y), size=(n_boot, len(y)))
            boots = np.array([average_precision(y[i], p[i]) for i in idx])
            boots = boots[~np.isnan(boots)]
            if len(boots):
                lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
        k = min(5, n_pos, n_neg)
        return Quality(
            ap,
            lo,
            hi,
            n_pos,
            n_neg,
            k,
            self.version,
            f"{k}-fold stratified cross-validation, bootstrap interval over {n_boot} resamples",
        )


# ---------------------------------------------------------------------- simulation
Policy = str | Sequence[str] | Callable[[int, ActiveLearningEngine], str]


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
):
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
        The held-out split; without it, ``ap`` is the engine's cross-validated AP.
    eval_prior_scores : optional
        Zero-shot scores of the held-out split, used for AP while there is no model (a run
        without a model and without them scores at the positive rate, a constant predictor).
    checkpoints : label counts at which to evaluate (batches are cut to land on them).
    batch_size : labels per batch; the engine retrains after each batch.
    seed : seeds the random feed and the engine.
    **engine_kwargs : passed to :class:`ActiveLearningEngine` (reward, ucb_c, estimator...).

    Returns
    -------
    pandas DataFrame, one row per checkpoint reached: ``n_labels``, ``n_pos``, ``ap``,
    ``model_version`` and ``feeds`` (labels collected per serving feed so far).
    """
    import pandas as pd

    oracle = np.asarray(oracle_labels, dtype=bool)
    if oracle.shape != (features.shape[0],):
        raise ValueError("oracle_labels must have one entry per feature row")
    engine = ActiveLearningEngine(features, prior_scores, seed=seed, **engine_kwargs)
    rng = np.random.default_rng(seed)
    marks = sorted({int(c) for c in checkpoints if 0 < int(c) <= budget})
    labels: dict[int, bool] = {}
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
        for r in rows:
            labels[int(r)] = bool(oracle[r])
        arms = engine.auto_arms
        for r in rows.tolist():
            served = arms.get(r) or engine.last_feed or feed
            feed_counts[served] = feed_counts.get(served, 0) + 1
        engine.update(labels)
        step += 1
        if len(labels) in marks:
            out.append(
                {
                    "n_labels": len(labels),
                    "n_pos": sum(labels.values()),
                    "ap": _evaluate(engine, eval_features, eval_labels, eval_prior_scores),
                    "model_version": engine.version,
                    "feeds": dict(feed_counts),
                }
            )
    return pd.DataFrame(out)


def _evaluate(engine, eval_features, eval_labels, eval_prior_scores) -> float:
    if eval_features is None or eval_labels is None:
        ap = engine.quality(n_boot=0).ap
        return float("nan") if ap is None else ap
    y = np.asarray(eval_labels, dtype=bool)
    if engine.has_model:
        return float(average_precision_score(y, engine.predict_proba(eval_features)))
    if eval_prior_scores is not None:
        return float(average_precision_score(y, eval_prior_scores))
    return float(y.mean())
