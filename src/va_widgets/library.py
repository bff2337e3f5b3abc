"""The clip library: a folder of videos indexed into clips with one embedding each, on disk.

Cache layout (one folder)::

    manifest.json                 the current generation: embedder spec, clip rule, videos, errors
    clips-<gen>.parquet           the clip table of that generation
    features-<gen>.npy            float16 (n_clips, dim), memory-mapped when opened
    videos/<video_id>/            one finished video: features.npy, clips.npz, thumbs.bin, meta.json

A run writes each finished video into ``videos/`` (atomic rename), then the new generation's
table and matrix, then swaps ``manifest.json`` (atomic replace). Killing the indexer at any
moment leaves the previous generation readable; the next run reuses every finished video.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from va_widgets.errors import CacheError, EmbedderMismatch, VaWidgetsError, VideoError
from va_widgets.linalg import project, top_k
from va_widgets.media import VIDEO_EXTENSIONS, ClipRule

if TYPE_CHECKING:
    from va_widgets.embedders import Embedder
    from va_widgets.media import ClipChunk, VideoInfo

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
        self._clips = pd.read_parquet(cache / f"clips-{gen}.parquet")
        self._features = np.load(cache / f"features-{gen}.npy", mmap_mode="r")
        self._row_of = pd.Index(self._clips["clip_id"])
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
        """One row per clip: clip_id, video, video_id, clip_index, start_seconds, end_seconds, frame_seconds."""
        return self._clips

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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform (e.g. Windows)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _exclusive(cache: Path) -> Iterator[None]:
    """Hold the cache's indexing lock (one indexer per cache at a time)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; one indexer per cache is the user's duty
        yield
        return
    with open(cache / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheError(
                f"another process is indexing into {str(cache)!r}; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- discovery ------------------------------------------------------------------------------
def find_videos(sources: PathLike | Iterable[PathLike]) -> list[Path]:
    """Video files in ``sources`` (files and folders, searched recursively), sorted, absolute."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: dict[Path, None] = {}
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"video source {str(source)!r} does not exist; check the path")
        if path.is_file():
            found[path.resolve()] = None
            continue
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
                found[p.resolve()] = None
    if not found:
        raise FileNotFoundError(
            f"no video files in {[str(s) for s in sources]} "
            f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    return list(found)


def content_id(path: Path) -> str:
    """A short id of a video's content (size, first and last MiB): survives moves and renames."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=8)
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())
    return h.hexdigest()


# -- indexing -------------------------------------------------------------------------------
@dataclass
class _Job:
    """What a decoding worker needs for one video (picklable)."""

    path: str
    rule: ClipRule
    image_size: int


def _decode(job: _Job) -> Iterator[VideoInfo | ClipChunk]:
    from va_widgets.media import iter_clips

    # small chunks: encoding starts after a few clips instead of after a whole video
    yield from iter_clips(
        job.path, job.rule, image_size=job.image_size, chunk_clips=4, repeat_info=True
    )


@dataclass
class _Pending:
    """A video being indexed: its decoded chunks and encoded vectors so far."""

    path: Path
    video_id: str
    info: VideoInfo | None = None
    chunks: list[ClipChunk] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    decoded: bool = False


def index_videos(
    sources: PathLike | Iterable[PathLike],
    cache: PathLike,
    *,
    embedder: Embedder | None = None,
    clips: Literal["fixed", "shots"] | None = None,
    clip_seconds: float | None = None,
    frames_per_clip: int | None = None,
    min_clip_seconds: float | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ClipLibrary:
    """Index the videos in ``sources`` into the library folder ``cache`` and return it.

    Incremental: unchanged videos are reused, new or changed ones indexed, and videos no longer
    in ``sources`` dropped. Files that fail are listed in :attr:`ClipLibrary.errors`; they never
    stop the run or lose what is already indexed.

    Parameters
    ----------
    sources : a video file, a folder (searched recursively) or a list of them.
    cache : the library folder (created if needed).
    embedder : defaults to the cache's own embedder, or the default open_clip model for a new cache.
    clips : ``"fixed"`` windows of ``clip_seconds``, or ``"shots"`` (shot-boundary detection).
    clip_seconds, frames_per_clip, min_clip_seconds : the clip rule; ``None`` keeps the cache's
        rule (or the defaults of :class:`~va_widgets.media.ClipRule` for a new cache).
    workers : decoding processes (default: a quarter of the cores, at least one).
    progress : show progress bars.
    """
    cache = Path(cache).expanduser()
    paths = find_videos(sources)  # raises before anything is touched
    previous = read_manifest(cache) if (cache / MANIFEST).exists() else None
    rule = _resolve_rule(previous, clips, clip_seconds, frames_per_clip, min_clip_seconds, cache)
    if embedder is None:
        from va_widgets.embedders import OpenClipEmbedder, embedder_from_spec

        embedder = embedder_from_spec(previous["embedder"]) if previous else OpenClipEmbedder()
    elif previous:
        check_embedder(cache, previous, embedder)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "videos").mkdir(exist_ok=True)
    with _exclusive(cache):
        indexer = _Indexer(cache, previous, rule, embedder, workers, progress)
        manifest = indexer.run(paths)
    lib = ClipLibrary(cache, manifest, embedder)
    failed = lib.errors[lib.errors["severity"] == "error"]
    if len(failed):
        warnings.warn(
            f"{len(failed)} of {len(paths)} file(s) could not be indexed; see lib.errors",
            stacklevel=2,
        )
    return lib


def _resolve_rule(
    previous: dict[str, Any] | None,
    clips: str | None,
    clip_seconds: float | None,
    frames_per_clip: int | None,
    min_clip_seconds: float | None,
    cache: Path,
) -> ClipRule:
    base = ClipRule.from_dict(previous["clip_rule"]) if previous else ClipRule()
    asked = {
        "mode": clips,
        "clip_seconds": clip_seconds,
        "frames_per_clip": frames_per_clip,
        "min_clip_seconds": min_clip_seconds,
    }
    changes = {k: v for k, v in asked.items() if v is not None}
    rule = ClipRule.from_dict({**base.to_dict(), **changes})
    if previous and rule != base:
        diff = {k: (getattr(base, k), v) for k, v in changes.items() if getattr(base, k) != v}
        raise CacheError(
            f"the library in {str(cache)!r} was cut with a different clip rule "
            f"({', '.join(f'{k}={a!r}, not {b!r}' for k, (a, b) in diff.items())}); "
            "leave those options out to keep the library's rule, or index into a new cache folder"
        )
    return rule


class _Indexer:
    """One indexing run: decode in workers, encode here, write videos, commit a generation."""

    def __init__(
        self,
        cache: Path,
        previous: dict[str, Any] | None,
        rule: ClipRule,
        embedder: Embedder,
        workers: int | None,
        progress: bool,
    ) -> None:
        self.cache = cache
        self.previous = previous
        self.rule = rule
        self.embedder = embedder
        self.workers = workers or max(1, (os.cpu_count() or 2) // 4)
        self.progress = progress
        self.errors: list[dict[str, str]] = []

    def run(self, paths: list[Path]) -> dict[str, Any]:
        known = {v["path"]: v for v in (self.previous or {}).get("videos", [])}
        entries: dict[str, dict[str, Any]] = {}  # video_id -> entry, in the order of paths
        todo: list[_Pending] = []
        for path in paths:
            stat = path.stat()
            old = known.get(str(path))
            if old and old["size"] == stat.st_size and old["mtime_ns"] == stat.st_mtime_ns:
                video_id = old["video_id"]
            else:
                video_id = content_id(path)
            if video_id in entries:
                self._error(
                    path, "warning", f"same content as {entries[video_id]['path']}; indexed once"
                )
                continue
            meta = self._finished(video_id)
            if meta is not None:
                entries[video_id] = {
                    **meta,
                    "path": str(path),
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                }
                continue
            entries[video_id] = {
                "path": str(path),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
            todo.append(_Pending(path, video_id))
        for pending, meta in self._index(todo):
            if meta is None:
                del entries[pending.video_id]
            else:
                entries[pending.video_id].update(meta)
        for entry in entries.values():
            for message in entry.get("warnings", []):
                self._error(Path(entry["path"]), "warning", message)
        return self._commit(list(entries.values()))

    def _finished(self, video_id: str) -> dict[str, Any] | None:
        path = self.cache / "videos" / video_id / "meta.json"
        if not path.exists():
            return None
        meta: dict[str, Any] = json.loads(path.read_text())
        return meta

    def _error(self, path: Path, severity: str, message: str) -> None:
        self.errors.append({"video": str(path), "severity": severity, "message": message})

    def _index(self, todo: list[_Pending]) -> Iterator[tuple[_Pending, dict[str, Any] | None]]:
        """Decode ``todo`` in workers and encode as chunks arrive; yield each finished video."""
        if not todo:
            return
        from tqdm.auto import tqdm

        from va_widgets.media import ClipChunk
        from va_widgets.workers import run_isolated

        jobs = [_Job(str(p.path), self.rule, self.embedder.image_size) for p in todo]
        bar = tqdm(total=len(todo), unit="video", desc="indexing", disable=not self.progress)
        n_clips = 0
        try:
            for event in run_isolated(_decode, jobs, workers=self.workers):
                pending = todo[event.index]
                if event.kind == "result":
                    if not isinstance(event.payload, ClipChunk):
                        pending.info = event.payload
                    else:
                        chunk = event.payload
                        pending.vectors.append(self.embedder.encode_clips(chunk.frames))
                        chunk.frames = chunk.frames[:0]  # the pixels are no longer needed
                        pending.chunks.append(chunk)
                        n_clips += len(chunk.clip_index)
                        bar.set_postfix(clips=n_clips)
                    continue
                bar.update(1)
                if event.kind == "done":
                    yield pending, self._write_video(pending)
                else:
                    yield pending, None
                    self._error(pending.path, "error", _failure_message(pending.path, event))
                todo[event.index] = _Pending(pending.path, pending.video_id)  # free memory
        finally:
            bar.close()

    def _write_video(self, p: _Pending) -> dict[str, Any]:
        """Write one finished video atomically into ``videos/<video_id>``; return its meta."""
        assert p.info is not None
        final = self.cache / "videos" / p.video_id
        tmp = self.cache / "videos" / f".tmp-{p.video_id}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        features = (
            np.concatenate(p.vectors).astype(np.float16)
            if p.vectors
            else np.zeros((0, self.embedder.dim), np.float16)
        )
        np.save(tmp / "features.npy", features)
        cat = (
            (lambda name: np.concatenate([getattr(c, name) for c in p.chunks]))
            if p.chunks
            else None
        )
        np.savez(
            tmp / "clips.npz",
            clip_index=cat("clip_index") if cat else np.zeros(0, np.int64),
            start_seconds=cat("start_seconds") if cat else np.zeros(0),
            end_seconds=cat("end_seconds") if cat else np.zeros(0),
            frame_seconds=cat("frame_seconds") if cat else np.zeros((0, self.rule.frames_per_clip)),
        )
        offsets = []
        position = 0
        with open(tmp / "thumbs.bin", "wb") as f:
            for chunk in p.chunks:
                for frames in chunk.thumbnails:
                    row = [position]
                    for jpeg in frames:
                        f.write(jpeg)
                        position += len(jpeg)
                        row.append(position)
                    offsets.append(row)
        np.save(
            tmp / "thumbs_offsets.npy",
            np.asarray(offsets, dtype=np.int64).reshape(-1, self.rule.frames_per_clip + 1),
        )
        info = p.info
        meta = {
            "video_id": p.video_id,
            "n_clips": len(features),
            "duration_seconds": info.duration_seconds,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "codec": info.codec,
            "warnings": list(info.warnings),
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        for name in ("features.npy", "clips.npz", "thumbs.bin", "thumbs_offsets.npy", "meta.json"):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        return meta

    def _commit(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Write the new generation's table and matrix, then swap the manifest."""
        gen = (self.previous["generation"] + 1) if self.previous else 1
        tables = []
        total = sum(e["n_clips"] for e in entries)
        features = np.lib.format.open_memmap(
            self.cache / f"features-{gen}.npy",
            mode="w+",
            dtype=np.float16,
            shape=(total, self.embedder.dim),
        )
        row = 0
        for e in entries:
            folder = self.cache / "videos" / e["video_id"]
            block = np.load(folder / "features.npy")
            features[row : row + len(block)] = block
            row += len(block)
            with np.load(folder / "clips.npz") as z:
                idx = z["clip_index"]
                tables.append(
                    pd.DataFrame(
                        {
                            "clip_id": [f"{e['video_id']}-{i:05d}" for i in idx],
                            "video": e["path"],
                            "video_id": e["video_id"],
                            "clip_index": idx,
                            "start_seconds": z["start_seconds"],
                            "end_seconds": z["end_seconds"],
                            "frame_seconds": list(z["frame_seconds"]),
                        }
                    )
                )
        features.flush()
        del features
        columns = [
            "clip_id",
            "video",
            "video_id",
            "clip_index",
            "start_seconds",
            "end_seconds",
            "frame_seconds",
        ]
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
        table.to_parquet(self.cache / f"clips-{gen}.parquet", index=False)
        with open(self.cache / f"clips-{gen}.parquet", "rb") as f:
            os.fsync(f.fileno())
        with open(self.cache / f"features-{gen}.npy", "rb") as f:
            os.fsync(f.fileno())
        manifest = {
            "format": "va_widgets.library",
            "version": FORMAT_VERSION,
            "library_id": self.previous["library_id"] if self.previous else uuid.uuid4().hex,
            "generation": gen,
            "embedder": self.embedder.spec(),
            "embedder_name": self.embedder.name,
            "clip_rule": self.rule.to_dict(),
            "videos": entries,
            "errors": self.errors,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_atomic(self.cache / MANIFEST, json.dumps(manifest, indent=1).encode())
        self._collect_garbage(gen, {e["video_id"] for e in entries})
        return manifest

    def _collect_garbage(self, gen: int, live: set[str]) -> None:
        """Remove what no manifest refers to any more (old generations, dropped videos, temp files)."""
        keep = {
            f"clips-{gen}.parquet",
            f"features-{gen}.npy",
            MANIFEST,
            ".lock",
            "videos",
            "labels.sqlite",
        }
        for p in self.cache.iterdir():
            if p.name not in keep and (
                p.name.startswith(("clips-", "features-")) or p.name.endswith(".tmp")
            ):
                with contextlib.suppress(OSError):  # a reader on Windows may hold it open
                    p.unlink()
        for p in (self.cache / "videos").iterdir():
            if p.name not in live:
                shutil.rmtree(p, ignore_errors=True)


def _failure_message(path: Path, event: Any) -> str:
    if event.kind == "crash":
        return (
            f"the decoder crashed on this file (worker exit code {event.payload}); "
            "the file is probably corrupt: re-encode it (e.g. with ffmpeg) and index again"
        )
    exc, _tb = event.payload
    if isinstance(exc, VideoError):
        return f"{exc.reason}" + (f" ({exc.hint})" if exc.hint else "")
    if isinstance(exc, VaWidgetsError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"
