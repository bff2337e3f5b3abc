"""Run by test_wheel.py with the python of a clean virtualenv that has only the wheel installed.

Checks what a user of the installed package needs, outside the source checkout: the import,
the version, the bundled front end, py.typed, an Annotator on a tiny library and the CLI.
Exits non-zero (an AssertionError with a message) on the first problem.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import va_widgets as va

work = Path(sys.argv[1])
package = Path(va.__file__).resolve().parent
prefix = Path(sys.prefix).resolve()
assert package.is_relative_to(prefix), f"va_widgets imported from {package}, not from {prefix}"
assert va.__version__ == importlib.metadata.version("va_widgets"), (
    va.__version__,
    importlib.metadata.version("va_widgets"),
)
for name in ("static/annotator.js", "static/annotator.css", "py.typed"):
    assert (package / name).is_file(), f"{name} is not in the installed package {package}"
assert "export" in (package / "static/annotator.js").read_text(encoding="utf-8")

videos = work / "videos"
va.make_sample_videos(videos, n_videos=2, seconds_per_video=4.0, size=(64, 48))
lib = va.index_videos(videos, work / "cache", embedder=va.PixelStatsEmbedder(), progress=False)
assert len(lib) > 0, "no clips indexed"
annotator = va.Annotator(lib, task="red-ball")
assert annotator._esm.startswith(  # the bundled ES module, read from the installed package
    (package / "static/annotator.js").read_text(encoding="utf-8")[:200]
)
clip = lib.clips["clip_id"].iloc[0]
annotator.task.label(clip, True)
assert annotator.task.counts()["positives"] == 1

cli = Path(sys.executable).with_name("va-widgets")
for args in (
    ["index", str(videos), "--cache", str(work / "cli_cache"), "--offline", "--quiet"],
    ["info", "--cache", str(work / "cli_cache")],
):
    done = subprocess.run([str(cli), *args], capture_output=True, text=True, cwd=work)
    assert done.returncode == 0, f"va-widgets {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    print(done.stdout, end="")
print(f"installed va_widgets {va.__version__} from {package}: ok")
