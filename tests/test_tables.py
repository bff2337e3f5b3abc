"""Clip tables join on one key: the clip id, as both the index and the ``clip_id`` column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import va_widgets as va
from va_widgets.samples import clip_truth


@pytest.fixture(scope="module")
def task(tmp_path_factory, pixel_embedder):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("tables")
    truth = va.make_sample_videos(root / "videos", n_videos=2, seconds_per_video=12)
    lib = va.index_videos(root / "videos", root / "cache", embedder=pixel_embedder, progress=False)
    task = va.Task(lib, "ball", store=root / "labels.sqlite", annotator="ana")
    is_ball = clip_truth(lib.clips, truth)
    for clip in lib.clips["clip_id"].iloc[:6]:
        task.label(clip, bool(is_ball[clip]))
    assert task.classifier is not None
    return task


def test_clips_indexed_by_clip_id(task):
    clips = task.library.clips
    assert clips.index.equals(pd.Index(clips["clip_id"])) and clips.index.is_unique
    assert clips.index.name is None  # 'clip_id' names one thing: the column (merge on= works)


def test_assign_scores_to_clips(task):
    lib = task.library
    scored = lib.clips.assign(score=task.scores())
    assert scored["score"].notna().all()
    np.testing.assert_allclose(scored["score"], task.scores_of(lib.clips["clip_id"].tolist()))
    # shuffled scores still land on their own clips
    shuffled = task.scores().sample(frac=1.0, random_state=0)
    pd.testing.assert_series_equal(lib.clips.assign(score=shuffled)["score"], scored["score"])


def test_join_and_merge_scores_and_labels(task):
    lib = task.library
    joined = lib.clips.join(task.scores())
    assert joined["score"].notna().all() and len(joined) == len(lib)
    merged = lib.clips.merge(task.scores().reset_index(), on="clip_id")
    np.testing.assert_allclose(merged["score"], joined["score"])
    labels = task.labels()
    with_scores = labels.merge(lib.clips[["clip_id", "video_id"]], on="clip_id")
    assert len(with_scores) == len(labels) == 6


def test_search_results_keep_the_clip_id_index(task):
    hits = task.library.similar(task.library.clips["clip_id"].iloc[0], k=3)
    assert list(hits.index) == hits["clip_id"].tolist()
    assert hits.assign(model=task.scores())["model"].notna().all()


def test_rows_is_the_one_lookup_and_positions_is_deprecated(task):
    lib = task.library
    ids = [*lib.clips["clip_id"].iloc[[2, 0]], "no-such-clip"]
    np.testing.assert_array_equal(lib.rows(ids, strict=False), [2, 0, -1])
    with pytest.raises(KeyError, match="no-such-clip"):
        lib.rows(ids)
    with pytest.deprecated_call(match=r"rows\(ids, strict=False\)"):
        old = lib.positions(ids)
    np.testing.assert_array_equal(old, [2, 0, -1])
