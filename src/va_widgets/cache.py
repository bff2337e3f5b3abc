"""The library cache folder: its layout, names and manifest schema, and every read and write of it.

Layout (one folder)::

    manifest.json                 the current generation: embedder spec, clip rule, videos, errors
    clips-<gen>.parquet           the clip table of that generation
    features-<gen>.npy            float16 (n_clips, dim), memory-mapped when opened
    videos/<video_id>/            one finished video (its shard): features.npy, clips.npz,
                                  thumbs.bin, thumbs_offsets.npy, meta.json
    labels.sqlite                 the default label store (:mod:`.store`)
    .lock                         held while a run indexes into the folder

:mod:`.indexing` writes a shard per finished video (atomic rename), then a new generation's
table and matrix (temporary names, renamed when complete), then swaps ``manifest.json``
(atomic replace). Killing the indexer at any moment leaves the previous generation readable.

A cache is input like any other: it may come from someone else or have been edited by hand.
Everything read from it is validated before anything acts on it: ids match strict patterns,
every path stays inside the folder, numbers are bounded, arrays have the shapes the manifest
says and finite values. A bad cache is a :class:`~va_widgets.errors.CacheError` naming the
file, never a traversal, a crash or a silent mix.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from va_widgets.errors import CacheError
from va_widgets.media import MAX_FRAMES_PER_CLIP, ClipRule

FORMAT = "va_widgets.library"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
LABELS = "labels.sqlite"
VIDEOS = "videos"
SHARD_FILES = ("features.npy", "clips.npz", "thumbs.bin", "thumbs_offsets.npy", "meta.json")

VIDEO_ID = re.compile(r"[0-9a-f]{16}\Z")
LIBRARY_ID = re.compile(r"[0-9a-f]{32}\Z")
CONTENT_HASH = re.compile(r"[0-9a-f]{64}\Z")
_GENERATION_FILE = re.compile(r"(clips|features)-[0-9]{1,12}\.(parquet|npy)\Z")
_TEMP_SHARD = re.compile(r"\.tmp-[0-9a-f]{16}-[0-9a-f]{12}\Z")

MAX_GENERATION = 10**12
MAX_CLIPS = 10**9  # in a library
MAX_CLIPS_PER_VIDEO = 10**7
MAX_DIM = 65536
MAX_IMAGE_SIZE = 4096
MAX_VIDEO_SIDE = 1 << 16
MAX_MANIFEST_BYTES = 1 << 30
MAX_JSON_DEPTH = 16
MAX_TEXT = 1 << 16  # characters of a path, a message, a name
#: bytes kept free beyond what a write needs (file-system metadata, the manifest, the WAL)
SPARE_BYTES = 16 << 20


# -- paths ----------------------------------------------------------------------------------
def root_of(cache: str | os.PathLike[str]) -> Path:
    """The cache folder as an absolute, resolved path (the base every inside-check uses)."""
    return Path(cache).expanduser().resolve()


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, checked to lie inside ``root`` (links followed); else CacheError."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise CacheError(
            f"{str(path)!r} ({what}) points outside the cache folder {str(root)!r}; the cache "
            "was tampered with or copied with links: delete the folder and index again"
        )
    return resolved


def check_video_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not VIDEO_ID.match(value):
        raise CacheError(
            f"{where}: {value!r} is not a video id (16 hex digits); the cache is damaged or "
            "was not written by va_widgets: delete the folder and index again"
        )
    return value


def shard_dir(root: Path, video_id: str) -> Path:
    """``videos/<video_id>`` of a validated id, checked to stay inside the cache."""
    check_video_id(video_id, "shard name")
    return inside(root, root / VIDEOS / video_id, f"shard of video {video_id}")


def table_path(root: Path, generation: int) -> Path:
    return root / f"clips-{int(generation)}.parquet"


def features_path(root: Path, generation: int) -> Path:
    return root / f"features-{int(generation)}.npy"


# -- the manifest ---------------------------------------------------------------------------
def read_manifest(root: Path) -> dict[str, Any]:
    """Read and validate ``manifest.json`` (see :func:`validate_manifest`)."""
    path = root / MANIFEST
    if not root.exists():
        raise CacheError(
            f"no library at {str(root)!r}: the folder does not exist; build one with "
            "va.index_videos(...)"
        )
    if not path.exists():
        raise CacheError(
            f"{str(root)!r} is not a va_widgets library (no {MANIFEST}); "
            "build one with va.index_videos(...) or check the path"
        )
    inside(root, path, MANIFEST)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise CacheError(f"{str(path)!r} is larger than {MAX_MANIFEST_BYTES} bytes")
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise CacheError(
            f"{str(path)!r} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); delete the "
            "cache folder and index again"
        ) from exc
    return validate_manifest(manifest, str(path))


class _Schema:
    """Checks of one JSON document, each failure a CacheError naming the file and the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, why: str) -> CacheError:
        return CacheError(
            f"{self.where}: {field} {why}; the cache is damaged or was not written by this "
            "va_widgets: delete the folder and index again"
        )

    def kind(self, value: Any, types: type | tuple[type, ...], field: str) -> Any:
        if isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)
        ):
            raise self.fail(field, f"must be {_type_names(types)}, not a boolean")
        if not isinstance(value, types):
            raise self.fail(field, f"must be {_type_names(types)}, not {type(value).__name__}")
        return value

    def integer(self, value: Any, field: str, low: int, high: int) -> int:
        self.kind(value, int, field)
        if not low <= value <= high:
            raise self.fail(field, f"= {value} is outside [{low}, {high}]")
        return int(value)

    def number(self, value: Any, field: str, low: float, high: float) -> float:
        self.kind(value, (int, float), field)
        if not (math.isfinite(value) and low <= value <= high):
            raise self.fail(field, f"= {value!r} is outside [{low}, {high}]")
        return float(value)

    def text(self, value: Any, field: str) -> str:
        self.kind(value, str, field)
        if len(value) > MAX_TEXT:
            raise self.fail(field, f"is longer than {MAX_TEXT} characters")
        return str(value)

    def texts(self, value: Any, field: str) -> list[str]:
        self.kind(value, list, field)
        return [self.text(v, f"{field}[{i}]") for i, v in enumerate(value)]

    def mapping(self, value: Any, field: str) -> dict[str, Any]:
        self.kind(value, dict, field)
        if not all(isinstance(k, str) for k in value):
            raise self.fail(field, "has a key that is not a string")
        return value

    def depth(self, value: Any, field: str, limit: int = MAX_JSON_DEPTH) -> None:
        stack = [(value, 0)]
        while stack:
            item, level = stack.pop()
            if level > limit:
                raise self.fail(field, f"is nested deeper than {limit} levels")
            if isinstance(item, dict):
                stack += [(v, level + 1) for v in item.values()]
            elif isinstance(item, list):
                stack += [(v, level + 1) for v in item]


def _type_names(types: type | tuple[type, ...]) -> str:
    names = [t.__name__ for t in (types if isinstance(types, tuple) else (types,))]
    return " or ".join(
        {
            "int": "an integer",
            "float": "a number",
            "str": "a string",
            "list": "a list",
            "dict": "an object",
            "bool": "true or false",
        }.get(n, n)
        for n in names
    )


def validate_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """The manifest with every field checked (types, bounds, ids, nesting); CacheError if not."""
    s = _Schema(where)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CacheError(f"{where!r} was not written by va_widgets; point cache= at another folder")
    s.depth(manifest, "the manifest")
    version = s.integer(manifest.get("version"), "version", 1, 10**6)
    if version > FORMAT_VERSION:
        raise CacheError(
            f"{where!r} was written by a newer va_widgets (format {version}); upgrade va_widgets"
        )
    library_id = s.text(manifest.get("library_id"), "library_id")
    if not LIBRARY_ID.match(library_id):
        raise s.fail("library_id", f"= {library_id!r} is not 32 hex digits")
    embedder = s.mapping(manifest.get("embedder"), "embedder")
    s.text(embedder.get("kind"), "embedder.kind")
    s.integer(embedder.get("dim"), "embedder.dim", 1, MAX_DIM)
    s.integer(embedder.get("image_size"), "embedder.image_size", 1, MAX_IMAGE_SIZE)
    try:
        rule = ClipRule.from_dict(s.mapping(manifest.get("clip_rule"), "clip_rule"))
    except (TypeError, ValueError) as exc:
        raise s.fail("clip_rule", f"is invalid ({exc})") from exc
    videos = [
        _video_entry(s, entry, f"videos[{i}]")
        for i, entry in enumerate(s.kind(manifest.get("videos"), list, "videos"))
    ]
    ids = [v["video_id"] for v in videos]
    if len(set(ids)) != len(ids):
        raise s.fail("videos", "lists a video id twice")
    if sum(v["n_clips"] for v in videos) > MAX_CLIPS:
        raise s.fail("videos", f"hold more than {MAX_CLIPS} clips")
    errors = []
    for i, e in enumerate(s.kind(manifest.get("errors"), list, "errors")):
        e = s.mapping(e, f"errors[{i}]")
        severity = s.text(e.get("severity"), f"errors[{i}].severity")
        if severity not in ("error", "warning"):
            raise s.fail(f"errors[{i}].severity", f"= {severity!r} is not 'error' or 'warning'")
        errors.append(
            {
                "video": s.text(e.get("video"), f"errors[{i}].video"),
                "severity": severity,
                "message": s.text(e.get("message"), f"errors[{i}].message"),
            }
        )
    return {
        "format": FORMAT,
        "version": version,
        "library_id": library_id,
        "generation": s.integer(manifest.get("generation"), "generation", 1, MAX_GENERATION),
        "embedder": embedder,
        "embedder_name": s.text(manifest.get("embedder_name", ""), "embedder_name"),
        "clip_rule": rule.to_dict(),
        "videos": videos,
        "errors": errors,
        "updated": s.text(manifest.get("updated", ""), "updated"),
    }


def _video_entry(s: _Schema, entry: Any, field: str) -> dict[str, Any]:
    e = s.mapping(entry, field)
    out = {
        "path": s.text(e.get("path"), f"{field}.path"),
        "size": s.integer(e.get("size"), f"{field}.size", 0, 1 << 62),
        "mtime_ns": s.integer(e.get("mtime_ns"), f"{field}.mtime_ns", -(1 << 62), 1 << 62),
        "video_id": check_video_id(e.get("video_id"), f"{s.where}: {field}.video_id"),
        **_video_meta(s, e, field),
    }
    if e.get("inode") is not None:
        out["inode"] = s.integer(e["inode"], f"{field}.inode", 0, 1 << 64)
    if e.get("content_hash") is not None:
        h = s.text(e["content_hash"], f"{field}.content_hash")
        if not CONTENT_HASH.match(h):
            raise s.fail(f"{field}.content_hash", "is not 64 hex digits")
        out["content_hash"] = h
    return out


def _video_meta(s: _Schema, e: dict[str, Any], field: str) -> dict[str, Any]:
    """The fields a shard's meta.json and a manifest entry share."""
    return {
        "n_clips": s.integer(e.get("n_clips"), f"{field}.n_clips", 0, MAX_CLIPS_PER_VIDEO),
        "duration_seconds": s.number(
            e.get("duration_seconds"), f"{field}.duration_seconds", 0, 1e9
        ),
        "fps": s.number(e.get("fps"), f"{field}.fps", 0, 1e6),
        "width": s.integer(e.get("width"), f"{field}.width", 0, MAX_VIDEO_SIDE),
        "height": s.integer(e.get("height"), f"{field}.height", 0, MAX_VIDEO_SIDE),
        "codec": s.text(e.get("codec"), f"{field}.codec"),
        "warnings": s.texts(e.get("warnings", []), f"{field}.warnings"),
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Replace ``manifest.json`` atomically (validated first: never write what cannot be read)."""
    validate_manifest(manifest, "the manifest to write")
    write_atomic(root / MANIFEST, json.dumps(manifest, indent=1).encode())


# -- shards ---------------------------------------------------------------------------------
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


# -- generations ----------------------------------------------------------------------------
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


# -- housekeeping ---------------------------------------------------------------------------
def collect_garbage(root: Path, generation: int, live: set[str]) -> None:
    """Remove what no manifest refers to any more: old generations, dropped videos, temporary
    files. Only names this module writes are touched, only inside the cache, never via a link."""
    keep = {table_path(root, generation).name, features_path(root, generation).name}
    for p in root.iterdir():
        temp = p.name.startswith(".") and p.name.endswith(".tmp")
        if p.name in keep or not (_GENERATION_FILE.match(p.name) or temp):
            continue
        if p.is_symlink() or p.is_file():
            with contextlib.suppress(OSError):  # a reader on Windows may hold it open
                p.unlink()
    videos = root / VIDEOS
    if videos.is_symlink() or not videos.is_dir():
        return
    for p in videos.iterdir():
        ours = VIDEO_ID.match(p.name) or _TEMP_SHARD.match(p.name)
        if not ours or p.name in live:
            continue
        if p.is_symlink():
            p.unlink()  # the link only, never what it points to
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def prepare(root: Path) -> None:
    """Create the cache folder and ``videos/``; refuse a ``videos`` that is a link or a file."""
    root.mkdir(parents=True, exist_ok=True)
    videos = root / VIDEOS
    if videos.is_symlink() or (videos.exists() and not videos.is_dir()):
        raise CacheError(
            f"{str(videos)!r} must be a folder inside the cache, not a link or a file; "
            "move it away and index again"
        )
    videos.mkdir(exist_ok=True)


def ensure_free_space(root: Path, need: int, what: str) -> None:
    """CacheError unless the cache's file system has ``need`` bytes (plus a margin) free."""
    free = shutil.disk_usage(root).free
    if free < need + SPARE_BYTES:
        raise CacheError(
            f"not enough free disk space in {str(root)!r} to write {what}: needs about "
            f"{(need + SPARE_BYTES) / 2**20:.0f} MiB, {free / 2**20:.0f} MiB free; free some "
            "space (nothing already indexed was changed) and index again"
        )


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform (e.g. Windows)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Hold the cache's indexing lock (one indexer per cache at a time)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; one indexer per cache is the user's duty
        yield
        return
    lock = root / LOCK
    if lock.is_symlink():
        raise CacheError(f"{str(lock)!r} is a link; remove it and index again")
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheError(
                f"another process is indexing into {str(root)!r}; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
