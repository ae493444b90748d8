"""Intervals and verdicts of the evidence study on cases with known answers."""

import numpy as np
import pytest
from scipy import stats

from d2_boxunc.study.stats import (
    Interval,
    percentile_interval,
    resample_counts,
    seed_level_interval,
    verdict,
)


def test_resample_counts_are_bootstrap_draws():
    counts = resample_counts(50, 400, seed=1)
    assert counts.shape == (400, 50)
    assert (counts.sum(axis=1) == 50).all() and counts.min() >= 0
    # each image is drawn Binomial(50, 1/50) times: mean 1, variance 0.98
    assert counts.mean() == pytest.approx(1.0)
    assert counts.var() == pytest.approx(0.98, rel=0.1)
    np.testing.assert_array_equal(counts, resample_counts(50, 400, seed=1))


def test_identical_variants_give_a_zero_width_interval_at_zero():
    rng = np.random.default_rng(0)
    values = rng.uniform(size=80)
    counts = resample_counts(80, 300)

    def mean(w):
        return np.average(values, weights=w)

    reps = np.array([mean(w) - mean(w) for w in counts])
    iv = percentile_interval(mean(np.ones(80)) - mean(np.ones(80)), reps)
    assert (iv.diff, iv.ci_low, iv.ci_high) == (0.0, 0.0, 0.0)
    assert verdict(iv) == "not shown"


def test_a_constant_shift_is_recovered_exactly():
    rng = np.random.default_rng(1)
    a = rng.normal(size=100)
    b = a + 0.3  # every image gains 0.3
    counts = resample_counts(100, 300)
    reps = np.array([np.average(b - a, weights=w) for w in counts])
    iv = percentile_interval(float(np.mean(b - a)), reps)
    assert iv.diff == pytest.approx(0.3) and iv.ci_low == pytest.approx(0.3)
    assert iv.ci_high == pytest.approx(0.3)
    assert verdict(iv) == "confirmed" and verdict(iv, direction=-1) == "contradicted"


def test_percentile_interval_covers_a_known_mean():
    """The bootstrap interval of a sample mean is close to the normal-theory one."""
    rng = np.random.default_rng(2)
    x = rng.normal(5.0, 2.0, size=400)
    counts = resample_counts(400, 2000, seed=3)
    reps = counts @ x / 400
    iv = percentile_interval(float(x.mean()), reps)
    se = x.std(ddof=1) / np.sqrt(400)
    assert iv.ci_low == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert iv.ci_high == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)


def test_seed_level_interval_is_welch():
    a, b = [31.0, 33.0, 32.5], [29.0, 30.5, 28.0]
    iv = seed_level_interval(a, b)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert iv.diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (iv.ci_low, iv.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    wider = seed_level_interval(a, b, image_variance=0.5)
    assert wider.ci_low < iv.ci_low and wider.ci_high > iv.ci_high


def test_one_sample_and_degenerate_seed_intervals():
    vals = [0.4, 0.5, 0.45]
    iv = seed_level_interval(vals, [0.0, 0.0, 0.0])
    one = stats.ttest_1samp(vals, 0.0).confidence_interval(0.95)
    assert (iv.ci_low, iv.ci_high) == (pytest.approx(one.low), pytest.approx(one.high))
    assert verdict(iv) == "confirmed"
    single = seed_level_interval([0.4], [0.0])
    assert single.ci_low == -np.inf and verdict(single) == "not shown"
    same = seed_level_interval([1.0, 1.0], [1.0, 1.0])
    assert (same.diff, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "low, high, direction, expected",
    [
        (0.1, 0.5, 1, "confirmed"),
        (-0.5, -0.1, 1, "contradicted"),
        (-0.1, 0.5, 1, "not shown"),
        (-0.5, -0.1, -1, "confirmed"),
        (0.1, 0.5, -1, "contradicted"),
        (0.0, 0.5, 1, "not shown"),  # touching 0 is not excluding it
        (float("nan"), float("nan"), 1, "not shown"),
    ],
)
def test_verdicts(low, high, direction, expected):
    assert verdict(Interval((low + high) / 2, low, high), direction) == expected
