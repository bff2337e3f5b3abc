"""A video's shard, ``videos/<video_id>/``: written atomically, read back validated."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from va_widgets.cache.files import ensure_free_space, fsync_dir
from va_widgets.cache.manifest import _Schema, _video_meta
from va_widgets.cache.paths import SHARD_FILES, VIDEOS, inside, shard_dir
from va_widgets.errors import CacheError


@dataclass
class Shard:
    """One finished video: what a shard folder holds, validated."""

    meta: dict[str, Any]
    features: np.ndarray  # (n, dim) float16, finite
    clip_index: np.ndarray  # (n,) int64
    start_seconds: np.ndarray  # (n,) float64
    end_seconds: np.ndarray  # (n,) float64
    frame_seconds: np.ndarray  # (n, k) float64


def read_shard_meta(root: Path, video_id: str) -> dict[str, Any] | None:
    """The meta of a finished video's shard; None when absent or incomplete (index it again)."""
    folder = shard_dir(root, video_id)
    if folder.is_symlink() or not folder.is_dir():
        return None
    if not all((folder / name).is_file() for name in SHARD_FILES):
        return None
    path = folder / "meta.json"
    try:
        raw = json.loads(path.read_bytes())
        s = _Schema(str(path))
        meta = s.mapping(raw, "meta")
        if meta.get("video_id") != video_id:
            return None
        return {"video_id": video_id, **_video_meta(s, meta, "meta")}
    except (OSError, ValueError, RecursionError, CacheError):
        return None


def read_shard(root: Path, video_id: str, meta: dict[str, Any], k: int, dim: int) -> Shard:
    """Load and validate a shard's arrays against its meta; CacheError naming the file if bad."""
    folder = shard_dir(root, video_id)
    n = meta["n_clips"]
    where = str(folder)
    try:
        features = np.load(inside(root, folder / "features.npy", "features"), allow_pickle=False)
        with np.load(inside(root, folder / "clips.npz", "clip times"), allow_pickle=False) as z:
            clips = {
                name: np.asarray(z[name])
                for name in ("clip_index", "start_seconds", "end_seconds", "frame_seconds")
            }
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise CacheError(f"{where}: unreadable shard ({exc}); index again to rebuild it") from exc
    expect = {
        "features": (features, (n, dim), np.float16),
        "clip_index": (clips["clip_index"], (n,), np.int64),
        "start_seconds": (clips["start_seconds"], (n,), np.float64),
        "end_seconds": (clips["end_seconds"], (n,), np.float64),
        "frame_seconds": (clips["frame_seconds"], (n, k), np.float64),
    }
    for name, (array, shape, dtype) in expect.items():
        if array.shape != shape or array.dtype != dtype:
            raise CacheError(
                f"{where}: {name} has shape {array.shape} and type {array.dtype}, expected "
                f"{shape} {np.dtype(dtype)}; index again to rebuild it"
            )
    bad = nonfinite_rows(features)
    if len(bad):
        raise CacheError(
            f"{where}: non-finite features in clip(s) {clips['clip_index'][bad][:5].tolist()}; "
            "index again to rebuild it"
        )
    return Shard(
        meta,
        features,
        *(clips[k_] for k_ in ("clip_index", "start_seconds", "end_seconds", "frame_seconds")),
    )


def write_shard(
    root: Path,
    video_id: str,
    meta: dict[str, Any],
    shard: Shard,
    thumbnails: Sequence[Sequence[bytes]],
) -> None:
    """Write one finished video into ``videos/<video_id>`` atomically (temporary folder, rename).

    ``thumbnails`` holds one list of JPEG bytes per clip (``k`` each), in the shard's row order.
    """
    final = shard_dir(root, video_id)
    n, k = shard.frame_seconds.shape
    if len(thumbnails) != n or shard.features.shape[0] != n or any(len(t) != k for t in thumbnails):
        raise ValueError(f"shard of {video_id}: {n} clips but rows of another length")
    need = shard.features.nbytes + sum(len(b) for t in thumbnails for b in t) + 64 * (n + 1) * k
    ensure_free_space(root, need, f"the index of video {video_id}")
    # unique on every machine of a cluster that shares the cache folder
    tmp = root / VIDEOS / f".tmp-{video_id}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        np.save(tmp / "features.npy", shard.features)
        np.savez(
            tmp / "clips.npz",
            clip_index=shard.clip_index,
            start_seconds=shard.start_seconds,
            end_seconds=shard.end_seconds,
            frame_seconds=shard.frame_seconds,
        )
        offsets = np.zeros((n, k + 1), dtype=np.int64)
        position = 0
        with open(tmp / "thumbs.bin", "wb") as f:
            for row, frames in enumerate(thumbnails):
                offsets[row, 0] = position
                for j, jpeg in enumerate(frames):
                    f.write(jpeg)
                    position += len(jpeg)
                    offsets[row, j + 1] = position
        np.save(tmp / "thumbs_offsets.npy", offsets)
        (tmp / "meta.json").write_text(json.dumps({**meta, "video_id": video_id, "n_clips": n}))
        for name in SHARD_FILES:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        if final.is_symlink():
            final.unlink()
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(final.parent)


class Thumbnails:
    """Reads clips' preview frames from the shards, by the clip's row in its shard."""

    def __init__(self, root: Path, k: int) -> None:
        self.root = root
        self.k = k
        self._offsets: dict[str, np.ndarray] = {}

    def read(self, video_id: str, shard_row: int, n_clips: int) -> list[bytes]:
        folder = shard_dir(self.root, video_id)
        offsets = self._offsets.get(video_id)
        if offsets is None:
            offsets = self._load_offsets(folder, n_clips)
            self._offsets[video_id] = offsets
        if not 0 <= shard_row < len(offsets):
            raise CacheError(f"{folder}: no preview row {shard_row}; index again to rebuild it")
        start, stop = int(offsets[shard_row, 0]), int(offsets[shard_row, -1])
        try:
            with open(inside(self.root, folder / "thumbs.bin", "previews"), "rb") as f:
                f.seek(start)
                blob = f.read(stop - start)
        except OSError as exc:
            raise CacheError(f"{folder}: previews unreadable ({exc}); index again") from exc
        if len(blob) != stop - start:
            raise CacheError(f"{folder}/thumbs.bin is cut short; index again to rebuild it")
        bounds = offsets[shard_row] - start
        return [blob[a:b] for a, b in itertools.pairwise(bounds)]

    def _load_offsets(self, folder: Path, n_clips: int) -> np.ndarray:
        try:
            offsets = np.load(
                inside(self.root, folder / "thumbs_offsets.npy", "previews"), allow_pickle=False
            )
            size = inside(self.root, folder / "thumbs.bin", "previews").stat().st_size
        except (OSError, ValueError) as exc:
            raise CacheError(f"{folder}: previews unreadable ({exc}); index again") from exc
        if (
            offsets.shape != (n_clips, self.k + 1)
            or offsets.dtype != np.int64
            or (n_clips and (offsets.min() < 0 or offsets.max() > size))
            or (np.diff(offsets, axis=1) < 0).any()
        ):
            raise CacheError(
                f"{folder}/thumbs_offsets.npy does not describe {n_clips} clips of {self.k} "
                "frames in thumbs.bin; index again to rebuild it"
            )
        return offsets


def nonfinite_rows(features: np.ndarray, chunk_rows: int = 65536) -> np.ndarray:
    """Rows of a float16 or float32 matrix holding NaN or infinity (int64), in chunks."""
    bad: list[np.ndarray] = []
    for start in range(0, features.shape[0], chunk_rows):
        block = np.asarray(features[start : start + chunk_rows])
        if block.dtype == np.float16:  # exponent bits all set: NaN or infinity (no float math)
            rows = ((block.view(np.uint16) & 0x7C00) == 0x7C00).any(axis=1)
        else:
            rows = ~np.isfinite(block).all(axis=1)
        if rows.any():
            bad.append(np.flatnonzero(rows) + start)
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)
