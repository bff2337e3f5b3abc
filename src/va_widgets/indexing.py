"""Indexing: videos → clips → features, written into a library folder (see :mod:`.library`).

One run decodes each video in worker processes (:mod:`.workers`), encodes its clips as chunks
arrive, writes the finished video atomically into ``videos/<video_id>/`` (the video's shard),
and finally merges every shard into a new generation and swaps the manifest. With an
``executor`` (a ``concurrent.futures.Executor`` such as Dask's), each video is one task: the
task decodes, encodes and writes the shard on whichever machine runs it, and the caller only
merges. A lost worker or a killed run costs only the videos not yet written; the next run
reuses every shard on disk.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from va_widgets.errors import CacheError, VaWidgetsError, VideoError
from va_widgets.library import (
    FORMAT_VERSION,
    MANIFEST,
    ClipLibrary,
    PathLike,
    check_embedder,
    read_manifest,
    write_clip_table,
)
from va_widgets.media import VIDEO_EXTENSIONS, ClipRule

if TYPE_CHECKING:
    from va_widgets.embedders import Embedder
    from va_widgets.media import ClipChunk, VideoInfo

DASK_EXTRA_HINT = 'pip install "va_widgets[dask]"'


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
    executor: concurrent.futures.Executor | Any | None = None,
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
    executor : spread the videos over other processes or machines: a
        ``concurrent.futures.Executor``, a ``dask.distributed.Client``, or a Dask scheduler's
        address (``"tcp://host:8786"``; needs ``va_widgets[dask]``). Each task rebuilds the
        embedder from its spec (on the task's best device), so ``cache``, the videos and a
        local weights file must be at the same paths on every worker (a shared filesystem).
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
    with as_executor(executor) as pool:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "videos").mkdir(exist_ok=True)
        with _exclusive(cache):
            indexer = _Indexer(cache, previous, rule, embedder, workers, progress)
            manifest = indexer.run(paths, pool)
    lib = ClipLibrary(cache, manifest, embedder)
    failed = lib.errors[lib.errors["severity"] == "error"]
    if len(failed):
        warnings.warn(
            f"{len(failed)} of {len(paths)} file(s) could not be indexed; see lib.errors",
            stacklevel=2,
        )
    return lib


@contextlib.contextmanager
def as_executor(executor: Any) -> Iterator[concurrent.futures.Executor | None]:
    """``executor`` as a ``concurrent.futures.Executor`` (see :func:`index_videos`).

    A Dask client made here from a scheduler address is closed on exit.
    """
    if executor is None or isinstance(executor, concurrent.futures.Executor):
        yield executor
    elif isinstance(executor, str):
        try:
            from distributed import Client
        except ImportError:
            raise ImportError(
                f"executor={executor!r} names a Dask scheduler, but Dask is not installed; "
                f"install it with: {DASK_EXTRA_HINT}"
            ) from None
        with Client(executor) as client:
            yield client.get_executor()
    elif hasattr(executor, "get_executor"):  # a dask.distributed.Client
        yield executor.get_executor()
    else:
        raise TypeError(
            f"executor must be a concurrent.futures.Executor, a dask.distributed.Client or a "
            f"Dask scheduler address, not {type(executor).__name__}"
        )


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


# -- one run --------------------------------------------------------------------------------
class _Indexer:
    """One indexing run: plan, index what is missing (here or on an executor), commit."""

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

    def run(
        self, paths: list[Path], executor: concurrent.futures.Executor | None
    ) -> dict[str, Any]:
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
            entries[video_id] = {
                "path": str(path),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
            meta = _finished(self.cache, video_id)
            if meta is None:
                todo.append(_Pending(path, video_id))
            else:
                entries[video_id].update(meta)
        if executor is None:
            results = _index_here(
                self.cache, self.rule, self.embedder, todo, self.workers, self.progress
            )
        else:
            results = self._index_on(executor, todo)
        for pending, meta, failure in results:
            if meta is None:
                del entries[pending.video_id]
                self._error(pending.path, "error", failure or "unknown failure")
            else:
                entries[pending.video_id].update(meta)
        for entry in entries.values():
            for message in entry.get("warnings", []):
                self._error(Path(entry["path"]), "warning", message)
        return self._commit(list(entries.values()))

    def _index_on(
        self, executor: concurrent.futures.Executor, todo: list[_Pending]
    ) -> Iterator[tuple[_Pending, dict[str, Any] | None, str | None]]:
        """One task per video on ``executor``; yield each as it finishes (or fails)."""
        if not todo:
            return
        from tqdm.auto import tqdm

        spec = self.embedder.spec()
        futures = {
            executor.submit(
                index_one_video, str(self.cache), self.rule, spec, str(p.path), p.video_id
            ): p
            for p in todo
        }
        with tqdm(total=len(todo), unit="video", desc="indexing", disable=not self.progress) as bar:
            for future in concurrent.futures.as_completed(futures):
                pending = futures[future]
                bar.update(1)
                try:
                    meta, failure = future.result()
                except Exception as exc:  # the task or its worker died: only this video is lost
                    meta, failure = (
                        None,
                        (
                            f"the worker indexing this video failed ({type(exc).__name__}: {exc}); "
                            "index again to retry it (finished videos are kept)"
                        ),
                    )
                yield pending, meta, failure

    def _error(self, path: Path, severity: str, message: str) -> None:
        self.errors.append({"video": str(path), "severity": severity, "message": message})

    def _commit(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Merge the videos' shards into a new generation's table and matrix; swap the manifest."""
        gen = (self.previous["generation"] + 1) if self.previous else 1
        tables = [_EMPTY_TABLE]
        frame_seconds = [np.zeros((0, self.rule.frames_per_clip))]
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
                        }
                    )
                )
                frame_seconds.append(z["frame_seconds"])
        features.flush()
        del features
        write_clip_table(
            self.cache / f"clips-{gen}.parquet",
            pd.concat(tables, ignore_index=True),
            np.concatenate(frame_seconds),
        )
        for name in (f"clips-{gen}.parquet", f"features-{gen}.npy"):
            with open(self.cache / name, "rb") as f:
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


# -- videos: decode, encode, write a shard ---------------------------------------------------
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


def _finished(cache: Path, video_id: str) -> dict[str, Any] | None:
    """The meta of a video already written into the cache, if any."""
    path = cache / "videos" / video_id / "meta.json"
    if not path.exists():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def _index_here(
    cache: Path,
    rule: ClipRule,
    embedder: Embedder,
    todo: list[_Pending],
    workers: int,
    progress: bool,
) -> Iterator[tuple[_Pending, dict[str, Any] | None, str | None]]:
    """Decode ``todo`` in worker processes, encode here as chunks arrive, write each video.

    Yields ``(video, meta, None)`` for each video written, ``(video, None, why)`` for a failure.
    """
    if not todo:
        return
    from tqdm.auto import tqdm

    from va_widgets.media import ClipChunk
    from va_widgets.workers import run_isolated

    jobs = [_Job(str(p.path), rule, embedder.image_size) for p in todo]
    bar = tqdm(total=len(todo), unit="video", desc="indexing", disable=not progress)
    n_clips = 0
    tuner = _ThreadTuner.for_encoder(embedder, workers)
    try:
        for event in run_isolated(_decode, jobs, workers=workers):
            pending = todo[event.index]
            if event.kind == "result":
                if not isinstance(event.payload, ClipChunk):
                    pending.info = event.payload
                else:
                    chunk = event.payload
                    pending.vectors.append(embedder.encode_clips(chunk.frames))
                    if tuner:
                        tuner.record(chunk.frames.shape[0] * chunk.frames.shape[1])
                    chunk.frames = chunk.frames[:0]  # the pixels are no longer needed
                    pending.chunks.append(chunk)
                    n_clips += len(chunk.clip_index)
                    bar.set_postfix(clips=n_clips)
                continue
            bar.update(1)
            if event.kind == "done":
                yield pending, _write_video(cache, rule, embedder.dim, pending), None
            else:
                yield pending, None, _failure_message(event)
            todo[event.index] = _Pending(pending.path, pending.video_id)  # free memory
    finally:
        bar.close()
        if tuner:
            tuner.restore()


class _ThreadTuner:
    """Chooses torch's thread count for a CPU encoder that shares the cores with decoders.

    With every core for torch, the encoder and the decoding workers oversubscribe the CPU and
    torch's threads wait on each other; with one core per decoding worker left free, a slow
    encoder idles a core while decoders wait for it. Which wins depends on the machine, the
    model and the precision (on the 2-core machine: fewer threads +15 % frames/s in bf16,
    -27 % in fp32), so the tuner measures: it alternates the options over windows of chunks,
    keeps the faster (frames per wall-clock second, waiting included), and measures again
    every ``recheck`` windows.
    """

    def __init__(self, options: list[int], *, window: int = 3, recheck: int = 20) -> None:
        import torch

        self._torch = torch
        self.original = torch.get_num_threads()
        self.options = options
        self.window = window
        self.recheck = recheck
        self.rates: dict[int, float] = {}
        self.current = options[0]
        self.windows_left = recheck
        self.started: float | None = None  # the first chunk starts the clock: no start-up
        torch.set_num_threads(self.current)

    @classmethod
    def for_encoder(cls, embedder: Embedder, workers: int) -> _ThreadTuner | None:
        """A tuner when ``embedder`` runs torch on the CPU and there is a choice to make."""
        if getattr(embedder, "device", None) != "cpu":
            return None
        import torch

        threads = torch.get_num_threads()
        shared = max(1, min(threads, (os.cpu_count() or 1) - workers))
        return cls([threads, shared]) if shared < threads else None

    def _start_window(self) -> None:
        self._torch.set_num_threads(self.current)
        self.frames = 0
        self.chunks = 0
        self.started = time.perf_counter()

    def record(self, frames: int) -> None:
        """Count a chunk of ``frames`` just encoded; switch threads at the end of a window."""
        if self.started is None:
            self._start_window()
            return
        self.frames += frames
        self.chunks += 1
        if self.chunks < self.window:
            return
        self.rates[self.current] = self.frames / max(time.perf_counter() - self.started, 1e-9)
        untried = [n for n in self.options if n not in self.rates]
        self.windows_left -= 1
        if untried:
            self.current = untried[0]
        elif self.windows_left <= 0:  # measure the other options again
            self.rates = {self.current: self.rates[self.current]}
            self.windows_left = self.recheck
            self.current = next(n for n in self.options if n != self.current)
        else:
            self.current = max(self.rates, key=self.rates.__getitem__)
        self._start_window()

    def restore(self) -> None:
        self._torch.set_num_threads(self.original)


_task_embedders: dict[str, Embedder] = {}
_task_embedders_lock = threading.Lock()


def index_one_video(
    cache: str, rule: ClipRule, spec: dict[str, Any], path: str, video_id: str
) -> tuple[dict[str, Any] | None, str | None]:
    """An executor task: index one video into ``cache/videos/<video_id>``.

    Returns ``(meta, None)``, or ``(None, why)`` when the file cannot be indexed. The embedder
    is rebuilt from ``spec`` once per worker process and kept for its next tasks.
    """
    from va_widgets.embedders import embedder_from_spec

    key = json.dumps(spec, sort_keys=True)
    with _task_embedders_lock:
        if key not in _task_embedders:
            _task_embedders[key] = embedder_from_spec(spec)
        embedder = _task_embedders[key]
    todo = [_Pending(Path(path), video_id)]
    ((_, meta, failure),) = _index_here(Path(cache), rule, embedder, todo, 1, False)
    return meta, failure


def _write_video(cache: Path, rule: ClipRule, dim: int, p: _Pending) -> dict[str, Any]:
    """Write one finished video atomically into ``videos/<video_id>``; return its meta."""
    assert p.info is not None
    final = cache / "videos" / p.video_id
    # unique on every machine of a cluster that shares the cache folder
    tmp = cache / "videos" / f".tmp-{p.video_id}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    features = (
        np.concatenate(p.vectors).astype(np.float16)
        if p.vectors
        else np.zeros((0, dim), np.float16)
    )
    np.save(tmp / "features.npy", features)
    cat = (lambda name: np.concatenate([getattr(c, name) for c in p.chunks])) if p.chunks else None
    np.savez(
        tmp / "clips.npz",
        clip_index=cat("clip_index") if cat else np.zeros(0, np.int64),
        start_seconds=cat("start_seconds") if cat else np.zeros(0),
        end_seconds=cat("end_seconds") if cat else np.zeros(0),
        frame_seconds=cat("frame_seconds") if cat else np.zeros((0, rule.frames_per_clip)),
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
        np.asarray(offsets, dtype=np.int64).reshape(-1, rule.frames_per_clip + 1),
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


def _failure_message(event: Any) -> str:
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


# -- files ----------------------------------------------------------------------------------
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
