"""Where in a video: segments from clip scores, WebVTT/CSV/Parquet export, compact timeline."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import va_widgets as va
from test_cli import va_widgets
from va_widgets.segments import f1_threshold, segments, segments_to_webvtt, write_segments

CUE = re.compile(
    r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$"
)


def clips(video: str, scores: list[float], length: float = 2.0) -> pd.DataFrame:
    start = np.arange(len(scores)) * length
    return pd.DataFrame(
        {
            "clip_id": [f"{video}-{i}" for i in range(len(scores))],
            "video": video,
            "start_seconds": start,
            "end_seconds": start + length,
            "score": scores,
        }
    )


def test_adjacent_clips_above_the_threshold_merge_per_video():
    scores = pd.concat(
        [clips("a.mp4", [0.9, 0.8, 0.1, 0.7, 0.2, 0.95]), clips("b.mp4", [0.1, 0.6, 0.6])]
    ).sample(frac=1, random_state=0)  # order of rows must not matter
    found = segments(scores, threshold=0.5)  # videos in order of first appearance
    found = found.sort_values(["video", "start_seconds"]).reset_index(drop=True)
    assert list(found.columns) == [
        "video", "start_seconds", "end_seconds", "peak_score", "mean_score", "clips",
    ]  # fmt: skip
    assert found[["video", "start_seconds", "end_seconds", "clips"]].values.tolist() == [
        ["a.mp4", 0.0, 4.0, 2], ["a.mp4", 6.0, 8.0, 1], ["a.mp4", 10.0, 12.0, 1],
        ["b.mp4", 2.0, 6.0, 2],
    ]  # fmt: skip
    assert found["peak_score"].tolist() == pytest.approx([0.9, 0.7, 0.95, 0.6])
    assert found["mean_score"].tolist() == pytest.approx([0.85, 0.7, 0.95, 0.6])
    assert found.attrs["threshold"] == 0.5
    # a score equal to the threshold counts
    assert len(segments(clips("c", [0.5]), threshold=0.5)) == 1


def test_gaps_up_to_min_gap_are_bridged_and_short_segments_dropped():
    scores = clips("a", [0.9, 0.1, 0.9, 0.1, 0.1, 0.9])
    assert len(segments(scores, threshold=0.5)) == 3
    bridged = segments(scores, threshold=0.5, min_gap=2.0)  # one 2 s clip, not two
    assert bridged[["start_seconds", "end_seconds", "clips"]].values.tolist() == [
        [0.0, 6.0, 2], [10.0, 12.0, 1],
    ]  # fmt: skip
    assert len(segments(scores, threshold=0.5, min_gap=4.0)) == 1
    long = segments(scores, threshold=0.5, min_gap=2.0, min_length=4.0)
    assert long[["start_seconds", "end_seconds"]].values.tolist() == [[0.0, 6.0]]
    # two videos never merge, whatever the gap
    two = pd.concat([clips("a", [0.9]), clips("b", [0.9])])
    assert segments(two, threshold=0.5, min_gap=100)["video"].tolist() == ["a", "b"]


def test_empty_input_and_no_clip_above_the_threshold_give_an_empty_table():
    empty = segments(clips("a", []), threshold=0.5)
    assert empty.empty and list(empty.columns)[:3] == ["video", "start_seconds", "end_seconds"]
    assert segments(clips("a", [0.1, np.nan]), threshold=0.5).empty
    assert segments_to_webvtt(empty).startswith("WEBVTT")


def test_threshold_defaults_to_the_one_the_scores_carry_else_one_half():
    scores = clips("a", [0.6, 0.7, 0.9])
    assert segments(scores).attrs["threshold"] == 0.5 and len(segments(scores)) == 1
    scores.attrs["threshold"] = 0.8
    found = segments(scores)
    assert found.attrs["threshold"] == 0.8
    assert found[["start_seconds", "end_seconds"]].values.tolist() == [[4.0, 6.0]]


def test_bad_arguments_are_refused_naming_the_argument():
    scores = clips("a", [0.9])
    with pytest.raises(ValueError, match="min_gap"):
        segments(scores, min_gap=-1)
    with pytest.raises(ValueError, match="min_length"):
        segments(scores, min_length=float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        segments(scores, threshold=float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        segments(scores, threshold=1.5)
    with pytest.raises(ValueError, match=r"scores has no column\(s\) \['score'\]"):
        segments(scores.drop(columns="score"))


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("start_seconds", [np.nan, 2.0, 4.0], r"start_seconds must be finite .* index 0"),
        ("end_seconds", [2.0, 4.0, np.inf], r"end_seconds must be finite .* index 2"),
        (
            "end_seconds",
            [2.0, 1.0, 6.0],
            r"end_seconds must not be before start_seconds .* index 1",
        ),
        ("score", ["high", "low", "x"], r"score must be numeric"),
        ("video", ["a", None, "a"], r"video must name a video in every row .* index 1"),
    ],
)
def test_a_damaged_score_table_is_refused_naming_the_column_and_row(column, values, message):
    """A clip with no start time must not vanish silently (it may be the best one), nor may a
    clip without an end stretch a segment to infinity."""
    scores = clips("a", [0.9, 0.8, 0.95])
    scores[column] = values
    with pytest.raises(ValueError, match=message):
        segments(scores)


def test_f1_threshold_picks_the_best_score():
    # at 0.5: 3 of 3 positives, 1 false positive (F1 0.86); at 0.8: 2 of 3, none (F1 0.8)
    assert f1_threshold([0, 0, 1, 1, 1], [0.1, 0.6, 0.5, 0.8, 0.9]) == 0.5
    assert f1_threshold([1, 1], [0.2, 0.3]) is None


def test_webvtt_parses_back_with_the_segment_times_and_text():
    webvtt = pytest.importorskip("webvtt")
    scores = pd.concat([clips("a.mp4", [0.9, 0.93, 0.1] * 1300), clips("b.mp4", [0.9])])
    found = segments(scores, threshold=0.5)
    text = segments_to_webvtt(found, "a.mp4", label="car <chase> & co\nnext")
    cues = webvtt.from_buffer(io.StringIO(text)).captions
    mine = found[found["video"] == "a.mp4"]
    assert len(cues) == len(mine) == 1300
    assert cues[0].start == "00:00:00.000" and cues[0].end == "00:00:04.000"
    assert cues[-1].start == "02:09:54.000" and cues[-1].end_in_seconds == pytest.approx(7798)
    assert cues[0].raw_text == "car &lt;chase&gt; &amp; co next (peak 0.93)"
    timings = [line for line in text.splitlines() if "-->" in line]
    assert len(timings) == 1300 and all(CUE.match(line) for line in timings)
    with pytest.raises(ValueError, match="video="):
        segments_to_webvtt(found)


def test_write_segments_tables_and_one_track_per_video(tmp_path):
    scores = pd.concat(
        [clips("x/a.mp4", [0.9, 0.1]), clips("y/a.mp4", [0.1, 0.8]), clips("z/c.mkv", [0.1])]
    )
    found = segments(scores, threshold=0.5)
    (csv,) = write_segments(found, tmp_path / "s.csv")
    pd.testing.assert_frame_equal(pd.read_csv(csv), found, check_dtype=False)
    (parquet,) = write_segments(found, tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), found)
    tracks = write_segments(found, str(tmp_path / "vtt") + "/", videos=scores["video"])
    assert [p.name for p in tracks] == ["a.vtt", "a-2.vtt", "c.vtt"]
    assert tracks[1].read_text().count("-->") == 1 and "-->" not in tracks[2].read_text()
    with pytest.raises(ValueError, match=r"one \.vtt per video"):
        write_segments(found, tmp_path / "one.vtt")


def test_compact_timeline_for_50_videos_is_one_axes_sorted_by_peak():
    from va_widgets.plots import score_timeline

    rng = np.random.default_rng(0)
    scores = pd.concat(
        [
            clips(
                f"/videos/a_rather_long_video_name_number_{v:02d}.mp4",
                list(rng.permutation(np.linspace(0, v / 50, 20))),  # peak v / 50
            )
            for v in range(50)
        ]
    )
    figure = score_timeline(scores, threshold=0.8)
    assert len(figure.axes) == 1
    _, height = figure.get_size_inches()
    assert height <= 1.2 + 0.25 * 50
    names = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert len(names) == 50 and all(len(n) <= 28 for n in names)
    # highest peak on top: the last tick (top strip) is the video with the highest scores
    assert names[-1].endswith("49.mp4") and names[0].endswith("00.mp4")
    figure.canvas.draw()  # renders


def test_exported_threshold_is_f1_optimal_on_out_of_fold_scores(tmp_path, pixel_embedder):
    from va_widgets.samples import clip_truth

    truth = va.make_sample_videos(tmp_path / "videos", n_videos=2, seconds_per_video=24)
    lib = va.index_videos(
        tmp_path / "videos", tmp_path / "cache", embedder=pixel_embedder, progress=False
    )
    task = va.Task(lib, "ball", store=tmp_path / "labels.sqlite", annotator="ana")
    for clip, y in zip(lib.clips["clip_id"], clip_truth(lib.clips, truth), strict=True):
        task.label(clip, bool(y))
    out = task.export(tmp_path / "out" / "ball")
    clf = va.load_classifier(out["classifier"])
    y, p = task.engine.out_of_fold()
    assert clf.threshold == f1_threshold(y, p) and "F1" in clf.info["threshold_rule"]
    scored = clf.score_library(lib)
    assert scored.attrs["threshold"] == clf.threshold
    pd.testing.assert_frame_equal(clf.segments(scored), segments(scored, threshold=clf.threshold))
    # files written before thresholds were exported load with 0.5
    old = va.VideoClassifier(clf.estimator, clf.embedder_spec, clf.clip_rule, task="ball")
    old.save(tmp_path / "old.skops")
    assert va.load_classifier(tmp_path / "old.skops").threshold == 0.5

    # the command line: a table, and one WebVTT track per video
    va.make_sample_videos(tmp_path / "new", n_videos=2, seconds_per_video=8, seed=5)
    done = va_widgets(
        "score", str(out["classifier"]), str(tmp_path / "new"), "--quiet",
        "--out", str(tmp_path / "scores.csv"), "--segments", str(tmp_path / "seg.csv"),
        "--threshold", "0.3", "--min-gap", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "seg.csv")
    expected = segments(pd.read_csv(tmp_path / "scores.csv"), threshold=0.3, min_gap=2)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    tracks = va_widgets(
        "score", str(out["classifier"]), str(tmp_path / "new"), "--quiet",
        "--segments", str(tmp_path / "vtt") + "/", "--threshold", "0.3", "--min-gap", "2",
    )  # fmt: skip
    assert tracks.returncode == 0, tracks.stderr
    assert sorted(p.name for p in (tmp_path / "vtt").iterdir()) == [
        "sample_00.vtt",
        "sample_01.vtt",
    ]
    for name, group in expected.groupby("video"):
        text = (tmp_path / "vtt" / f"{Path(str(name)).stem}.vtt").read_text()
        assert text.startswith("WEBVTT") and text.count("-->") == len(group)
        assert "ball (peak " in text
    bad = va_widgets(
        "score", str(out["classifier"]), str(tmp_path / "new"), "--segments", "x.csv",
        "--min-gap", "-1",
    )  # fmt: skip
    assert bad.returncode == 2 and "min_gap" in bad.stderr
    one_file = va_widgets(  # refused before any video is indexed (none is in --cache)
        "score", str(out["classifier"]), str(tmp_path / "new"), "--segments",
        str(tmp_path / "all.vtt"), "--cache", str(tmp_path / "kept"),
    )  # fmt: skip
    assert one_file.returncode == 2 and "2 videos" in one_file.stderr
    assert not (tmp_path / "kept").exists() and not (tmp_path / "all.vtt").exists()
