"""Indexing hostile and unlucky inputs: damaged videos, changed files, unreadable files and
folders, special files, a full disk, extreme frame shapes. Real files, real PyAV; the good data
is checked intact and each error names its input."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import va_widgets as va
from synth import corrupted_copy, garbled_frames_copy, make_frameless, make_video

RED, GREEN, BLUE, WHITE = (220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 230, 230)
SRC = Path(va.__file__).resolve().parents[1]


def _index(videos: Path, cache: Path, embedder, **kwargs):  # type: ignore[no-untyped-def]
    return va.index_videos(videos, cache, embedder=embedder, progress=False, **kwargs)


def _colour(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=float).mean(axis=(0, 1))


def _is(colour: np.ndarray, expected: tuple[int, int, int]) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() < 40)


def test_previews_stay_with_their_clip_when_a_middle_clip_is_left_out(tmp_path, pixel_embedder):
    """Clip 1 of 4 has no decodable frame and is left out: every later clip still shows its
    own frames (they were looked up by the clip's index, one row off), and none fails."""
    segments = [(RED, 2.0), (GREEN, 2.0), (BLUE, 2.0), (WHITE, 2.0)]
    good = make_video(tmp_path / "good.mkv", segments, size=(64, 48), fps=10, codec="mjpeg")
    videos = tmp_path / "videos"
    videos.mkdir()
    garbled_frames_copy(good, videos / "v.mkv", 2.0, 4.0)
    lib = _index(videos, tmp_path / "cache", pixel_embedder, frames_per_clip=2)
    assert lib.clips["clip_index"].tolist() == [0, 2, 3]
    assert lib.errors["message"].str.contains("1 clips were left out").any()
    for clip_id, clip_index in zip(lib.clips["clip_id"], lib.clips["clip_index"], strict=True):
        frames = lib.thumbnails(clip_id)
        assert len(frames) == 2
        expected = segments[clip_index][0]
        assert all(_is(_colour(f), expected) for f in frames), (clip_index, _colour(frames[0]))


def test_a_video_changed_in_the_middle_is_indexed_again(tmp_path, pixel_embedder):
    """Same size, same first and last MiB, other bytes in the middle: a new video id, its own
    clips and warnings; a damaged copy beside the original is indexed as another video."""
    videos = tmp_path / "videos"
    videos.mkdir()
    original = make_video(videos / "v.mp4", [(RED, 3.0), (GREEN, 3.0)], size=(640, 360),
                          noise=40)  # fmt: skip
    size = original.stat().st_size
    assert size > 3 << 20  # the middle lies outside the first and last MiB
    rule = {"clip_seconds": 3.0, "frames_per_clip": 1}
    first = _index(videos, tmp_path / "cache", pixel_embedder, **rule)
    old_id = first.clips["video_id"].iat[0]
    damaged = corrupted_copy(original, tmp_path / "damaged.mp4", start_fraction=0.45,
                             length_fraction=0.05)  # fmt: skip
    shutil.copy(original, videos / "untouched.mp4")
    os.replace(damaged, original)
    assert original.stat().st_size == size
    second = _index(videos, tmp_path / "cache", pixel_embedder, **rule)
    ids = second.clips.groupby("video", observed=True)["video_id"].first()
    assert ids[str(original.resolve())] != old_id
    assert ids[str((videos / "untouched.mp4").resolve())] == old_id  # its content, its id
    assert not second.errors["message"].str.contains("same content").any()
    changed = second.errors[second.errors["video"] == str(original.resolve())]
    assert changed["message"].str.contains("could not be decoded|damaged").any()


def test_special_files_broken_links_are_reported_and_the_rest_indexed(tmp_path, pixel_embedder):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "good.mp4", [(RED, 1.0)])
    (videos / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    os.mkfifo(videos / "pipe.mkv")
    make_frameless(videos / "empty.mkv")
    with pytest.warns(UserWarning, match="3 of 4 file"):
        lib = _index(videos, tmp_path / "cache", pixel_embedder)
    assert len(lib) == 1
    errors = dict(zip(lib.errors["video"].map(lambda p: Path(p).name), lib.errors["message"],
                      strict=True))  # fmt: skip
    assert "broken link" in errors["gone.mp4"]
    assert "FIFO" in errors["pipe.mkv"]
    assert "ends before its first video frame" in errors["empty.mkv"]
    assert "Errno" not in errors["empty.mkv"]


def test_a_two_by_8192_video_is_indexed_with_bounded_previews(tmp_path, pixel_embedder):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "tall.mp4", [(RED, 1.0), (BLUE, 1.0)], size=(2, 8192), fps=5)
    lib = _index(videos, tmp_path / "cache", pixel_embedder, clip_seconds=1.0)
    assert len(lib) == 2 and (lib.errors["severity"] != "error").all()
    for clip_id, colour in zip(lib.clips["clip_id"], [RED, BLUE], strict=True):
        for jpeg in lib.thumbnails(clip_id):
            image = Image.open(io.BytesIO(jpeg))
            assert max(image.size) == 160 and image.size[1] == 160
            assert _is(_colour(jpeg), colour)


def test_sizes_are_bounded_before_anything_is_allocated(tmp_path, pixel_embedder):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4", [(RED, 1.0)])
    for kwargs, message in [
        ({"frames_per_clip": 10**9}, "frames_per_clip must be an integer from 1 to 64"),
        ({"clip_seconds": 1e-9}, "clip_seconds must be a number of seconds"),
        ({"workers": True}, "workers must be an integer"),
        ({"workers": 10**6}, "workers must be an integer from 1 to 256"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            _index(videos, tmp_path / "cache", pixel_embedder, **kwargs)
    assert not (tmp_path / "cache").exists()


def _run_bound_by_permissions(code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python that file permissions apply to: as root (CI), without the
    capabilities that let root read and write every file (setpriv, util-linux)."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{Path(__file__).parent}"}
    command = [sys.executable, "-c", textwrap.dedent(code)]
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder,
                          timeout=600)  # fmt: skip


def test_an_unreadable_file_or_folder_fails_alone(tmp_path):
    videos = tmp_path / "videos"
    (videos / "locked").mkdir(parents=True)
    make_video(videos / "good.mp4", [(RED, 1.0)])
    make_video(videos / "secret.mp4", [(BLUE, 1.0)])
    make_video(videos / "locked" / "inner.mp4", [(GREEN, 1.0)])
    (videos / "secret.mp4").chmod(0o000)
    (videos / "locked").chmod(0o000)
    try:
        done = _run_bound_by_permissions(
            """
            import va_widgets as va, warnings
            warnings.simplefilter("ignore")
            lib = va.index_videos("videos", "cache", embedder=va.PixelStatsEmbedder(),
                                  progress=False)
            print(len(lib))
            for row in lib.errors.itertuples():
                print(row.video, "|", row.message)
            """,
            tmp_path,
        )
    finally:
        (videos / "locked").chmod(0o755)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "1"  # good.mp4
    report = "\n".join(lines[1:])
    assert "secret.mp4 | cannot be read (Permission denied)" in report
    assert "locked | folder cannot be listed (Permission denied)" in report


def test_a_nearly_full_disk_is_a_clear_error_and_the_library_stays_readable(
    tmp_path: Path,
) -> None:
    """On a 48 MiB file system filled up to a few KB: no crash (the memory-mapped write used
    to die of SIGBUS), a CacheError naming the free space, the previous generation intact."""
    if shutil.which("unshare") is None:
        pytest.fail("the unshare command (util-linux) is needed to mount a small file system")
    mount = tmp_path / "small"
    mount.mkdir()
    make_video(tmp_path / "a.mp4", [(RED, 2.0)])
    make_video(tmp_path / "b.mp4", [(BLUE, 2.0)])
    script = tmp_path / "fill.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, shutil, warnings, va_widgets as va
        from va_widgets.errors import CacheError
        warnings.simplefilter("ignore")
        m = {str(mount)!r}
        os.makedirs(m + "/videos")
        shutil.copy({str(tmp_path / "a.mp4")!r}, m + "/videos/a.mp4")
        emb = va.PixelStatsEmbedder()
        lib = va.index_videos(m + "/videos", m + "/cache", embedder=emb, progress=False)
        before = lib.clips["clip_id"].tolist()
        shutil.copy({str(tmp_path / "b.mp4")!r}, m + "/videos/b.mp4")
        with open(m + "/filler", "wb") as f:  # leave about 4 KB
            st = os.statvfs(m)
            f.write(b"x" * (st.f_bavail * st.f_frsize - 4096))
        try:
            va.index_videos(m + "/videos", m + "/cache", embedder=emb, progress=False)
        except CacheError as exc:
            print("CacheError:", exc)
        again = va.ClipLibrary.open(m + "/cache")
        print("same library:", again.clips["clip_id"].tolist() == before, len(before))
        again.thumbnails(before[0])
    """)
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         f'mount -t tmpfs -o size=48m tmpfs "{mount}" && exec "{sys.executable}" "{script}"'],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "CacheError: not enough free disk space" in done.stdout, done.stdout
    assert "same library: True 1" in done.stdout


@pytest.fixture(scope="module")
def small_real_mkv(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    from conftest import SHARED_VIDEOS

    if not (SHARED_VIDEOS / "yes.mkv").exists():
        pytest.skip(f"real sample videos not present at {SHARED_VIDEOS}")
    return SHARED_VIDEOS / "yes.mkv"


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    start=st.floats(0.0, 0.95),
    length=st.integers(1, 4096),
    seed=st.integers(0, 2**16),
    cut=st.booleans(),
)
def test_byte_damaged_real_videos_index_what_they_can(
    small_real_mkv, tmp_path_factory, pixel_embedder, start, length, seed, cut
):
    """Random damage to a real video: it is indexed in part or listed as an error; its clips,
    if any, have finite features, readable previews and times inside the video; a good video
    beside it is indexed whole."""
    folder = tmp_path_factory.mktemp("fuzz")
    videos = folder / "videos"
    videos.mkdir()
    data = bytearray(small_real_mkv.read_bytes())
    at = int(start * len(data))
    if cut:
        data = data[:at]
    else:
        rng = np.random.default_rng(seed)
        data[at : at + length] = rng.integers(0, 256, len(data[at : at + length]),
                                              dtype=np.uint8).tobytes()  # fmt: skip
    (videos / "damaged.mkv").write_bytes(bytes(data))
    make_video(videos / "good.mp4", [(GREEN, 1.0)])
    with warnings.catch_warnings():  # the damaged file may fail: checked below
        warnings.simplefilter("ignore", UserWarning)
        lib = _index(videos, folder / "cache", pixel_embedder, frames_per_clip=2)
    good = lib.clips[lib.clips["video"].str.endswith("good.mp4")]
    assert len(good) == 1 and _is(_colour(lib.thumbnails(good["clip_id"].iat[0])[0]), GREEN)
    assert np.isfinite(np.asarray(lib.features, dtype=np.float32)).all()
    damaged = lib.clips[lib.clips["video"].str.endswith("damaged.mkv")]
    for row in damaged.itertuples():
        for jpeg in lib.thumbnails(row.clip_id):
            Image.open(io.BytesIO(jpeg)).load()
        assert 0 <= row.start_seconds < row.end_seconds
    if damaged.empty:
        assert lib.errors["video"].str.endswith("damaged.mkv").any()


def test_a_task_on_a_read_only_cache_says_where_to_put_the_labels(tmp_path, pixel_embedder):
    make_video(tmp_path / "a.mp4", [(RED, 1.0), (BLUE, 1.0)])
    va.index_videos(tmp_path / "a.mp4", tmp_path / "cache", embedder=pixel_embedder,
                    progress=False, clip_seconds=1.0)  # fmt: skip
    for p in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        done = _run_bound_by_permissions(
            """
            import va_widgets as va
            lib = va.ClipLibrary.open("cache")
            try:
                va.Task(lib, "t")
            except va.VaWidgetsError as exc:
                print(type(exc).__name__, exc)
            task = va.Task(lib, "t", store="labels.sqlite")
            task.label(lib.clips["clip_id"].iat[0], True)
            print("labelled", len(task.labels()))
            """,
            tmp_path,
        )
    finally:
        for p in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("StoreError") and "cache" in first
    assert "cannot write" in first and "store=" in first
    assert second == "labelled 1"
