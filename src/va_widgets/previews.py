"""What the Annotator sends to the browser: clip metadata with preview frames, and clip videos.

Everything travels as binary buffers of a custom message (Python ``bytes`` arrive in the front
end as ``DataView``s): no base64, no HTTP server.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from va_widgets.errors import VideoError

if TYPE_CHECKING:
    from va_widgets.library import ClipLibrary

#: width (px) of the MP4 a "play" request encodes
PLAY_WIDTH = 320


def pack_clips(
    library: ClipLibrary,
    clip_ids: Sequence[str],
    scores: np.ndarray,
    feeds: Sequence[str],
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Metadata of each clip and its JPEG frames, all frames in one flat list of buffers.

    Clip ``i`` owns the ``n_frames`` buffers that follow those of clips ``0 .. i-1``.
    """
    clips = library.clips
    rows = library.rows(list(clip_ids)) if len(clip_ids) else np.zeros(0, dtype=np.int64)
    meta: list[dict[str, Any]] = []
    buffers: list[bytes] = []
    for clip_id, row, score, feed in zip(clip_ids, rows, scores, feeds, strict=True):
        frames = library.thumbnails(clip_id)
        buffers.extend(frames)
        meta.append(
            {
                "clip_id": clip_id,
                "video": Path(str(clips["video"].iat[row])).name,
                "start_seconds": float(clips["start_seconds"].iat[row]),
                "end_seconds": float(clips["end_seconds"].iat[row]),
                "score": None if math.isnan(float(score)) else round(float(score), 4),
                "feed": feed,
                "n_frames": len(frames),
            }
        )
    return meta, buffers


def encode_clip_mp4(
    video: str | Path,
    start_seconds: float,
    end_seconds: float,
    *,
    width: int = PLAY_WIDTH,
) -> bytes:
    """The ``[start_seconds, end_seconds)`` range of ``video`` as a small H.264 MP4 (no audio).

    The output is ``width`` pixels wide (never upscaled), even-sized, yuv420p, with timestamps
    starting at zero, so any browser plays it from a Blob.
    """
    import av
    from av.video.reformatter import VideoReformatter

    path = Path(video)
    if not path.is_file():
        raise VideoError(str(path), "file not found", "was the video moved after indexing?")
    out = io.BytesIO()
    with av.open(str(path)) as source:
        if not source.streams.video:
            raise VideoError(str(path), "no video stream")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        src_w, src_h = stream.codec_context.width, stream.codec_context.height
        out_w = min(width, src_w) // 2 * 2
        out_h = max(2, round(src_h * out_w / src_w) // 2 * 2)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        if stream.time_base is not None and start_seconds > 0:
            source.seek(int(start_seconds / stream.time_base), stream=stream, backward=True)
        with av.open(out, "w", format="mp4") as sink:  # moov at the end: fine for a Blob
            enc = sink.add_stream("libx264", rate=rate)
            enc.width, enc.height, enc.pix_fmt = out_w, out_h, "yuv420p"
            enc.codec_context.options = {"preset": "veryfast", "crf": "26"}
            time_base = Fraction(1, 1000)
            enc.codec_context.time_base = time_base
            reformatter = VideoReformatter()  # one converter for the whole clip
            n = 0
            last_pts = -1
            for frame in source.decode(stream):
                if frame.time is None or frame.time < start_seconds - 1e-6:
                    continue
                if frame.time >= end_seconds - 1e-6:
                    break
                img = reformatter.reformat(frame, width=out_w, height=out_h, format="yuv420p")
                pts = round((frame.time - start_seconds) / time_base)
                img.pts = max(pts, last_pts + 1)
                img.time_base = time_base
                last_pts = img.pts
                for packet in enc.encode(img):
                    sink.mux(packet)
                n += 1
            for packet in enc.encode(None):
                sink.mux(packet)
    if n == 0:
        raise VideoError(
            str(path),
            f"no frame in [{start_seconds:.3f}, {end_seconds:.3f}) s",
            "is the file truncated?",
        )
    return out.getvalue()
