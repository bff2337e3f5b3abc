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
    simulate,
)


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
    assert engine.quality(n_boot=0).ap is not None
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


def test_feed_orders():
    x, y = blobs(300)
    prior = np.random.default_rng(2).standard_normal(300).astype(np.float32)
    engine = ActiveLearningEngine(x, prior)
    labels = some_labels(y, 6, 12)
    engine.update(labels)
    ex = mask_of(300, labels)
    s = np.where(ex, np.nan, engine.scores())
    top = engine.next("top", 5, exclude=ex)
    assert np.all(np.diff(s[top]) <= 0) and s[top[0]] == np.nanmax(s)
    bottom = engine.next("bottom", 5, exclude=ex)
    assert s[bottom[0]] == np.nanmin(s)
    search = engine.next("search", 5, exclude=ex)
    assert prior[search[0]] == np.max(np.where(ex, -np.inf, prior))
    sim = engine.next("similar", 3, exclude=ex, similar_to=0)
    cos = x @ x[0] / (np.linalg.norm(x, axis=1) * np.linalg.norm(x[0]))
    cos[ex] = -np.inf
    cos[0] = -np.inf
    np.testing.assert_array_equal(sim, np.argsort(-cos)[:3])


def test_borderline_picks_the_most_uncertain_like_modal():
    from modAL.uncertainty import margin_sampling, uncertainty_sampling

    x, y = blobs(400, sep=1.5)
    engine = ActiveLearningEngine(x)
    labels = some_labels(y, 8, 20)
    engine.update(labels)
    rows = engine.next("borderline", 7)
    pool = np.array([r for r in range(400) if r not in labels])
    for strategy in (uncertainty_sampling, margin_sampling):
        idx, _ = strategy(engine.estimator, x[pool], n_instances=7)
        assert set(pool[idx].tolist()) == set(rows.tolist())
    p = engine.scores()
    assert abs(p[rows[0]] - 0.5) == np.min(np.abs(p[pool] - 0.5))


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
    assert engine.quality().ap is None


def test_cold_start_with_prior_ranks_the_prior():
    x, _ = blobs(100)
    prior = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    engine = ActiveLearningEngine(x, prior)
    order = np.argsort(-prior)
    for feed in ("search", "top", "borderline", "auto"):
        np.testing.assert_array_equal(engine.next(feed, 5), order[:5])
    np.testing.assert_array_equal(engine.next("bottom", 5), order[::-1][:5])
    assert "no model" in engine.last_source


def test_one_class_only_searches_by_example():
    x, y = blobs(200)
    pos = [int(r) for r in np.flatnonzero(y)[:3]]
    engine = ActiveLearningEngine(x)
    engine.update(dict.fromkeys(pos, True))
    assert not engine.has_model and engine.scores() is None
    rows = engine.next("top", 10)
    assert not set(rows.tolist()) & set(pos)
    assert y[rows].mean() > 0.9  # neighbours of the positives are positives
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


def test_quality_not_enough_labels_then_interval():
    x, y = blobs(400, sep=1.5)
    engine = ActiveLearningEngine(x)
    labels = some_labels(y, 1, 10)
    engine.update(labels)
    q = engine.quality()
    assert isinstance(q, Quality) and q.ap is None and q.ci_low is None
    assert "not enough labels" in q.reason and (q.n_pos, q.n_neg) == (1, 10)
    labels = some_labels(y, 20, 40)
    engine.update(labels)
    q = engine.quality()
    assert q.ap is not None and q.ci_low <= q.ap <= q.ci_high
    assert 0 < q.ci_low < q.ci_high <= 1
    assert (q.n_pos, q.n_neg, q.n_folds, q.model_version) == (20, 40, 5, engine.version)
    assert "AP" in str(q)
    few = ActiveLearningEngine(x)
    few.update(some_labels(y, 2, 3))
    assert few.quality().n_folds == 2


def test_average_precision_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(50) < 0.3
        s = rng.integers(0, 5, 50).astype(float)  # many ties
        if y.any():
            assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


# ---------------------------------------------------------------- auto feed
def test_auto_feed_tries_each_feed_once_and_exposes_stats():
    x, y = blobs(400, sep=2.0)
    prior = x[:, 0].copy()
    engine = ActiveLearningEngine(x, prior)
    labels = some_labels(y, 4, 8)
    engine.update(labels)
    stats = engine.feed_stats()
    assert list(stats.index) == list(ARMS)
    assert (stats.pulls == 0).all() and stats.attrs["choice"] == ARMS[0]
    assert "not tried yet" in stats.attrs["reason"]
    rows = engine.next("auto", len(ARMS))
    assert sorted(engine.auto_arms.values()) == sorted(ARMS)  # one row per feed
    assert engine.last_feed == "auto" and "bandit" in engine.last_source
    for r in rows:
        labels[int(r)] = bool(y[r])
    engine.update(labels)
    stats = engine.feed_stats()
    assert (stats.pulls == 1).all()
    assert stats.mean_reward.between(0, 1).all() and np.isfinite(stats.ucb).all()
    assert stats.chosen.sum() == 1 and stats.loc[stats.attrs["choice"], "chosen"]
    assert "UCB" in stats.attrs["reason"] and stats.attrs["reward"] == "surprise"
    assert len(engine.reward_log) == len(ARMS)
    # later batches: no excluded rows, no duplicates, and rewards keep coming
    for _ in range(5):
        ex = mask_of(400, labels)
        rows = engine.next("auto", 10, exclude=ex)
        assert len(set(rows.tolist())) == 10 and not ex[rows].any()
        labels.update({int(r): bool(y[r]) for r in rows[:7]})  # 3 skipped
        engine.update(labels)
    assert engine.feed_stats().pulls.sum() == len(ARMS) + 5 * 7


def test_auto_feed_without_prior_has_no_search_arm():
    x, y = blobs(200)
    engine = ActiveLearningEngine(x)
    engine.update(some_labels(y, 3, 3))
    assert "search" not in engine.feed_stats().index


def test_surprise_reward_prefers_borderline_on_separable_data():
    x, y = blobs(600, sep=3.0)
    engine = ActiveLearningEngine(x, x[:, 0].copy())
    labels = some_labels(y, 4, 8)
    engine.update(labels)
    for _ in range(15):
        rows = engine.next("auto", 5)
        labels.update({int(r): bool(y[r]) for r in rows})
        engine.update(labels)
    stats = engine.feed_stats()
    assert stats.pulls.idxmax() == "borderline"


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


def test_simulate_without_eval_uses_cross_validation():
    x, y = blobs(200, sep=3.0)
    df = simulate(x, y, budget=30, policy="borderline", checkpoints=(30,), batch_size=10)
    assert df.n_labels.tolist() == [30] and 0 < df.ap.iloc[0] <= 1
