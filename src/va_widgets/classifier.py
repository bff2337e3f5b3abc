"""An exported classifier: a scikit-learn estimator plus the embedder and clip rule it needs.

:class:`VideoClassifier` is itself a fitted scikit-learn binary classifier on feature arrays
(``predict_proba`` (n, 2), ``predict``, ``decision_function``, ``classes_``), so it drops into
``Pipeline`` and ``cross_val_score``; :meth:`VideoClassifier.scores` gives the 1-d probability
of the concept.

Saved with skops, which loads without unpickling arbitrary code: only the types listed in
:data:`TRUSTED_TYPES` are accepted, anything else is refused with the list of what was found.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from va_widgets.errors import EmbedderMismatch, VaWidgetsError
from va_widgets.linalg import logistic, project

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from va_widgets.embedders import Embedder
    from va_widgets.library import ClipLibrary
    from va_widgets.task import Task

FORMAT = "va_widgets.classifier"
FORMAT_VERSION = 1
TRUSTED_TYPES = [
    "sklearn.linear_model._logistic.LogisticRegression",
    "numpy.dtype",
    "numpy.ndarray",
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
]


#: how :meth:`VideoClassifier.from_task` chooses the classifier's threshold
THRESHOLD_RULE = (
    "the score maximising F1 on the out-of-fold (up to 5-fold cross-validated) scores of the "
    "labelled clips at export"
)


@dataclass(repr=False, eq=False)
class VideoClassifier(ClassifierMixin, BaseEstimator):
    """A binary clip classifier for one concept, ready to score libraries and new videos.

    A fitted scikit-learn classifier on (n, dim) feature arrays: ``classes_`` is ``[0, 1]``
    (1: the clip shows the concept), :meth:`predict_proba` is (n, 2). :meth:`fit` refits a
    clone of ``estimator`` (``cross_val_score`` does this); until then the exported,
    already fitted ``estimator`` is used.
    """

    estimator: Any
    embedder_spec: dict[str, Any]
    clip_rule: dict[str, Any]
    task: str = ""
    query: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_task(cls, task: Task) -> VideoClassifier:
        """The current classifier of ``task`` with its library's embedder and clip rule."""
        from va_widgets.segments import f1_threshold

        lib = task.library
        quality = task.quality()
        oof = task.engine.out_of_fold()
        threshold = None if oof is None else f1_threshold(*oof)
        return cls(
            estimator=task.classifier,
            embedder_spec=lib.embedder_spec,
            clip_rule=lib.rule.to_dict(),
            task=task.name,
            query=task.query,
            info={
                "model_version": task.model_version,
                "n_pos": quality.n_pos,
                "n_neg": quality.n_neg,
                # the honest estimate over the whole library (Task.quality); files written
                # before it kept a cross-validated AP under "cv_ap", loaded as it was
                "estimated_ap": quality.ap,
                "estimated_ap_low": quality.ci_low,
                "estimated_ap_high": quality.ci_high,
                "n_sampled": quality.n_sampled,
                # files written before this have no threshold: 0.5 is used for them
                "threshold": threshold,
                "threshold_rule": None if threshold is None else THRESHOLD_RULE,
            },
        )

    @property
    def threshold(self) -> float:
        """The score at or above which a clip counts as showing the concept in :meth:`segments`.

        Chosen at export (:meth:`from_task`) as the score maximising F1 on the out-of-fold
        (up to 5-fold cross-validated) scores of the labelled clips; 0.5 for files written
        before thresholds were exported, or when the task had fewer than 2 positive and 2
        negative labels. :meth:`predict` keeps 0.5, as scikit-learn classifiers do.
        """
        value = self.info.get("threshold")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return 0.5
        value = float(value)
        return value if 0.0 <= value <= 1.0 else 0.5

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the classifier to ``path`` (a ``.skops`` file)."""
        import skops.io as sio

        path = Path(path)
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "estimator": self.estimator,
            "embedder_spec": self.embedder_spec,
            "clip_rule": self.clip_rule,
            "task": self.task,
            "query": self.query,
            "info": self.info,
        }
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(sio.dumps(payload))
        os.replace(tmp, path)
        return path

    # -- scikit-learn classifier -----------------------------------------------------------
    def _fitted(self) -> Any:
        return getattr(self, "estimator_", self.estimator)

    @property
    def classes_(self) -> np.ndarray:
        """The two class labels; exported classifiers have ``[0, 1]`` (1: shows the concept)."""
        return np.asarray(self._fitted().classes_)

    @property
    def n_features_in_(self) -> int:
        """The width of the feature rows the classifier takes."""
        return int(self._fitted().n_features_in_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # binary: one concept, present or not
        return tags

    def fit(self, X: Any, y: Any) -> VideoClassifier:
        """Fit a clone of ``estimator`` on features ``X`` and labels ``y``; return self."""
        classes = np.unique(np.asarray(y))
        if len(classes) != 2:
            raise ValueError(
                f"a VideoClassifier is binary: y must hold two classes, got {classes.tolist()[:5]}"
            )
        self.estimator_ = clone(self.estimator).fit(self._check(X, fitted=False), y)
        return self

    def scores(self, features: Any) -> np.ndarray:
        """Probability of the concept for each row of ``features`` (n, dim): (n,) float32.

        The same as ``predict_proba(features)[:, 1]``, without a copy of float16 features.
        """
        est = self._fitted()
        features = self._check(features)
        coef = getattr(est, "coef_", None)
        if coef is not None and hasattr(est, "intercept_") and np.shape(coef)[0] == 1:
            return logistic(features, coef[0], float(est.intercept_[0]))
        proba = est.predict_proba(np.asarray(features, dtype=np.float32))
        return np.asarray(proba[:, 1], dtype=np.float32)  # classes_[1], as in scikit-learn

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, 2) probabilities of ``classes_`` for each row of ``X`` (n, dim), float32.

        Before version 0.2 this returned the (n,) probability of the concept, now
        :meth:`scores`.
        """
        p = self.scores(X)
        return np.stack([1 - p, p], axis=1)

    def decision_function(self, X: Any) -> np.ndarray:
        """(n,) log-odds of the concept: positive where :meth:`predict` gives 1."""
        est = self._fitted()
        features = self._check(X)
        coef = getattr(est, "coef_", None)
        if coef is not None and hasattr(est, "intercept_") and np.shape(coef)[0] == 1:
            return project(features, coef[0]).astype(np.float64) + float(est.intercept_[0])
        p = self.scores(features).astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.log(p) - np.log1p(-p)

    def predict(self, X: Any) -> np.ndarray:
        """(n,) class labels: 1 where the probability of the concept is above 0.5."""
        return self.classes_[(self.scores(X) > 0.5).astype(np.intp)]

    def _check(self, X: Any, *, fitted: bool = True) -> np.ndarray:
        """``X`` as a 2-d numeric array (memory maps are not copied); ValueError naming it."""
        if isinstance(X, pd.DataFrame):
            X = X.to_numpy()
        array = np.asarray(X)
        if array.ndim != 2:
            raise ValueError(
                f"features must be a 2-d array (n clips, dim), got shape {array.shape}; "
                "reshape a single row with features.reshape(1, -1)"
            )
        if array.dtype.kind not in "fiub":
            raise ValueError(f"features must be numbers, got dtype {array.dtype}")
        if fitted:
            dim = self.n_features_in_
            if array.shape[1] != dim:
                raise ValueError(
                    f"features have {array.shape[1]} columns, but the classifier {self.task!r} "
                    f"takes {dim} (the width of its embedder's vectors)"
                )
        return array

    def __repr__(self) -> str:
        return f"VideoClassifier(task={self.task!r}, query={self.query!r}, estimator={self.estimator!r})"

    def score_library(self, library: ClipLibrary) -> pd.DataFrame:
        """Per-clip scores for every clip of ``library`` (which must use the same embedder)."""
        from va_widgets.library import same_vector_space

        if not same_vector_space(library.embedder_spec, self.embedder_spec):
            raise EmbedderMismatch(
                f"the classifier {self.task!r} was trained on features of "
                f"{self.embedder_spec.get('model', self.embedder_spec.get('kind'))!r}, but the library in "
                f"{str(library.cache)!r} was built with {library.embedder_spec.get('model', library.embedder_spec.get('kind'))!r}; "
                "score videos with classifier.score_videos(...) to index them with the right embedder"
            )
        out = library.clips[["clip_id", "video", "start_seconds", "end_seconds"]].copy()
        out["score"] = self.scores(library.features)
        out.attrs["threshold"] = self.threshold  # the default of segments(out)
        return out

    def score_videos(
        self,
        videos: Any,
        *,
        cache: str | os.PathLike[str] | None = None,
        embedder: Embedder | None = None,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Index ``videos`` with the classifier's embedder and clip rule; return per-clip scores.

        ``cache`` keeps the index for later runs (default: a temporary folder, removed after).
        ``embedder`` may be passed to reuse a loaded model; it must match the saved spec.
        """
        from va_widgets.indexing import index_videos

        rule = self.clip_rule
        with tempfile.TemporaryDirectory(prefix="va_score_") as tmp:
            lib = index_videos(
                videos,
                Path(cache) if cache is not None else Path(tmp) / "cache",
                embedder=embedder or self._embedder(),
                clips=rule["mode"],
                clip_seconds=rule["clip_seconds"],
                frames_per_clip=rule["frames_per_clip"],
                min_clip_seconds=rule["min_clip_seconds"],
                progress=progress,
            )
            return self.score_library(lib)

    def segments(
        self,
        scores: pd.DataFrame,
        *,
        threshold: float | None = None,
        min_gap: float = 0.0,
        min_length: float = 0.0,
    ) -> pd.DataFrame:
        """Where in each video the concept occurs: clips scoring at least ``threshold``
        merged into intervals (see :func:`va_widgets.segments.segments`).

        ``scores`` is the output of :meth:`score_videos` or :meth:`score_library`;
        ``threshold`` defaults to :attr:`threshold` (F1-optimal on the out-of-fold scores of
        the labelled clips at export; 0.5 for older files).
        """
        from va_widgets.segments import segments

        return segments(
            scores,
            threshold=self.threshold if threshold is None else threshold,
            min_gap=min_gap,
            min_length=min_length,
        )

    def plot_timeline(
        self,
        scores: pd.DataFrame,
        *,
        threshold: float | None = None,
        min_gap: float = 0.0,
        min_length: float = 0.0,
    ) -> Figure:
        """One compact figure of ``score_videos`` output: a strip per video, segments shaded.

        ``threshold`` defaults to :attr:`threshold`; see :func:`va_widgets.plots.score_timeline`.
        """
        from va_widgets.plots import score_timeline

        return score_timeline(
            scores,
            threshold=self.threshold if threshold is None else threshold,
            title=self.task or None,
            min_gap=min_gap,
            min_length=min_length,
        )

    def _embedder(self) -> Embedder:
        from va_widgets.embedders import embedder_from_spec

        return embedder_from_spec(self.embedder_spec)


def _check_payload(payload: dict[str, Any], path: Path) -> None:
    """VaWidgetsError naming the file when its clip rule, embedder spec or model is out of
    bounds or inconsistent (checked before anything is allocated or indexed)."""
    from va_widgets.media import ClipRule

    try:
        ClipRule.from_dict(payload["clip_rule"])
    except (TypeError, ValueError) as exc:
        raise VaWidgetsError(f"{str(path)!r} has an invalid clip rule: {exc}") from exc
    spec = payload["embedder_spec"]
    dim = spec.get("dim") if isinstance(spec, dict) else None
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65536:
        raise VaWidgetsError(f"{str(path)!r} has an invalid embedder spec (dim {dim!r})")
    coef = getattr(payload["estimator"], "coef_", None)
    if coef is not None and np.shape(coef) != (1, dim):
        raise VaWidgetsError(
            f"{str(path)!r}: the classifier has coefficients of shape {np.shape(coef)}, but its "
            f"embedder makes {dim}-d vectors; the file is damaged or was edited"
        )


def load_classifier(path: str | os.PathLike[str]) -> VideoClassifier:
    """Load a classifier written by :meth:`Task.export` / :meth:`VideoClassifier.save`."""
    import skops.io as sio

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no classifier file at {str(path)!r}")
    try:
        untrusted = set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES)
    except Exception as exc:  # skops raises several types for files that are not skops files
        raise VaWidgetsError(f"{str(path)!r} is not a va_widgets classifier file ({exc})") from exc
    if untrusted:
        raise VaWidgetsError(
            f"{str(path)!r} contains types va_widgets does not load without trust: "
            f"{sorted(untrusted)}; if you trust the file, load it with skops.io.load(path, trusted=[...])"
        )
    payload = sio.load(path, trusted=TRUSTED_TYPES)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise VaWidgetsError(f"{str(path)!r} is a skops file but not a va_widgets classifier")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise VaWidgetsError(f"{str(path)!r} was written by a newer va_widgets; upgrade va_widgets")
    missing = {"estimator", "embedder_spec", "clip_rule"} - set(payload)
    if missing:
        raise VaWidgetsError(
            f"{str(path)!r} is an incomplete va_widgets classifier: no {sorted(missing)}"
        )
    _check_payload(payload, path)
    return VideoClassifier(
        estimator=payload["estimator"],
        embedder_spec=payload["embedder_spec"],
        clip_rule=payload["clip_rule"],
        task=payload.get("task", ""),
        query=payload.get("query"),
        info=payload.get("info", {}),
    )
