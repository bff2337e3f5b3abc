"""The package as users get it: sdist and wheel built by ``python -m build``, the wheel
installed into a clean virtualenv outside the checkout, and used there.

Slow (a front-end build from the sdist and a full dependency install); it never skips.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import va_widgets

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_version_has_one_source() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and not re.search(r"(?m)^version\s*=", pyproject)
    assert 'path = "src/va_widgets/__init__.py"' in pyproject  # [tool.hatch.version]
    assert "version" not in (ROOT / "js" / "package.json").read_text()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel, the wheel built from the sdist (python -m build's default)."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    return out


@pytest.mark.slow
def test_sdist_has_front_end_sources_not_the_bundle(dist: Path) -> None:
    (sdist,) = dist.glob("va_widgets-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = names[0].split("/")[0]
    assert f"{top}/js/annotator.js" in names and f"{top}/js/package-lock.json" in names
    assert not any("/node_modules/" in n for n in names)
    assert not any("va_widgets/static/" in n for n in names)  # the wheel builds it from js/


@pytest.mark.slow
def test_wheel_ships_front_end_types_and_version(dist: Path) -> None:
    (wheel,) = dist.glob("va_widgets-*.whl")
    assert wheel.name.startswith(f"va_widgets-{va_widgets.__version__}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    for name in ("static/annotator.js", "static/annotator.css", "py.typed"):
        assert f"va_widgets/{name}" in names, name


@pytest.mark.slow
def test_wheel_works_in_a_clean_virtualenv(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("va_widgets-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    constraints = ROOT / "constraints-dev.txt"
    run(python, "-m", "pip", "install", "--quiet", wheel, "-c", constraints, cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = run(python, ROOT / "tests" / "installed_smoke.py", work, cwd=work)
    assert f"installed va_widgets {va_widgets.__version__}" in out
    assert "clips" in out  # va-widgets index / info printed the library
