"""Tiny synthetic test videos written with PyAV, plus broken files for error-path tests.

Each video is a sequence of solid-colour segments with hard cuts between them. A little
deterministic noise and a small moving square keep the encoder honest (the frames are not
trivially compressible) without moving the median colour of a frame.

The exact presentation time of every frame is known in advance (``frame_times``), so tests
can compare what ``va_widgets.media`` reports against ground truth.
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

Colour = tuple[int, int, int]
Segment = tuple[Colour, float]

# Frame-interval pattern (in units of 1/fps) used for variable-frame-rate videos.
VFR_PATTERN = (1.0, 2.0, 0.5, 1.5, 1.0, 3.0)

_CODEC_BY_SUFFIX = {
    ".mp4": "libx264",
    ".mkv": "libx264",
    ".mov": "libx264",
    ".gif": "gif",
    ".avi": "mpeg4",
    ".webm": "libvpx",
}
# Time bases that represent the synthetic frame times exactly.
_GIF_TIME_BASE = Fraction(1, 100)
_TIME_BASE = Fraction(1, 1000)


def frame_times(total_seconds: float, *, fps: float = 25, vfr: bool = False) -> np.ndarray:
    """Presentation times (s) of the frames ``make_video`` writes, rounded to whole ms.

    Constant rate: ``k / fps``. Variable rate: intervals cycle through ``VFR_PATTERN / fps``.
    """
    times: list[float] = []
    t = 0.0
    k = 0
    while t < total_seconds - 1e-9:
        times.append(round(t, 3))
        if vfr:
            t += VFR_PATTERN[k % len(VFR_PATTERN)] / fps
        else:
            t = (k + 1) / fps
        k += 1
    return np.asarray(times, dtype=np.float64)


def segment_colour(segments: Sequence[Segment], t: float) -> Colour:
    """The colour of the segment on screen at time ``t`` (half-open segments)."""
    start = 0.0
    for colour, seconds in segments:
        if t < start + seconds - 1e-9:
            return colour
        start += seconds
    return segments[-1][0]


def cut_times(segments: Sequence[Segment]) -> list[float]:
    """Times (s) of the hard cuts between segments."""
    return [float(x) for x in np.cumsum([s for _, s in segments])[:-1]]


def _frame_image(
    colour: Colour,
    index: int,
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    noise: int,
    ramp: bool = False,
) -> np.ndarray:
    width, height = size
    img = np.empty((height, width, 3), dtype=np.int16)
    img[:] = colour
    if ramp:  # horizontal and vertical brightness ramps: every pixel position looks different
        img[..., 0] += np.linspace(-80, 80, width, dtype=np.int16)[None, :]
        img[..., 2] += np.linspace(-80, 80, height, dtype=np.int16)[:, None]
    if noise:
        img += rng.integers(-noise, noise + 1, size=img.shape, dtype=np.int16)
    # A small square moving left to right, slightly brighter/darker than the background.
    side = max(2, min(width, height) // 8)
    x = (index * 3) % max(1, width - side)
    y = (height - side) // 2
    shade = np.where(np.asarray(colour) > 127, -40, 40).astype(np.int16)
    img[y : y + side, x : x + side] += shade
    return np.clip(img, 0, 255).astype(np.uint8)


def make_video(
    path: str | Path,
    segments: Sequence[Segment],
    *,
    fps: float = 25,
    size: tuple[int, int] = (160, 96),
    codec: str | None = None,
    gop: int | None = None,
    vfr: bool = False,
    noise: int = 4,
    bframes: bool = True,
    faststart: bool = False,
    seed: int = 0,
    ramp: bool = False,
) -> Path:
    """Write a video of solid-colour ``segments`` ``[(rgb, seconds), ...]`` with hard cuts.

    ``size`` is (width, height). ``codec`` defaults from the suffix: libx264 for
    .mp4/.mkv/.mov, gif for .gif, mpeg4 for .avi, libvpx for .webm. ``gop`` fixes the
    keyframe interval (frames); H.264 scene-cut keyframes are then disabled. ``vfr`` spaces frames by ``VFR_PATTERN``. Frame times are
    exactly ``frame_times(sum(seconds), fps=fps, vfr=vfr)``. ``ramp`` adds brightness ramps
    (red across, blue down) so that geometry (resize, crop) can be checked.
    """
    path = Path(path)
    codec = codec or _CODEC_BY_SUFFIX.get(path.suffix.lower(), "libx264")
    total = float(sum(s for _, s in segments))
    times = frame_times(total, fps=fps, vfr=vfr)
    is_gif = codec == "gif"
    time_base = _GIF_TIME_BASE if is_gif else _TIME_BASE
    rng = np.random.default_rng(seed)
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=container_options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = size
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if is_gif:
            stream.pix_fmt = "rgb8"
        elif codec == "mjpeg":  # every frame a JPEG of its own: damage stays in its frame
            stream.pix_fmt = "yuvj420p"
        else:
            stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            params = ["bframes=2" if bframes else "bframes=0"]
            if gop is not None:
                params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
            stream.codec_context.options = {"preset": "veryfast", "x264-params": ":".join(params)}
        elif gop is not None:
            stream.codec_context.gop_size = gop

        def frames() -> Iterator[av.VideoFrame]:
            for index, t in enumerate(times):
                colour = segment_colour(segments, t)
                img = _frame_image(colour, index, size, rng, noise=noise, ramp=ramp)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = round(t / time_base)
                frame.time_base = time_base
                yield frame

        _encode_all(container, stream, frames())
    return path


def _encode_all(container: Any, stream: Any, frames: Iterable[Any]) -> None:
    """Encode ``frames`` into ``stream``, then flush the encoder; mux every packet."""
    for frame in itertools.chain(frames, [None]):
        container.mux(stream.encode(frame))


# --------------------------------------------------------------------------- broken files


def make_empty_file(path: str | Path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_text_file(path: str | Path) -> Path:
    """A plain text file (to be given a video suffix such as .mp4)."""
    path = Path(path)
    path.write_text("This is not a video.\n" * 200)
    return path


def make_audio_only(path: str | Path, *, seconds: float = 1.0) -> Path:
    """An MP4 (AAC) file with an audio stream and no video stream."""
    path = Path(path)
    rate = 44100
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        n = int(rate * seconds)
        t = np.arange(n) / rate
        samples = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
        frame_size = 1024

        def frames() -> Iterator[av.AudioFrame]:
            for start in range(0, n, frame_size):
                chunk = samples[start : start + frame_size]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                yield frame

        _encode_all(container, stream, frames())
    return path


def truncated_copy(src: str | Path, dst: str | Path, *, fraction: float = 0.6) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes (a download cut short)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupted_copy(
    src: str | Path,
    dst: str | Path,
    *,
    start_fraction: float = 0.4,
    length_fraction: float = 0.1,
    seed: int = 1,
) -> Path:
    """Copy ``src`` with random bytes written over a stretch in the middle."""
    data = bytearray(Path(src).read_bytes())
    start = int(len(data) * start_fraction)
    length = max(1, int(len(data) * length_fraction))
    rng = np.random.default_rng(seed)
    data[start : start + length] = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def unknown_codec_copy(src_mkv: str | Path, dst: str | Path) -> Path:
    """Copy a Matroska file with its video CodecID replaced by an unknown one of equal length."""
    data = Path(src_mkv).read_bytes()
    for known, unknown in (
        (b"V_MPEG4/ISO/AVC", b"V_NOPE4/ISO/AVC"),
        (b"V_MPEG4/ISO/ASP", b"V_NOPE4/ISO/ASP"),
    ):
        if known in data:
            dst = Path(dst)
            dst.write_bytes(data.replace(known, unknown, 1))
            return dst
    raise ValueError(f"{src_mkv}: no known Matroska video CodecID to patch")


def garbled_frames_copy(src: str | Path, dst: str | Path, start: float, end: float) -> Path:
    """Copy ``src`` with the bytes of every frame shown in ``[start, end)`` s replaced by random
    ones (the first 16 bytes of each kept: the container's framing stays intact): with an
    intra-only codec (MJPEG) exactly those frames fail to decode."""
    with av.open(str(src)) as container:
        packets = [
            (float(p.pts * p.time_base), p.pos, p.size)
            for p in container.demux(video=0)
            if p.size and p.pts is not None
        ]
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(0)
    for t, pos, size in packets:
        if start <= t < end:
            data[pos + 16 : pos + size] = rng.integers(0, 256, size - 16, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def make_frameless(path: str | Path) -> Path:
    """A Matroska file with a video track and no frame: a real file cut before its first
    cluster (Matroska element id 0x1F43B675)."""
    path = Path(path)
    make_video(path, [((90, 90, 90), 0.2)], size=(64, 48))
    data = path.read_bytes()
    path.write_bytes(data[: data.index(bytes.fromhex("1F43B675"))])
    return path


def copy(src: str | Path, dst: str | Path) -> Path:
    """Plain copy (e.g. to give a file another suffix)."""
    return Path(shutil.copyfile(src, dst))


def garbage_frames_copy(src_mp4: str | Path, dst: str | Path, *, seed: int = 2) -> Path:
    """Copy an MP4 whose index precedes its data (``faststart``) with every frame's bytes
    replaced by random ones: the container opens, nothing decodes."""
    data = bytearray(Path(src_mp4).read_bytes())
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    if moov < 0 or mdat < 0 or moov > mdat:
        raise ValueError(f"{src_mp4}: needs an MP4 written with faststart=True")
    start = mdat + 4
    rng = np.random.default_rng(seed)
    data[start:] = rng.integers(0, 256, size=len(data) - start, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst
