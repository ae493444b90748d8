"""Confidence intervals and verdicts of the evidence study.

Two kinds of comparison:

- **eval-only toggles** (same checkpoints, e.g. variance voting on/off): a paired percentile
  bootstrap over validation images.  One resample draws the images once and applies the draw to
  every seed and to both rows; the statistic is the seed-mean difference.  Identical outputs give
  a zero-width interval at 0.
- **trained methods** (different checkpoints, one per seed): the difference of the seed means
  with a Welch t interval over seeds (training noise), widened by the bootstrap variance of that
  difference over images (test-set noise): ``diff ± t(df) · sqrt(s_a²/n_a + s_b²/n_b + v_img)``,
  with the Welch–Satterthwaite ``df`` of the seed part.

The draws are made once (:func:`resample_counts`) and shared by every metric and comparison, so
each (run, metric) is computed once per resample; this is why the bootstrap is not
``scipy.stats.bootstrap``, which draws anew for every statistic.

A claim's verdict: **confirmed** when the 95% interval excludes 0 on the paper's side,
**contradicted** when it excludes 0 on the other side, **not shown** otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = [
    "Interval",
    "percentile_interval",
    "resample_counts",
    "seed_level_interval",
    "verdict",
]

CONFIDENCE = 0.95


@dataclass
class Interval:
    """A difference (or a value) with its confidence interval."""

    diff: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict:
        return asdict(self)


def resample_counts(num_images: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, num_images) bootstrap draws: how often each image is drawn (rows sum to
    ``num_images``)."""
    if num_images <= 0 or n_resamples <= 0:
        raise ValueError("resample_counts: need at least one image and one resample")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num_images, size=(n_resamples, num_images))
    counts = np.zeros((n_resamples, num_images))
    np.add.at(counts, (np.arange(n_resamples)[:, None], idx), 1.0)
    return counts


def percentile_interval(
    observed: float, replicates: np.ndarray, confidence: float = CONFIDENCE
) -> Interval:
    """Percentile bootstrap interval of a statistic from its per-resample values (NaN values,
    e.g. a resample without a blurred object, are left out)."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if not np.isfinite(observed) or reps.size == 0:
        return Interval(float(observed), float("nan"), float("nan"))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return Interval(float(observed), float(min(low, observed)), float(max(high, observed)))


def seed_level_interval(
    a: Sequence[float],
    b: Sequence[float],
    image_variance: float = 0.0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Welch interval of ``mean(a) - mean(b)`` over seeds, widened by ``image_variance``.

    ``b`` may be all zeros (a one-sample interval for "the value is positive").  With one seed on
    a side that has variance, the seed variance is unknown and the interval is infinite.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    diff = float(a.mean() - b.mean())
    va = a.var(ddof=1) / a.size if a.size > 1 else (np.inf if a.size == 1 else 0.0)
    vb = b.var(ddof=1) / b.size if b.size > 1 else 0.0
    if b.size == 1 and np.ptp(b) == 0 and not np.any(b):
        vb = 0.0  # the constant 0 of a one-sample claim
    if not np.isfinite(va + vb):
        return Interval(diff, -np.inf, np.inf)
    seed_var = va + vb
    parts = [(v, n) for v, n in ((va, a.size), (vb, b.size)) if v > 0 and n > 1]
    df = seed_var**2 / sum(v**2 / (n - 1) for v, n in parts) if parts else np.inf
    scale = np.sqrt(seed_var + max(float(image_variance), 0.0))
    half = (
        stats.t.ppf(0.5 + confidence / 2, df)
        if np.isfinite(df)
        else stats.norm.ppf(0.5 + confidence / 2)
    ) * scale
    return Interval(diff, diff - half, diff + half)


def verdict(interval: Interval, direction: int = 1) -> str:
    """``"confirmed"`` / ``"contradicted"`` / ``"not shown"`` for a claim that the difference is
    positive (``direction=1``) or negative (``direction=-1``)."""
    if direction not in (1, -1):
        raise ValueError("verdict: direction must be 1 or -1")
    low, high = sorted((interval.ci_low * direction, interval.ci_high * direction))
    if np.isnan(low) or np.isnan(high):
        return "not shown"
    if low > 0:
        return "confirmed"
    if high < 0:
        return "contradicted"
    return "not shown"
