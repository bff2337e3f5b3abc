"""A WebVTT track written by write_segments loads as cues of a real <video> in Chromium."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from va_widgets.segments import segments, write_segments

pytestmark = pytest.mark.browser

SOURCE = Path(__file__).resolve().parents[2].parent / "shared" / "videos" / "bottle-detection.mp4"
SECONDS = 8


def transcode_webm(source: Path, target: Path, seconds: int = SECONDS) -> float:
    """The frames of the first ``seconds`` of ``source`` as VP8 WebM, 320x180 at 25 frames/s
    (Chromium plays it anywhere); returns its duration in seconds."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream("libvpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for i, frame in enumerate(inp.decode(video=0)):
            if frame.time is not None and frame.time >= seconds:
                break
            small = frame.reformat(width=320, height=180, format="yuv420p")
            small.pts, small.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return i / 25


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # no request log on stderr
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder) of a local HTTP server in a thread, serving ``tmp_path``."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_video_element_loads_the_segment_cues(page: Any, served: tuple[str, Path]) -> None:
    if not SOURCE.exists():
        pytest.skip(f"real sample video not present at {SOURCE}")
    url, folder = served
    duration = transcode_webm(SOURCE, folder / "bottles.webm")
    scores = pd.DataFrame(
        {
            "video": "bottles.webm",
            "start_seconds": [float(s) for s in range(SECONDS)],
            "end_seconds": [float(s + 1) for s in range(SECONDS)],
            "score": [0.1, 0.92, 0.85, 0.2, 0.3, 0.7, 0.2, 0.95],
        }
    )
    found = segments(scores, threshold=0.5)
    assert len(found) == 3
    (track,) = write_segments(found, str(folder / "tracks") + "/", label="bottle")
    assert track.name == "bottles.vtt"
    (folder / "index.html").write_text(
        "<!doctype html><html><body>"
        '<video id="v" src="bottles.webm" preload="auto" muted>'
        '<track default kind="metadata" src="tracks/bottles.vtt">'
        "</video></body></html>"
    )
    page.goto(f"{url}/index.html")
    page.wait_for_function(
        "() => { const v = document.getElementById('v');"
        " const t = v.textTracks[0];"
        " return v.readyState >= 1 && t && t.cues && t.cues.length > 0; }"
    )
    state = page.evaluate(
        "() => { const v = document.getElementById('v'); const t = v.textTracks[0];"
        " return {n: t.cues.length, start: t.cues[0].startTime, end: t.cues[0].endTime,"
        " text: t.cues[0].text, mode: t.mode, duration: v.duration,"
        " error: v.error && v.error.code}; }"
    )
    assert state["error"] is None and state["duration"] == pytest.approx(duration, abs=0.1)
    assert state["n"] == len(found)
    assert state["start"] == pytest.approx(found["start_seconds"].iloc[0])
    assert state["end"] == pytest.approx(found["end_seconds"].iloc[0])
    assert state["text"] == "bottle (peak 0.92)" and state["mode"] == "hidden"
