"""Large libraries for the benchmarks: a real small index, scaled up to any number of clips.

Three sample videos are really indexed; the big cache's clip table repeats their rows under
new clip ids (so every clip has real thumbnails and frame times) and its float16 features
come from ``make_features`` (written in chunks, never all in memory).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import va_widgets as va
from va_widgets.cache import write_clip_table

#: (library of the real index, first row, number of rows) -> (rows, dim) float32 features
MakeFeatures = Callable[[va.ClipLibrary, int, int], np.ndarray]
CHUNK = 65536


def build_library(
    workdir: Path, n_clips: int, embedder: Any, make_features: MakeFeatures, name: str
) -> Path:
    """The cache ``workdir/<name>-<n_clips>`` (built once; reused when it exists)."""
    big = workdir / f"{name}-{n_clips}"
    if (big / "manifest.json").exists():
        return big
    small = workdir / f"small-{name}"
    videos = workdir / "videos"
    if not videos.exists():
        va.make_sample_videos(videos, n_videos=3, seconds_per_video=24)
    lib = va.index_videos(videos, small, embedder=embedder, progress=False, workers=1)
    base = lib.clips
    reps = -(-n_clips // len(base))
    clips = pd.concat([base] * reps, ignore_index=True).iloc[:n_clips].copy()
    copy = np.repeat(np.arange(reps), len(base))[:n_clips]
    clips["clip_id"] = [
        cid if k == 0 else f"{cid}-d{k:06d}" for cid, k in zip(clips["clip_id"], copy, strict=True)
    ]
    big.mkdir(parents=True)
    features = np.lib.format.open_memmap(
        big / "features-1.npy", mode="w+", dtype=np.float16, shape=(n_clips, lib.features.shape[1])
    )
    for start in range(0, n_clips, CHUNK):
        features[start : start + CHUNK] = make_features(lib, start, min(CHUNK, n_clips - start))
    features.flush()
    del features
    (big / "videos").symlink_to((small / "videos").resolve(), target_is_directory=True)
    write_clip_table(
        big / "clips-1.parquet", clips, np.tile(lib.frame_seconds, (reps, 1))[:n_clips]
    )
    manifest = json.loads((small / "manifest.json").read_text())
    manifest.update(generation=1, library_id=uuid.uuid4().hex)
    (big / "manifest.json").write_text(json.dumps(manifest))
    return big


def noisy_copies(seed: int = 0) -> MakeFeatures:
    """The real clips' features, repeated, plus noise of a tenth of each column's spread."""
    rng = np.random.default_rng(seed)

    def make(lib: va.ClipLibrary, start: int, n: int) -> np.ndarray:
        real = np.asarray(lib.features, dtype=np.float32)
        rows = real[np.arange(start, start + n) % len(real)]
        noise = rng.standard_normal(rows.shape, dtype=np.float32)
        return rows + noise * (0.1 * real.std(axis=0) + 1e-3)

    return make


def clustered_unit_vectors(seed: int = 0) -> MakeFeatures:
    """Random unit vectors (like CLIP's), the first tenth of every chunk near one direction."""
    rng = np.random.default_rng(seed)
    centre: list[np.ndarray] = []

    def make(lib: va.ClipLibrary, start: int, n: int) -> np.ndarray:
        dim = lib.features.shape[1]
        if not centre:
            centre.append(rng.standard_normal(dim).astype(np.float32))
        x = rng.standard_normal((n, dim), dtype=np.float32)
        x[: n // 10] += 0.6 * centre[0]
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return make
