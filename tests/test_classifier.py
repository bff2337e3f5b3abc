"""An exported classifier behaves like a fitted scikit-learn binary classifier on features."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import (
    check_dont_overwrite_parameters,
    check_estimators_dtypes,
    check_estimators_overwrite_params,
    check_fit_idempotent,
    check_get_params_invariance,
)

import va_widgets as va
from va_widgets.classifier import VideoClassifier
from va_widgets.media import ClipRule

DIM = 16


def data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    x[:, 0] += 2.5 * y
    return x, y


def exported(tmp_path) -> VideoClassifier:  # type: ignore[no-untyped-def]
    """A classifier written and read back the way Task.export / load_classifier do."""
    x, y = data()
    clf = VideoClassifier(
        estimator=LogisticRegression().fit(x, y),
        embedder_spec={"kind": "pixel_stats", "dim": DIM},
        clip_rule=ClipRule().to_dict(),
        task="ball",
    )
    return va.load_classifier(clf.save(tmp_path / "ball.skops"))


def test_predict_proba_is_n_by_2_over_classes(tmp_path):
    clf = exported(tmp_path)
    x, _ = data(seed=1)
    ref = clf.estimator.predict_proba(x)
    proba = clf.predict_proba(x)
    assert proba.shape == (len(x), 2) and list(clf.classes_) == [0, 1]
    np.testing.assert_allclose(proba, ref, atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(clf.scores(x), ref[:, 1], atol=1e-5)  # the 1-d probability
    np.testing.assert_array_equal(clf.predict(x), clf.estimator.predict(x))
    np.testing.assert_allclose(
        clf.decision_function(x), clf.estimator.decision_function(x), rtol=1e-4, atol=1e-4
    )
    assert clf.n_features_in_ == DIM


def test_float16_features_scored_like_float32(tmp_path):
    clf = exported(tmp_path)
    x, _ = data(seed=2)
    half = x.astype(np.float16)
    np.testing.assert_allclose(clf.scores(half), clf.scores(half.astype(np.float32)), atol=1e-5)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(DIM), r"2-d array.*\(16,\).*reshape"),
        (np.zeros((3, DIM + 1)), r"17 columns.*'ball' takes 16"),
        (np.array([["a"] * DIM]), "numbers"),
    ],
)
def test_bad_features_raise_naming_the_shape(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        exported(tmp_path).predict_proba(bad)


def test_in_a_pipeline_and_cross_val_score(tmp_path):
    clf = exported(tmp_path)
    x, y = data(seed=3)
    pipe = make_pipeline(PCA(n_components=8), clone(clf)).fit(x, y)
    assert pipe.predict_proba(x).shape == (len(x), 2)
    assert pipe[-1].n_features_in_ == 8
    scores = cross_val_score(clf, x, y, cv=4, scoring="roc_auc")
    assert scores.shape == (4,) and scores.mean() > 0.9
    assert clf.n_features_in_ == DIM  # cross-validation fitted clones, not the exported model
    accuracy = cross_val_score(clf, x, y, cv=3)  # the default scorer: ClassifierMixin.score
    assert accuracy.mean() > 0.8


def test_fit_takes_any_two_classes_and_refuses_more(tmp_path):
    x, y = data(seed=5)
    clf = exported(tmp_path).fit(x, np.where(y == 1, "ball", "other"))
    assert list(clf.classes_) == ["ball", "other"]
    assert set(clf.predict(x)) <= {"ball", "other"}
    with pytest.raises(ValueError, match=r"binary.*two classes"):
        clf.fit(x, np.arange(len(x)) % 3)


def test_fit_refits_a_clone_and_keeps_the_exported_estimator(tmp_path):
    clf = exported(tmp_path)
    original = clf.estimator
    x, y = data(seed=4)
    assert clf.fit(x, 1 - y) is clf
    assert clf.estimator is original
    assert clf.predict_proba(x)[y == 1, 1].mean() < 0.5  # the refitted model, flipped labels


@pytest.mark.parametrize(
    "check",
    [
        check_get_params_invariance,
        check_estimators_overwrite_params,
        check_fit_idempotent,
        check_dont_overwrite_parameters,
        check_estimators_dtypes,
    ],
)
def test_scikit_learn_estimator_checks(tmp_path, check):
    check(type(exported(tmp_path)).__name__, exported(tmp_path))
