"""Synthetic sample videos with known content, for the demo, the notebooks and tests.

Each video is a sequence of scenes (hard cuts) on a coloured background; some scenes show a red
ball bouncing, others a blue box sliding or nothing but texture. ``ground_truth`` says where the
red ball is, so a classifier for "red ball" can be checked against the truth.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

BACKGROUNDS = [(30, 60, 30), (200, 200, 190), (40, 40, 90), (120, 90, 60), (15, 15, 20)]
OBJECTS = ("red ball", "blue box", "none")


def make_sample_videos(
    folder: str | os.PathLike[str],
    *,
    n_videos: int = 4,
    seconds_per_video: float = 24.0,
    scene_seconds: float = 4.0,
    fps: int = 15,
    size: tuple[int, int] = (320, 180),
    seed: int = 0,
) -> pd.DataFrame:
    """Write ``n_videos`` MP4 files into ``folder``; return the ground truth, one row per scene.

    Columns: video, start_seconds, end_seconds, object (``"red ball"``, ``"blue box"``, ``"none"``).
    Files that already exist are rewritten, so the output is the same for the same arguments.
    """
    import av

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    rows = []
    n_scenes = max(1, round(seconds_per_video / scene_seconds))
    frames_per_scene = round(scene_seconds * fps)
    yy, xx = np.mgrid[0:height, 0:width]
    for v in range(n_videos):
        path = folder / f"sample_{v:02d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23"}
            for s in range(n_scenes):
                obj = OBJECTS[rng.integers(len(OBJECTS))]
                bg = np.array(BACKGROUNDS[rng.integers(len(BACKGROUNDS))], dtype=np.float32)
                texture = rng.normal(0, 12, (height, width, 1)).astype(np.float32)
                x, y = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
                dx, dy = rng.uniform(-4, 4), rng.uniform(-4, 4)
                for _ in range(frames_per_scene):
                    img = bg + texture
                    if obj == "red ball":
                        mask = (xx - x) ** 2 + (yy - y) ** 2 < (height * 0.12) ** 2
                        img[mask] = (220, 30, 30)
                    elif obj == "blue box":
                        box = (abs(xx - x) < height * 0.15) & (abs(yy - y) < height * 0.1)
                        img[box] = (40, 70, 220)
                    x, y = x + dx, y + dy
                    if not 0.1 * width < x < 0.9 * width:
                        dx = -dx
                    if not 0.1 * height < y < 0.9 * height:
                        dy = -dy
                    frame = av.VideoFrame.from_ndarray(
                        np.clip(img, 0, 255).astype(np.uint8), format="rgb24"
                    )
                    for packet in stream.encode(frame):
                        container.mux(packet)
                rows.append(
                    {
                        "video": str(path.resolve()),
                        "start_seconds": s * frames_per_scene / fps,
                        "end_seconds": (s + 1) * frames_per_scene / fps,
                        "object": obj,
                    }
                )
            for packet in stream.encode():
                container.mux(packet)
    return pd.DataFrame(rows)


def clip_truth(clips: pd.DataFrame, truth: pd.DataFrame, concept: str = "red ball") -> pd.Series:
    """True for each clip (row of ``lib.clips``) whose midpoint lies in a scene showing ``concept``."""
    mid = (clips["start_seconds"] + clips["end_seconds"]) / 2
    out = pd.Series(False, index=clips.index)
    for row in truth[truth["object"] == concept].itertuples():
        out |= (clips["video"] == row.video) & (mid >= row.start_seconds) & (mid < row.end_seconds)
    return out
