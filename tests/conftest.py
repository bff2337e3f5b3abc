"""Shared fixtures: a tiny real open_clip model, the offline embedder, synthetic videos."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# No hub access in tests: fail at once instead of retrying for ~47 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos"


@pytest.fixture(scope="session")
def tiny_clip_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config JSON, weights file) of a tiny randomly initialised open_clip model."""
    from tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_files: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    """A real open_clip embedder (tiny architecture, random weights) loaded from a local file."""
    from va_widgets.embedders import OpenClipEmbedder

    config, weights = tiny_clip_files
    return OpenClipEmbedder(
        "va-tiny", pretrained=str(weights), model_config=str(config), device="cpu"
    )


@pytest.fixture(scope="session")
def pixel_embedder():  # type: ignore[no-untyped-def]
    from va_widgets.embedders import PixelStatsEmbedder

    return PixelStatsEmbedder()


@pytest.fixture
def shared_videos() -> Path:
    """The real CC BY 4.0 sample videos beside the project; skipped where absent."""
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"real sample videos not present at {SHARED_VIDEOS}")
    return SHARED_VIDEOS
