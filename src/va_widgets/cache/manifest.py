"""``manifest.json``: its schema, validated on every read and before every write."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from va_widgets.cache.files import write_atomic
from va_widgets.cache.paths import (
    CONTENT_HASH,
    FORMAT,
    FORMAT_VERSION,
    LIBRARY_ID,
    MANIFEST,
    MAX_CLIPS,
    MAX_CLIPS_PER_VIDEO,
    MAX_DIM,
    MAX_GENERATION,
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_TEXT,
    MAX_VIDEO_SIDE,
    check_video_id,
    inside,
)
from va_widgets.errors import CacheError
from va_widgets.media import MAX_IMAGE_SIZE, ClipRule


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
