"""The ``va-widgets`` command end to end, in a real subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from synth import make_text_file, make_video

RED, BLUE = (220, 30, 30), (30, 40, 220)


def va_widgets(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("va-widgets")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "va_widgets.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)


def test_index_search_and_info(tmp_path, tiny_clip_files):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4", [(RED, 2.0), (BLUE, 2.0), (RED, 2.0)], noise=0)
    make_video(videos / "b.mp4", [(BLUE, 2.0)], noise=0)
    config, weights = tiny_clip_files
    cache = str(tmp_path / "cache")
    done = va_widgets(
        "index", str(videos), "--cache", cache, "--model", "va-tiny",
        "--pretrained", str(weights), "--model-config", str(config), "--frames-per-clip", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 clips from 2 video(s)" in done.stdout
    assert "indexing" in done.stderr  # the progress bar

    found = va_widgets("search", "a red square", "--cache", cache, "-k", "3")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.strip().splitlines()
    assert len(lines) == 3
    scores = [float(line.split()[0]) for line in lines]
    assert scores == sorted(scores, reverse=True)

    first_red = lines[0].split()[1] if "a.mp4" in lines[0] else None
    clip_id = first_red or found.stdout.split()[1]
    like = va_widgets("search", clip_id, "--like", "--cache", cache, "-k", "1")
    assert like.returncode == 0, like.stderr
    assert clip_id not in like.stdout

    info = va_widgets("info", "--cache", cache)
    assert info.returncode == 0 and "clips=4" in info.stdout and "va-tiny" in info.stdout


def test_failed_files_give_a_summary_and_exit_code_1(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "good.mp4", [(RED, 2.0)], noise=0)
    make_text_file(videos / "notes.mp4")
    cache = str(tmp_path / "cache")
    done = va_widgets("index", str(videos), "--cache", cache, "--offline", "--quiet")
    assert done.returncode == 1
    assert "1 clips from 1 video(s)" in done.stdout
    assert "notes.mp4" in done.stderr and "1 file(s) could not be indexed" in done.stderr
    shutil.rmtree(videos / "good.mp4", ignore_errors=True)


def test_usage_errors_exit_2_with_a_message(tmp_path):
    missing = va_widgets(
        "index", str(tmp_path / "nope"), "--cache", str(tmp_path / "c"), "--offline"
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    not_a_library = va_widgets("info", "--cache", str(tmp_path))
    assert not_a_library.returncode == 2 and "not a va_widgets library" in not_a_library.stderr
    text_offline = tmp_path / "v"
    text_offline.mkdir()
    make_video(text_offline / "a.mp4", [(RED, 2.0)], noise=0)
    assert (
        va_widgets(
            "index", str(text_offline), "--cache", str(tmp_path / "c2"), "--offline", "--quiet"
        ).returncode
        == 0
    )
    no_text = va_widgets("search", "a red square", "--cache", str(tmp_path / "c2"))
    assert no_text.returncode == 2 and "text" in no_text.stderr.lower()


def test_export_then_score_new_videos(tmp_path, pixel_embedder):
    import pandas as pd

    import va_widgets as va
    from va_widgets.samples import clip_truth

    truth = va.make_sample_videos(tmp_path / "videos", n_videos=2, seconds_per_video=24)
    lib = va.index_videos(
        tmp_path / "videos", tmp_path / "cache", embedder=pixel_embedder, progress=False
    )
    task = va.Task(lib, "ball", annotator="ana")
    for clip, y in zip(lib.clips["clip_id"], clip_truth(lib.clips, truth), strict=True):
        task.label(clip, bool(y))
    done = va_widgets(
        "export",
        str(tmp_path / "out" / "ball"),
        "--cache",
        str(tmp_path / "cache"),
        "--task",
        "ball",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "ball.skops").exists() and (tmp_path / "out" / "ball.csv").exists()
    va.make_sample_videos(tmp_path / "new", n_videos=1, seconds_per_video=8, seed=5)
    scored = va_widgets(
        "score", str(tmp_path / "out" / "ball.skops"), str(tmp_path / "new"),
        "--out", str(tmp_path / "scores.csv"), "--quiet",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == 4 and scores["score"].between(0, 1).all()
    assert {"clip_id", "video", "start_seconds", "end_seconds"} <= set(scores.columns)


def test_export_refuses_unknown_tasks_and_empty_paths_and_fills_a_folder(tmp_path, pixel_embedder):
    import va_widgets as va
    from va_widgets.store import LabelStore

    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4", [(RED, 2.0), (BLUE, 2.0)], noise=0)
    cache = tmp_path / "cache"
    lib = va.index_videos(videos, cache, embedder=pixel_embedder, progress=False)
    unknown = va_widgets("export", str(tmp_path / "out" / "x"), "--cache", str(cache),
                         "--task", "nope")  # fmt: skip
    assert unknown.returncode == 2 and "no label store" in unknown.stderr
    task = va.Task(lib, "ball", annotator="ana")
    nothing = va_widgets("export", str(tmp_path / "out" / "x"), "--cache", str(cache),
                         "--task", "nope")  # fmt: skip
    assert nothing.returncode == 2 and "no task 'nope'" in nothing.stderr
    assert "'ball'" in nothing.stderr
    assert [t.name for t in LabelStore(cache / "labels.sqlite").tasks()] == ["ball"]
    empty = va_widgets("export", "", "--cache", str(cache), "--task", "ball")
    assert empty.returncode == 2 and "export path '' is empty" in empty.stderr
    no_model = va_widgets("export", str(tmp_path / "out") + "/", "--cache", str(cache),
                          "--task", "ball")  # fmt: skip
    assert no_model.returncode == 2 and "no classifier yet" in no_model.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written
    ids = lib.clips["clip_id"].tolist()
    task.label(ids[0], True)
    task.label(ids[1], False)
    done = va_widgets("export", str(tmp_path / "out") + "/", "--cache", str(cache),
                      "--task", "ball")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ball.csv", "ball.parquet", "ball.skops",
    ]  # fmt: skip
