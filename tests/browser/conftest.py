"""Fixtures for tests that drive a real JupyterLab / Notebook 7 in headless Chromium.

Needs Debian's Chromium at /usr/bin/chromium (scripts/install-browser.sh) and the pip
packages playwright, jupyterlab, notebook, ipykernel (and marimo for test_marimo.py). Without them the tests are skipped,
except when CI=true: then they fail, because a skipped browser test must not pass CI.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import CHROMIUM, JupyterServer, ServerProcess, launch_chromium
from marimo_host import MarimoServer

INSTALL_HINT = (
    "browser tests need Chromium at /usr/bin/chromium (run scripts/install-browser.sh, i.e. "
    "`apt-get install -y chromium`) and `pip install playwright jupyterlab notebook ipykernel marimo` "
    "(never `playwright install`)"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real JupyterLab in headless Chromium")


def _missing() -> list[str]:
    missing = [m for m in ("playwright", "jupyterlab", "notebook", "ipykernel")
               if importlib.util.find_spec(m) is None]  # fmt: skip
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM)
    return missing


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{reason}; {INSTALL_HINT}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    missing = _missing()
    if missing:
        _unavailable(f"missing: {', '.join(missing)}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser context and page, 1280x800; a screenshot is kept if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    try:
        yield pg
    finally:
        if _failed(request):
            shot = tmp_path / "failure.png"
            try:
                pg.screenshot(path=str(shot))
                print(f"failure screenshot: {shot}")
            except Exception as exc:  # the page may be gone
                print(f"no failure screenshot: {exc}")
        context.close()


def _server_factory(
    request: pytest.FixtureRequest, make: Callable[..., ServerProcess], needs: tuple[str, ...] = ()
) -> Iterator[Callable[..., Any]]:
    """A fixture's factory of servers: ``make(i, *args, **kwargs)`` builds the i-th, the factory
    starts it (or says what is missing); all are stopped after the test, and if the test
    failed the tail of each log is printed."""
    servers: list[ServerProcess] = []

    def start(*args: Any, **kwargs: Any) -> Any:
        missing = _missing() + [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            _unavailable(f"missing: {', '.join(missing)}")
        server = make(len(servers), *args, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
        if _failed(request):
            print(f"--- {server.name} log ({server.log_path}) ---\n{server.log_tail()}")


@pytest.fixture
def start_jupyter(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., JupyterServer]]:
    """Factory: start_jupyter(app="lab"|"notebook", theme=..., env=...) -> running server,
    each in its own directory under tmp_path."""

    def make(i: int, app: Literal["lab", "notebook"] = "lab", **kwargs: Any) -> JupyterServer:
        return JupyterServer(tmp_path / f"{app}{i}", app=app, **kwargs)

    yield from _server_factory(request, make)


@pytest.fixture
def start_marimo(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., MarimoServer]]:
    """Factory: start_marimo(notebook, mode="edit"|"run", env=...) -> running marimo server."""

    def make(
        i: int, notebook: Path, mode: Literal["edit", "run"] = "edit", **kwargs: Any
    ) -> MarimoServer:
        return MarimoServer(tmp_path / f"marimo{i}", notebook, mode=mode, **kwargs)

    yield from _server_factory(request, make, needs=("marimo",))


@pytest.fixture
def jupyter_lab(start_jupyter: Callable[..., JupyterServer]) -> JupyterServer:
    return start_jupyter("lab")


@pytest.fixture
def jupyter_notebook(start_jupyter: Callable[..., JupyterServer]) -> JupyterServer:
    return start_jupyter("notebook")


@pytest.fixture(scope="session")
def sample_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small indexed library (3 sample videos, 36 clips, offline pixel embedder), built once."""
    import va_widgets as va

    root = tmp_path_factory.mktemp("annotator-lib")
    va.make_sample_videos(root / "videos", n_videos=3, seconds_per_video=24)
    lib = va.index_videos(
        root / "videos",
        root / "cache",
        embedder=va.PixelStatsEmbedder(),
        progress=False,
        workers=1,
    )
    assert len(lib) == 36
    return root / "cache"
