"""Drive a real marimo server (edit or run mode) in headless Chromium from pytest.

marimo hosts an anywidget through ``mo.ui.anywidget(widget)`` and renders it inside the open
shadow root of a ``<marimo-anywidget>`` element: Playwright locators pierce it, but
``document.querySelector`` does not, hence ``DEEP_JS`` below.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from harness import ServerProcess, _free_port

# `deep(sel)`: the first element matching `sel` in the document or in any open shadow root.
DEEP_JS = """
window.__vaDeep = window.__vaDeep || function deep(sel, root = document) {
  const hit = root.querySelector(sel);
  if (hit) return hit;
  for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) { const h = deep(sel, el.shadowRoot); if (h) return h; }
  }
  return null;
};
"""


def write_marimo_notebook(path: Path, cells: list[str]) -> Path:
    """A marimo notebook file: each source in `cells` one self-contained cell (no names shared)."""
    lines = ["import marimo", "", "app = marimo.App()"]
    for src in cells:
        body = "\n".join(f"    {line}" if line else "" for line in src.splitlines())
        lines += ["", "", "@app.cell", "def _():", body, "    return"]
    lines += ["", "", 'if __name__ == "__main__":', "    app.run()", ""]
    path.write_text("\n".join(lines))
    return path


class MarimoServer(ServerProcess):
    """`marimo edit` or `marimo run` on one notebook, headless, no token, in its own session.

    Its user config (under `tmp_dir`) runs every cell when the notebook opens in edit mode
    (marimo's `runtime.auto_instantiate`), as run mode always does, and sets its `theme`.
    """

    def __init__(
        self,
        tmp_dir: Path,
        notebook: Path,
        mode: Literal["edit", "run"] = "edit",
        env: dict[str, str] | None = None,
        theme: Literal["light", "dark"] = "light",
    ) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.notebook = Path(notebook)
        self.mode = mode
        self.theme = theme
        self.name = f"marimo {mode}"
        self.extra_env = dict(env or {})
        self.log_path = self.tmp_dir / f"marimo-{mode}.log"

    def ready_url(self) -> str:
        return f"{self.url}/health"

    def start(self) -> MarimoServer:
        config = self.tmp_dir / "config" / "marimo"
        config.mkdir(parents=True, exist_ok=True)
        (config / "marimo.toml").write_text(
            f'[runtime]\nauto_instantiate = true\n\n[display]\ntheme = "{self.theme}"\n'
        )
        for sub in ("cache", "state"):
            (self.tmp_dir / sub).mkdir(exist_ok=True)
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.tmp_dir / "config"),
            "XDG_CACHE_HOME": str(self.tmp_dir / "cache"),
            "XDG_STATE_HOME": str(self.tmp_dir / "state"),
            **self.extra_env,
        }
        self.port = _free_port()
        cmd = [
            sys.executable, "-m", "marimo", self.mode, str(self.notebook),
            "--headless", "--no-token", "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        if self.mode == "edit":
            cmd.append("--skip-update-check")
        self.launch(cmd, env, self.notebook.parent)
        return self
