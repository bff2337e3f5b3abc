"""Drive a real JupyterLab 4 / Notebook 7 in headless Chromium from pytest.

Typical use (see conftest.py for the fixtures that wrap it)::

    with JupyterServer(tmp_path, app="lab") as server:
        nb = write_notebook(server.root_dir / "t.ipynb", ["import x", "w = x.Widget(); w"])
        browser = launch_chromium(playwright)
        page = browser.new_page()
        open_notebook(page, server, "t.ipynb")   # waits for a ready, idle kernel
        run_all(page)                             # raises if a cell errors
        page.keyboard.press("a")
        assert run_code_in_new_cell(page, "print(w.value)") == "1"

Facts this relies on are in DESIGN.md, "Browser tests in real JupyterLab".
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Literal, Self

import psutil

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous but bounded (milliseconds for Playwright, seconds for the server).
TIMEOUT_MS = 60_000
SERVER_START_S = 90.0
SERVER_STOP_S = 15.0

_APP_MODULE = {"lab": "jupyterlab", "notebook": "notebook"}
_APP_CLASS = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}


def launch_chromium(playwright: Any, **kwargs: Any) -> Any:
    """Debian's Chromium via Playwright (never `playwright install`); no --user-data-dir."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS, **kwargs
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_notebook(path: Path, cells: list[str]) -> Path:
    """An nbformat-4 notebook of code cells with a python3 kernelspec (so the kernel starts)."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{i}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": src,
            }
            for i, src in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(nb, indent=1))
    return path


class ServerProcess:
    """A web server started as a subprocess in its own session, logging to ``log_path``.

    Subclasses build the command (:meth:`start` calls :meth:`launch`) and name the URL that
    answers 200 once the server is up (:meth:`ready_url`). :meth:`stop` ends the whole
    process group and any descendant that left it (a kernel in its own session).
    """

    name = "server"
    log_path: Path
    port = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready_url(self) -> str:
        raise NotImplementedError

    def launch(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        """Start ``cmd`` and wait until :meth:`ready_url` answers (or raise with the log)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.ready_url(), timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} not up in {SERVER_START_S} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to the server's process group, then SIGKILL; descendants in other sessions
        (kernels) are waited for and killed too."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            kernels = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            kernels = []
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(SERVER_STOP_S)
        _, alive = psutil.wait_procs(kernels, timeout=SERVER_STOP_S)
        for p in alive:
            p.kill()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        raise NotImplementedError


class JupyterServer(ServerProcess):
    """A JupyterLab (`app="lab"`) or Notebook 7 (`app="notebook"`) server in its own session.

    Everything it reads or writes lives under `tmp_dir`: notebooks in `root_dir`, config,
    data, runtime, settings and workspaces beside it. `env` is added to the server's (and so
    the kernels') environment. `theme="dark"` starts it in JupyterLab Dark. `settings` maps a
    settings plugin id (e.g. "@jupyterlab/apputils-extension:kernels-settings") to the values it gets.
    """

    def __init__(
        self,
        tmp_dir: Path,
        app: Literal["lab", "notebook"] = "lab",
        env: dict[str, str] | None = None,
        theme: Literal["light", "dark"] = "light",
        settings: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.tmp_dir = Path(tmp_dir)
        self.root_dir = self.tmp_dir / "root"
        self.settings_dir = self.tmp_dir / "jupyter" / "settings"
        self.log_path = self.tmp_dir / "jupyter" / f"{app}-server.log"
        self.token = secrets.token_hex(16)
        self.name = f"jupyter {app}"
        self.extra_env = dict(env or {})
        self.theme = theme
        self.settings = dict(settings or {})

    def notebook_url(self, path: str) -> str:
        prefix = "lab/tree" if self.app == "lab" else "notebooks"
        return f"{self.url}/{prefix}/{path}?reset&token={self.token}"

    def _write_settings(self) -> None:
        apputils = self.settings_dir / "@jupyterlab" / "apputils-extension"
        apputils.mkdir(parents=True, exist_ok=True)
        # No "Would you like to get notified about Jupyter news?" toast over the page.
        (apputils / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        theme = "JupyterLab Dark" if self.theme == "dark" else "JupyterLab Light"
        (apputils / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))
        for plugin, values in self.settings.items():
            package, _, name = plugin.partition(":")
            folder = self.settings_dir / package
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(values))

    def start(self) -> JupyterServer:
        jdir = self.tmp_dir / "jupyter"
        for sub in ("config", "data", "runtime", "workspaces", "ipython"):
            (jdir / sub).mkdir(parents=True, exist_ok=True)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self._write_settings()
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(jdir / "config"),
            "JUPYTER_DATA_DIR": str(jdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(jdir / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.settings_dir),
            "JUPYTERLAB_WORKSPACES_DIR": str(jdir / "workspaces"),
            "IPYTHONDIR": str(jdir / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
            **self.extra_env,
        }
        self.port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            _APP_MODULE[self.app],
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.allow_root=True",
            f"--{_APP_CLASS[self.app]}.expose_app_in_browser=True",
        ]
        self.launch(cmd, env, self.root_dir)
        return self

    def ready_url(self) -> str:
        return f"{self.url}/api/status?token={self.token}"


# --- page helpers ----------------------------------------------------------------------------
# The notebook panel is `jupyterapp.shell.currentWidget` in both JupyterLab and Notebook 7.

_KERNEL_READY_JS = """(path) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const k = ctx && ctx.session && ctx.session.kernel;
  return !!(ctx && ctx.isReady && ctx.path === path && w.content && w.content.isAttached
            && k && k.connectionStatus === 'connected' && k.status === 'idle');
}"""


def open_notebook(page: Any, server: JupyterServer, path: str) -> None:
    """Open `path` (relative to the server root) and wait for a connected, idle kernel.

    The toolbar shows "idle" before the session exists; running then would pop a
    "Select Kernel" dialog, hence the wait on the session context itself.
    """
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.notebook_url(path), wait_until="domcontentloaded")
    page.wait_for_function(_KERNEL_READY_JS, arg=path, timeout=TIMEOUT_MS, polling=100)
    page.wait_for_function("() => !document.getElementById('jupyterlab-splash')")


def execute_command(page: Any, command: str, args: dict[str, Any] | None = None) -> Any:
    """Run a JupyterLab command (e.g. "notebook:run-all-cells") and await its promise."""
    return page.evaluate(
        "([c, a]) => window.jupyterapp.commands.execute(c, a).then((r) => r ?? null)",
        [command, args or {}],
    )


def cell_count(page: Any) -> int:
    """Cells in the current notebook's model (not the DOM: JupyterLab windows long notebooks)."""
    return int(
        page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model.cells.length")
    )


_OUTPUTS_JS = """(i) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
  return cell.model.outputs.toJSON();
}"""


def _outputs_text(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for out in outputs:
        if out["output_type"] == "error":
            raise AssertionError(f"{out['ename']}: {out['evalue']}")
        if out["output_type"] == "stream":
            text = out["text"]
        else:
            text = out.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts).strip()


def run_all(page: Any) -> None:
    """Run every cell, await the end of execution; raise with the error if a cell failed."""
    ok = execute_command(page, "notebook:run-all-cells")
    if ok is False:
        n = cell_count(page)
        for i in range(n):
            _outputs_text(page.evaluate(_OUTPUTS_JS, i))  # raises on the error output
        raise AssertionError("notebook:run-all-cells reported a failure")


def wait_kernel_idle(page: Any) -> None:
    page.wait_for_function(
        """() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status
                 === 'idle'""",
        polling=100,
    )


def run_code_in_new_cell(page: Any, code: str) -> str:
    """Add a cell at the end, type `code`, run it with Ctrl+Enter; return its output text.

    Typing uses `keyboard.insert_text`, which bypasses the editor's bracket auto-closing.
    Raises AssertionError if the cell raised.
    """
    n = cell_count(page)
    # Select the last cell, in command mode, then insert below it (now the active cell).
    page.evaluate(
        """() => { const nb = window.jupyterapp.shell.currentWidget.content;
                   nb.mode = 'command'; nb.activeCellIndex = nb.widgets.length - 1; }"""
    )
    execute_command(page, "notebook:insert-cell-below")
    page.wait_for_function(
        """(n) => { const nb = window.jupyterapp.shell.currentWidget.content;
                    return nb.model.cells.length === n + 1 && nb.activeCellIndex === n; }""",
        arg=n,
    )
    execute_command(page, "notebook:enter-edit-mode")
    page.wait_for_function("() => document.activeElement?.classList.contains('cm-content')")
    page.keyboard.insert_text(code)
    page.wait_for_function(
        "([i, code]) => window.jupyterapp.shell.currentWidget.content.widgets[i]"
        ".model.sharedModel.getSource() === code",
        arg=[n, code],
    )
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount"
        " !== null",
        arg=n,
    )
    return _outputs_text(page.evaluate(_OUTPUTS_JS, n))


def wait_in_kernel(page: Any, expr: str, expected: str, seconds: float = 10.0) -> str:
    """Print `expr` in a new cell once its str() is `expected` (or after `seconds`); return
    the printed text.

    State a widget's front end sets reaches the kernel as a comm message; JupyterLab 4.5+
    sends those to a kernel subshell, so a cell run just after may see the value before it.
    """
    code = (
        f"import time as _t\nfor _ in range({round(seconds * 10)}):\n"
        f"    if str({expr}) == {expected!r}:\n        break\n    _t.sleep(0.1)\nprint({expr})"
    )
    return run_code_in_new_cell(page, code)


def set_theme(page: Any, theme: Literal["light", "dark"]) -> None:
    """Switch theme live with `apputils:change-theme` and wait until it is applied."""
    name = "JupyterLab Dark" if theme == "dark" else "JupyterLab Light"
    execute_command(page, "apputils:change-theme", {"theme": name})
    wait_theme(page, theme)


def wait_theme(page: Any, theme: Literal["light", "dark"]) -> None:
    """Wait until the page shows `theme` (data-jp-theme-light on <body>) and no splash.

    JupyterLab covers the page with its splash screen while a theme loads.
    """
    page.wait_for_function(
        "(light) => document.body.dataset.jpThemeLight === light"
        " && !document.getElementById('jupyterlab-splash')",
        arg="false" if theme == "dark" else "true",
    )


def screenshot(page: Any, path: Path) -> Path:
    """A viewport PNG once no splash screen covers the page, with animations stopped."""
    page.wait_for_function("() => !document.getElementById('jupyterlab-splash')")
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path
