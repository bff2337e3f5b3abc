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

import collections
import concurrent.futures
import contextlib
import json
import os
import stat
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from va_widgets import cache as layout
from va_widgets.checks import check_count
from va_widgets.errors import CacheError, VaWidgetsError, VideoError
from va_widgets.library import ClipLibrary, PathLike, check_embedder
from va_widgets.media import VIDEO_EXTENSIONS, ClipRule, DecodeJob, decode_job

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
    root = layout.root_of(cache)
    paths, problems = discover_videos(sources)  # raises before anything is touched
    if workers is not None:
        workers = check_count("workers", workers, maximum=256)
    previous = layout.read_manifest(root) if (root / layout.MANIFEST).exists() else None
    rule = _resolve_rule(previous, clips, clip_seconds, frames_per_clip, min_clip_seconds, root)
    if embedder is None:
        from va_widgets.embedders import OpenClipEmbedder, embedder_from_spec

        embedder = embedder_from_spec(previous["embedder"]) if previous else OpenClipEmbedder()
    elif previous:
        check_embedder(root, previous, embedder)
    with as_executor(executor) as pool:
        layout.prepare(root)
        with layout.exclusive(root):
            indexer = _Indexer(root, previous, rule, embedder, workers, progress)
            indexer.errors += problems
            manifest = indexer.run(paths, pool)
    lib = ClipLibrary(root, manifest, embedder)
    failed = lib.errors[lib.errors["severity"] == "error"]
    if len(failed):
        warnings.warn(
            f"{len(failed)} of {len(paths) + len(problems)} file(s) could not be indexed; "
            "see lib.errors",
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
    return discover_videos(sources)[0]


def discover_videos(
    sources: PathLike | Iterable[PathLike],
) -> tuple[list[Path], list[dict[str, str]]]:
    """Video files in ``sources``, and what could not be looked at (as ``lib.errors`` rows).

    Folders are searched recursively (hidden names skipped); a folder that cannot be listed, a
    broken link or a special file (FIFO, socket, device) with a video extension is reported,
    never silently skipped. Raises FileNotFoundError when a source is missing or holds no video.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = list(sources)
    found: dict[Path, None] = {}
    problems: list[dict[str, str]] = []

    def problem(path: Path | str, why: str) -> None:
        problems.append({"video": str(path), "severity": "error", "message": why})

    def consider(path: Path, named: bool) -> None:
        if not named and (path.name.startswith(".") or path.suffix.lower() not in VIDEO_EXTENSIONS):
            return
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            problem(path, "a link to a file that does not exist (broken link); fix or remove it")
            return
        except OSError as exc:
            problem(path, f"cannot be looked at ({exc.strerror or exc}); check its permissions")
            return
        if stat.S_ISREG(mode):
            found[path.absolute().resolve()] = None
        elif not stat.S_ISDIR(mode):
            problem(path, "not a regular file (a FIFO, socket or device); copy the video to a file")

    for source in sources:
        path = Path(source).expanduser()
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(f"video source {str(source)!r} does not exist; check the path")
        if not path.is_dir():
            consider(path, named=True)
            continue

        def unlistable(exc: OSError, top: Path = path) -> None:
            why = f"folder cannot be listed ({exc.strerror or exc}); check its permissions"
            problem(exc.filename or top, why)

        for folder, dirs, files in os.walk(path, onerror=unlistable):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                consider(Path(folder) / name, named=False)
    if not found and not problems:
        raise FileNotFoundError(
            f"no video files in {[str(s) for s in sources]} "
            f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    return sorted(found), problems


def content_hash(path: Path) -> str:
    """BLAKE3 of the whole file (64 hex digits): any change anywhere in a video changes it.

    Measured in ``benchmarks/index_throughput.py`` (a small share of indexing time).
    """
    import blake3

    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
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
        root: Path,
        previous: dict[str, Any] | None,
        rule: ClipRule,
        embedder: Embedder,
        workers: int | None,
        progress: bool,
    ) -> None:
        self.root = root
        self.previous = previous
        self.rule = rule
        self.embedder = embedder
        self.workers = workers or max(1, (os.cpu_count() or 2) // 4)
        self.progress = progress
        self.errors: list[dict[str, str]] = []

    def _identify(
        self, path: Path, by_path: dict[str, dict[str, Any]], by_hash: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """The entry of ``path``: its file facts, content hash and video id.

        An entry of the last run at the same path with the same size, mtime and inode is
        trusted without hashing; anything else is hashed whole. A known hash keeps its video
        id (the video moved or was touched), and an entry from before whole-file hashing at
        the same path and stat keeps its id and gains a hash. Raises OSError when unreadable.
        """
        st = path.stat()
        facts = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                 "inode": st.st_ino}  # fmt: skip
        old = by_path.get(str(path))
        same_stat = old is not None and (old["size"], old["mtime_ns"]) == (
            st.st_size, st.st_mtime_ns) and old.get("inode", st.st_ino) == st.st_ino  # fmt: skip
        if old is not None and same_stat and "content_hash" in old:
            return {**facts, "content_hash": old["content_hash"], "video_id": old["video_id"]}
        digest = content_hash(path)
        if old is not None and same_stat and "content_hash" not in old:
            return {**facts, "content_hash": digest, "video_id": old["video_id"]}
        known = by_hash.get(digest)
        video_id = known["video_id"] if known else digest[:16]
        return {**facts, "content_hash": digest, "video_id": video_id}

    def run(
        self, paths: list[Path], executor: concurrent.futures.Executor | None
    ) -> dict[str, Any]:
        old_entries = (self.previous or {}).get("videos", [])
        by_path = {v["path"]: v for v in old_entries}
        by_hash = {v["content_hash"]: v for v in old_entries if "content_hash" in v}
        entries: dict[str, dict[str, Any]] = {}  # video_id -> entry, in the order of paths
        todo: list[_Pending] = []
        for path in paths:
            try:
                entry = self._identify(path, by_path, by_hash)
            except OSError as exc:
                self._error(path, "error", f"cannot be read ({exc.strerror or exc}); "
                            "check its permissions and index again")  # fmt: skip
                continue
            video_id = entry["video_id"]
            if video_id in entries:
                self._error(
                    path, "warning", f"same content as {entries[video_id]['path']}; indexed once"
                )
                continue
            entries[video_id] = entry
            meta = layout.read_shard_meta(self.root, video_id)
            if meta is None:
                todo.append(_Pending(path, video_id))
            else:
                entry.update(meta)
        if executor is None:
            results = _index_here(
                self.root, self.rule, self.embedder, todo, self.workers, self.progress
            )
        else:
            results = self._index_on(executor, todo)
        for pending, meta, failure in results:
            if meta is None:
                del entries[pending.video_id]
                self._error(pending.path, "error", failure or "unknown failure")
            else:
                entries[pending.video_id].update(meta)
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
                index_one_video, str(self.root), self.rule, spec, str(p.path), p.video_id
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

    def _error(self, path: Path | str, severity: str, message: str) -> None:
        self.errors.append({"video": str(path), "severity": severity, "message": message})

    def _commit(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Merge the videos' shards into a new generation's table and matrix; swap the manifest."""
        gen = (self.previous["generation"] + 1) if self.previous else 1
        kept, rejected = layout.write_generation(
            self.root, gen, entries, self.rule.frames_per_clip, self.embedder.dim
        )
        for entry, why in rejected:
            self._error(entry["path"], "error", f"{why} (its index was removed)")
        for entry in kept:
            for message in entry.get("warnings", []):
                self._error(entry["path"], "warning", message)
        manifest = {
            "format": layout.FORMAT,
            "version": layout.FORMAT_VERSION,
            "library_id": self.previous["library_id"] if self.previous else uuid.uuid4().hex,
            "generation": gen,
            "embedder": self.embedder.spec(),
            "embedder_name": self.embedder.name,
            "clip_rule": self.rule.to_dict(),
            "videos": kept,
            "errors": self.errors,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        layout.write_manifest(self.root, manifest)
        layout.collect_garbage(self.root, gen, {e["video_id"] for e in kept})
        return manifest


# -- videos: decode, encode, write a shard ---------------------------------------------------
@dataclass
class _Pending:
    """A video being indexed: its decoded chunks and the encoder's futures of their vectors."""

    path: Path
    video_id: str
    info: VideoInfo | None = None
    chunks: list[ClipChunk] = field(default_factory=list)
    vectors: list[concurrent.futures.Future[np.ndarray]] = field(default_factory=list)


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

    jobs = [DecodeJob(str(p.path), rule, embedder.image_size) for p in todo]
    bar = tqdm(total=len(todo), unit="video", desc="indexing", disable=not progress)
    n_clips = 0
    encoder = _ChunkEncoder(embedder)
    decoded: list[_Pending] = []  # decoded whole, written once its chunks are encoded

    def write(pending: _Pending) -> tuple[_Pending, dict[str, Any] | None, str | None]:
        try:
            return pending, _write_video(cache, rule, embedder.dim, pending), None
        except (CacheError, OSError) as exc:  # e.g. a full disk: this video only
            return pending, None, f"its index could not be written: {exc}"

    try:
        for event in run_isolated(decode_job, jobs, workers=workers):
            pending = todo[event.index]
            if event.kind == "result":
                if not isinstance(event.payload, ClipChunk):
                    pending.info = event.payload
                else:
                    chunk = event.payload
                    pending.vectors.append(encoder.submit(chunk.frames))
                    chunk.frames = chunk.frames[:0]  # the encoder keeps the pixels until done
                    pending.chunks.append(chunk)
                    n_clips += len(chunk.clip_index)
                    bar.set_postfix(clips=n_clips)
            else:
                bar.update(1)
                if event.kind == "done":
                    decoded.append(pending)
                else:
                    yield pending, None, _failure_message(event)
                todo[event.index] = _Pending(pending.path, pending.video_id)  # free memory
            while decoded and all(future.done() for future in decoded[0].vectors):
                yield write(decoded.pop(0))
        while decoded:
            yield write(decoded.pop(0))
    finally:
        bar.close()
        encoder.close()


#: most threads encoding chunks at once (with more cores, each runs torch on several): bounds
#: the frames in flight on machines with many cores
MAX_ENCODE_THREADS = 8


class _ChunkEncoder:
    """Encodes chunks as they arrive; on the CPU, whole chunks on one thread per core (at most
    ``MAX_ENCODE_THREADS``, each then running torch on the cores left to it).

    torch's own threads wait for each other after every operation, so when the decoding
    workers take a core, one descheduled thread stalls the rest (and the threads that spin
    while waiting take CPU from the decoders). Whole chunks on parallel threads, each running
    torch on one thread, never wait for each other: the cores are shared out by the OS and the
    decoders fill the gaps. ``benchmarks/index_throughput.py`` measures it against the bound.
    Results come back in the order submitted; at most two chunks per thread are in flight.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.threads = 1
        self.in_flight: collections.deque[concurrent.futures.Future[np.ndarray]] = (
            collections.deque()
        )
        if getattr(embedder, "device", None) != "cpu":
            return
        import torch

        self._torch = torch
        self.original = torch.get_num_threads()
        if self.original > 1:
            self.threads = min(self.original, MAX_ENCODE_THREADS)
            torch.set_num_threads(max(1, self.original // self.threads))
            self.pool = concurrent.futures.ThreadPoolExecutor(
                self.threads, thread_name_prefix="va_widgets-encode"
            )

    def submit(self, frames: np.ndarray) -> concurrent.futures.Future[np.ndarray]:
        """A future of the clip vectors of ``frames`` (n, K, S, S, 3)."""
        if self.pool is None:  # encode here and now
            done: concurrent.futures.Future[np.ndarray] = concurrent.futures.Future()
            done.set_result(self.embedder.encode_clips(frames))
            return done
        while len(self.in_flight) >= 2 * self.threads:
            self.in_flight.popleft().result()
        future = self.pool.submit(self.embedder.encode_clips, frames)
        self.in_flight.append(future)
        return future

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
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
    """Write one finished video's shard (see :func:`va_widgets.cache.write_shard`); its meta.

    Clips whose vector is not finite (NaN or infinity from the encoder) are left out with a
    warning naming them, so that no such vector ever reaches the library.
    """
    assert p.info is not None
    k = rule.frames_per_clip
    encoded = [future.result() for future in p.vectors]
    vectors = np.concatenate(encoded) if encoded else np.zeros((0, dim), np.float32)
    features = vectors.astype(np.float16)

    def cat(name: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([getattr(c, name) for c in p.chunks]) if p.chunks else empty

    shard = layout.Shard(
        meta={},
        features=features,
        clip_index=cat("clip_index", np.zeros(0, np.int64)).astype(np.int64),
        start_seconds=cat("start_seconds", np.zeros(0)).astype(np.float64),
        end_seconds=cat("end_seconds", np.zeros(0)).astype(np.float64),
        frame_seconds=cat("frame_seconds", np.zeros((0, k))).astype(np.float64),
    )
    thumbnails = [frames for chunk in p.chunks for frames in chunk.thumbnails]
    info = p.info
    warnings_ = list(info.warnings)
    bad = layout.nonfinite_rows(features)
    if len(bad):
        keep = np.ones(len(features), dtype=bool)
        keep[bad] = False
        starts = ", ".join(f"{t:.2f} s" for t in shard.start_seconds[bad][:5])
        warnings_.append(
            f"{len(bad)} clips were left out: the encoder gave them a non-finite vector "
            f"(clips starting at {starts}{', ...' if len(bad) > 5 else ''})"
        )
        shard = layout.Shard({}, features[keep], shard.clip_index[keep], shard.start_seconds[keep],
                             shard.end_seconds[keep], shard.frame_seconds[keep])  # fmt: skip
        thumbnails = [t for t, ok in zip(thumbnails, keep, strict=True) if ok]
    meta = {
        "video_id": p.video_id,
        "n_clips": len(shard.features),
        "duration_seconds": info.duration_seconds,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "codec": info.codec,
        "warnings": warnings_,
    }
    layout.write_shard(cache, p.video_id, meta, shard, thumbnails)
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
