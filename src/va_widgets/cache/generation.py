"""A generation: the clip table and feature matrix merged from the shards, and its opening."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from va_widgets.cache.files import ensure_free_space, fsync_dir
from va_widgets.cache.paths import features_path, inside, shard_dir, table_path
from va_widgets.cache.shards import Shard, read_shard
from va_widgets.errors import CacheError
from va_widgets.media import MAX_FRAMES_PER_CLIP


def write_generation(
    root: Path, generation: int, entries: list[dict[str, Any]], k: int, dim: int
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Merge the shards of ``entries`` into ``generation``'s clip table and feature matrix.

    Both files are written under temporary names with ordinary buffered writes (a full disk
    is an ``OSError``, never a crash), fsynced and renamed. Returns ``(kept, rejected)``:
    the entries merged, and ``(entry, why)`` for shards that failed validation (their folder
    is removed so that the next run indexes them again).
    """
    rejected: list[tuple[dict[str, Any], str]] = []
    kept = list(entries)
    while True:  # a rejected shard (rare) changes the row count: write again without it
        total = sum(e["n_clips"] for e in kept)
        ensure_free_space(root, total * (dim * 2 + 64 + 8 * k), "the new generation")
        bad = _write_generation(root, generation, kept, k, dim)
        if bad is None:
            return kept, rejected
        rejected.append(bad)
        kept.remove(bad[0])
        shutil.rmtree(shard_dir(root, bad[0]["video_id"]), ignore_errors=True)


def _write_generation(
    root: Path, generation: int, entries: list[dict[str, Any]], k: int, dim: int
) -> tuple[dict[str, Any], str] | None:
    """Write the generation's files; ``(entry, why)`` of the first invalid shard instead."""
    tables = [_EMPTY_TABLE]
    frame_seconds = [np.zeros((0, k))]
    tag = uuid.uuid4().hex[:8]
    features_tmp = root / f".features-{generation}.{tag}.tmp"
    table_tmp = root / f".clips-{generation}.{tag}.tmp"
    try:
        with open(features_tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f,
                {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
                    "fortran_order": False,
                    "shape": (sum(e["n_clips"] for e in entries), dim),
                },
            )
            for e in entries:
                try:
                    shard = read_shard(root, e["video_id"], e, k, dim)
                except CacheError as exc:
                    features_tmp.unlink()
                    return e, str(exc)
                f.write(np.ascontiguousarray(shard.features).tobytes())
                tables.append(_table_rows(e, shard))
                frame_seconds.append(shard.frame_seconds)
            f.flush()
            os.fsync(f.fileno())
        write_clip_table(
            table_tmp, pd.concat(tables, ignore_index=True), np.concatenate(frame_seconds)
        )
        with open(table_tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(features_tmp, features_path(root, generation))
        os.replace(table_tmp, table_path(root, generation))
    except BaseException:
        for p in (features_tmp, table_tmp):
            p.unlink(missing_ok=True)
        raise
    fsync_dir(root)
    return None


def _table_rows(e: dict[str, Any], shard: Shard) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": [f"{e['video_id']}-{i:05d}" for i in shard.clip_index],
            "video": e["path"],
            "video_id": e["video_id"],
            "clip_index": shard.clip_index,
            "start_seconds": shard.start_seconds,
            "end_seconds": shard.end_seconds,
        }
    )


_EMPTY_TABLE = pd.DataFrame(
    {
        "clip_id": pd.Series(dtype=str),
        "video": pd.Series(dtype=str),
        "video_id": pd.Series(dtype=str),
        "clip_index": pd.Series(dtype=np.int64),
        "start_seconds": pd.Series(dtype=np.float64),
        "end_seconds": pd.Series(dtype=np.float64),
    }
)


@dataclass
class Generation:
    """The clip table, frame times and memory-mapped features of one generation, validated."""

    clips: pd.DataFrame
    frame_seconds: np.ndarray
    features: np.ndarray
    video_start: dict[str, int]  # video id -> its first row


def open_generation(root: Path, manifest: dict[str, Any]) -> Generation:
    """Open the generation ``manifest`` names; CacheError when its files disagree with it."""
    gen = manifest["generation"]
    k = manifest["clip_rule"]["frames_per_clip"]
    dim = manifest["embedder"]["dim"]
    table_file = inside(root, table_path(root, gen), "clip table")
    matrix_file = inside(root, features_path(root, gen), "features")
    try:
        clips, frame_seconds = read_clip_table(table_file)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"{table_file}: unreadable clip table ({exc}); index again") from exc
    try:
        features = np.load(matrix_file, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise CacheError(f"{matrix_file}: unreadable feature matrix ({exc}); index again") from exc
    n = sum(v["n_clips"] for v in manifest["videos"])
    if features.dtype != np.float16 or features.shape != (n, dim):
        raise CacheError(
            f"{matrix_file}: features of shape {features.shape} and type {features.dtype}, but "
            f"the manifest lists {n} clips of dimension {dim} (float16); the cache is damaged: "
            "index again into a new folder"
        )
    _check_table(table_file, clips, frame_seconds, manifest, k)
    starts = np.cumsum([0] + [v["n_clips"] for v in manifest["videos"]])
    video_start = {v["video_id"]: int(s) for v, s in zip(manifest["videos"], starts, strict=False)}
    return Generation(clips, frame_seconds, features, video_start)


_TEXT_COLUMNS = ("clip_id", "video", "video_id")
_NUMBER_COLUMNS = ("clip_index", "start_seconds", "end_seconds")


def _check_table(
    path: Path, clips: pd.DataFrame, frame_seconds: np.ndarray, manifest: dict[str, Any], k: int
) -> None:
    def fail(why: str) -> CacheError:
        return CacheError(f"{path}: {why}; the cache is damaged: index again into a new folder")

    for name in _TEXT_COLUMNS + _NUMBER_COLUMNS:
        if name not in clips:
            raise fail(f"no column {name!r}")
    for name in _NUMBER_COLUMNS:
        dtype = clips[name].dtype
        if dtype.kind not in "iuf" or (name == "clip_index" and dtype.kind == "f"):
            raise fail(f"column {name!r} holds {dtype}, not numbers")
    videos = manifest["videos"]
    n = sum(v["n_clips"] for v in videos)
    if len(clips) != n or frame_seconds.shape != (n, k):
        raise fail(
            f"{len(clips)} clips with {frame_seconds.shape[1:]} frame times, but the "
            f"manifest lists {n} clips of {k} frames"
        )
    ids = pd.Categorical(clips["video_id"])
    expected = np.repeat(np.arange(len(videos)), [v["n_clips"] for v in videos])
    codes = pd.Index(ids.categories).get_indexer([v["video_id"] for v in videos])
    if (codes < 0).any() and n:
        raise fail("its videos differ from the manifest's")
    if n and not np.array_equal(codes[expected], ids.codes):
        raise fail("its rows are not the manifest's videos in order")


def read_clip_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a generation's clip table: the DataFrame and the (n_clips, k) frame times.

    ``video`` and ``video_id`` repeat for every clip of a video, so they are read as
    categoricals (a million clips: 3x faster to read, a third less memory).
    """
    table = pd.read_parquet(path, read_dictionary=["video", "video_id"])
    if "frame_seconds" in table:  # written before the flat columns: one array per row
        arrays = table["frame_seconds"].to_list()
        frames = np.stack(arrays) if arrays else np.zeros((0, 0))
        return table.drop(columns="frame_seconds"), frames.astype(np.float64)
    frame_columns = [c for c in table.columns if c.startswith("frame_seconds_")]
    if len(frame_columns) > MAX_FRAMES_PER_CLIP:
        raise ValueError(f"{len(frame_columns)} frame-time columns")
    frame_seconds = table[frame_columns].to_numpy(np.float64)
    return table.drop(columns=frame_columns), frame_seconds


def write_clip_table(path: Path, table: pd.DataFrame, frame_seconds: np.ndarray) -> None:
    """Write a clip table, ``frame_seconds`` (n_clips, k) as k flat columns.

    Flat columns because a column of a million small arrays takes most of a second to read.
    """
    frames = {f"frame_seconds_{k}": frame_seconds[:, k] for k in range(frame_seconds.shape[1])}
    table.assign(**frames).to_parquet(path, index=False)
