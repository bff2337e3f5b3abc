"""Checks of arguments from users and the front end: a clear error naming the argument, never a
silent coercion (``True`` is not 1, ``2.5`` is not 2, ``"3"`` is not 3)."""

from __future__ import annotations

import numbers


def check_count(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; TypeError/ValueError naming ``name`` if not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{name} must be an integer {bound}, got {number}")
    return number
