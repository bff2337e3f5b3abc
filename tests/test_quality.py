"""The feeds' sampling designs and the honest quality estimate (real fits, no mocks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from va_widgets.learner import average_precision
from va_widgets.learner import feeds as F
from va_widgets.learner import quality as Q


def test_draw_records_the_probability_of_each_draw():
    rng = np.random.default_rng(0)
    exclude = np.zeros(12, dtype=bool)
    exclude[[0, 5]] = True
    criterion = np.arange(12, dtype=float)
    comp = F.ranked("top", 1.0, criterion, exclude, explore=0.3, spread=2.0)
    firsts = np.zeros(12)
    n = 20000
    for _ in range(n):
        rows, props, arms = F.draw([comp], 2, exclude, rng)
        assert not exclude[rows].any() and rows[0] != rows[1] and arms == ["top", "top"]
        firsts[rows[0]] += 1
        q = {r: comp.uniform / 10 + comp.ranked_prob(r) for r in range(12) if not exclude[r]}
        assert props[0] == pytest.approx(q[rows[0]])
        assert props[1] == pytest.approx(q[rows[1]] / (1 - q[rows[0]]))  # without replacement
    expected = np.array([comp.uniform / 10 + comp.ranked_prob(r) for r in range(12)])
    expected[exclude] = 0
    assert expected.sum() == pytest.approx(1)
    np.testing.assert_allclose(firsts / n, expected, atol=0.01)


def test_draw_mixes_arms_and_stops_when_the_pool_runs_out():
    rng = np.random.default_rng(1)
    exclude = np.ones(50, dtype=bool)
    exclude[[3, 9, 20]] = False
    comps = [
        F.ranked("top", 0.7, np.arange(50.0), exclude, 0.2, 5.0),
        F.ranked("random", 0.3, None, exclude, 0.2, 5.0),
    ]
    rows, props, arms = F.draw(comps, 10, exclude, rng)
    assert sorted(rows.tolist()) == [3, 9, 20] and props[-1] == pytest.approx(1.0)
    assert set(arms) <= {"top", "random"}


def test_ap_gradient_is_ap_for_binary_labels_and_its_derivative():
    rng = np.random.default_rng(2)
    s = rng.random(200)
    y = (rng.random(200) < 0.2).astype(float)
    value, _ = Q.ap_gradient(s, y)
    assert value == pytest.approx(average_precision(y, s))
    soft = np.clip(y * 0.8 + rng.random(200) * 0.2, 0, 1)
    v0, g0 = Q.ap_gradient(s, soft)
    for j in rng.choice(200, 10, replace=False):
        bumped = soft.copy()
        bumped[j] += 1e-6
        assert (Q.ap_gradient(s, bumped)[0] - v0) / 1e-6 == pytest.approx(g0[j], rel=1e-3, abs=1e-7)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([0.0, 0.25, 0.5, 1.0, np.nextafter(0.5, 1)]) | st.floats(0, 1), max_size=300
    )
)
def test_descending_order_is_the_stable_descending_sort(values):
    """Ties (duplicate clips score alike) keep the row order of a stable sort."""
    s = np.asarray(values, dtype=np.float64)
    np.testing.assert_array_equal(Q.descending_order(s), np.argsort(-s, kind="stable"))
    big = np.repeat(s, 3)
    np.testing.assert_array_equal(Q.descending_order(big), np.argsort(-big, kind="stable"))


def test_clip_influence_predicts_the_bootstrap_spread_of_ap():
    rng = np.random.default_rng(3)
    y = rng.random(600) < 0.15
    s = y * 1.2 + rng.standard_normal(600)
    d = Q.ap_clip_influence(s, y.astype(float))
    sd_linear = np.sqrt(np.sum((d - d.mean()) ** 2))
    boots = [average_precision(y[i], s[i]) for i in rng.integers(0, 600, (400, 600))]
    assert sd_linear == pytest.approx(np.std(boots), rel=0.25)


def population(seed=0, n=1500):
    """A fixed model's scores on a population with a rare concept (12 % positives)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.12
    x = rng.standard_normal((n, 8))
    x[:, 0] += 3.0 * y
    train = rng.choice(n, 150, replace=False)
    model = LogisticRegression(class_weight="balanced").fit(x[train], y[train])
    return model.predict_proba(x)[:, 1], y


def borderline_led_draws(
    scores: np.ndarray, batches: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn in ``batches`` batches of 5 as the auto feed draws them (borderline leading,
    every feed 20 % uniform), and the probability of each draw."""
    exclude = np.zeros(len(scores), dtype=bool)
    rows, props = [], []
    for _ in range(batches):
        comps = [
            F.ranked("borderline", 0.7, -np.abs(scores - 0.5), exclude, 0.2, 10.0),
            F.ranked("top", 0.1, scores, exclude, 0.2, 10.0),
            F.ranked("bottom", 0.1, -scores, exclude, 0.2, 10.0),
            F.ranked("random", 0.1, None, exclude, 0.2, 10.0),
        ]
        r, p, _ = F.draw(comps, 5, exclude, rng)
        rows += r.tolist()
        props += p.tolist()
        exclude[r] = True
    return np.array(rows), np.array(props)


def test_estimate_is_unbiased_and_covers_under_an_auto_like_design():
    """The model fixed, labels drawn by a mixture of feeds like the auto feed's: over repeated
    sessions the AP estimate centres on the truth and its 90 % interval covers it."""
    scores, y = population()
    truth = average_precision(y, scores)
    errors, covered = [], []
    for rep in range(120):
        rng = np.random.default_rng(100 + rep)
        rows_a, props = borderline_led_draws(scores, 16, rng)
        est = Q.estimate(Q.Sample(scores, rows_a, y[rows_a].astype(float), props), Q.ap_gradient)
        assert est is not None
        errors.append(est.value - truth)
        covered.append(est.low <= truth <= est.high)
    assert abs(np.mean(errors)) < 0.02
    assert np.mean(covered) >= 0.85


def test_hand_picked_labels_are_known_never_a_sample():
    scores, y = population(seed=1)
    rows = np.argsort(-scores)[:40]  # the 40 highest scores, picked by hand
    sample = Q.Sample(scores, rows, y[rows].astype(float), np.full(40, np.nan))
    assert not sample.sampled.any()
    np.testing.assert_array_equal(sample.ell[rows], y[rows])


def test_an_estimate_from_few_positive_labels_says_it_is_rough():
    """With under FEW_POSITIVES positive labels the interval covers the truth less often than
    it claims (measured under the random feed), so the words say so; with more they do not."""
    few = Q.FEW_POSITIVES - 1
    kw = dict(n_neg=20, n_sampled=25, model_version=3, reason="")
    rough = Q.Quality(0.6, 0.4, 0.8, n_pos=few, **kw)
    assert rough.summary == (
        f"estimated AP 0.60 (0.40{Q.DASH}0.80), from 25 random checks; rough: only {few} "
        "positive labels"
    )
    assert str(rough).startswith(rough.summary)
    assert "rough" not in Q.Quality(0.6, 0.4, 0.8, n_pos=Q.FEW_POSITIVES, **kw).summary
    assert "rough" not in Q.Quality(None, None, None, n_pos=1, **kw).summary


def test_plateau_advice():
    rising = [(n, 0.5 + n / 400, 0.45 + n / 400, 0.55 + n / 400) for n in range(10, 130, 10)]
    assert Q.plateau_advice(rising) == ""
    flat = [(n, 0.8, 0.7, 0.9) for n in range(10, 130, 10)]
    advice = Q.plateau_advice(flat)
    assert "not improved" in advice and "search" in advice and "review" in advice
    assert Q.plateau_advice(flat[:3]) == ""  # too early to say


def step_population(seed=0, n=1500):
    """Scores whose P(positive | score) is a step, not a logistic curve: 95 % above 0.85,
    1 % below (positives hidden thinly in the bulk)."""
    rng = np.random.default_rng(seed)
    s = rng.random(n)
    return s, rng.random(n) < np.where(s > 0.85, 0.95, 0.01)


def test_calibration_recovers_a_step_from_labels_near_the_boundary():
    """Labels concentrated near the step (as the active feeds gather them) must not spread
    soft positives over the bulk: the expected number of positives stays near the truth."""
    s, y = step_population()
    rng = np.random.default_rng(1)
    near = np.flatnonzero(np.abs(s - 0.85) < 0.1)
    rows = np.r_[rng.choice(near, 40, replace=False), rng.choice(len(s), 10, replace=False)]
    f = Q.calibrate(s[rows], y[rows].astype(float), s)
    below = (s > 0.6) & (s < 0.85)  # just below the step: 1 % positives
    assert f[below].mean() < 0.05
    assert f.sum() == pytest.approx(y.sum(), rel=0.05)


def test_correction_is_unbiased_for_the_first_order_change():
    """Each session's correction estimates sum over unlabelled clips of dAP/dl (y - f): over
    repeated sessions its error against that sum (known here) centres on 0."""
    scores, y = step_population(seed=2)
    errors = []
    for rep in range(120):
        rng = np.random.default_rng(300 + rep)
        rows, props = borderline_led_draws(scores, 30, rng)
        sample = Q.Sample(scores, rows, y[rows].astype(float), props)
        _, grad = Q.ap_gradient(sample.scores, sample.ell)
        first = np.sum(grad[sample.unlabelled] * (y - sample.f)[sample.unlabelled])
        draws = Q.correction_draws(sample, grad)
        assert len(draws) == len(rows)
        errors.append(draws.mean() - first)
    standard_error = np.std(errors, ddof=1) / np.sqrt(len(errors))
    assert 0 < standard_error < 0.03  # the draws vary from session to session, not wildly
    assert abs(np.mean(errors)) < 3 * standard_error


def test_estimate_is_unbiased_and_informative_when_calibration_is_not_logistic():
    """Under an auto-like design on the step population: centred on the truth, covering, and
    an interval narrower than half the AP range."""
    scores, y = step_population()
    truth = average_precision(y, scores)
    errors, covered, widths = [], [], []
    for rep in range(40):
        rng = np.random.default_rng(rep)
        rows_a, props = borderline_led_draws(scores, 10, rng)
        sample = Q.Sample(scores, rows_a, y[rows_a].astype(float), props)
        est = Q.estimate(sample, Q.ap_gradient)
        assert est is not None
        errors.append(est.value - truth)
        covered.append(est.low <= truth <= est.high)
        widths.append(est.high - est.low)
    assert abs(np.mean(errors)) < 0.02
    assert np.mean(covered) >= 0.85
    assert np.median(widths) < 0.3
