"""va_widgets.media on real files: synthetic videos with known frame times and colours, broken
files, and the real sample videos in ../shared/videos. Real PyAV throughout, no mocks."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from synth import (
    corrupted_copy,
    cut_times,
    frame_times,
    garbage_frames_copy,
    make_audio_only,
    make_empty_file,
    make_text_file,
    make_video,
    segment_colour,
    truncated_copy,
    unknown_codec_copy,
)
from va_widgets.errors import VideoError
from va_widgets.media import (
    VIDEO_EXTENSIONS,
    ClipChunk,
    ClipRule,
    VideoInfo,
    detect_shots,
    iter_clips,
    probe,
)

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)
YELLOW, CYAN, MAGENTA, BLACK = (255, 255, 0), (0, 255, 255), (255, 0, 255), (0, 0, 0)
PALETTE = [RED, BLUE, GREEN, WHITE, YELLOW, CYAN, MAGENTA, BLACK]
SEGMENTS = [(RED, 1.0), (BLUE, 1.5), (GREEN, 0.7)]  # 3.2 s
SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos"


# --------------------------------------------------------------------------- helpers


def run(path: Path, rule: ClipRule, **kwargs) -> tuple[VideoInfo, list[ClipChunk]]:
    kwargs.setdefault("image_size", 32)
    items = list(iter_clips(path, rule, **kwargs))
    assert isinstance(items[0], VideoInfo)
    assert all(isinstance(c, ClipChunk) for c in items[1:])
    return items[0], items[1:]


def cat(chunks: list[ClipChunk], name: str) -> np.ndarray:
    return np.concatenate([getattr(c, name) for c in chunks])


def expected_frame_seconds(times, windows, k: int) -> np.ndarray:
    """Independent reference: the frame on screen at start + (i + 0.5) * (end - start) / k."""
    rows = []
    for start, end in windows:
        row = []
        for i in range(k):
            target = start + (i + 0.5) * (end - start) / k
            row.append(max(t for t in times if t <= target + 1e-9))
        rows.append(row)
    return np.asarray(rows)


def median_colour(img: np.ndarray) -> np.ndarray:
    return np.median(img.reshape(-1, 3), axis=0)


def assert_colour(img: np.ndarray, colour, tol: float = 24) -> None:
    got = median_colour(img)
    assert np.abs(got - np.asarray(colour)).max() <= tol, (got, colour)


def assert_sample_colours(chunks: list[ClipChunk], segments, tol: float = 24) -> None:
    frames, seconds = cat(chunks, "frames"), cat(chunks, "frame_seconds")
    for clip in range(len(frames)):
        for slot in range(frames.shape[1]):
            assert_colour(frames[clip, slot], segment_colour(segments, seconds[clip, slot]), tol)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def cfr_mp4(folder) -> Path:
    return make_video(folder / "cfr.mp4", SEGMENTS)


# --------------------------------------------------------------------------- ClipRule


def test_clip_rule_defaults_round_trip_and_keyword_only():
    rule = ClipRule()
    assert (rule.mode, rule.clip_seconds, rule.min_clip_seconds, rule.frames_per_clip) == (
        "fixed",
        2.0,
        0.5,
        4,
    )
    assert 0 < rule.shot_threshold <= 1
    custom = ClipRule(mode="shots", frames_per_clip=3, max_shot_seconds=5.0)
    assert ClipRule.from_dict(custom.to_dict()) == custom
    assert ClipRule.from_dict({}) == ClipRule()
    with pytest.raises(TypeError):
        ClipRule("fixed")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        rule.clip_seconds = 3.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="bogus"):
        ClipRule.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"mode": "scenes"}, "'scenes'"),
        ({"clip_seconds": 0}, "clip_seconds.*0"),
        ({"clip_seconds": -1.5}, "-1.5"),
        ({"clip_seconds": math.inf}, "inf"),
        ({"min_clip_seconds": 3.0}, "3.0"),
        ({"frames_per_clip": 0}, "frames_per_clip.*0"),
        ({"frames_per_clip": 2.5}, "2.5"),
        ({"frames_per_clip": True}, "True"),
        ({"shot_threshold": 1.5}, "1.5"),
        ({"shot_threshold": 0}, "shot_threshold.*0"),
        ({"min_shot_seconds": 20.0}, "20.0"),
        ({"max_shot_seconds": "10"}, "'10'"),
    ],
)
def test_clip_rule_rejects_bad_values_naming_them(kwargs, names):
    with pytest.raises(ValueError, match=names):
        ClipRule(**kwargs)


def test_video_extensions():
    assert {".mp4", ".mkv", ".mov", ".avi", ".webm", ".gif", ".m4v", ".mpg", ".mpeg", ".ts",
            ".wmv", ".flv", ".3gp"} == VIDEO_EXTENSIONS  # fmt: skip


# --------------------------------------------------------------------------- probe


def test_probe_reads_the_exact_timeline(cfr_mp4):
    info = probe(cfr_mp4)
    assert info.n_frames == 80
    assert info.duration_seconds == pytest.approx(3.2, abs=1e-9)
    assert info.fps == pytest.approx(25.0)
    assert (info.width, info.height, info.codec) == (160, 96, "h264")
    assert info.warnings == []
    np.testing.assert_allclose(info.frame_seconds, frame_times(3.2), atol=1e-9)
    text = repr(info)
    assert "n_frames=80" in text and "array" not in text and len(text) < 200


def test_probe_does_not_decode(cfr_mp4, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("probe must not decode")

    monkeypatch.setattr(av.video.codeccontext.VideoCodecContext, "decode", forbidden, raising=False)
    monkeypatch.setattr(av.container.InputContainer, "decode", forbidden, raising=False)
    assert probe(cfr_mp4).n_frames == 80


# --------------------------------------------------------------------------- fixed windows


@pytest.mark.parametrize(
    ("clip_seconds", "min_clip_seconds", "windows"),
    [
        (1.0, 0.5, [(0, 1), (1, 2), (2, 3)]),  # 0.2 s tail dropped
        (1.0, 0.2, [(0, 1), (1, 2), (2, 3), (3, 3.2)]),  # tail kept
        (2.0, 0.5, [(0, 2), (2, 3.2)]),
        (3.2, 0.5, [(0, 3.2)]),  # exactly one window, no empty tail
        (5.0, 0.5, [(0, 3.2)]),  # video shorter than a window
    ],
)
def test_fixed_windows_and_tail_rule(cfr_mp4, clip_seconds, min_clip_seconds, windows):
    rule = ClipRule(clip_seconds=clip_seconds, min_clip_seconds=min_clip_seconds, frames_per_clip=4)
    info, chunks = run(cfr_mp4, rule)
    np.testing.assert_array_equal(cat(chunks, "clip_index"), np.arange(len(windows)))
    np.testing.assert_allclose(cat(chunks, "start_seconds"), [w[0] for w in windows], atol=1e-9)
    np.testing.assert_allclose(cat(chunks, "end_seconds"), [w[1] for w in windows], atol=1e-9)
    expected = expected_frame_seconds(info.frame_seconds.tolist(), windows, 4)
    np.testing.assert_allclose(cat(chunks, "frame_seconds"), expected, atol=1e-9)
    assert_sample_colours(chunks, SEGMENTS)


def test_samples_are_the_frames_on_screen_with_the_right_colour(cfr_mp4):
    _, chunks = run(cfr_mp4, ClipRule(clip_seconds=0.4, min_clip_seconds=0.1, frames_per_clip=5))
    windows = list(zip(cat(chunks, "start_seconds"), cat(chunks, "end_seconds"), strict=True))
    assert len(windows) == 8
    expected = expected_frame_seconds(frame_times(3.2).tolist(), windows, 5)
    np.testing.assert_allclose(cat(chunks, "frame_seconds"), expected, atol=1e-9)
    assert_sample_colours(chunks, SEGMENTS)


def test_chunks_shapes_pickling_and_repr(cfr_mp4):
    rule = ClipRule(clip_seconds=0.45, min_clip_seconds=0.2, frames_per_clip=3)
    _, chunks = run(cfr_mp4, rule, image_size=40, chunk_clips=2, thumb_size=64)
    assert [len(c) for c in chunks] == [2, 2, 2, 1]  # 7 full windows, 0.05 s tail dropped
    for chunk in chunks:
        n = len(chunk)
        assert chunk.clip_index.dtype == np.int64 and chunk.clip_index.shape == (n,)
        assert chunk.start_seconds.dtype == np.float64 and chunk.end_seconds.shape == (n,)
        assert chunk.frame_seconds.dtype == np.float64 and chunk.frame_seconds.shape == (n, 3)
        assert chunk.frames.dtype == np.uint8 and chunk.frames.shape == (n, 3, 40, 40, 3)
        assert len(chunk.thumbnails) == n and all(len(t) == 3 for t in chunk.thumbnails)
        assert "(2, 3, 40, 40, 3)" in repr(chunk) or "(1, 3, 40, 40, 3)" in repr(chunk)
        assert len(repr(chunk)) < 200
    np.testing.assert_array_equal(cat(chunks, "clip_index"), np.arange(7))
    copy = pickle.loads(pickle.dumps(chunks[0]))
    np.testing.assert_array_equal(copy.frames, chunks[0].frames)
    assert copy.thumbnails == chunks[0].thumbnails


def test_thumbnails_are_jpegs_of_the_whole_frame(cfr_mp4):
    for width, height in [(160, 96), (64, 38), (300, 180)]:
        _, chunks = run(cfr_mp4, ClipRule(frames_per_clip=2), thumb_size=width)
        seconds = cat(chunks, "frame_seconds")
        for clip, thumbs in enumerate(t for c in chunks for t in c.thumbnails):
            for slot, data in enumerate(thumbs):
                assert data[:2] == b"\xff\xd8"
                img = Image.open(io.BytesIO(data))
                assert img.format == "JPEG" and img.size == (width, height)
                assert_colour(
                    np.asarray(img.convert("RGB")), segment_colour(SEGMENTS, seconds[clip, slot])
                )


def test_model_input_matches_open_clip_resize_and_centre_crop(folder):
    """Shortest side to S with bicubic, centre crop: compare with PIL doing the same on the
    full decoded frame (what open_clip's 'shortest' resize + CenterCrop do)."""
    path = make_video(folder / "wide.mp4", [((128, 128, 128), 1.0)], size=(200, 96), ramp=True)
    size = 48
    _, chunks = run(path, ClipRule(clip_seconds=1.0, frames_per_clip=2), image_size=size)
    with av.open(str(path)) as container:
        decoded = {
            round(f.time, 6): f.to_ndarray(format="rgb24") for f in container.decode(video=0)
        }
    for slot in range(2):
        full = decoded[round(float(chunks[0].frame_seconds[0, slot]), 6)]
        new_w = int(size * 200 / 96)  # torchvision: int(size * long / short)
        resized = np.asarray(Image.fromarray(full).resize((new_w, size), Image.BICUBIC))
        left = round((new_w - size) / 2.0)
        reference = resized[:, left : left + size].astype(np.int16)
        ours = chunks[0].frames[0, slot].astype(np.int16)
        assert np.abs(ours - reference).mean() < 3, np.abs(ours - reference).mean()
        # a crop shifted by a few pixels would be clearly worse
        shifted = resized[:, left + 6 : left + 6 + size].astype(np.int16)
        assert np.abs(ours - reference).mean() * 3 < np.abs(ours - shifted).mean()


# --------------------------------------------------------------------------- VFR, GIF


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_variable_frame_rate_timing(folder, suffix):
    segments = [(RED, 1.3), (BLUE, 1.1), (GREEN, 1.0)]
    path = make_video(folder / f"vfr{suffix}", segments, vfr=True)
    truth = frame_times(3.4, vfr=True)
    info = probe(path)
    np.testing.assert_allclose(info.frame_seconds, truth, atol=1e-6)
    assert info.n_frames == len(truth)
    assert truth[-1] < info.duration_seconds <= truth[-1] + 0.2
    assert info.fps == pytest.approx(len(truth) / info.duration_seconds)
    rule = ClipRule(clip_seconds=0.5, min_clip_seconds=0.1, frames_per_clip=6)
    _, chunks = run(path, rule)
    windows = list(zip(cat(chunks, "start_seconds"), cat(chunks, "end_seconds"), strict=True))
    expected = expected_frame_seconds(truth.tolist(), windows, 6)
    np.testing.assert_allclose(cat(chunks, "frame_seconds"), expected, atol=1e-6)
    assert_sample_colours(chunks, segments)


@pytest.mark.parametrize("vfr", [False, True])
def test_gif_timing(folder, vfr):
    segments = [(RED, 1.0), (BLUE, 0.8), (WHITE, 0.7)]
    path = make_video(folder / f"anim{int(vfr)}.gif", segments, fps=10, vfr=vfr)
    truth = frame_times(2.5, fps=10, vfr=vfr)
    info = probe(path)
    assert info.codec == "gif"
    np.testing.assert_allclose(info.frame_seconds, truth, atol=1e-9)
    # few frames per clip: several slots show the same frame
    rule = ClipRule(clip_seconds=0.5, min_clip_seconds=0.1, frames_per_clip=8)
    _, chunks = run(path, rule)
    windows = list(zip(cat(chunks, "start_seconds"), cat(chunks, "end_seconds"), strict=True))
    assert windows[-1][1] == pytest.approx(info.duration_seconds)
    expected = expected_frame_seconds(truth.tolist(), windows, 8)
    np.testing.assert_allclose(cat(chunks, "frame_seconds"), expected, atol=1e-9)
    assert_sample_colours(chunks, segments, tol=40)


# --------------------------------------------------------------------------- shots


SHOT_SEGMENTS = [(RED, 1.2), (BLUE, 2.0), (GREEN, 0.6), (WHITE, 1.6)]  # 5.4 s


@pytest.fixture(scope="module")
def shots_mkv(folder) -> Path:
    return make_video(folder / "shots.mkv", SHOT_SEGMENTS, noise=6)


def test_shot_boundaries_at_hard_cuts(shots_mkv):
    rule = ClipRule(mode="shots", min_shot_seconds=0.5, frames_per_clip=4)
    info, chunks = run(shots_mkv, rule)
    starts, ends = cat(chunks, "start_seconds"), cat(chunks, "end_seconds")
    np.testing.assert_allclose(starts[1:], cut_times(SHOT_SEGMENTS), atol=1 / 25 + 1e-9)
    np.testing.assert_allclose(ends[:-1], starts[1:])
    assert starts[0] == 0 and ends[-1] == pytest.approx(info.duration_seconds)
    for clip in range(len(starts)):  # each shot is one colour
        expected = segment_colour(SHOT_SEGMENTS, (starts[clip] + ends[clip]) / 2)
        for slot in range(4):
            assert_colour(cat(chunks, "frames")[clip, slot], expected)
    cuts, scores = detect_shots(shots_mkv, rule)
    assert len(scores) == info.n_frames
    others = np.delete(scores, np.searchsorted(info.frame_seconds, cuts))
    assert others.max() < rule.shot_threshold / 3  # noise and the moving square stay well below


def test_min_and_max_shot_seconds(shots_mkv):
    rule = ClipRule(mode="shots", min_shot_seconds=1.0, max_shot_seconds=1.0, frames_per_clip=2)
    _, chunks = run(shots_mkv, rule)
    # the 0.6 s green shot is too short: no cut at 3.8; long shots split into equal parts
    expected = [(0, 0.6), (0.6, 1.2), (1.2, 2.2), (2.2, 3.2), (3.2, 3.9333333),
                (3.9333333, 4.6666667), (4.6666667, 5.4)]  # fmt: skip
    np.testing.assert_allclose(cat(chunks, "start_seconds"), [w[0] for w in expected], atol=1e-6)
    np.testing.assert_allclose(cat(chunks, "end_seconds"), [w[1] for w in expected], atol=1e-6)


def test_shots_mode_without_cuts_splits_by_max(folder):
    path = make_video(folder / "oneshot.mp4", [(CYAN, 3.0)])
    _, chunks = run(path, ClipRule(mode="shots", max_shot_seconds=1.4, frames_per_clip=1))
    np.testing.assert_allclose(cat(chunks, "start_seconds"), [0, 1, 2], atol=1e-9)


# --------------------------------------------------------------------------- seeking


@pytest.fixture(scope="module", params=[".mp4", ".mkv"])
def long_gop_video(folder, request) -> tuple[Path, list]:
    segments = [(PALETTE[i % len(PALETTE)], 1.0) for i in range(14)]
    return make_video(folder / f"sparse{request.param}", segments, gop=25), segments


def test_seeking_and_sequential_decoding_give_identical_samples(long_gop_video):
    path, segments = long_gop_video
    rule = ClipRule(clip_seconds=4.0, frames_per_clip=1)
    seek_info, seek_chunks = run(path, rule, image_size=24)
    seq_info, seq_chunks = run(path, rule, image_size=24, seek_gap_seconds=math.inf)
    assert seek_info.n_seeks >= 2 and seq_info.n_seeks == 0
    assert seek_info.n_decoded_frames < seq_info.n_decoded_frames
    for name in ("clip_index", "start_seconds", "frame_seconds", "frames"):
        np.testing.assert_array_equal(cat(seek_chunks, name), cat(seq_chunks, name))
    assert [c.thumbnails for c in seek_chunks] == [c.thumbnails for c in seq_chunks]
    expected = expected_frame_seconds(
        frame_times(14.0).tolist(), [(0, 4), (4, 8), (8, 12), (12, 14)], 1
    )
    np.testing.assert_allclose(cat(seek_chunks, "frame_seconds"), expected, atol=1e-9)
    assert_sample_colours(seek_chunks, segments)


def test_dense_sampling_never_seeks(long_gop_video):
    path, _ = long_gop_video
    info, _ = run(path, ClipRule(clip_seconds=2.0, frames_per_clip=8))
    assert info.n_seeks == 0


# --------------------------------------------------------------------------- bad input


def assert_video_error(path: Path, reason: str, *, rule: ClipRule | None = None) -> VideoError:
    with pytest.raises(VideoError, match=reason) as caught:
        list(iter_clips(path, rule or ClipRule(), image_size=16))
    assert caught.value.path == str(path)
    return caught.value


def test_missing_and_empty_files(folder):
    assert_video_error(folder / "nope.mp4", "file not found")
    assert_video_error(make_empty_file(folder / "empty.mp4"), "empty file")
    with pytest.raises(VideoError, match="file not found"):
        probe(folder / "nope.mp4")


def test_text_file_renamed_mp4(folder):
    err = assert_video_error(make_text_file(folder / "notes.mp4"), "not a video file")
    assert err.hint


def test_audio_only_file(folder):
    assert_video_error(make_audio_only(folder / "song.mp4"), "no video stream.*audio")


def test_unsupported_codec(folder):
    src = make_video(folder / "known.mkv", [(RED, 1.0)])
    err = assert_video_error(
        unknown_codec_copy(src, folder / "unknown.mkv"), "unsupported video codec"
    )
    assert "re-encode" in err.hint


def test_video_shorter_than_min_clip_seconds(folder):
    path = make_video(folder / "short.mp4", [(RED, 0.4)])
    err = assert_video_error(path, "shorter than 0.5 s")
    assert "min_clip_seconds" in err.hint
    _, chunks = run(path, ClipRule(min_clip_seconds=0.3, frames_per_clip=2))
    np.testing.assert_allclose(cat(chunks, "end_seconds"), [0.4])


def test_truncated_mkv_indexes_what_is_there(folder):
    src = make_video(folder / "full.mkv", SEGMENTS)
    path = truncated_copy(src, folder / "cut.mkv", fraction=0.6)
    info, chunks = run(path, ClipRule(clip_seconds=0.5, frames_per_clip=3))
    assert 0.5 < info.duration_seconds < 3.0
    assert any("file ends early" in w for w in info.warnings)
    assert len(chunks) and cat(chunks, "end_seconds")[-1] <= info.duration_seconds + 1e-9
    assert_sample_colours(chunks, SEGMENTS)


def test_truncated_mp4(folder):
    plain = make_video(folder / "plain.mp4", SEGMENTS)
    err = assert_video_error(truncated_copy(plain, folder / "plain_cut.mp4"), "not a video file")
    assert "cut short" in err.hint  # index at the end is gone
    fast = make_video(folder / "fast.mp4", SEGMENTS, faststart=True)
    info, chunks = run(truncated_copy(fast, folder / "fast_cut.mp4", fraction=0.6),
                       ClipRule(clip_seconds=0.5, frames_per_clip=3))  # fmt: skip
    assert any("file ends early" in w for w in info.warnings)
    assert len(chunks)
    assert_sample_colours(chunks, SEGMENTS)


def test_corrupt_bytes_in_the_middle(folder):
    src = make_video(folder / "whole.mp4", SEGMENTS, faststart=True)
    path = corrupted_copy(src, folder / "damaged.mp4", start_fraction=0.4, length_fraction=0.1)
    info, chunks = run(path, ClipRule(clip_seconds=0.5, frames_per_clip=3))
    assert info.n_frames == 80  # the index is intact
    assert any("could not be decoded" in w for w in info.warnings), info.warnings
    assert 0 < info.n_decoded_frames < 80
    indices = cat(chunks, "clip_index")
    assert 0 < len(indices) < 6 and (np.diff(indices) > 0).all()
    assert_sample_colours(chunks, SEGMENTS)
    # a consumer in another process gets the decode-time warnings from a repeated VideoInfo
    rule = ClipRule(clip_seconds=0.5, frames_per_clip=3)
    items = [pickle.loads(pickle.dumps(x))
             for x in iter_clips(path, rule, image_size=8, repeat_info=True)]  # fmt: skip
    assert isinstance(items[0], VideoInfo) and items[0].warnings == []
    assert isinstance(items[-1], VideoInfo) and items[-1].warnings == info.warnings
    assert all(isinstance(x, ClipChunk) for x in items[1:-1])


def test_nothing_decodes(folder):
    src = make_video(folder / "tobreak.mp4", SEGMENTS, faststart=True)
    path = garbage_frames_copy(src, folder / "garbage.mp4")
    assert probe(path).n_frames == 80  # demuxing alone cannot tell
    assert_video_error(path, "no frame could be decoded")


def test_bad_arguments(cfr_mp4):
    with pytest.raises(ValueError, match=r"image_size.*0"):
        next(iter_clips(cfr_mp4, ClipRule(), image_size=0))
    with pytest.raises(ValueError, match="chunk_clips"):
        next(iter_clips(cfr_mp4, ClipRule(), image_size=8, chunk_clips=0))
    with pytest.raises(TypeError, match="ClipRule"):
        next(iter_clips(cfr_mp4, {"mode": "fixed"}, image_size=8))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real videos


def shared_video(name: str) -> Path:
    path = SHARED_VIDEOS / name
    if not path.is_file():
        pytest.skip(f"real sample video {name} not available ({SHARED_VIDEOS})")
    return path


@pytest.mark.parametrize(
    ("name", "n_frames", "duration", "fps", "size"),
    [
        ("car-detection.mp4", 377, 30.16, 12.5, (768, 432)),
        ("bottle-detection.mp4", 1189, 39.85, 29.83, (640, 360)),
        ("yes.mkv", 65, 2.167, 30.0, (640, 480)),
        ("book.mkv", 109, 3.633, 30.0, (640, 480)),
        ("classroom.gif", 45, 2.99, 15.05, (480, 270)),
        ("people-detection.gif", 23, 1.91, 12.04, (480, 270)),
    ],
)
def test_real_videos(name, n_frames, duration, fps, size):
    path = shared_video(name)
    info = probe(path)
    assert info.n_frames == n_frames  # MKV headers carry no frame count: this is the demux
    assert info.duration_seconds == pytest.approx(duration, abs=0.01)
    assert info.fps == pytest.approx(fps, abs=0.1)
    assert (info.width, info.height) == size and info.warnings == []
    info, chunks = run(path, ClipRule(frames_per_clip=4), image_size=48)
    full, tail = divmod(info.duration_seconds, 2.0)
    assert len(cat(chunks, "clip_index")) == int(full) + (tail >= 0.5)
    assert cat(chunks, "end_seconds")[-1] <= info.duration_seconds + 1e-9
    frames = cat(chunks, "frames")
    assert frames.std() > 10  # real picture content
    thumb = Image.open(io.BytesIO(chunks[0].thumbnails[0][0]))
    assert thumb.size == (160, round(160 * size[1] / size[0]))
    assert info.warnings == []


def test_real_mp4_samples_match_a_plain_decode_and_seeking():
    """Sampled frames are bit-identical to the same frames decoded plainly by PyAV and
    converted with the same swscale settings, with and without seeking."""
    from av.video.reformatter import Interpolation, VideoReformatter

    path = shared_video("car-detection.mp4")
    rule = ClipRule(clip_seconds=10.0, frames_per_clip=1)  # sparse: 60-frame GOPs get skipped
    seek_info, seek_chunks = run(path, rule, image_size=64)
    _, seq_chunks = run(path, rule, image_size=64, seek_gap_seconds=math.inf)
    assert seek_info.n_seeks >= 1
    np.testing.assert_array_equal(cat(seek_chunks, "frames"), cat(seq_chunks, "frames"))
    reformatter = VideoReformatter()
    wanted = {round(float(t), 6): i for i, t in enumerate(cat(seek_chunks, "frame_seconds")[:, 0])}
    start = probe(path).first_frame_seconds
    found = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            clip = wanted.get(round(frame.time - start, 6))
            if clip is None:
                continue
            rgb = reformatter.reformat(frame, width=113, height=64, format="rgb24",
                                       interpolation=Interpolation.BICUBIC, threads=1)  # fmt: skip
            crop = rgb.to_ndarray()[:, 24:88]  # round((113 - 64) / 2) = 24
            np.testing.assert_array_equal(cat(seek_chunks, "frames")[clip, 0], crop)
            found += 1
    assert found == len(wanted) == 3


def test_real_video_in_shots_mode_has_no_false_cuts():
    path = shared_video("car-detection.mp4")
    info, chunks = run(path, ClipRule(mode="shots", frames_per_clip=2))
    np.testing.assert_allclose(
        cat(chunks, "start_seconds"), np.arange(4) * info.duration_seconds / 4
    )


@pytest.mark.parametrize("suffix", [".avi", ".webm", ".mov"])
def test_other_containers_and_codecs(folder, suffix):
    path = make_video(folder / f"other{suffix}", SEGMENTS)
    info, chunks = run(path, ClipRule(clip_seconds=1.0, frames_per_clip=4))
    np.testing.assert_allclose(info.frame_seconds, frame_times(3.2), atol=1e-9)
    windows = [(0, 1), (1, 2), (2, 3)]
    expected = expected_frame_seconds(frame_times(3.2).tolist(), windows, 4)
    np.testing.assert_allclose(cat(chunks, "frame_seconds"), expected, atol=1e-9)
    assert_sample_colours(chunks, SEGMENTS)
