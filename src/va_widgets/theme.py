"""Figures in the notebook's theme: dark figures under JupyterLab Dark, light ones otherwise.

The kernel cannot see the front end's theme; an Annotator view reports it (its ``theme``
trait), and ``VA_WIDGETS_THEME=dark|light`` or :func:`set_theme` override that. Plotting code
wraps figure creation in :func:`themed` (a context manager and a decorator)::

    with themed():
        fig = plot_task(task)

    @themed
    def score_timeline(...): ...
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Literal

Theme = Literal["light", "dark"]

# JupyterLab Dark's own colours (layout-color0/1, ui-font-color1, border-color1)
_DARK: dict[str, Any] = {
    "figure.facecolor": "#111111",
    "savefig.facecolor": "#111111",
    "axes.facecolor": "#111111",
    "axes.edgecolor": "#616161",
    "axes.labelcolor": "#e0e0e0",
    "axes.titlecolor": "#e0e0e0",
    "text.color": "#e0e0e0",
    "xtick.color": "#bdbdbd",
    "ytick.color": "#bdbdbd",
    "grid.color": "#424242",
    "legend.facecolor": "#1e1e1e",
    "legend.edgecolor": "#616161",
    "patch.edgecolor": "#e0e0e0",
}

_chosen: Theme | None = None  # set_theme()
_reported: Theme | None = None  # the last theme an Annotator view reported


def set_theme(theme: Theme | None) -> None:
    """Use ``theme`` for figures from now on (None: follow the notebook again)."""
    global _chosen
    if theme not in ("light", "dark", None):
        raise ValueError(f"theme must be 'light', 'dark' or None, got {theme!r}")
    _chosen = theme


def report(theme: str) -> None:
    """The front end's theme, as an Annotator view saw it ('' when it could not tell)."""
    global _reported
    _reported = theme if theme in ("light", "dark") else None  # type: ignore[assignment]


def current() -> Theme:
    """The theme figures get now: set_theme(), else VA_WIDGETS_THEME, else the reported one."""
    env = os.environ.get("VA_WIDGETS_THEME", "").strip().lower()
    if _chosen is not None:
        return _chosen
    if env in ("light", "dark"):
        return env  # type: ignore[return-value]
    return _reported or "light"


def rc_params(theme: Theme | None = None) -> dict[str, Any]:
    """matplotlib settings for ``theme`` (default: :func:`current`); {} for light."""
    return dict(_DARK) if (theme or current()) == "dark" else {}


class themed(contextlib.ContextDecorator):  # lower case: used as @themed and with themed()
    """Create figures (and their artists) in the current theme."""

    def __enter__(self) -> themed:
        import matplotlib

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(matplotlib.rc_context(rc_params()))  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
