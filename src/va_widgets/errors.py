"""Exceptions raised by va_widgets: each message names the input and what to do about it."""

from __future__ import annotations


class VaWidgetsError(Exception):
    """Base class of every error va_widgets raises on purpose."""


class VideoError(VaWidgetsError):
    """A video file that cannot be indexed (missing, not a video, corrupt, unsupported)."""

    def __init__(self, path: str, reason: str, hint: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        message = f"{self.path}: {reason}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[VideoError], tuple[str, str, str]]:
        # Raised in decoding workers and sent back to the caller: pickle the arguments.
        return (type(self), (self.path, self.reason, self.hint))


class WorkerCrashed(VaWidgetsError):
    """A decoding worker process died (e.g. a decoder crash) while handling an item."""


class EmbedderError(VaWidgetsError):
    """An embedder could not be created or used (weights unavailable, no text encoder...)."""


class TextSearchUnavailable(EmbedderError):
    """The embedder has no text encoder, so text search is not possible."""


class CacheError(VaWidgetsError):
    """A library cache folder that is missing, corrupt, locked or built differently."""


class EmbedderMismatch(CacheError):
    """A cache built with one embedder opened or extended with another."""


class StoreError(VaWidgetsError):
    """A label store file that cannot be used (not a store, newer schema, locked, closed...)."""


class TaskMismatch(StoreError):
    """A task opened with a different library id or embedder fingerprint than it was created with."""


class RetrainError(VaWidgetsError):
    """Labels were saved, but the classifier could not be trained on them."""
