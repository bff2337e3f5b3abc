"""Module-level generator functions for the worker-pool tests (workers import them by name)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator


def count_to(item: tuple[str, int]) -> Iterator[tuple[str, int]]:
    name, n = item
    for i in range(n):
        yield name, i


def misbehave(item: str) -> Iterator[str]:
    if item == "segfault":
        ctypes.string_at(0)  # a real SIGSEGV, as a decoder bug would raise
    if item == "exit":
        os._exit(3)
    if item == "raise":
        raise ValueError("bad item 'raise'")
    yield f"{item}:1"
    yield f"{item}:2"
