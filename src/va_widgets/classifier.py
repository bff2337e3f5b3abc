"""An exported classifier: a scikit-learn estimator plus the embedder and clip rule it needs.

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

from va_widgets.errors import EmbedderMismatch, VaWidgetsError
from va_widgets.linalg import logistic

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


@dataclass
class VideoClassifier:
    """A binary clip classifier for one concept, ready to score libraries and new videos."""

    estimator: Any
    embedder_spec: dict[str, Any]
    clip_rule: dict[str, Any]
    task: str = ""
    query: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_task(cls, task: Task) -> VideoClassifier:
        """The current classifier of ``task`` with its library's embedder and clip rule."""
        lib = task.library
        quality = task.quality()
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
            },
        )

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

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probability of the concept for each row of ``features`` (n, dim), float32."""
        coef = getattr(self.estimator, "coef_", None)
        if coef is not None and hasattr(self.estimator, "intercept_"):
            return logistic(features, coef[0], float(self.estimator.intercept_[0]))
        positive = list(self.estimator.classes_).index(1)
        proba = self.estimator.predict_proba(np.asarray(features, dtype=np.float32))
        return proba[:, positive].astype(np.float32)

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
        out["score"] = self.predict_proba(library.features)
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

    def plot_timeline(self, scores: pd.DataFrame, *, threshold: float = 0.5) -> Figure:
        """A per-video score timeline (one row per video) of ``score_videos`` output."""
        from va_widgets.plots import score_timeline

        return score_timeline(scores, threshold=threshold, title=self.task or None)

    def _embedder(self) -> Embedder:
        from va_widgets.embedders import embedder_from_spec

        return embedder_from_spec(self.embedder_spec)


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
    return VideoClassifier(
        estimator=payload["estimator"],
        embedder_spec=payload["embedder_spec"],
        clip_rule=payload["clip_rule"],
        task=payload.get("task", ""),
        query=payload.get("query"),
        info=payload.get("info", {}),
    )
