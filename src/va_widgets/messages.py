"""Checks on the Annotator front end's messages: every field is hostile input until checked.

Each reader takes the message (a dict decoded from JSON) and a field name, and returns the
value with its type and bounds checked, or raises :class:`MessageError` naming the field, what
was received and what is allowed. The widget returns that error to the view that sent it.
"""

from __future__ import annotations

from typing import Any

MAX_ID_CHARS = 256  # clip ids are short (video id + clip index); anything longer is not one
MAX_TEXT_CHARS = 2000


class MessageError(ValueError):
    """A front-end message with a missing, mistyped or out-of-range field."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def clip_id(msg: dict[str, Any], key: str = "clip_id") -> str:
    """A clip id: a non-empty string of at most MAX_ID_CHARS characters."""
    value = msg.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise MessageError(
            f"{key} must be a clip id (a non-empty string of at most {MAX_ID_CHARS} "
            f"characters), got {_shown(value)}"
        )
    return value


def clip_ids(msg: dict[str, Any], key: str, *, max_n: int, required: bool = True) -> list[str]:
    """A list of at most ``max_n`` clip ids (an absent field is [] unless ``required``)."""
    value = msg.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or len(value) > max_n:
        raise MessageError(f"{key} must be a list of at most {max_n} clip ids, got {_shown(value)}")
    return [clip_id({key: v}, key) for v in value]


def integer(msg: dict[str, Any], key: str, *, low: int, high: int, default: int) -> int:
    """An integer in [low, high] (``default`` when absent); booleans are not integers."""
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MessageError(f"{key} must be an integer from {low} to {high}, got {_shown(value)}")
    return value


def boolean(msg: dict[str, Any], key: str) -> bool:
    """True or false (not 0/1, not "yes")."""
    value = msg.get(key)
    if not isinstance(value, bool):
        raise MessageError(f"{key} must be true or false, got {_shown(value)}")
    return value


def text(msg: dict[str, Any], key: str) -> str:
    """A string of at most MAX_TEXT_CHARS characters, stripped."""
    value = msg.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise MessageError(
            f"{key} must be a string of at most {MAX_TEXT_CHARS} characters, got {_shown(value)}"
        )
    return value.strip()
