"""The clip library end to end: real PyAV decoding, real open_clip (tiny), real files on disk."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import va_widgets as va
from synth import make_text_file, make_video
from va_widgets.errors import CacheError, EmbedderMismatch

RED, GREEN, BLUE, WHITE = (220, 30, 30), (30, 200, 40), (30, 40, 220), (235, 235, 235)


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """Three solid-colour videos with hard cuts on 2 s boundaries."""
    folder = tmp_path / "videos"
    folder.mkdir()
    make_video(folder / "a.mp4", [(RED, 2.0), (GREEN, 2.0), (RED, 2.0)], noise=0)
    make_video(folder / "b.mkv", [(BLUE, 4.0)], noise=0)
    make_video(folder / "c.mp4", [(GREEN, 2.0), (WHITE, 2.0)], noise=0)
    return folder


def index(videos: Path, cache: Path, embedder, **kwargs):  # type: ignore[no-untyped-def]
    return va.index_videos(videos, cache, embedder=embedder, progress=False, **kwargs)


def test_index_builds_clips_features_and_thumbnails(videos, tmp_path, tiny_clip):
    lib = index(videos, tmp_path / "cache", tiny_clip, frames_per_clip=4)
    clips = lib.clips
    assert list(clips.columns) == [
        "clip_id", "video", "video_id", "clip_index", "start_seconds", "end_seconds",
    ]  # fmt: skip
    assert lib.frame_seconds.shape == (7, 4)
    np.testing.assert_allclose(lib.frame_seconds[1], [2.24, 2.72, 3.24, 3.72])  # mid-quarters
    per_video = clips.groupby(clips["video"].map(lambda p: Path(p).name)).size().to_dict()
    assert per_video == {"a.mp4": 3, "b.mkv": 2, "c.mp4": 2}
    a = clips[clips["video"].str.endswith("a.mp4")]
    assert a["start_seconds"].tolist() == [0.0, 2.0, 4.0]
    assert a["end_seconds"].tolist() == [2.0, 4.0, 6.0]
    assert clips["clip_id"].is_unique
    assert isinstance(lib.features, np.memmap) and lib.features.dtype == np.float16
    assert lib.features.shape == (7, tiny_clip.dim)
    norms = np.linalg.norm(lib.features.astype(np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)
    thumbs = lib.thumbnails(clips["clip_id"].iloc[0])
    assert len(thumbs) == 4
    image = Image.open(io.BytesIO(thumbs[0]))
    assert image.format == "JPEG" and image.width == 160
    assert len(lib.errors) == 0
    assert "clips=7" in repr(lib)


def test_similar_finds_the_clips_of_the_same_colour_exactly(videos, tmp_path, tiny_clip):
    lib = index(videos, tmp_path / "cache", tiny_clip, frames_per_clip=4)
    clips = lib.clips
    first_red = clips[clips["video"].str.endswith("a.mp4")]["clip_id"].iloc[0]
    hits = lib.similar(first_red, k=3)
    assert first_red not in set(hits["clip_id"])
    top = hits.iloc[0]
    assert top["video"].endswith("a.mp4") and top["start_seconds"] == 4.0  # the other red clip
    assert top["score"] == pytest.approx(1.0, abs=2e-3)
    assert hits["score"].is_monotonic_decreasing


def test_text_search_ranks_all_clips(videos, tmp_path, tiny_clip):
    lib = index(videos, tmp_path / "cache", tiny_clip)
    hits = lib.search("a red square", k=5)
    assert len(hits) == 5 and hits["score"].is_monotonic_decreasing
    scores = lib.text_scores("a red square")
    expected = lib.features.astype(np.float32) @ tiny_clip.encode_text(["a red square"])[0]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    with pytest.raises(ValueError, match="non-empty"):
        lib.search("  ")


def test_offline_embedder_has_no_text_search_and_says_so(videos, tmp_path, pixel_embedder):
    lib = index(videos, tmp_path / "cache", pixel_embedder)
    with pytest.raises(va.TextSearchUnavailable):
        lib.search("a red square")
    red = lib.clips["clip_id"].iloc[0]
    assert lib.similar(red, k=1)["start_seconds"].iloc[0] == 4.0


def test_reopen_in_another_process_gives_the_same_library(videos, tmp_path, tiny_clip):
    lib = index(videos, tmp_path / "cache", tiny_clip)
    code = (
        "import va_widgets as va, numpy as np, sys;"
        f"lib = va.ClipLibrary.open({str(tmp_path / 'cache')!r});"
        "np.save(sys.argv[1], np.asarray(lib.features, dtype=np.float32));"
        "lib.clips.to_parquet(sys.argv[2])"
    )
    out = tmp_path / "f.npy", tmp_path / "c.parquet"
    subprocess.run([sys.executable, "-c", code, str(out[0]), str(out[1])], check=True)
    np.testing.assert_array_equal(np.load(out[0]), lib.features.astype(np.float32))
    pd.testing.assert_frame_equal(pd.read_parquet(out[1]), lib.clips)


def test_a_clip_table_with_one_array_per_row_still_reads(tmp_path):
    from va_widgets.cache import read_clip_table

    # how clip tables were written before frame_seconds became flat columns
    old = pd.DataFrame(
        {"clip_id": ["a-00000", "a-00001"], "frame_seconds": [[0.5, 1.5], [2.5, 3.5]]}
    )
    old.to_parquet(tmp_path / "clips-1.parquet", index=False)
    table, frame_seconds = read_clip_table(tmp_path / "clips-1.parquet")
    assert list(table.columns) == ["clip_id"]
    np.testing.assert_array_equal(frame_seconds, [[0.5, 1.5], [2.5, 3.5]])


def test_rerun_is_incremental(videos, tmp_path, tiny_clip):
    cache = tmp_path / "cache"
    lib = index(videos, cache, tiny_clip)
    ids = dict(
        zip(lib.clips["video"].map(lambda p: Path(p).name), lib.clips["video_id"], strict=True)
    )
    stamps = {
        v: (cache / "videos" / v / "features.npy").stat().st_mtime_ns for v in set(ids.values())
    }
    time.sleep(0.01)
    (videos / "c.mp4").unlink()  # deleted
    make_video(videos / "b.mkv", [(WHITE, 2.0)], noise=0)  # changed
    make_video(videos / "d.mp4", [(BLUE, 2.0)], noise=0)  # new
    lib2 = index(videos, cache, tiny_clip)
    names = lib2.clips["video"].map(lambda p: Path(p).name)
    assert names.value_counts().to_dict() == {"a.mp4": 3, "b.mkv": 1, "d.mp4": 1}
    a_id = ids["a.mp4"]
    assert (cache / "videos" / a_id / "features.npy").stat().st_mtime_ns == stamps[a_id]  # reused
    assert not (cache / "videos" / ids["c.mp4"]).exists()  # dropped
    assert not (cache / "videos" / ids["b.mkv"]).exists()  # replaced by the new content
    assert lib2.id == lib.id
    kept = lib.clips[names.reindex(lib.clips.index).eq("a.mp4").to_numpy()]["clip_id"]
    np.testing.assert_array_equal(lib2.features[lib2.rows(kept)], lib.features[lib.rows(kept)])
    assert sorted(p.name for p in cache.glob("features-*.npy")) == ["features-2.npy"]


def test_a_moved_video_keeps_its_clip_ids(videos, tmp_path, tiny_clip):
    cache = tmp_path / "cache"
    before = index(videos, cache, tiny_clip).clips
    moved = tmp_path / "moved"
    shutil.move(videos, moved)
    after = index(moved, cache, tiny_clip).clips
    assert after["clip_id"].tolist() == before["clip_id"].tolist()
    assert after["video"].str.startswith(str(moved)).all()


def test_another_embedder_or_clip_rule_is_a_clear_error(
    videos, tmp_path, tiny_clip, pixel_embedder
):
    cache = tmp_path / "cache"
    index(videos, cache, tiny_clip)
    before = (cache / "manifest.json").read_bytes()
    with pytest.raises(EmbedderMismatch, match="not comparable"):
        index(videos, cache, pixel_embedder)
    with pytest.raises(EmbedderMismatch, match="va-tiny"):
        va.ClipLibrary.open(cache, embedder=pixel_embedder)
    with pytest.raises(CacheError, match=r"clip_seconds=2\.0, not 3\.0"):
        index(videos, cache, tiny_clip, clip_seconds=3.0)
    assert (cache / "manifest.json").read_bytes() == before
    assert len(va.ClipLibrary.open(cache, embedder=tiny_clip)) == 7


def test_bad_sources_raise_before_touching_the_cache(videos, tmp_path, tiny_clip):
    cache = tmp_path / "cache"
    index(videos, cache, tiny_clip)
    before = (cache / "manifest.json").read_bytes()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index(tmp_path / "nope", cache, tiny_clip)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    with pytest.raises(FileNotFoundError, match="no video files"):
        index(empty, cache, tiny_clip)
    assert (cache / "manifest.json").read_bytes() == before


def test_bad_files_are_listed_and_the_good_ones_indexed(videos, tmp_path, pixel_embedder):
    make_text_file(videos / "notes.mp4")
    (videos / "empty.mp4").write_bytes(b"")
    with pytest.warns(UserWarning, match="2 of 5 file"):
        lib = index(videos, tmp_path / "cache", pixel_embedder)
    assert len(lib) == 7
    errors = lib.errors.set_index(lib.errors["video"].map(lambda p: Path(p).name))
    assert set(errors.index) == {"notes.mp4", "empty.mp4"}
    assert (errors["severity"] == "error").all()
    assert "empty" in errors.loc["empty.mp4", "message"]


def test_duplicate_content_is_indexed_once(videos, tmp_path, pixel_embedder):
    shutil.copy(videos / "a.mp4", videos / "a_copy.mp4")
    lib = index(videos, tmp_path / "cache", pixel_embedder)
    assert len(lib) == 7
    assert lib.errors["message"].str.contains("same content as").sum() == 1


def test_not_a_library_is_a_clear_error(tmp_path):
    with pytest.raises(CacheError, match="does not exist"):
        va.ClipLibrary.open(tmp_path / "missing")
    with pytest.raises(CacheError, match="not a va_widgets library"):
        va.ClipLibrary.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CacheError, match="unreadable"):
        va.ClipLibrary.open(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(CacheError, match="not written by va_widgets"):
        va.ClipLibrary.open(tmp_path)


def test_unknown_clip_ids_name_the_id(videos, tmp_path, pixel_embedder):
    lib = index(videos, tmp_path / "cache", pixel_embedder)
    with pytest.raises(KeyError, match="nope"):
        lib.thumbnails("nope")


KILL_SCRIPT = """
import sys, time, va_widgets as va
from va_widgets.embedders import PixelStatsEmbedder

class SlowPixelStats(PixelStatsEmbedder):  # the same vectors, slowly: room to kill mid-run
    def encode_clips(self, frames):
        time.sleep(0.3)
        return super().encode_clips(frames)

va.index_videos(sys.argv[1], sys.argv[2], embedder=SlowPixelStats(), progress=False)
"""


@pytest.mark.slow
def test_killing_the_indexer_keeps_the_library_and_the_next_run_finishes(tmp_path, pixel_embedder):
    folder = tmp_path / "videos"
    folder.mkdir()
    make_video(folder / "first.mp4", [(RED, 2.0)], noise=0)
    cache = tmp_path / "cache"
    before = index(folder, cache, pixel_embedder)
    for i in range(12):
        make_video(folder / f"more_{i:02d}.mp4", [(GREEN, 2.0), (BLUE, 2.0)] * 3, seed=i)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(folder), str(cache)])
    try:
        deadline = time.monotonic() + 120
        while len(list((cache / "videos").iterdir())) < 4 and time.monotonic() < deadline:
            assert proc.poll() is None, "the indexer finished before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = {p.name for p in (cache / "videos").iterdir() if not p.name.startswith(".")}
    assert 1 < len(finished) < 13
    mid = va.ClipLibrary.open(cache)
    assert mid.clips["clip_id"].tolist() == before.clips["clip_id"].tolist()  # the old generation
    stamps = {v: (cache / "videos" / v / "meta.json").stat().st_mtime_ns for v in finished}
    after = index(folder, cache, pixel_embedder)
    assert len(after) == 1 + 12 * 6
    assert all(
        (cache / "videos" / v / "meta.json").stat().st_mtime_ns == t for v, t in stamps.items()
    )
    assert not any(p.name.startswith(".tmp") for p in (cache / "videos").iterdir())
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["generation"] == 2


def test_real_videos_mp4_mkv_and_gif(shared_videos, tmp_path, pixel_embedder):
    lib = index(shared_videos, tmp_path / "cache", pixel_embedder)
    assert len(lib.errors[lib.errors["severity"] == "error"]) == 0
    clips = lib.clips
    names = clips["video"].map(lambda p: Path(p).name)
    assert set(names) == {
        p.name for p in shared_videos.iterdir() if p.suffix in {".mp4", ".mkv", ".gif"}
    }
    per_video = clips.groupby(names)["end_seconds"].max()
    assert 39 < per_video["bottle-detection.mp4"] <= 41
    assert 29 < per_video["car-detection.mp4"] <= 31
    assert (
        np.diff(clips["start_seconds"].to_numpy())[names.to_numpy()[1:] == names.to_numpy()[:-1]]
        > 0
    ).all()
    for clip_id in clips.groupby(names)["clip_id"].first():
        assert len(lib.thumbnails(clip_id)) == lib.rule.frames_per_clip


def test_a_cpu_encoder_encodes_chunks_on_every_core_with_one_torch_thread_each(
    videos, tmp_path, tiny_clip, monkeypatch
):
    """torch's own threads wait for each other after every operation, so the decoding worker
    descheduling one of them stalls the rest; whole chunks on parallel threads do not wait."""
    import threading

    import torch

    reference = index(videos, tmp_path / "one", tiny_clip, frames_per_clip=4)  # before the spy
    seen: list[tuple[int, int]] = []
    encode = tiny_clip.encode_clips

    def spy(frames, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((threading.get_ident(), torch.get_num_threads()))
        time.sleep(0.5)  # the next video's chunk arrives meanwhile
        return encode(frames, **kwargs)

    monkeypatch.setattr(tiny_clip, "encode_clips", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lib = index(videos, tmp_path / "two", tiny_clip, frames_per_clip=4)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert after == 2  # restored
    assert len(seen) == 3 and {n for _, n in seen} == {1}
    assert len({ident for ident, _ in seen}) == 2
    assert (lib.clips["clip_id"] == reference.clips["clip_id"]).all()
    np.testing.assert_allclose(lib.features, reference.features, atol=2e-3)


def test_the_decoding_worker_imports_neither_pandas_nor_the_cache(
    tmp_path, monkeypatch, pixel_embedder
):
    """A worker process starts by unpickling what it runs; that must stay light (no pandas),
    since the encoder waits for the worker's first chunk."""
    import pickle

    import va_widgets.workers
    from va_widgets import indexing
    from va_widgets.media import ClipRule

    sent = []

    def fake_run_isolated(fn, items, *, workers=1):
        sent.append((fn, list(items)))
        return iter(())

    monkeypatch.setattr(va_widgets.workers, "run_isolated", fake_run_isolated)
    todo = [indexing._Pending(tmp_path / "a.mp4", "a")]
    assert list(indexing._index_here(tmp_path, ClipRule(), pixel_embedder, todo, 1, False)) == []
    blob = pickle.dumps(sent[0])
    code = (
        "import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
        "print(sorted(m for m in ('pandas', 'va_widgets.cache', 'va_widgets.library') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True)
    assert out.stdout.decode().strip() == "[]"
