"""The clip library: a folder of videos indexed into clips with one embedding each, on disk.

Cache layout (one folder)::

    manifest.json                 the current generation: embedder spec, clip rule, videos, errors
    clips-<gen>.parquet           the clip table of that generation
    features-<gen>.npy            float16 (n_clips, dim), memory-mapped when opened
    videos/<video_id>/            one finished video: features.npy, clips.npz, thumbs.bin, meta.json

:mod:`.indexing` builds and updates it. A run writes each finished video into ``videos/`` (atomic rename), then the new generation's
table and matrix, then swaps ``manifest.json`` (atomic replace). Killing the indexer at any
moment leaves the previous generation readable; the next run reuses every finished video.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from va_widgets.errors import CacheError, EmbedderMismatch
from va_widgets.linalg import project, top_k
from va_widgets.media import ClipRule

if TYPE_CHECKING:
    from va_widgets.embedders import Embedder

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PathLike = str | os.PathLike[str]


class ClipLibrary:
    """An indexed collection of clips: clip table, float16 features, thumbnails, search.

    Open one with :meth:`open` (or get it from :func:`index_videos`).
    """

    def __init__(self, cache: Path, manifest: dict[str, Any], embedder: Embedder | None = None):
        self.cache = cache
        self._manifest = manifest
        self._embedder = embedder
        gen = manifest["generation"]
        self._clips, self._frame_seconds = read_clip_table(cache / f"clips-{gen}.parquet")
        self._features = np.load(cache / f"features-{gen}.npy", mmap_mode="r")
        self._row_of: pd.Index | None = None  # clip id -> row, built on first lookup
        self._thumb_offsets: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, cache: PathLike, *, embedder: Embedder | None = None) -> ClipLibrary:
        """Open the library in ``cache``; ``embedder`` (optional) must match the one it was built with."""
        cache = Path(cache)
        for attempt in range(3):  # an indexer may swap generations between our reads
            manifest = read_manifest(cache)
            if embedder is not None:
                check_embedder(cache, manifest, embedder)
            try:
                return cls(cache, manifest, embedder)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    # -- data -------------------------------------------------------------------------------
    @property
    def clips(self) -> pd.DataFrame:
        """One row per clip: clip_id, video, video_id, clip_index, start_seconds, end_seconds."""
        return self._clips

    @property
    def frame_seconds(self) -> np.ndarray:
        """(n_clips, frames_per_clip) float64: the times of each clip's sampled frames."""
        return self._frame_seconds

    @property
    def features(self) -> np.ndarray:
        """(n_clips, dim) float16 clip embeddings, memory-mapped, rows aligned with :attr:`clips`."""
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

    def positions(self, clip_ids: Sequence[str]) -> np.ndarray:
        """Row positions of ``clip_ids``, -1 for ids not in this library (int64)."""
        if self._row_of is None:
            self._row_of = pd.Index(self._clips["clip_id"])
        return self._row_of.get_indexer(list(clip_ids)).astype(np.int64)

    def rows(self, clip_ids: str | Sequence[str]) -> np.ndarray:
        """Row positions of ``clip_ids`` in :attr:`clips` / :attr:`features`."""
        ids = [clip_ids] if isinstance(clip_ids, str) else list(clip_ids)
        rows = self.positions(ids)
        if (rows < 0).any():
            missing = [i for i, r in zip(ids, rows, strict=True) if r < 0][:3]
            raise KeyError(
                f"unknown clip id(s) {missing} in library {str(self.cache)!r}; "
                "take ids from lib.clips['clip_id']"
            )
        return rows

    # -- search -----------------------------------------------------------------------------
    def text_scores(self, text: str) -> np.ndarray:
        """Cosine similarity of every clip to the text prompt, (n_clips,) float32."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"search text must be a non-empty string, got {text!r}")
        vector = self.embedder.encode_text([text])[0]
        return project(self._features, vector)

    def search(self, text: str, k: int = 20) -> pd.DataFrame:
        """The ``k`` clips closest to a text prompt (zero-shot), best first, with a ``score`` column."""
        return self._ranked(self.text_scores(text), k)

    def similar(self, clip_id: str, k: int = 20) -> pd.DataFrame:
        """The ``k`` clips most similar to ``clip_id`` (search by example), itself excluded."""
        row = self.rows(clip_id)[0]
        scores = project(self._features, np.asarray(self._features[row], dtype=np.float32))
        exclude = np.zeros(len(scores), dtype=bool)
        exclude[row] = True
        return self._ranked(scores, k, exclude=exclude)

    def _ranked(
        self, scores: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> pd.DataFrame:
        rows = top_k(scores, k, exclude=exclude)
        out = self._clips.iloc[rows].copy()
        out.insert(1, "score", scores[rows])
        return out.reset_index(drop=True)

    # -- previews ---------------------------------------------------------------------------
    def thumbnails(self, clip_id: str) -> list[bytes]:
        """The clip's sampled frames as small JPEG images (bytes), in time order."""
        row = self.rows(clip_id)[0]
        video_id = self._clips["video_id"].iat[row]
        clip_index = int(self._clips["clip_index"].iat[row])
        folder = self.cache / "videos" / video_id
        offsets = self._thumb_offsets.get(video_id)
        if offsets is None:
            offsets = self._thumb_offsets[video_id] = np.load(folder / "thumbs_offsets.npy")
        start, stop = int(offsets[clip_index, 0]), int(offsets[clip_index, -1])
        with open(folder / "thumbs.bin", "rb") as f:
            f.seek(start)
            blob = f.read(stop - start)
        bounds = offsets[clip_index] - start
        return [blob[a:b] for a, b in itertools.pairwise(bounds)]


# -- files --------------------------------------------------------------------------------
def read_clip_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a generation's clip table: the DataFrame and the (n_clips, k) frame times.

    ``video`` and ``video_id`` repeat for every clip of a video, so they are read as
    categoricals (a million clips: 3x faster to read, a third less memory).
    """
    table = pd.read_parquet(path, read_dictionary=["video", "video_id"])
    if "frame_seconds" in table:  # written before the flat columns: one array per row
        return table.drop(columns="frame_seconds"), np.stack(table["frame_seconds"].to_list())
    frame_columns = [c for c in table.columns if c.startswith("frame_seconds_")]
    frame_seconds = table[frame_columns].to_numpy(np.float64)
    return table.drop(columns=frame_columns), frame_seconds


def write_clip_table(path: Path, table: pd.DataFrame, frame_seconds: np.ndarray) -> None:
    """Write a clip table, ``frame_seconds`` (n_clips, k) as k flat columns.

    Flat columns because a column of a million small arrays takes most of a second to read.
    """
    frames = {f"frame_seconds_{k}": frame_seconds[:, k] for k in range(frame_seconds.shape[1])}
    table.assign(**frames).to_parquet(path, index=False)


# -- manifest -------------------------------------------------------------------------------
def read_manifest(cache: Path) -> dict[str, Any]:
    """Read and validate ``cache/manifest.json``."""
    path = cache / MANIFEST
    if not cache.exists():
        raise CacheError(
            f"no library at {str(cache)!r}: the folder does not exist; build one with va.index_videos(...)"
        )
    if not path.exists():
        raise CacheError(
            f"{str(cache)!r} is not a va_widgets library (no {MANIFEST}); "
            "build one with va.index_videos(...) or check the path"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CacheError(
            f"{str(path)!r} is unreadable ({exc}); delete the cache folder and index again"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "va_widgets.library":
        raise CacheError(
            f"{str(path)!r} was not written by va_widgets; point cache= at another folder"
        )
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise CacheError(
            f"{str(cache)!r} was written by a newer va_widgets (format {manifest['version']}); upgrade va_widgets"
        )
    return manifest


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
