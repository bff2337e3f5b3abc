"""The clip library: a folder of videos indexed into clips with one embedding each, on disk.

:mod:`.cache` owns the folder's format and validates what it reads; :mod:`.indexing` builds
and updates it. This module is the reading side users hold: the clip table, the features,
search and previews.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from va_widgets import cache as layout
from va_widgets.checks import check_count
from va_widgets.errors import CacheError, EmbedderMismatch
from va_widgets.linalg import project, top_k
from va_widgets.media import ClipRule

if TYPE_CHECKING:
    from va_widgets.embedders import Embedder

PathLike = str | os.PathLike[str]


class ClipLibrary:
    """An indexed collection of clips: clip table, float16 features, thumbnails, search.

    Open one with :meth:`open` (or get it from :func:`index_videos`).
    """

    def __init__(self, cache: Path, manifest: dict[str, Any], embedder: Embedder | None = None):
        self.cache = layout.root_of(cache)
        self._manifest = manifest
        self._embedder = embedder
        generation = layout.open_generation(self.cache, manifest)
        self._clips = generation.clips
        # keyed by clip id, like task.scores(): assign/join align on it (the index is unnamed
        # so that merge(on="clip_id") uses the column without ambiguity)
        self._clips.index = pd.Index(self._clips["clip_id"]).rename(None)
        self._frame_seconds = generation.frame_seconds
        self._features = generation.features
        self._features_checked = False
        self._video_start = generation.video_start
        self._n_clips_of = {v["video_id"]: v["n_clips"] for v in manifest["videos"]}
        self._row_of: pd.Index | None = None  # clip id -> row, built on first lookup
        self._thumbnails = layout.Thumbnails(self.cache, self.rule.frames_per_clip)

    @classmethod
    def open(cls, cache: PathLike, *, embedder: Embedder | None = None) -> ClipLibrary:
        """Open the library in ``cache``; ``embedder`` (optional) must match the one it was built with."""
        root = layout.root_of(cache)
        for attempt in range(3):  # an indexer may swap generations between our reads
            manifest = layout.read_manifest(root)
            if embedder is not None:
                check_embedder(root, manifest, embedder)
            try:
                return cls(root, manifest, embedder)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    # -- data -------------------------------------------------------------------------------
    @property
    def clips(self) -> pd.DataFrame:
        """One row per clip: clip_id, video, video_id, clip_index, start_seconds, end_seconds.

        Indexed by clip id (also the ``clip_id`` column), like :meth:`Task.scores`, so
        ``lib.clips.assign(score=task.scores())`` and ``lib.clips.join(...)`` align by clip.
        Rows are in the order of :attr:`features`; :meth:`rows` maps ids to row positions.
        """
        return self._clips

    @property
    def frame_seconds(self) -> np.ndarray:
        """(n_clips, frames_per_clip) float64: the times of each clip's sampled frames."""
        return self._frame_seconds

    @property
    def features(self) -> np.ndarray:
        """(n_clips, dim) float16 clip embeddings, memory-mapped, rows aligned with :attr:`clips`.

        Checked once, on first use, to hold finite numbers only (CacheError naming the clips).
        """
        if not self._features_checked:
            bad = layout.nonfinite_rows(self._features)
            if len(bad):
                ids = self._clips["clip_id"].iloc[bad[:5]].tolist()
                raise CacheError(
                    f"the features of {len(bad)} clip(s) in {str(self.cache)!r} are not finite "
                    f"(NaN or infinity), e.g. {ids}; the cache is damaged: index again into a "
                    "new folder"
                )
            self._features_checked = True
        return self._features

    @property
    def errors(self) -> pd.DataFrame:
        """Files of the last run that could not be indexed (severity ``error``) or only in part (``warning``)."""
        return pd.DataFrame(self._manifest["errors"], columns=["video", "severity", "message"])

    @property
    def id(self) -> str:
        """A stable identifier of this library (kept across re-runs)."""
        return str(self._manifest["library_id"])

    @property
    def embedder_spec(self) -> dict[str, Any]:
        """The spec of the embedder that made the features."""
        return dict(self._manifest["embedder"])

    @property
    def rule(self) -> ClipRule:
        """How videos were cut into clips."""
        return ClipRule.from_dict(self._manifest["clip_rule"])

    @property
    def embedder(self) -> Embedder:
        """The embedder of this library, rebuilt from its spec on first use."""
        if self._embedder is None:
            from va_widgets.embedders import embedder_from_spec

            self._embedder = embedder_from_spec(self._manifest["embedder"])
        return self._embedder

    def __len__(self) -> int:
        return len(self._clips)

    def __repr__(self) -> str:
        n_videos = self._clips["video_id"].nunique() if len(self._clips) else 0
        return (
            f"ClipLibrary({str(self.cache)!r}, clips={len(self)}, videos={n_videos}, "
            f"dim={self._features.shape[1]}, embedder={self._manifest.get('embedder_name')!r}, "
            f"errors={len(self._manifest['errors'])})"
        )

    def rows(self, clip_ids: str | Sequence[str], *, strict: bool = True) -> np.ndarray:
        """Row positions (int64) of ``clip_ids`` in :attr:`clips` / :attr:`features`.

        An unknown id raises KeyError naming it, or with ``strict=False`` gives -1.
        """
        ids = [clip_ids] if isinstance(clip_ids, str) else list(clip_ids)
        if self._row_of is None:
            index = pd.Index(self._clips["clip_id"])
            if not index.is_unique:
                raise CacheError(
                    f"the clip table of {str(self.cache)!r} lists a clip id twice; the cache is "
                    "damaged: index again into a new folder"
                )
            self._row_of = index
        rows = self._row_of.get_indexer(ids).astype(np.int64)
        if strict and (rows < 0).any():
            missing = [i for i, r in zip(ids, rows, strict=True) if r < 0][:3]
            raise KeyError(
                f"unknown clip id(s) {missing} in library {str(self.cache)!r}; "
                "take ids from lib.clips['clip_id']"
            )
        return rows

    def positions(self, clip_ids: Sequence[str]) -> np.ndarray:
        """Deprecated: ``rows(clip_ids, strict=False)``."""
        warnings.warn(
            "ClipLibrary.positions(ids) is deprecated; use ClipLibrary.rows(ids, strict=False)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.rows(clip_ids, strict=False)

    # -- search -----------------------------------------------------------------------------
    def text_scores(self, text: str) -> np.ndarray:
        """Cosine similarity of every clip to the text prompt, (n_clips,) float32."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"search text must be a non-empty string, got {text!r}")
        vector = self.embedder.encode_text([text])[0]
        return project(self.features, vector)

    def search(self, text: str, k: int = 20) -> pd.DataFrame:
        """The ``k`` clips closest to a text prompt (zero-shot), best first, with a ``score`` column."""
        return self._ranked(self.text_scores(text), k)

    def similar(self, clip_id: str, k: int = 20) -> pd.DataFrame:
        """The ``k`` clips most similar to ``clip_id`` (search by example), itself excluded."""
        row = self.rows(clip_id)[0]
        features = self.features
        scores = project(features, np.asarray(features[row], dtype=np.float32))
        exclude = np.zeros(len(scores), dtype=bool)
        exclude[row] = True
        return self._ranked(scores, k, exclude=exclude)

    def _ranked(
        self, scores: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> pd.DataFrame:
        rows = top_k(scores, check_count("k", k), exclude=exclude)
        out = self._clips.iloc[rows].copy()
        out.insert(1, "score", scores[rows])
        return out  # best first, keyed by clip id like lib.clips

    # -- previews ---------------------------------------------------------------------------
    def thumbnails(self, clip_id: str) -> list[bytes]:
        """The clip's sampled frames as small JPEG images (bytes), in time order."""
        row = int(self.rows(clip_id)[0])
        video_id = str(self._clips["video_id"].iat[row])
        shard_row = row - self._video_start[video_id]  # clips left out shift the clip index
        return self._thumbnails.read(video_id, shard_row, self._n_clips_of[video_id])


def check_embedder(cache: Path, manifest: dict[str, Any], embedder: Embedder) -> None:
    """Raise :class:`EmbedderMismatch` unless ``embedder`` made the features in ``cache``."""
    if not same_vector_space(embedder.spec(), manifest["embedder"]):
        raise EmbedderMismatch(
            f"the library in {str(cache)!r} was built with {manifest.get('embedder_name')!r}, "
            f"not {embedder.name!r}: their vectors are not comparable. Open it without embedder= "
            "(its own embedder is rebuilt from the manifest) or index into a new cache folder."
        )


def same_vector_space(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two embedder specs make comparable vectors (a weights file may have moved)."""

    def key(spec: dict[str, Any]) -> dict[str, Any]:
        if spec.get("weights") == "file":
            return {k: v for k, v in spec.items() if k != "pretrained"}
        return spec

    return key(a) == key(b)
