"""Tests of the active-learning engine with real scikit-learn and modAL (no mocks)."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from va_widgets.learner import (
    ARMS,
    ActiveLearningEngine,
    Quality,
    average_precision,
    default_estimator,
    learning_curve,
    simulate,
)
from va_widgets.learner import quality as Q


def blobs(n=400, d=16, sep=4.0, pos_rate=0.25, seed=0, noise=1.0):
    """Two Gaussian blobs: positives around +sep/2 on axis 0, negatives around -sep/2."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < pos_rate
    x = rng.standard_normal((n, d)).astype(np.float32) * noise
    x[:, 0] += np.where(y, sep / 2, -sep / 2)
    return x, y


def some_labels(y, n_pos, n_neg, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.choice(np.flatnonzero(y), n_pos, replace=False)
    neg = rng.choice(np.flatnonzero(~y), n_neg, replace=False)
    return {int(r): bool(y[r]) for r in np.r_[pos, neg]}


def mask_of(n, rows):
    m = np.zeros(n, dtype=bool)
    m[list(rows)] = True
    return m


# ---------------------------------------------------------------- modAL under the pin
def test_modal_teach_works_under_pinned_scikit_learn():
    from modAL.models import ActiveLearner
    from modAL.uncertainty import uncertainty_sampling

    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    assert (major, minor) < (1, 8), "modAL 0.4.2.1 breaks on scikit-learn >= 1.8 (issue #196)"
    x, y = blobs(60)
    learner = ActiveLearner(
        LogisticRegression(), uncertainty_sampling, X_training=x[:10], y_training=y[:10].astype(int)
    )
    with pytest.warns(FutureWarning, match="force_all_finite"):
        learner.teach(x[10:20], y[10:20].astype(int))
    assert learner.X_training.shape == (20, x.shape[1])
    idx, _ = learner.query(x, n_instances=3)
    assert len(idx) == 3


def test_engine_does_not_leak_modal_warnings():
    x, y = blobs(80)
    engine = ActiveLearningEngine(x)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.update(some_labels(y, 3, 3))
        engine.update({**some_labels(y, 3, 3), **some_labels(y, 2, 2, seed=1)})


# ---------------------------------------------------------------- model and scores
def test_scores_equal_predict_proba_float16():
    x, y = blobs(500, d=32, sep=1.0)
    x16 = x.astype(np.float16)
    engine = ActiveLearningEngine(x16, float32_copy_mb=0)  # the chunked float16 path
    engine.update(some_labels(y, 10, 30))
    s = engine.scores()
    assert s.dtype == np.float32 and s.shape == (500,)
    ref = engine.estimator.predict_proba(x16.astype(np.float32))[:, 1]
    np.testing.assert_allclose(s, ref, atol=1e-5)
    assert (s >= 0).all() and (s <= 1).all()
    # the float32-copy path gives the same scores
    other = ActiveLearningEngine(x16)
    other.update(some_labels(y, 10, 30))
    np.testing.assert_allclose(other.scores(), ref, atol=1e-5)


def test_fits_standardised_features_and_exports_a_raw_feature_estimator():
    # unit-norm rows with tiny coordinates (like CLIP): raw C=1 is badly underfit
    x, y = blobs(400, d=64, sep=1.5)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x16 = x.astype(np.float16)
    labels = some_labels(y, 10, 30)
    engine = ActiveLearningEngine(x16, float32_copy_mb=0)
    engine.update(labels)
    est = engine.estimator
    assert type(est) is LogisticRegression and est.n_features_in_ == 64
    assert list(est.classes_) == [0, 1] and est.get_params() == default_estimator().get_params()
    raw = x16.astype(np.float32)
    np.testing.assert_allclose(est.predict_proba(raw)[:, 1], engine.scores(), atol=1e-5)
    np.testing.assert_allclose(engine.predict_proba(raw), engine.scores(), atol=1e-6)
    # the internal model is the same fit on (x - mu) / sigma over all rows
    rows = sorted(labels)
    z = (raw - raw.mean(0)) / raw.std(0)
    ref = default_estimator().fit(z[rows], [int(labels[r]) for r in rows])
    np.testing.assert_allclose(engine.scores(), ref.predict_proba(z)[:, 1], atol=1e-4)
    # standardised, the model separates; fitted on the raw unit-norm rows it stays near 0.5
    s = engine.scores()
    gap = s[y].mean() - s[~y].mean()
    assert gap > 0.2
    flat = ActiveLearningEngine(x16, standardize=False)
    flat.update(labels)
    assert flat.scores()[y].mean() - flat.scores()[~y].mean() < gap / 3
    np.testing.assert_allclose(flat.estimator.predict_proba(raw)[:, 1], flat.scores(), atol=1e-5)
    # a snapshot: later updates do not change an estimator already handed out
    coef = est.coef_.copy()
    engine.update({**labels, **some_labels(y, 5, 5, seed=9)})
    np.testing.assert_array_equal(est.coef_, coef)
    assert engine.estimator is not est


def test_constant_columns_are_guarded():
    x, y = blobs(200, d=8)
    x[:, 3] = 0.25  # sigma == 0
    x[:, 5] = 0.0
    engine = ActiveLearningEngine(x)
    engine.update(some_labels(y, 5, 5))
    s = engine.scores()
    assert np.isfinite(s).all()
    est = engine.estimator
    assert np.isfinite(est.coef_).all() and np.isfinite(est.intercept_).all()
    np.testing.assert_allclose(est.predict_proba(x)[:, 1], s, atol=1e-5)


def test_nonlinear_estimator_runs_on_standardised_features():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    x, y = blobs(300, d=8)
    x = x * 0.01 + 5.0  # far from standardised
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    engine = ActiveLearningEngine(x, estimator=forest)
    labels = some_labels(y, 8, 8)
    engine.update(labels)
    est = engine.estimator
    assert isinstance(est, Pipeline)
    np.testing.assert_allclose(est.predict_proba(x)[:, 1], engine.scores(), atol=1e-6)
    np.testing.assert_allclose(est[0].mean_, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(est[0].scale_, x.std(0), rtol=1e-3)
    assert engine.honest_scores() is not None  # out-of-fold fits of the forest work too
    assert not hasattr(forest, "estimators_")  # the template is cloned, never fitted


def test_scores_cached_per_version():
    x, y = blobs(200)
    engine = ActiveLearningEngine(x)
    labels = some_labels(y, 4, 4)
    engine.update(labels)
    assert engine.scores() is engine.scores()
    first = engine.scores().copy()
    labels.update(some_labels(y, 3, 3, seed=5))
    engine.update(labels)
    assert not np.array_equal(first, engine.scores())


def test_model_version_increments_and_undo():
    x, y = blobs(200)
    engine = ActiveLearningEngine(x)
    assert engine.version == 0 and not engine.has_model and engine.scores() is None
    pos = int(np.flatnonzero(y)[0])
    negs = [int(r) for r in np.flatnonzero(~y)[:3]]
    assert engine.update({pos: True}) is False  # one class: no model
    assert not engine.has_model and engine.version == 0 and engine.estimator is None
    assert engine.update({pos: True, negs[0]: False}) is True
    assert engine.has_model and engine.version == 1
    assert engine.update({pos: True, negs[0]: False}) is False  # nothing changed
    assert engine.version == 1
    engine.update({pos: True, negs[0]: False, negs[1]: False})  # addition: modAL teach
    assert engine.version == 2
    engine.update({pos: True, negs[1]: False})  # undo: refit from the full set
    assert engine.version == 3
    z = (x - x.mean(0)) / x.std(0)  # fitted on features standardised over ALL rows
    ref = default_estimator().fit(z[[pos, negs[1]]], [1, 0])
    np.testing.assert_allclose(engine.scores(), ref.predict_proba(z)[:, 1], atol=1e-5)
    engine.update({pos: True})  # undo down to one class: the model goes away
    assert not engine.has_model and engine.scores() is None and engine.version == 4


def test_teach_path_matches_full_refit():
    x, y = blobs(300)
    a, b = ActiveLearningEngine(x), ActiveLearningEngine(x)
    first, more = some_labels(y, 5, 5), some_labels(y, 5, 10, seed=3)
    a.update(first)
    a.update({**first, **more})  # teach
    b.update({**first, **more})  # fit
    np.testing.assert_allclose(a.scores(), b.scores(), atol=1e-4)


def test_labels_outside_matrix_rejected():
    engine = ActiveLearningEngine(np.zeros((5, 2), dtype=np.float32))
    with pytest.raises(IndexError, match="outside"):
        engine.update({7: True})


# ---------------------------------------------------------------- feed contracts
FEEDS_WITH_MODEL = ["search", "top", "bottom", "borderline", "random", "similar", "auto"]


@pytest.mark.parametrize("feed", FEEDS_WITH_MODEL)
def test_feed_contract(feed):
    x, y = blobs(300)
    prior = x[:, 0] + np.random.default_rng(1).standard_normal(300).astype(np.float32)
    engine = ActiveLearningEngine(x.astype(np.float16), prior)
    labels = some_labels(y, 5, 10)
    engine.update(labels)
    skipped = [r for r in range(300) if r not in labels][:20]
    exclude = mask_of(300, [*labels, *skipped])
    rng = np.random.default_rng(0)
    kw = {"similar_to": int(np.flatnonzero(y)[0])} if feed == "similar" else {}
    rows = engine.next(feed, 12, exclude=exclude, rng=rng, **kw)
    assert rows.dtype == np.int64 and len(rows) == 12
    assert len(set(rows.tolist())) == 12
    assert not exclude[rows].any()
    if feed == "similar":
        assert kw["similar_to"] not in rows
    # the pool running out: fewer rows, still none excluded, no duplicates
    free = [3, 77, 150]
    exclude_most = ~mask_of(300, free)
    rows = engine.next(feed, 10, exclude=exclude_most, rng=rng, **kw)
    assert sorted(rows.tolist()) == [r for r in free if r != kw.get("similar_to")]
    assert len(engine.next(feed, 0, exclude=exclude, rng=rng, **kw)) == 0


def test_hand_picked_feeds_rank_and_sampled_feeds_draw_with_propensities():
    x, y = blobs(300)
    prior = np.random.default_rng(2).standard_normal(300).astype(np.float32)
    engine = ActiveLearningEngine(x, prior)
    labels = some_labels(y, 6, 12)
    engine.update(labels)
    ex = mask_of(300, labels)
    s = np.where(ex, np.nan, engine.scores())
    search = engine.next("search", 5, exclude=ex)
    assert prior[search[0]] == np.max(np.where(ex, -np.inf, prior))
    assert np.isnan(engine.last_propensities).all()  # hand-picked: no propensity
    sim = engine.next("similar", 3, exclude=ex, similar_to=0)
    cos = x @ x[0] / (np.linalg.norm(x, axis=1) * np.linalg.norm(x[0]))
    cos[ex] = -np.inf
    cos[0] = -np.inf
    np.testing.assert_array_equal(sim, np.argsort(-cos)[:3])
    assert np.isnan(engine.last_propensities).all()
    rng = np.random.default_rng(0)
    means = {}
    for feed in ("top", "bottom", "borderline", "random"):
        drawn = [engine.next(feed, 5, exclude=ex, rng=rng) for _ in range(40)]
        props = engine.last_propensities
        assert props.shape == (5,) and ((props > 0) & (props <= 1)).all()
        means[feed] = np.nanmean(s[np.concatenate(drawn)])
    assert means["top"] > means["random"] > means["bottom"]
    uncertain = np.abs(s - 0.5)
    drawn = np.concatenate([engine.next("borderline", 5, exclude=ex, rng=rng) for _ in range(40)])
    assert np.mean(uncertain[drawn]) < np.nanmean(uncertain) / 2


def test_borderline_ranks_like_modal():
    from modAL.uncertainty import margin_sampling, uncertainty_sampling

    x, y = blobs(400, sep=1.5)
    engine = ActiveLearningEngine(x)
    labels = some_labels(y, 8, 20)
    engine.update(labels)
    pool = np.array([r for r in range(400) if r not in labels])
    criterion, _ = engine._criterion("borderline")
    ours = pool[np.argsort(-criterion[pool], kind="stable")[:7]]
    for strategy in (uncertainty_sampling, margin_sampling):
        idx, _ = strategy(engine.estimator, x[pool], n_instances=7)
        assert set(pool[idx].tolist()) == set(ours.tolist())


def test_unknown_feed_and_missing_similar_to():
    engine = ActiveLearningEngine(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="unknown feed"):
        engine.next("best", 2)
    with pytest.raises(ValueError, match="similar_to"):
        engine.next("similar", 2)


# ---------------------------------------------------------------- cold start
def test_cold_start_without_labels_or_prior_is_random():
    x, _ = blobs(100)
    engine = ActiveLearningEngine(x)
    for feed in ("search", "top", "bottom", "borderline", "auto"):
        rows = engine.next(feed, 8, rng=np.random.default_rng(0))
        assert len(set(rows.tolist())) == 8
        assert not engine.has_model
    assert "random" in engine.last_source
    assert engine.last_feed == "random"  # auto's random clips are named so, not "search"
    assert engine.quality().ap is None


def test_cold_start_with_prior_ranks_the_prior():
    x, _ = blobs(100)
    prior = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    engine = ActiveLearningEngine(x, prior)
    order = np.argsort(-prior)
    for feed in ("search", "auto"):  # the zero-shot search: hand-picked, in order
        np.testing.assert_array_equal(engine.next(feed, 5), order[:5])
        assert np.isnan(engine.last_propensities).all() and engine.last_feed == "search"
    rank = np.empty(100, dtype=int)
    rank[order] = np.arange(100)
    rng = np.random.default_rng(0)
    for feed, best in (("top", rank), ("borderline", rank), ("bottom", 99 - rank)):
        drawn = np.concatenate([engine.next(feed, 5, rng=rng) for _ in range(30)])
        assert np.median(best[drawn]) < 25  # mostly the prior's best ranks, at random
        assert np.isfinite(engine.last_propensities).all()
    assert "no model" in engine.last_source


def test_one_class_only_searches_by_example():
    x, y = blobs(200)
    pos = [int(r) for r in np.flatnonzero(y)[:3]]
    engine = ActiveLearningEngine(x)
    engine.update(dict.fromkeys(pos, True))
    assert not engine.has_model and engine.scores() is None
    rows = np.concatenate([engine.next("top", 10) for _ in range(5)])
    assert not set(rows.tolist()) & set(pos)
    assert y[rows].mean() > 0.7  # mostly neighbours of the positives: positives
    assert "similarity to 3 labelled positive" in engine.last_source
    # the auto feed asks for a negative (random) once it has positives and no negatives
    engine.next("auto", 5)
    assert engine.last_feed == "random"
    stats = engine.feed_stats()
    assert stats.attrs["choice"] == "random" and "negative" in stats.attrs["reason"]
    assert engine.review().tolist() == sorted(pos)  # no model: labelled rows, in order


# ---------------------------------------------------------------- review and quality
def test_review_ranks_a_flipped_label_first():
    x, y = blobs(300, sep=8.0)
    labels = some_labels(y, 15, 25)
    flipped = next(iter(labels))
    labels[flipped] = not labels[flipped]
    engine = ActiveLearningEngine(x)
    engine.update(labels)
    rows = engine.next("review", 100)
    assert rows[0] == flipped
    assert sorted(rows.tolist()) == sorted(labels)  # only labelled rows, each once


def test_quality_needs_sampled_labels_and_both_classes():
    x, y = blobs(400, sep=1.5)
    engine = ActiveLearningEngine(x)
    hand = some_labels(y, 10, 20)
    engine.update(hand)  # hand-picked labels only (no propensities): no estimate
    q = engine.quality()
    assert isinstance(q, Quality) and q.ap is None and q.ci_low is None
    assert engine.quality_sample() is None
    assert "sampled feed" in q.reason and q.n_sampled == 0 and (q.n_pos, q.n_neg) == (10, 20)
    assert q.summary.startswith("no estimate yet: needs")
    labels, props = dict(hand), {}
    rng = np.random.default_rng(0)
    for _ in range(8):
        rows = engine.next("random", 5, rng=rng)
        for r, p in zip(rows.tolist(), engine.last_propensities.tolist(), strict=True):
            labels[r], props[r] = bool(y[r]), p
        engine.update(labels, props)
    q = engine.quality()
    assert q.n_sampled == 40 and q.model_version == engine.version
    assert q.ci_low <= q.ap <= q.ci_high and 0 <= q.ci_low < q.ci_high <= 1
    assert q.summary.startswith(f"estimated AP {q.ap:.2f}") and "from 40 random checks" in q.summary
    for part in (q.precision, q.recall, q.prevalence):
        assert part is not None and part.low <= part.value <= part.high
    assert abs(q.prevalence.value - y.mean()) < 0.15
    assert engine.quality() is q  # cached until the labels change
    sample = engine.quality_sample()  # what the estimate was computed from
    assert sample is not None and len(sample.rows) == len(labels) and sample.sampled.sum() == 40
    assert Q.estimate_all(sample)["ap"] == Q.Interval(q.ap, q.ci_low, q.ci_high)


@pytest.mark.parametrize(("points", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError)])
def test_learning_curve_names_a_bad_number_of_points(points, error):
    x, _ = blobs(60)
    with pytest.raises(error, match="points must be an integer"):
        learning_curve(x, [0, 1, 2], [True, False, True], points=points)


def test_propensities_are_checked():
    x, _ = blobs(50)
    engine = ActiveLearningEngine(x)
    with pytest.raises(ValueError, match="propensity of row 3"):
        engine.update({3: True, 4: False}, {3: 1.5})


def test_average_precision_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(50) < 0.3
        s = rng.integers(0, 5, 50).astype(float)  # many ties
        if y.any():
            assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


# ---------------------------------------------------------------- auto feed
def label_auto_batches(engine, y, labels, props, batches, n=5, keep=None):
    for _ in range(batches):
        rows = engine.next("auto", n)
        got = list(zip(rows.tolist(), engine.last_propensities.tolist(), strict=True))[:keep]
        for r, p in got:
            labels[r], props[r] = bool(y[r]), p
        engine.update(labels, props)


def test_auto_feed_mixes_every_arm_with_a_floor_and_credits_the_estimate_gain():
    x, y = blobs(400, sep=2.0)
    engine = ActiveLearningEngine(x, x[:, 0].copy(), arm_floor=0.1)
    labels, props = some_labels(y, 4, 8), {}
    engine.update(labels)
    stats = engine.feed_stats()
    assert list(stats.index) == list(ARMS) and (stats.pulls == 0).all()
    assert stats.attrs["choice"] == "borderline" and stats.probability.sum() == pytest.approx(1)
    assert (stats.probability >= 0.1 - 1e-9).all()
    rows = engine.next("auto", 8)
    assert engine.last_feed == "borderline" and "bandit" in engine.last_source
    assert set(engine.auto_arms) == set(rows.tolist())
    assert np.isfinite(engine.last_propensities).all()
    label_auto_batches(engine, y, labels, props, 12)
    stats = engine.feed_stats()
    assert stats.pulls.sum() == len(engine.reward_log) >= 11
    assert np.isfinite(stats.ucb).all() and stats.chosen.sum() == 1
    assert (stats.probability >= 0.1 - 1e-9).all()  # the random arm never loses its share
    assert "UCB" in stats.attrs["reason"] and "estimated AP" in stats.attrs["reward"]
    # skipped rows: the batch is credited when the next one starts
    label_auto_batches(engine, y, labels, props, 3, keep=3)
    assert engine.feed_stats().pulls.sum() >= stats.pulls.sum() + 2


def test_auto_feed_without_prior_has_no_search_arm():
    x, y = blobs(200)
    engine = ActiveLearningEngine(x)
    engine.update(some_labels(y, 3, 3))
    assert "search" not in engine.feed_stats().index


# ---------------------------------------------------------------- simulation
@pytest.mark.parametrize("policy", ["random", "auto", ("search", "random"), ARMS])
def test_simulate_tiny_problem(policy):
    x, y = blobs(300, sep=3.0)
    xe, ye = blobs(200, sep=3.0, seed=9)
    df = simulate(
        x,
        y,
        budget=40,
        policy=policy,
        prior_scores=x[:, 0].copy(),
        eval_features=xe,
        eval_labels=ye,
        eval_prior_scores=xe[:, 0].copy(),
        checkpoints=(10, 25, 40),
        batch_size=6,
        seed=1,
    )
    assert df.n_labels.tolist() == [10, 25, 40]
    assert df.ap.between(0, 1).all()
    assert sum(df.feeds.iloc[-1].values()) == 40
    assert {"estimate", "estimate_low", "estimate_high", "collection_ap"} <= set(df.columns)


def test_simulate_reports_the_estimate_the_user_would_have_seen():
    x, y = blobs(300, sep=3.0)
    df = simulate(x, y, budget=40, policy="borderline", checkpoints=(40,), batch_size=10)
    assert df.n_labels.tolist() == [40] and np.isnan(df.ap.iloc[0])  # no held-out split
    row = df.iloc[0]
    assert row.estimate_low <= row.estimate <= row.estimate_high and row.n_sampled == 40
    assert 0 < row.collection_ap <= 1
    with pytest.raises(ValueError, match="one entry per feature row"):
        simulate(x, y[:-1], budget=10, policy="random")
