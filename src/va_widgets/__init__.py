"""va_widgets: build a video classifier in a notebook with CLIP features and active learning.

Heavy dependencies (torch, open_clip, av) are imported lazily, so ``import va_widgets`` is fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from va_widgets.errors import (
    CacheError,
    EmbedderError,
    EmbedderMismatch,
    RetrainError,
    StoreError,
    TaskMismatch,
    TextSearchUnavailable,
    VaWidgetsError,
    VideoError,
    WorkerCrashed,
)

# the one source of the version (pyproject.toml reads it: [tool.hatch.version])
__version__ = "0.2.0.dev0"

# public name -> module that defines it; loaded on first attribute access (PEP 562).
_LAZY = {
    "Annotator": "va_widgets.widget",
    "index_videos": "va_widgets.indexing",
    "ClipLibrary": "va_widgets.library",
    "ClipRule": "va_widgets.media",
    "OpenClipEmbedder": "va_widgets.embedders",
    "PixelStatsEmbedder": "va_widgets.embedders",
    "load_default_embedder": "va_widgets.embedders",
    "make_sample_videos": "va_widgets.samples",
    "LabelStore": "va_widgets.store",
    "Quality": "va_widgets.learner",
    "Task": "va_widgets.task",
    "simulate": "va_widgets.task",
    "VideoClassifier": "va_widgets.classifier",
    "load_classifier": "va_widgets.classifier",
    # the function segments() is not exported here: its name is its module's, which the
    # import system binds on this package (use clf.segments or va_widgets.segments.segments)
    "segments_to_webvtt": "va_widgets.segments",
    "write_segments": "va_widgets.segments",
}

__all__ = [
    "Annotator",
    "CacheError",
    "ClipLibrary",
    "ClipRule",
    "EmbedderError",
    "EmbedderMismatch",
    "LabelStore",
    "OpenClipEmbedder",
    "PixelStatsEmbedder",
    "Quality",
    "RetrainError",
    "StoreError",
    "Task",
    "TaskMismatch",
    "TextSearchUnavailable",
    "VaWidgetsError",
    "VideoClassifier",
    "VideoError",
    "WorkerCrashed",
    "__version__",
    "index_videos",
    "load_classifier",
    "load_default_embedder",
    "make_sample_videos",
    "segments_to_webvtt",
    "simulate",
    "write_segments",
]

if TYPE_CHECKING:
    from va_widgets.classifier import VideoClassifier, load_classifier
    from va_widgets.embedders import OpenClipEmbedder, PixelStatsEmbedder, load_default_embedder
    from va_widgets.indexing import index_videos
    from va_widgets.learner import Quality
    from va_widgets.library import ClipLibrary
    from va_widgets.media import ClipRule
    from va_widgets.samples import make_sample_videos
    from va_widgets.segments import segments_to_webvtt, write_segments
    from va_widgets.store import LabelStore
    from va_widgets.task import Task, simulate
    from va_widgets.widget import Annotator


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'va_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
