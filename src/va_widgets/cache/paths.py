"""The cache folder's names, id patterns and bounds, and the checks that keep paths inside it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from va_widgets.errors import CacheError

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
MAX_VIDEO_SIDE = 1 << 16
MAX_MANIFEST_BYTES = 1 << 30
MAX_JSON_DEPTH = 16
MAX_TEXT = 1 << 16  # characters of a path, a message, a name
#: bytes kept free beyond what a write needs (file-system metadata, the manifest, the WAL)
SPARE_BYTES = 16 << 20


# -- paths ---------------------------------------------------------------------------
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
