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

from va_widgets.cache.files import (
    collect_garbage,
    ensure_free_space,
    exclusive,
    fsync_dir,
    prepare,
    write_atomic,
)
from va_widgets.cache.generation import (
    Generation,
    open_generation,
    read_clip_table,
    write_clip_table,
    write_generation,
)
from va_widgets.cache.manifest import read_manifest, validate_manifest, write_manifest
from va_widgets.cache.paths import (
    CONTENT_HASH,
    FORMAT,
    FORMAT_VERSION,
    LABELS,
    MANIFEST,
    SHARD_FILES,
    VIDEO_ID,
    VIDEOS,
    check_video_id,
    features_path,
    inside,
    root_of,
    shard_dir,
    table_path,
)
from va_widgets.cache.shards import (
    Shard,
    Thumbnails,
    nonfinite_rows,
    read_shard,
    read_shard_meta,
    write_shard,
)

__all__ = [
    "CONTENT_HASH",
    "FORMAT",
    "FORMAT_VERSION",
    "LABELS",
    "MANIFEST",
    "SHARD_FILES",
    "VIDEOS",
    "VIDEO_ID",
    "Generation",
    "Shard",
    "Thumbnails",
    "check_video_id",
    "collect_garbage",
    "ensure_free_space",
    "exclusive",
    "features_path",
    "fsync_dir",
    "inside",
    "nonfinite_rows",
    "open_generation",
    "prepare",
    "read_clip_table",
    "read_manifest",
    "read_shard",
    "read_shard_meta",
    "root_of",
    "shard_dir",
    "table_path",
    "validate_manifest",
    "write_atomic",
    "write_clip_table",
    "write_generation",
    "write_manifest",
    "write_shard",
]
