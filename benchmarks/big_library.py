"""Large libraries for the benchmarks: a real small index, scaled up to any number of clips.

Three sample videos are really indexed. The big cache is a valid library of synthetic videos
of ``CLIPS_PER_VIDEO`` clips each: every clip reuses a real clip's thumbnails (one shared
thumbnail file, hard-linked into each video's shard) and frame times, and its float16 features
come from ``make_features`` (written in chunks, never all in memory). The generation is merged
and the manifest written by the library's own cache code, so the result opens like any cache.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import va_widgets as va
from va_widgets import cache as layout

#: (library of the real index, first row, number of rows) -> (rows, dim) float32 features
MakeFeatures = Callable[[va.ClipLibrary, int, int], np.ndarray]
CLIPS_PER_VIDEO = 10_000


def build_library(
    workdir: Path, n_clips: int, embedder: Any, make_features: MakeFeatures, name: str
) -> Path:
    """The cache ``workdir/<name>-<n_clips>`` (built once; reused when it exists)."""
    big = workdir / f"{name}-{n_clips}"
    if (big / layout.MANIFEST).exists():
        return big
    small = workdir / f"small-{name}"
    videos = workdir / "videos"
    if not videos.exists():
        va.make_sample_videos(videos, n_videos=3, seconds_per_video=24)
    lib = va.index_videos(videos, small, embedder=embedder, progress=False, workers=1)
    thumbs, offsets = _all_thumbnails(lib, workdir / f"thumbs-{name}.bin")
    root = layout.root_of(big)
    layout.prepare(root)
    k = lib.frame_seconds.shape[1]
    entries = []
    for first in range(0, n_clips, CLIPS_PER_VIDEO):
        n = min(CLIPS_PER_VIDEO, n_clips - first)
        real = np.arange(first, first + n) % len(lib)  # the real clip each clip copies
        starts = np.arange(n) * 2.0
        shard = layout.Shard(
            meta={},
            features=make_features(lib, first, n).astype(np.float16),
            clip_index=np.arange(n, dtype=np.int64),
            start_seconds=starts,
            end_seconds=starts + 2.0,
            frame_seconds=starts[:, None] + (lib.frame_seconds[real] % 2.0),
        )
        video_id = f"{first // CLIPS_PER_VIDEO:016x}"
        meta = {"video_id": video_id, "n_clips": n, "duration_seconds": 2.0 * n, "fps": 25.0,
                "width": 320, "height": 180, "codec": "h264", "warnings": []}  # fmt: skip
        layout.write_shard(root, video_id, meta, shard, [[b""] * k] * n)
        folder = layout.shard_dir(root, video_id)
        (folder / "thumbs.bin").unlink()
        os.link(thumbs, folder / "thumbs.bin")  # every shard shares the real thumbnails
        np.save(folder / "thumbs_offsets.npy", offsets[real])
        entries.append({"path": str(videos / f"synthetic-{video_id}.mp4"), "size": 0,
                        "mtime_ns": 0, **meta})  # fmt: skip
    layout.write_generation(root, 1, entries, k, lib.features.shape[1])
    manifest = {
        "format": layout.FORMAT,
        "version": layout.FORMAT_VERSION,
        "library_id": uuid.uuid4().hex,
        "generation": 1,
        "embedder": lib.embedder_spec,
        "embedder_name": embedder.name,
        "clip_rule": lib.rule.to_dict(),
        "videos": entries,
        "errors": [],
        "updated": "",
    }
    layout.write_manifest(root, manifest)
    return big


def _all_thumbnails(lib: va.ClipLibrary, path: Path) -> tuple[Path, np.ndarray]:
    """Every real clip's thumbnails in one file, and (n_clips, k + 1) offsets into it."""
    k = lib.frame_seconds.shape[1]
    offsets = np.zeros((len(lib), k + 1), dtype=np.int64)
    position = 0
    with open(path, "wb") as f:
        for row, clip_id in enumerate(lib.clips["clip_id"]):
            offsets[row, 0] = position
            for j, jpeg in enumerate(lib.thumbnails(clip_id)):
                f.write(jpeg)
                position += len(jpeg)
                offsets[row, j + 1] = position
    return path, offsets


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
