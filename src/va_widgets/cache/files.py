"""Housekeeping of the cache folder: creation, locking, atomic writes, free space, garbage."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from va_widgets.cache.paths import (
    _GENERATION_FILE,
    _TEMP_SHARD,
    LOCK,
    SPARE_BYTES,
    VIDEO_ID,
    VIDEOS,
    features_path,
    table_path,
)
from va_widgets.errors import CacheError


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
