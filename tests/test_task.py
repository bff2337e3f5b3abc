"""A labelling Task over a real library and a real SQLite store; export and apply."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import va_widgets as va
from synth import make_video
from va_widgets.learner import FEEDS
from va_widgets.samples import clip_truth
from va_widgets.store import TaskMismatch


@pytest.fixture(scope="module")
def sample(tmp_path_factory, pixel_embedder):  # type: ignore[no-untyped-def]
    """A library of the sample videos (offline embedder) and its red-ball truth per clip."""
    root = tmp_path_factory.mktemp("sample")
    truth = va.make_sample_videos(root / "videos", n_videos=3, seconds_per_video=24)
    lib = va.index_videos(root / "videos", root / "cache", embedder=pixel_embedder, progress=False)
    return lib, clip_truth(lib.clips, truth, "red ball").to_numpy()


def new_task(lib, tmp_path, name="ball", **kwargs):  # type: ignore[no-untyped-def]
    return va.Task(lib, name, store=tmp_path / "labels.sqlite", annotator="ana", **kwargs)


def test_label_skip_undo_are_durable_and_retrain(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    ids = lib.clips["clip_id"].tolist()
    pos, neg = ids[int(np.argmax(truth))], ids[int(np.argmin(truth))]
    assert task.model_version == 0 and task.counts() == {
        "positives": 0,
        "negatives": 0,
        "skipped": 0,
    }
    task.label(pos, True)
    task.label(neg, False)
    assert task.model_version >= 1 and task.classifier is not None
    version = task.model_version
    other = next(i for i in ids if i not in (pos, neg))
    task.skip(other)
    task.label(ids[-1], bool(truth[-1]))
    assert task.undo() == [ids[-1]]
    assert task.model_version > version
    assert task.counts() == {"positives": 1, "negatives": 1, "skipped": 1}
    # a fresh process sees the same labels and fits the same model
    reopened = new_task(lib, tmp_path)
    assert reopened.counts() == task.counts()
    np.testing.assert_allclose(reopened.classifier.coef_, task.classifier.coef_)
    labels = reopened.labels()
    assert set(labels["clip_id"]) == {pos, neg}
    assert {"label", "annotator", "feed", "time", "model_version", "video", "start_seconds"} <= set(
        labels
    )


def test_undo_is_this_sessions_own_and_a_page_is_one_action(sample, tmp_path):
    """Two notebooks labelling one task under the same login name: each undo stays in its own
    notebook; undoing another session's action is explicit."""
    lib, _ = sample
    ids = lib.clips["clip_id"].tolist()
    first, second = new_task(lib, tmp_path), new_task(lib, tmp_path)
    assert first.annotator == second.annotator and first.session != second.session
    first.label(ids[0], True)
    second.label(ids[1], False)
    assert first.undo() == [ids[0]]
    second.refresh()
    assert second.labels()["clip_id"].tolist() == [ids[1]]
    assert first.undo() == []  # nothing of its own left
    first.label_many(ids[2:5], True, feed="top")
    assert first.undo() == ids[2:5]  # the page, whole
    assert first.undo(annotator=second.annotator) == [ids[1]]  # explicit: any session
    assert first.labels().empty
    with pytest.raises(TypeError, match="must be True or False"):
        first.label_many(ids[:2], 1)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown clip id"):
        first.label_many([ids[0], "nope"], True)
    assert first.store.history(first.name)["kind"].tolist().count("label") == 5


def test_a_failing_retrain_keeps_the_labels_and_never_makes_the_task_unopenable(sample, tmp_path):
    """An estimator that cannot be fitted: the label is on disk, the task says so and has no
    model, and the task opens again (with a warning) from what the store holds."""
    from sklearn.linear_model import LogisticRegression

    lib, _ = sample
    ids = lib.clips["clip_id"].tolist()
    broken = LogisticRegression(penalty="elasticnet", solver="lbfgs")  # invalid: fit raises
    task = va.Task(lib, "t", store=tmp_path / "labels.sqlite", estimator=broken)
    task.label(ids[0], True)
    with pytest.raises(va.RetrainError, match=r"the 2 labels are saved.*ValueError"):
        task.label(ids[1], False)
    assert task.counts() == {"positives": 1, "negatives": 1, "skipped": 0}
    assert not task.engine.has_model and np.isnan(task.scores_of(ids[:1])).all()
    with pytest.warns(RuntimeWarning, match="could not be trained"):
        again = va.Task(lib, "t", store=tmp_path / "labels.sqlite", estimator=broken)
    assert again.counts() == task.counts() and again.next("random", 2)
    healthy = va.Task(lib, "t", store=tmp_path / "labels.sqlite")
    assert healthy.engine.has_model and len(healthy.labels()) == 2


def test_counts_are_integers_never_coerced(sample, tmp_path):
    lib, _ = sample
    task = new_task(lib, tmp_path)
    for bad, error, message in [
        (2.5, TypeError, "n must be an integer, got 2.5"),
        ("3", TypeError, "n must be an integer, got '3'"),
        (True, TypeError, "n must be an integer, got True"),
        (0, ValueError, "n must be an integer from 1"),
    ]:
        with pytest.raises(error, match=message):
            task.next("random", bad)
    for bad in (0, -1, True, 2.5, "3"):
        with pytest.raises((TypeError, ValueError), match="k must be an integer"):
            lib.similar(lib.clips["clip_id"].iat[0], k=bad)


def test_feeds_never_repeat_or_return_labelled_clips(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    ids = lib.clips["clip_id"].tolist()
    for clip, y in list(zip(ids, truth, strict=True))[:12]:
        task.label(clip, bool(y))
    task.skip(ids[12])
    labelled = set(ids[:13])
    for feed in ("top", "bottom", "borderline", "random", "auto"):
        batch = task.next(feed, n=8)
        assert len(batch) == len(set(batch)) == 8, feed
        assert not labelled & set(batch), feed
    similar = task.next("similar", n=5, similar_to=ids[20])
    assert ids[20] not in similar and len(similar) == 5
    assert task.last_source == f"cosine similarity to clip {ids[20]}"
    review = task.next("review", n=5)
    assert set(review) <= set(ids[:12])
    stats = task.feed_stats()
    assert {"pulls", "mean_reward", "ucb"} <= set(stats.columns)
    assert task.last_feed in ("review",)


def test_active_learning_finds_the_concept(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    oracle = dict(zip(lib.clips["clip_id"], truth, strict=True))
    seed = lib.clips["clip_id"][truth].iloc[0]
    task.label(seed, True)
    for _ in range(6):
        for clip in task.next("auto", n=5):
            task.label(clip, bool(oracle[clip]))
    quality = task.quality()
    assert quality.ap is not None and quality.ci_low <= quality.ap <= quality.ci_high
    scores = task.scores()
    assert scores.index.tolist() == lib.clips["clip_id"].tolist()
    from sklearn.metrics import average_precision_score

    assert average_precision_score(truth, scores.to_numpy()) > truth.mean() + 0.3


def test_quality_says_when_there_are_not_enough_labels(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    task.label(lib.clips["clip_id"][truth].iloc[0], True)
    q = task.quality()
    assert q.ap is None and "needs 2 positives and 2 negatives" in q.reason
    assert q.summary.startswith("no estimate yet")
    with pytest.raises(va.VaWidgetsError, match="no classifier yet"):
        task.classifier  # noqa: B018


def test_bad_input_is_a_clear_error_and_writes_nothing(
    sample, tmp_path, tiny_clip, tmp_path_factory
):
    lib, _ = sample
    task = new_task(lib, tmp_path)
    clip = lib.clips["clip_id"].iloc[0]
    with pytest.raises(KeyError, match="no-such-clip"):
        task.label("no-such-clip", True)
    with pytest.raises(TypeError, match="must be True or False, got 1"):
        task.label(clip, 1)
    with pytest.raises(TypeError, match="'yes'"):
        task.label(clip, "yes")
    with pytest.raises(ValueError, match="unknown feed 'best'"):
        task.next("best")
    with pytest.raises(ValueError, match="non-empty"):
        va.Task(lib, "", store=tmp_path / "labels.sqlite")
    with pytest.raises(va.TextSearchUnavailable):
        task.set_query("a red ball")
    assert task.counts() == {"positives": 0, "negatives": 0, "skipped": 0}
    assert task.store.history("ball").empty
    # the same task name in the same store, but another library: refused
    other_root = tmp_path_factory.mktemp("other")
    make_video(other_root / "v.mp4", [((200, 0, 0), 2.0)])
    other = va.index_videos(other_root, other_root / "cache", embedder=tiny_clip, progress=False)
    with pytest.raises(TaskMismatch):
        va.Task(other, "ball", store=tmp_path / "labels.sqlite")


def test_query_drives_the_search_feed_and_cold_start(tmp_path, tiny_clip):
    (tmp_path / "v").mkdir()
    make_video(
        tmp_path / "v" / "a.mp4", [((200, 0, 0), 2.0), ((0, 0, 200), 2.0), ((0, 200, 0), 2.0)]
    )
    lib = va.index_videos(tmp_path / "v", tmp_path / "cache", embedder=tiny_clip, progress=False)
    task = va.Task(lib, "red", query="a red frame", store=tmp_path / "l.sqlite", annotator="bo")
    ranked = lib.search("a red frame", k=3)["clip_id"].tolist()
    assert task.next("search", n=3) == ranked
    # no model yet: "top" draws at random from the zero-shot ranking (all 3 clips here)
    assert sorted(task.next("top", n=3)) == sorted(ranked)
    assert "zero-shot" in task.last_source
    again = va.Task(lib, "red", store=tmp_path / "l.sqlite", annotator="bo")
    assert again.query == "a red frame"  # remembered by the store


def test_two_processes_label_the_same_task(sample, tmp_path):
    lib, _ = sample
    ids = lib.clips["clip_id"].tolist()
    script = (
        "import sys, va_widgets as va\n"
        "lib = va.ClipLibrary.open(sys.argv[1])\n"
        "task = va.Task(lib, 'ball', store=sys.argv[2], annotator='bea')\n"
        "for clip in sys.argv[3:]:\n"
        "    task.label(clip, True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(lib.cache), str(tmp_path / "labels.sqlite"), *ids[20:]]
    )
    task = new_task(lib, tmp_path)
    for clip in ids[:20]:
        task.label(clip, False)
    assert proc.wait(timeout=120) == 0
    final = new_task(lib, tmp_path).labels()
    assert len(final) == len(ids) == 36
    assert final.groupby("annotator").size().to_dict() == {"ana": 20, "bea": 16}


def test_export_and_apply_to_new_videos(sample, tmp_path, pixel_embedder):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    for clip, y in zip(lib.clips["clip_id"], truth, strict=True):
        task.label(clip, bool(y))
    out = task.export(tmp_path / "export" / "ball")
    labels = pd.read_csv(out["csv"])
    assert len(labels) == len(lib) and {"clip_id", "label", "video", "start_seconds"} <= set(labels)
    pd.testing.assert_frame_equal(
        pd.read_parquet(out["parquet"]).drop(columns="time"), task.labels().drop(columns="time")
    )
    clf = va.load_classifier(out["classifier"])
    assert clf.task == "ball" and clf.embedder_spec == lib.embedder_spec
    np.testing.assert_allclose(clf.score_library(lib)["score"], task.scores().to_numpy(), atol=1e-5)
    # a new video, indexed with the classifier's own embedder and clip rule
    new = tmp_path / "new"
    truth_new = va.make_sample_videos(new, n_videos=1, seconds_per_video=12, seed=7)
    scored = clf.score_videos(new, progress=False)
    assert len(scored) == 6 and scored["score"].between(0, 1).all()
    figure = clf.plot_timeline(scored)
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert len(figure.axes) == 1 and ticks == ["sample_00.mp4"]
    is_ball = clip_truth(scored, truth_new).to_numpy()
    if is_ball.any() and (~is_ball).any():
        assert scored["score"][is_ball].mean() > scored["score"][~is_ball].mean()


def test_exported_classifier_names_the_estimate_and_old_files_still_load(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    oracle = dict(zip(lib.clips["clip_id"], truth, strict=True))
    for _ in range(3):
        for clip in task.next("random", n=6):
            task.label(clip, bool(oracle[clip]))
    quality = task.quality()
    assert quality.ap is not None
    clf = va.load_classifier(task.export(tmp_path / "x")["classifier"])
    assert "cv_ap" not in clf.info
    assert clf.info["estimated_ap"] == pytest.approx(quality.ap)
    assert clf.info["estimated_ap_low"] <= quality.ap <= clf.info["estimated_ap_high"]
    # a file written before the rename keeps its cross-validated AP under its own name
    old = va.VideoClassifier(
        clf.estimator,
        clf.embedder_spec,
        clf.clip_rule,
        "ball",
        info={"cv_ap": 0.9, "cv_ap_low": 0.8, "cv_ap_high": 0.95},
    )
    loaded = va.load_classifier(old.save(tmp_path / "old.skops"))
    assert loaded.info == {"cv_ap": 0.9, "cv_ap_low": 0.8, "cv_ap_high": 0.95}


def test_clips_queued_elsewhere_are_left_out_of_the_draw(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    ids = lib.clips["clip_id"].tolist()
    for clip, y in list(zip(ids, truth, strict=True))[:12]:
        task.label(clip, bool(y))
    queued = ids[12:24]
    for feed in ("random", "borderline", "auto", "similar"):
        batch = task.next(feed, n=8, exclude=queued, similar_to=ids[30])
        assert len(batch) == 8 and not set(queued) & set(batch), feed
    # the draw's probabilities are over the pool without the queued clips
    pool = len(ids) - 12 - len(queued)
    first = task.next("random", n=1, exclude=queued)
    assert task.engine.last_propensities[0] == pytest.approx(1 / pool)
    assert task._drawn[first[0]] == pytest.approx(1 / pool)
    review = task.next("review", n=20, exclude=ids[:4])
    assert review and set(review) <= set(ids[4:12])
    with pytest.raises(KeyError, match="unknown clip id"):
        task.next("random", n=2, exclude=["no-such-clip"])


def test_load_classifier_refuses_foreign_files(tmp_path):
    import skops.io as sio

    (tmp_path / "text.skops").write_text("not a classifier")
    with pytest.raises(va.VaWidgetsError, match="not a va_widgets classifier"):
        va.load_classifier(tmp_path / "text.skops")
    (tmp_path / "other.skops").write_bytes(sio.dumps({"some": "dict"}))
    with pytest.raises(va.VaWidgetsError, match="not a va_widgets classifier"):
        va.load_classifier(tmp_path / "other.skops")
    from fractions import Fraction

    untrusted = {"format": "va_widgets.classifier", "estimator": Fraction(1, 3)}
    (tmp_path / "odd.skops").write_bytes(sio.dumps(untrusted))
    with pytest.raises(va.VaWidgetsError, match=r"fractions\.Fraction"):
        va.load_classifier(tmp_path / "odd.skops")
    (tmp_path / "partial.skops").write_bytes(sio.dumps({"format": "va_widgets.classifier"}))
    with pytest.raises(va.VaWidgetsError, match="incomplete"):
        va.load_classifier(tmp_path / "partial.skops")
    with pytest.raises(FileNotFoundError):
        va.load_classifier(tmp_path / "missing.skops")


def test_a_classifier_file_with_absurd_sizes_is_refused_before_use(sample, tmp_path):
    """A .skops file edited to ask for 10**9 frames per clip, a model of another width, or a
    model config of absurd size: a clear error naming the file, nothing allocated."""
    import skops.io as sio

    from va_widgets.classifier import TRUSTED_TYPES
    from va_widgets.embedders import EmbedderError, embedder_from_spec

    lib, truth = sample
    task = new_task(lib, tmp_path)
    for clip, y in list(zip(lib.clips["clip_id"], truth, strict=True))[:10]:
        task.label(clip, bool(y))
    path = task.export(tmp_path / "ball")["classifier"]
    payload = sio.load(path, trusted=TRUSTED_TYPES)
    edits = {
        "frames": lambda p: p["clip_rule"].update(frames_per_clip=10**9),
        "width": lambda p: p.update(embedder_spec={**p["embedder_spec"], "dim": 7}),
    }
    for name, edit in edits.items():
        bad = {**payload, "clip_rule": dict(payload["clip_rule"])}
        edit(bad)
        (tmp_path / f"{name}.skops").write_bytes(sio.dumps(bad))
        with pytest.raises(va.VaWidgetsError, match=f"{name}.skops"):
            va.load_classifier(tmp_path / f"{name}.skops")
    huge = {
        "kind": "open_clip", "model": "va-huge", "weights": "random", "pretrained": None,
        "fingerprint": "", "dim": 32, "image_size": 64, "seed": 0,
        "model_config": {"embed_dim": 32, "vision_cfg": {"width": 10**6, "layers": 10**3,
                         "image_size": 64, "patch_size": 16},
                         "text_cfg": {"width": 32, "layers": 1, "heads": 1}},
    }  # fmt: skip
    with pytest.raises(EmbedderError, match=r"absurd|parameters"):
        embedder_from_spec(huge)


def test_simulate_reproduces_the_paper_protocol(sample):
    lib, truth = sample
    result = va.simulate(lib, truth, budget=20, policy="auto", checkpoints=(10, 20), batch_size=5)
    assert result["n_labels"].tolist() == [10, 20]
    assert result["ap"].between(0, 1).all()
    series = pd.Series(truth, index=lib.clips["clip_id"])
    same = va.simulate(lib, series, budget=20, policy="auto", checkpoints=(10, 20), batch_size=5)
    pd.testing.assert_frame_equal(result, same)
    with pytest.raises(ValueError, match="one entry per clip"):
        va.simulate(lib, truth[:-1], budget=10)


def test_empty_library_is_a_clear_error(tmp_path, pixel_embedder):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "broken.mp4").write_text("not a video")
    with pytest.warns(UserWarning):
        lib = va.index_videos(
            tmp_path / "v", tmp_path / "cache", embedder=pixel_embedder, progress=False
        )
    with pytest.raises(va.VaWidgetsError, match="has no clips"):
        va.Task(lib, "anything", store=tmp_path / "l.sqlite")


def test_modal_teach_works_with_the_pinned_scikit_learn():
    import sklearn
    from modAL.models import ActiveLearner
    from sklearn.linear_model import LogisticRegression

    assert tuple(int(x) for x in sklearn.__version__.split(".")[:2]) < (1, 8)
    x = np.random.default_rng(0).normal(size=(20, 4))
    y = (x[:, 0] > 0).astype(int)
    learner = ActiveLearner(LogisticRegression(), X_training=x[:10], y_training=y[:10])
    learner.teach(x[10:], y[10:])
    assert learner.X_training.shape == (20, 4)


def test_export_path_parent_is_created(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    task.label(lib.clips["clip_id"][truth].iloc[0], True)
    task.label(lib.clips["clip_id"][~truth].iloc[0], False)
    out = task.export(tmp_path / "deep" / "er" / "x")
    assert all(Path(p).exists() for p in out.values())


def test_drawn_clips_carry_their_propensity_into_the_store(sample, tmp_path):
    lib, truth = sample
    task = new_task(lib, tmp_path)
    oracle = dict(zip(lib.clips["clip_id"], truth, strict=True))
    hand = lib.clips["clip_id"][truth].iloc[0]
    task.label(hand, True)  # not served by a sampled feed: a known label, never a sample
    drawn = task.next("random", n=6)
    expected = dict(zip(drawn, task.engine.last_propensities.tolist(), strict=True))
    for clip in drawn:
        task.label(clip, bool(oracle[clip]))
    current = task.store.current(task.name).set_index("clip_id")
    assert np.isnan(current.loc[hand, "propensity"])
    for clip, p in expected.items():
        assert current.loc[clip, "propensity"] == pytest.approx(p) and 0 < p <= 1
    assert task.quality().n_sampled == 6
    # a fresh Task on the same store reads the propensities back
    again = va.Task(lib, task.name, store=task.store, annotator="other")
    assert again.quality().n_sampled == 6


def test_simulate_accepts_a_plain_feature_array():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.2
    x = rng.standard_normal((400, 6)).astype(np.float32)
    x[:, 0] += 3 * y
    df = va.simulate(x, y, budget=40, policy="auto", checkpoints=(20, 40), batch_size=10)
    assert df.n_labels.tolist() == [20, 40] and df.ap.between(0, 1).all()
    assert {"estimate", "estimate_low", "estimate_high"} <= set(df.columns)
    # checkpoints beyond the budget are never reached; the session's end always is
    end = va.simulate(x, y, budget=30, policy="random", checkpoints=(25, 50), batch_size=10)
    assert end.n_labels.tolist() == [25, 30]
    with pytest.raises(ValueError, match="oracle_labels for a feature array must be a bool"):
        va.simulate(x, y.astype(int), budget=10)
    with pytest.raises(ValueError, match="feature array must be numeric"):
        va.simulate(x[:, 0], y, budget=10)


def _bad_simulate_arguments():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    y = rng.random(120) < 0.3
    x = rng.standard_normal((120, 5))
    holed = x.copy()
    holed[7, 2] = np.nan
    endless = x.copy()
    endless[9, 0] = np.inf
    ok = dict(budget=20, checkpoints=(10, 20), batch_size=5)
    return [
        ((x.tolist(), y), ok, "source must be a Task, a ClipLibrary or a numpy array"),
        ((x, y), dict(ok, budget=2.5), "budget must be an integer, got 2.5"),
        ((holed, y), ok, r"features have 1 NaN or infinite value\(s\) \(first in row 7\)"),
        ((endless, y), ok, r"features have 1 NaN or infinite value\(s\) \(first in row 9\)"),
        ((x, y), dict(ok, budget=0), "budget must be an integer >= 1, got 0"),
        ((x, y), dict(ok, budget=-5), "budget must be an integer >= 1, got -5"),
        ((x, y), dict(ok, batch_size=0), "batch_size must be an integer >= 1, got 0"),
        ((x, y), dict(ok, policy=[]), "policy must be a feed, a non-empty list of feeds"),
        ((x, y), dict(ok, policy="nope"), "unknown feed 'nope'"),
        ((x, y), dict(ok, checkpoints=("a",)), "checkpoints must be an integer, got 'a'"),
        ((x, y), dict(ok, checkpoints=(2.5,)), "checkpoints must be an integer, got 2.5"),
        ((x, y), dict(ok, checkpoints=(0, 10)), "checkpoints must be an integer >= 1, got 0"),
        ((x, y), dict(ok, checkpoints=25), "checkpoints must be label counts"),
        ((x, y), dict(ok, eval_fraction=1.5), "eval_fraction must lie strictly between 0 and 1"),
        ((x, y), dict(ok, prior_scores=np.full(120, np.nan)), "prior_scores have 120 NaN"),
    ]


@pytest.mark.parametrize(("args", "kwargs", "message"), _bad_simulate_arguments())
def test_simulate_names_a_bad_argument_and_what_to_do(args, kwargs, message):  # type: ignore[no-untyped-def]
    with pytest.raises((TypeError, ValueError), match=message):
        va.simulate(*args, **kwargs)


def label_auto_batches(task, oracle, batches):  # type: ignore[no-untyped-def]
    for _ in range(batches):
        for clip in task.next("auto", n=4):
            task.label(clip, bool(oracle[clip]))


def test_a_restarted_task_continues_its_feed_model_version_and_auto_rewards(sample, tmp_path):
    lib, truth = sample
    oracle = dict(zip(lib.clips["clip_id"], truth, strict=True))
    task = new_task(lib, tmp_path)
    assert task.feed == "auto"
    task.label(lib.clips["clip_id"][truth].iloc[0], True)
    label_auto_batches(task, oracle, 5)
    task.feed = "borderline"
    stats = task.feed_stats()
    assert stats["pulls"].sum() >= 3  # the auto feed learned something worth keeping
    version = task.model_version

    restarted = new_task(lib, tmp_path)  # a new kernel: nothing in memory
    assert restarted.model_version == version
    assert restarted.feed == "borderline"
    pd.testing.assert_frame_equal(restarted.feed_stats(), stats)
    # next() continues with the saved feed, and versions keep increasing after a restart
    assert restarted.next(n=2) and restarted.last_feed == "borderline"
    restarted.label(restarted.next(n=1)[0], False)
    assert restarted.model_version > version


def test_the_version_continues_from_a_store_that_saved_no_state(sample, tmp_path):
    lib, _ = sample
    task = new_task(lib, tmp_path)
    ids = lib.clips["clip_id"].tolist()
    for i in range(4):
        task.label(ids[i], bool(i % 2))
    version = task.model_version
    with sqlite3.connect(tmp_path / "labels.sqlite") as conn:  # as an older va_widgets left it
        conn.execute("DELETE FROM task_state")
    reopened = new_task(lib, tmp_path)
    assert reopened.model_version == version and reopened.feed == "auto"


@pytest.mark.parametrize(
    "state",
    [
        "not json",
        "[1, 2]",
        '{"feed": "../../etc", "version": -3}',
        '{"version": 1e300, "rewards": {"borderline": [NaN]}}',
        '{"rewards": {"borderline": [0.1], "nonsense": [0.2]}, "version": true}',
        '{"rewards": {"random": "' + "x" * 2_000_000 + '"}}',
        "[" * 100_000,
    ],
)
def test_a_tampered_saved_state_is_ignored_with_a_warning_and_labels_are_kept(
    sample, tmp_path, state
):
    lib, _ = sample
    task = new_task(lib, tmp_path)
    ids = lib.clips["clip_id"].tolist()
    task.label(ids[0], True)
    task.label(ids[1], False)
    task.feed = "random"
    with sqlite3.connect(tmp_path / "labels.sqlite") as conn:
        conn.execute("UPDATE task_state SET state = ?", (state,))
    with pytest.warns(RuntimeWarning, match="(saved state|saved .*not valid)"):
        reopened = new_task(lib, tmp_path)
    assert reopened.counts() == task.counts()
    assert reopened.feed in FEEDS and reopened.model_version >= 1
    assert reopened.next(n=2)
