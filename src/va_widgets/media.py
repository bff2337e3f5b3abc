"""Video probing, clip planning and frame sampling with PyAV (the only PyAV user for indexing).

Pipeline per video:

1. ``probe``: one demux-only pass over the video stream's packets (nothing is decoded). The
   sorted packet timestamps give the exact frame timeline, also for variable frame rate, GIFs
   and containers whose header has no frame count; keyframe flags say where seeking can land.
2. Clip plan, computed up front from that timeline: fixed windows ``[k*L, (k+1)*L)`` or, in
   ``"shots"`` mode, shots found by a first decoding pass (see ``detect_shots``). Each clip
   samples ``K`` frames: the frames on screen at ``start + (i + 0.5) * (end - start) / K``.
3. One sequential decode. Only the sampled frames are converted, each by a reused
   ``VideoReformatter`` (one per output geometry), resizing inside libswscale. The decoder
   seeks (to the keyframe at or before the next sampled frame) only when that skips more than
   ``seek_gap_seconds`` of frames, so dense sampling never seeks.

All times are seconds (float) relative to the first frame's presentation time.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from va_widgets.checks import check_count
from va_widgets.errors import VideoError

if TYPE_CHECKING:
    import av.container
    import av.video.frame
    import av.video.stream

__all__ = [
    "SEEK_GAP_SECONDS",
    "VIDEO_EXTENSIONS",
    "ClipChunk",
    "ClipRule",
    "VideoInfo",
    "detect_shots",
    "iter_clips",
    "plan_clips",
    "probe",
]

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".mkv", ".mov", ".avi", ".webm", ".gif", ".m4v", ".mpg", ".mpeg",
        ".ts", ".wmv", ".flv", ".3gp",
    }
)  # fmt: skip

#: Seek only when it skips more than this many seconds of frames (see ``iter_clips``).
SEEK_GAP_SECONDS = 2.0
#: Width (px) of the tiny frames compared by the shot detector.
SHOT_IMAGE_WIDTH = 32
#: Bounds of a clip rule: sizes read from an argument, a manifest or a model file are checked
#: against them before anything is allocated.
MAX_FRAMES_PER_CLIP = 64
MAX_CLIP_SECONDS = 24 * 3600.0
MIN_CLIP_SECONDS = 0.01
#: Largest model input and thumbnail side (px).
MAX_IMAGE_SIZE = 4096
#: Frames longer than this many times their width (or the reverse) are cropped before resizing.
_MAX_ASPECT = 4
#: Thumbnail JPEG quality (Pillow scale).
THUMB_JPEG_QUALITY = 80
# Times closer than this (s) count as equal: absorbs float rounding of pts * time_base.
_EPS = 1e-9
_ATTACHED_PIC = 1024  # AV_DISPOSITION_ATTACHED_PIC: cover art, not a video track


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, kw_only=True)
class ClipRule:
    """How a video is cut into clips and how many frames each clip samples.

    ``mode="fixed"``: windows ``[k*clip_seconds, (k+1)*clip_seconds)``; a shorter tail is
    kept if it lasts at least ``min_clip_seconds``, else dropped.

    ``mode="shots"``: clips are shots. A cut is declared before frame ``j`` when the mean
    absolute difference between frames ``j-1`` and ``j``, both shrunk to
    ``SHOT_IMAGE_WIDTH`` px wide RGB and scaled to 0..1, is at least ``shot_threshold``, and
    the shots on both sides last at least ``min_shot_seconds`` (greedy, earliest cut first).
    The default 0.1 is about 26 levels (of 255) of average change. Measured on the real
    sample videos: cuts between different scenes score 0.11-0.30 (two takes of the same
    set: 0.11), hard cuts between flat colours up to 0.67, while motion and noise within a
    shot stay below 0.07 (street traffic), mostly below 0.02. Lower it to catch cuts between
    similar-looking shots; raise it if fast motion produces false cuts. Shots longer than
    ``max_shot_seconds`` are split into equal parts no longer than that (each part is longer
    than half of it).

    Both modes sample ``frames_per_clip`` frames per clip, evenly spaced in time. The default
    of 4 comes from ``benchmarks/index_throughput.py``: the mean-pooled vector of 4 frames of a
    2 s clip lies within cosine 0.9998 (worst clip 0.999) of the 16-frame vector, as close as
    8 frames get, while 1 frame falls to 0.978 on the worst clip; and 4 frames halve the CLIP
    work of 8, the cost that dominates indexing on a CPU.
    """

    mode: Literal["fixed", "shots"] = "fixed"
    clip_seconds: float = 2.0
    min_clip_seconds: float = 0.5
    frames_per_clip: int = 4
    shot_threshold: float = 0.1
    min_shot_seconds: float = 1.0
    max_shot_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "shots"):
            raise ValueError(f"ClipRule.mode must be 'fixed' or 'shots', got {self.mode!r}")
        for name in ("clip_seconds", "min_clip_seconds", "min_shot_seconds", "max_shot_seconds"):
            value = getattr(self, name)
            if (
                not _is_real(value)
                or not math.isfinite(value)
                or not MIN_CLIP_SECONDS <= value <= MAX_CLIP_SECONDS
            ):
                raise ValueError(
                    f"ClipRule.{name} must be a number of seconds in [{MIN_CLIP_SECONDS:g}, "
                    f"{MAX_CLIP_SECONDS:g}], got {value!r}"
                )
        if self.min_clip_seconds > self.clip_seconds:
            raise ValueError(
                f"ClipRule.min_clip_seconds ({self.min_clip_seconds!r}) must not exceed "
                f"clip_seconds ({self.clip_seconds!r})"
            )
        if self.min_shot_seconds > self.max_shot_seconds:
            raise ValueError(
                f"ClipRule.min_shot_seconds ({self.min_shot_seconds!r}) must not exceed "
                f"max_shot_seconds ({self.max_shot_seconds!r})"
            )
        k = self.frames_per_clip
        if (
            isinstance(k, bool)
            or not isinstance(k, (int, np.integer))
            or not 1 <= k <= MAX_FRAMES_PER_CLIP
        ):
            raise ValueError(
                f"ClipRule.frames_per_clip must be an integer from 1 to {MAX_FRAMES_PER_CLIP}, "
                f"got {k!r}"
            )
        t = self.shot_threshold
        if not _is_real(t) or not (0 < t <= 1):
            raise ValueError(f"ClipRule.shot_threshold must be in (0, 1], got {t!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipRule:
        """Inverse of ``to_dict``; missing keys take defaults, unknown keys are an error."""
        if not isinstance(d, dict):
            raise TypeError(f"a clip rule must be a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ClipRule field(s): {', '.join(map(repr, unknown))}")
        return cls(**d)


@dataclass(repr=False)
class VideoInfo:
    """What the demux pass learnt about a video. ``iter_clips`` appends decode-time
    warnings (and fills ``n_decoded_frames``/``n_seeks``) while it runs."""

    duration_seconds: float
    n_frames: int
    fps: float
    width: int
    height: int
    codec: str
    warnings: list[str] = field(default_factory=list)
    #: presentation time of every frame (s, from the first frame), sorted
    frame_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False)
    #: absolute time (s) of the first frame in the file's own timeline (add it to clip times
    #: to address the file in a player)
    first_frame_seconds: float = 0.0
    n_decoded_frames: int = 0
    n_seeks: int = 0

    def __repr__(self) -> str:
        return (
            f"VideoInfo(duration_seconds={self.duration_seconds:.3f}, n_frames={self.n_frames}, "
            f"fps={self.fps:.3f}, width={self.width}, height={self.height}, "
            f"codec={self.codec!r}, warnings={len(self.warnings)})"
        )


@dataclass(repr=False)
class ClipChunk:
    """Up to ``chunk_clips`` consecutive clips of one video with their sampled frames."""

    clip_index: np.ndarray  # (n,) int64
    start_seconds: np.ndarray  # (n,) float64
    end_seconds: np.ndarray  # (n,) float64
    frame_seconds: np.ndarray  # (n, K) float64
    frames: np.ndarray  # (n, K, S, S, 3) uint8 RGB
    thumbnails: list[list[bytes]]  # n x K JPEG bytes

    def __len__(self) -> int:
        return len(self.clip_index)

    def __repr__(self) -> str:
        first = int(self.clip_index[0]) if len(self) else None
        return (
            f"ClipChunk(n={len(self)}, first_clip={first}, frames={self.frames.shape}, "
            f"frame_seconds={self.frame_seconds.shape}, thumbnails={len(self.thumbnails)}x"
            f"{len(self.thumbnails[0]) if self.thumbnails else 0})"
        )


# --------------------------------------------------------------------------- timeline


@dataclass
class _Timeline:
    seconds: np.ndarray  # (n,) float64 frame times from the first frame, sorted, unique
    pts: np.ndarray  # (n,) int64 stream pts, sorted
    keyframe: np.ndarray  # (n,) bool
    time_base: float
    info: VideoInfo


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(str(path), "file not found", "check the path and the folder it is in")
    if not path.is_file():
        raise VideoError(str(path), "not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(str(path), "empty file (0 bytes)", "the copy or download did not finish")


def _open(path: Path) -> av.container.InputContainer:
    import av

    _check_file(path)
    try:
        return av.open(str(path), metadata_errors="replace")
    except PermissionError as exc:
        raise VideoError(str(path), "permission denied") from exc
    except av.error.InvalidDataError as exc:
        raise VideoError(
            str(path),
            "not a video file FFmpeg can read (unrecognised or damaged data)",
            "if it is an MP4 cut short, its index at the end is missing: copy it again",
        ) from exc
    except av.error.EOFError as exc:  # FFmpeg's "End of file" (errno 541478725)
        raise VideoError(
            str(path),
            "the file ends before its first video frame (no frames to index)",
            "it was probably cut short while copying or recording: copy it again",
        ) from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(str(path), f"FFmpeg could not open it: {exc}") from exc


def _video_stream(
    container: av.container.InputContainer, path: Path
) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not int(s.disposition) & _ATTACHED_PIC]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        what = f"only {', '.join(kinds)} stream(s)" if kinds else "no streams"
        raise VideoError(str(path), f"no video stream ({what})", "is it an audio-only file?")
    stream = streams[0]
    if stream.codec_context is None:
        raise VideoError(
            str(path),
            "unsupported video codec: this FFmpeg build has no decoder for it",
            "re-encode the video to H.264 (e.g. ffmpeg -i in -c:v libx264 out.mp4)",
        )
    return stream


def _read_timeline(path: Path) -> _Timeline:
    import av

    container = _open(path)
    try:
        stream = _video_stream(container, path)
        pts_list: list[int] = []
        durations: list[int] = []
        keys: list[bool] = []
        warnings: list[str] = []
        try:
            for packet in container.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or packet.size == 0:
                    continue
                pts_list.append(ts)
                durations.append(packet.duration or 0)
                keys.append(bool(packet.is_keyframe))
        except av.error.FFmpegError as exc:
            warnings.append(
                f"the file is damaged; reading stopped after {len(pts_list)} frames ({exc})"
            )
        if not pts_list:
            raise VideoError(str(path), "no video frames found in the file", "is it truncated?")
        if stream.time_base is None:
            raise VideoError(str(path), "the video stream has no time base (no timestamps)")
        time_base = float(stream.time_base)
        ctx = stream.codec_context
        codec = ctx.name
        width, height = ctx.width, ctx.height
        header_seconds = None
        if stream.duration:
            header_seconds = stream.duration * time_base
        elif container.duration:
            header_seconds = container.duration / 1e6
        rate = float(stream.average_rate) if stream.average_rate else 0.0
    finally:
        container.close()

    pts = np.asarray(pts_list, dtype=np.int64)
    order = np.argsort(pts, kind="stable")
    pts = pts[order]
    dur = np.asarray(durations, dtype=np.int64)[order]
    key = np.asarray(keys, dtype=bool)[order]
    unique = np.ones(len(pts), dtype=bool)
    unique[1:] = pts[1:] != pts[:-1]
    if not unique.all():
        warnings.append(f"{int((~unique).sum())} frames with duplicate timestamps were ignored")
        pts, dur, key = pts[unique], dur[unique], key[unique]
    key[0] = True  # decoding starts at the first packet anyway
    rel = pts - pts[0]
    seconds = rel.astype(np.float64) * time_base
    if dur[-1] > 0:
        last = float(dur[-1]) * time_base
    elif len(pts) > 1:
        last = float(np.median(np.diff(rel))) * time_base
    else:
        last = 1.0 / rate if rate > 0 else 0.0
    duration = float(seconds[-1] + last)
    if header_seconds is not None and header_seconds - duration > max(1.0, 0.05 * header_seconds):
        warnings.append(
            f"file ends early: the header says {header_seconds:.2f} s but the video stream "
            f"stops at {duration:.2f} s (truncated or damaged file)"
        )
    info = VideoInfo(
        duration_seconds=duration,
        n_frames=len(pts),
        fps=len(pts) / duration if duration > 0 else 0.0,
        width=int(width),
        height=int(height),
        codec=str(codec),
        warnings=warnings,
        frame_seconds=seconds,
        first_frame_seconds=float(pts[0]) * time_base,
    )
    return _Timeline(seconds=seconds, pts=pts, keyframe=key, time_base=time_base, info=info)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame timeline and stream facts from one demux-only pass (no decoding).

    Raises ``VideoError`` for a missing, empty, unreadable or video-less file, or a video
    codec FFmpeg cannot decode.
    """
    return _read_timeline(Path(path)).info


# --------------------------------------------------------------------------- clip plan


def _fixed_windows(duration: float, rule: ClipRule) -> list[tuple[float, float]]:
    length = rule.clip_seconds
    n_full = math.floor(duration / length + _EPS)
    windows = [(k * length, (k + 1) * length) for k in range(n_full)]
    tail_start = n_full * length
    if duration - tail_start >= rule.min_clip_seconds - _EPS and duration - tail_start > _EPS:
        windows.append((tail_start, duration))
    return windows


def _shot_windows(
    duration: float, cut_seconds: np.ndarray, rule: ClipRule
) -> list[tuple[float, float]]:
    bounds = [0.0, *(float(c) for c in cut_seconds), duration]
    windows: list[tuple[float, float]] = []
    for start, end in itertools.pairwise(bounds):
        parts = max(1, math.ceil((end - start) / rule.max_shot_seconds - _EPS))
        step = (end - start) / parts
        windows += [(start + i * step, end if i == parts - 1 else start + (i + 1) * step)
                    for i in range(parts)]  # fmt: skip
    return windows


def _select_cuts(
    seconds: np.ndarray, scores: np.ndarray, duration: float, rule: ClipRule
) -> np.ndarray:
    """Greedy in time: accept a candidate cut if both shots around it are long enough."""
    cuts: list[float] = []
    last = 0.0
    for i in np.flatnonzero(scores >= rule.shot_threshold):
        t = float(seconds[i])
        if (
            t - last >= rule.min_shot_seconds - _EPS
            and duration - t >= rule.min_shot_seconds - _EPS
        ):
            cuts.append(t)
            last = t
    return np.asarray(cuts, dtype=np.float64)


def plan_clips(
    info: VideoInfo, rule: ClipRule, *, cut_seconds: np.ndarray | None = None
) -> list[tuple[float, float]]:
    """Clip windows ``[(start, end), ...]`` in seconds. ``cut_seconds`` (shot boundaries from
    ``detect_shots``) is required in ``"shots"`` mode."""
    if rule.mode == "fixed":
        return _fixed_windows(info.duration_seconds, rule)
    if cut_seconds is None:
        raise ValueError("plan_clips: 'shots' mode needs cut_seconds (see detect_shots)")
    return _shot_windows(info.duration_seconds, np.asarray(cut_seconds, dtype=np.float64), rule)


#: Let FFmpeg skip the non-reference frames that no clip samples (False decodes every frame:
#: for comparisons in benchmarks).
SKIP_UNSAMPLED_NONREF = True


def _sample_targets(windows: list[tuple[float, float]], k: int) -> np.ndarray:
    starts = np.array([w[0] for w in windows])
    ends = np.array([w[1] for w in windows])
    offsets = (np.arange(k) + 0.5) / k
    return starts[:, None] + offsets[None, :] * (ends - starts)[:, None]


def _on_screen(seconds: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each time (last frame with time <= t)."""
    return np.maximum(np.searchsorted(seconds, t + _EPS, side="right") - 1, 0)


# --------------------------------------------------------------------------- decoding


class _Decoder:
    """Decodes one video in presentation order with optional seeks; maps frames to indices."""

    def __init__(self, path: Path, timeline: _Timeline) -> None:
        import av

        self._av = av
        self.path = path
        self.timeline = timeline
        self.container = _open(path)
        self.stream = _video_stream(self.container, path)
        self.index_of = {int(p): i for i, p in enumerate(timeline.pts)}
        self.packet_errors = 0
        self.demux_error: str | None = None
        self.n_seeks = 0
        self.n_decoded = 0
        self.seek_failed = False

    def close(self) -> None:
        self.container.close()

    def _frame_index(self, frame: av.video.frame.VideoFrame, previous: int) -> int:
        if frame.pts is not None:
            index = self.index_of.get(int(frame.pts))
            if index is not None:
                return index
            pos = int(np.searchsorted(self.timeline.pts, frame.pts))
            return min(pos, len(self.timeline.pts) - 1)
        return previous + 1

    def _skippable(self, packet: av.packet.Packet, wanted: np.ndarray) -> bool:
        """Whether ``packet`` holds a frame of the timeline that is not wanted."""
        if packet.pts is None or not packet.size:
            return False
        index = self.index_of.get(int(packet.pts))
        return index is not None and not wanted[index]

    def frames(
        self, seek_to: list[int], wanted: np.ndarray | None = None
    ) -> Generator[tuple[int, av.video.frame.VideoFrame], None, None]:
        """Yield ``(frame_index, frame)`` in order. The consumer may append a frame index to
        ``seek_to`` to make the decoder jump to that (keyframe) index before the next packet.

        ``wanted`` (bool per frame index) lets FFmpeg skip the non-reference frames that are
        not wanted (no later frame depends on them): every wanted frame still decodes, exactly.
        """
        av = self._av
        ctx = self.stream.codec_context
        skipping = False
        previous = -1
        while True:
            restarted = False
            try:
                for packet in self.container.demux(self.stream):
                    if seek_to:
                        target = seek_to.pop()
                        try:
                            self.container.seek(
                                int(self.timeline.pts[target]), backward=True, stream=self.stream
                            )
                        except av.error.FFmpegError:
                            self.seek_failed = True  # go on decoding sequentially
                        else:
                            ctx.flush_buffers()
                            self.n_seeks += 1
                            previous = target - 1
                            restarted = True
                            break
                    if wanted is not None:
                        skip = self._skippable(packet, wanted)
                        if skip != skipping:
                            ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                            skipping = skip
                    try:
                        decoded = ctx.decode(packet if packet.size else None)
                    except av.error.FFmpegError:
                        if packet.size:
                            self.packet_errors += 1
                        continue
                    for frame in decoded:
                        previous = self._frame_index(frame, previous)
                        self.n_decoded += 1
                        yield previous, frame
            except av.error.FFmpegError as exc:
                self.demux_error = str(exc)
            if restarted:
                continue
            try:
                for frame in ctx.decode(None):
                    previous = self._frame_index(frame, previous)
                    self.n_decoded += 1
                    yield previous, frame
            except av.error.FFmpegError:
                pass
            return


def detect_shots(path: str | os.PathLike[str], rule: ClipRule) -> tuple[np.ndarray, np.ndarray]:
    """Shot-boundary pass: decode every frame, compare consecutive tiny RGB frames.

    Returns ``(cut_seconds, scores)``: accepted cut times (start of each new shot, in
    seconds) and, per frame of the timeline, the difference score to the previous decoded
    frame (0..1; 0 for the first frame and for frames that did not decode). See ``ClipRule``
    for the rule.
    """
    path = Path(path)
    return _detect_shots(path, _read_timeline(path), rule)


def _detect_shots(path: Path, timeline: _Timeline, rule: ClipRule) -> tuple[np.ndarray, np.ndarray]:
    from av.video.reformatter import Interpolation, VideoReformatter

    scores = np.zeros(len(timeline.seconds), dtype=np.float64)
    decoder = _Decoder(path, timeline)
    tiny = VideoReformatter()
    previous: np.ndarray | None = None
    try:
        for index, frame in decoder.frames([]):
            width = SHOT_IMAGE_WIDTH
            height = max(2, round(width * frame.height / max(1, frame.width)))
            img = tiny.reformat(
                frame, width=width, height=height, format="rgb24",
                interpolation=Interpolation.AREA, threads=1,
            ).to_ndarray().astype(np.int16)  # fmt: skip
            if previous is not None and previous.shape == img.shape:
                scores[index] = float(np.abs(img - previous).mean()) / 255.0
            previous = img
    finally:
        decoder.close()
    if decoder.n_decoded == 0:
        raise _nothing_decoded(path)
    cuts = _select_cuts(timeline.seconds, scores, timeline.info.duration_seconds, rule)
    return cuts, scores


def _nothing_decoded(path: Path) -> VideoError:
    return VideoError(
        str(path),
        "no frame could be decoded (corrupt data)",
        "the file is damaged: replace it or re-encode what a player can still show",
    )


class _Sampler:
    """Converts sampled frames: model input (resize + centre crop) and a JPEG thumbnail."""

    def __init__(self, image_size: int, thumb_size: int) -> None:
        from av.video.reformatter import Interpolation, VideoReformatter

        self.size = image_size
        self.thumb_size = thumb_size
        self.model = VideoReformatter()
        self.thumb = VideoReformatter()
        self.bicubic = Interpolation.BICUBIC
        self.area = Interpolation.AREA

    def model_input(self, frame: av.video.frame.VideoFrame) -> np.ndarray:
        """Shortest side to ``size`` (bicubic, as torchvision computes sizes), centre crop.

        A frame more than ``_MAX_ASPECT`` times longer than wide (or the reverse) is cropped
        to its centre square first, then resized: resizing the whole of a 2 x 8192 frame
        would make a 224 x 917504 image only to throw almost all of it away.
        """
        from PIL import Image

        s = self.size
        w, h = frame.width, frame.height
        if max(w, h) > _MAX_ASPECT * min(w, h):
            rgb = frame.to_ndarray(format="rgb24")
            side = min(w, h)
            top, left = (h - side) // 2, (w - side) // 2
            square = Image.fromarray(
                np.ascontiguousarray(rgb[top : top + side, left : left + side])
            )
            return np.asarray(square.resize((s, s), Image.Resampling.BICUBIC))
        if w <= h:
            new_w, new_h = s, int(s * h / w)
        else:
            new_w, new_h = int(s * w / h), s
        rgb = self.model.reformat(
            frame, width=new_w, height=new_h, format="rgb24",
            interpolation=self.bicubic, threads=1,
        ).to_ndarray()  # fmt: skip
        top = round((new_h - s) / 2.0)
        left = round((new_w - s) / 2.0)
        return rgb[top : top + s, left : left + s]

    def thumbnail(self, frame: av.video.frame.VideoFrame) -> bytes:
        """A JPEG of the whole frame, its longer side ``thumb_size`` px (JPEG allows 65535)."""
        from PIL import Image

        w, h = self._thumb_shape(frame.width, frame.height)
        rgb = self.thumb.reformat(
            frame, width=w, height=h, format="rgb24", interpolation=self.area, threads=1
        ).to_ndarray()
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", quality=THUMB_JPEG_QUALITY)
        return buf.getvalue()

    def _thumb_shape(self, width: int, height: int) -> tuple[int, int]:
        long = self.thumb_size
        if width >= height:
            return long, max(2, round(long * height / max(1, width)))
        return max(2, round(long * width / max(1, height))), long


def iter_clips(
    path: str | os.PathLike[str],
    rule: ClipRule,
    *,
    image_size: int,
    thumb_size: int = 160,
    chunk_clips: int = 16,
    seek_gap_seconds: float = SEEK_GAP_SECONDS,
    repeat_info: bool = False,
) -> Iterator[VideoInfo | ClipChunk]:
    """Yield the video's ``VideoInfo``, then ``ClipChunk``s of up to ``chunk_clips`` clips in
    clip order.

    Decodes the video once, sequentially (plus a shot-detection pass in ``"shots"`` mode),
    seeking only to skip more than ``seek_gap_seconds`` of unsampled frames (``math.inf``
    never seeks). A sampled frame that fails to decode is replaced by the nearest decoded
    frame of the same clip; a clip with no decodable frame is left out. Such problems are
    appended to the yielded ``VideoInfo``'s ``warnings`` when decoding ends (with
    ``n_decoded_frames`` and ``n_seeks``); a consumer in another process sees them only with
    ``repeat_info=True``, which yields that ``VideoInfo`` once more after the last chunk.
    Raises ``VideoError`` for files that cannot be indexed, including videos shorter than
    ``rule.min_clip_seconds`` and videos of which no frame decodes.
    """
    if not isinstance(rule, ClipRule):
        raise TypeError(f"rule must be a ClipRule, got {type(rule).__name__}")
    image_size = check_count("image_size", image_size, maximum=MAX_IMAGE_SIZE)
    thumb_size = check_count("thumb_size", thumb_size, maximum=MAX_IMAGE_SIZE)
    chunk_clips = check_count("chunk_clips", chunk_clips, maximum=4096)
    if not (_is_real(seek_gap_seconds) and seek_gap_seconds >= 0):
        raise ValueError(f"seek_gap_seconds must be >= 0, got {seek_gap_seconds!r}")

    path = Path(path)
    timeline = _read_timeline(path)
    info = timeline.info
    if info.duration_seconds < rule.min_clip_seconds - _EPS:
        raise VideoError(
            str(path),
            f"shorter than {rule.min_clip_seconds:g} s ({info.duration_seconds:.3f} s)",
            "lower ClipRule.min_clip_seconds to index very short videos",
        )
    cut_seconds = _detect_shots(path, timeline, rule)[0] if rule.mode == "shots" else None
    windows = plan_clips(info, rule, cut_seconds=cut_seconds)
    yield info
    if windows:
        yield from _sample_clips(
            path, timeline, windows, rule.frames_per_clip,
            image_size=int(image_size), thumb_size=int(thumb_size),
            chunk_clips=int(chunk_clips), seek_gap_seconds=float(seek_gap_seconds),
        )  # fmt: skip
    if repeat_info:
        yield info


@dataclass
class _ClipState:
    index: int
    start: float
    end: float
    first: int  # first frame index belonging to the clip (on screen at its start)
    last: int  # last frame index belonging to the clip (shown before its end)
    planned: np.ndarray  # (K,) planned frame index per slot
    frames: np.ndarray  # (K, S, S, 3)
    used: np.ndarray  # (K,) frame index actually used, -1 = not yet
    thumbs: list[bytes]
    exact: int = 0
    done: int = 0


def _sample_clips(
    path: Path,
    timeline: _Timeline,
    windows: list[tuple[float, float]],
    k: int,
    *,
    image_size: int,
    thumb_size: int,
    chunk_clips: int,
    seek_gap_seconds: float,
) -> Iterator[ClipChunk]:
    seconds = timeline.seconds
    info = timeline.info
    planned = _on_screen(seconds, _sample_targets(windows, k))  # (n_clips, K)
    starts = np.array([w[0] for w in windows])
    ends = np.array([w[1] for w in windows])
    firsts = _on_screen(seconds, starts)
    lasts = np.maximum(np.searchsorted(seconds, ends - _EPS, side="left") - 1, firsts)

    # Slots in decode order: (frame index, clip, slot); clips are contiguous in time.
    order = np.lexsort((np.tile(np.arange(k), len(windows)), np.repeat(np.arange(len(windows)), k),
                        planned.ravel()))  # fmt: skip
    slot_frame = planned.ravel()[order]
    slot_clip = np.repeat(np.arange(len(windows)), k)[order]
    slot_pos = np.tile(np.arange(k), len(windows))[order]
    n_slots = len(slot_frame)
    keyframe_indices = np.flatnonzero(timeline.keyframe)

    sampler = _Sampler(image_size, thumb_size)
    clips: dict[int, _ClipState] = {}
    next_clip_out = 0
    ready: list[_ClipState] = []
    cursor = 0  # next unresolved slot
    substituted = 0
    dropped = 0
    cache: dict[int, tuple[np.ndarray, bytes]] = {}

    def clip_state(c: int) -> _ClipState:
        state = clips.get(c)
        if state is None:
            state = _ClipState(
                index=c, start=float(starts[c]), end=float(ends[c]),
                first=int(firsts[c]), last=int(lasts[c]), planned=planned[c],
                frames=np.zeros((k, image_size, image_size, 3), dtype=np.uint8),
                used=np.full(k, -1, dtype=np.int64), thumbs=[b""] * k,
            )  # fmt: skip
            clips[c] = state
        return state

    def convert(index: int, frame: av.video.frame.VideoFrame) -> tuple[np.ndarray, bytes]:
        got = cache.get(index)
        if got is None:
            got = (sampler.model_input(frame), sampler.thumbnail(frame))
            cache.clear()
            cache[index] = got
        return got

    def fill(c: int, pos: int, index: int | None, frame: av.video.frame.VideoFrame | None) -> None:
        nonlocal substituted
        state = clip_state(c)
        if index is not None and frame is not None:
            image, thumb = convert(index, frame)
            state.frames[pos] = image
            state.thumbs[pos] = thumb
            state.used[pos] = index
            if index == state.planned[pos]:
                state.exact += 1
            else:
                substituted += 1
        state.done += 1

    def flush_ready() -> Iterator[ClipChunk]:
        nonlocal next_clip_out, dropped
        while next_clip_out in clips and clips[next_clip_out].done == k:
            state = clips.pop(next_clip_out)
            next_clip_out += 1
            if state.exact == 0:
                dropped += 1
                continue
            # Slots left without any frame (none of the clip's frames decoded near them)
            # borrow the nearest filled slot of the same clip.
            filled = np.flatnonzero(state.used >= 0)
            for pos in np.flatnonzero(state.used < 0):
                src = int(filled[np.argmin(np.abs(filled - pos))])
                state.frames[pos] = state.frames[src]
                state.thumbs[pos] = state.thumbs[src]
                state.used[pos] = state.used[src]
            ready.append(state)
        while len(ready) >= chunk_clips:
            yield _make_chunk(ready[:chunk_clips], seconds)
            del ready[:chunk_clips]

    decoder = _Decoder(path, timeline)
    seek_to: list[int] = []
    allow_seek = math.isfinite(seek_gap_seconds)
    seen_seeks = 0
    last_index = -1
    last_frame: av.video.frame.VideoFrame | None = None
    try:
        wanted = None
        if SKIP_UNSAMPLED_NONREF:
            wanted = np.zeros(len(seconds), dtype=bool)
            wanted[slot_frame] = True
        frames = decoder.frames(seek_to, wanted)
        for index, frame in frames:
            if seek_to:
                continue  # decoded before a requested seek took effect
            if decoder.n_seeks != seen_seeks:
                seen_seeks = decoder.n_seeks
                if cursor < n_slots and index > slot_frame[cursor]:
                    # The seek landed after the wanted frame: restart, never seek again.
                    allow_seek = False
                    seek_to.append(0)
                    continue
            if decoder.seek_failed:
                allow_seek = False
            # Resolve pending slots planned before this frame (their frame did not decode).
            while cursor < n_slots and slot_frame[cursor] < index:
                c, pos = int(slot_clip[cursor]), int(slot_pos[cursor])
                state = clip_state(c)
                if last_frame is not None and last_index >= state.first:
                    fill(c, pos, last_index, last_frame)
                elif index <= state.last:
                    fill(c, pos, index, frame)
                else:
                    fill(c, pos, None, None)
                cursor += 1
            while cursor < n_slots and slot_frame[cursor] == index:
                fill(int(slot_clip[cursor]), int(slot_pos[cursor]), index, frame)
                cursor += 1
            last_index, last_frame = index, frame
            yield from flush_ready()
            if cursor >= n_slots:
                break
            if allow_seek:
                # Seek only when that skips more than seek_gap_seconds of frames.
                target = int(slot_frame[cursor])
                kf_pos = int(np.searchsorted(keyframe_indices, target, side="right")) - 1
                kf = int(keyframe_indices[max(kf_pos, 0)])
                if kf > index + 1 and seconds[kf] - seconds[index] > seek_gap_seconds:
                    seek_to.append(kf)
                    last_frame = None  # frames before the jump are no neighbours of later ones
        frames.close()
        # End of stream: remaining slots use the last decoded frame if it belongs to the clip.
        while cursor < n_slots:
            c, pos = int(slot_clip[cursor]), int(slot_pos[cursor])
            state = clip_state(c)
            if last_frame is not None and last_index >= state.first:
                fill(c, pos, last_index, last_frame)
            else:
                fill(c, pos, None, None)
            cursor += 1
        yield from flush_ready()
        if ready:
            yield _make_chunk(ready, seconds)
            ready.clear()
    finally:
        decoder.close()

    info.n_decoded_frames = decoder.n_decoded
    info.n_seeks = decoder.n_seeks
    if decoder.n_decoded == 0:
        raise _nothing_decoded(path)
    if decoder.packet_errors:
        info.warnings.append(
            f"{decoder.packet_errors} packets could not be decoded (corrupt data); "
            "their frames were skipped"
        )
    if decoder.demux_error and not any("damaged" in w for w in info.warnings):
        info.warnings.append(f"the file is damaged; reading stopped early ({decoder.demux_error})")
    if substituted:
        info.warnings.append(
            f"{substituted} sampled frames did not decode and were replaced by the nearest "
            "decoded frame of the same clip"
        )
    if dropped:
        info.warnings.append(f"{dropped} clips were left out: none of their frames decoded")


def _make_chunk(states: list[_ClipState], seconds: np.ndarray) -> ClipChunk:
    return ClipChunk(
        clip_index=np.array([s.index for s in states], dtype=np.int64),
        start_seconds=np.array([s.start for s in states], dtype=np.float64),
        end_seconds=np.array([s.end for s in states], dtype=np.float64),
        frame_seconds=np.stack([seconds[s.used] for s in states]).astype(np.float64),
        frames=np.stack([s.frames for s in states]),
        thumbnails=[list(s.thumbs) for s in states],
    )


# -- indexing's decoding worker ------------------------------------------------------------
# Here rather than in ``indexing``: a worker process imports the module of what it runs, and
# this one is light (numpy; PyAV when decoding starts), so the worker decodes sooner.
@dataclass
class DecodeJob:
    """What a decoding worker needs for one video (picklable)."""

    path: str
    rule: ClipRule
    image_size: int


def decode_job(job: DecodeJob) -> Iterator[VideoInfo | ClipChunk]:
    """The video's ``VideoInfo`` and ``ClipChunk``s for indexing (run in a worker process)."""
    # small chunks: encoding starts after a few clips instead of after a whole video
    yield from iter_clips(
        job.path, job.rule, image_size=job.image_size, chunk_clips=4, repeat_info=True
    )
