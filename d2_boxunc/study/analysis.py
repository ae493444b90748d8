"""From evaluated runs to tables, comparisons and claim verdicts (``results.json``)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .metrics import (
    AP_METRICS,
    MECHANISM_METRICS,
    POINT_METRICS,
    PROBE_METRICS,
    SEED_ONLY_METRICS,
    RunData,
    ap_metrics,
    metric,
)
from .plan import CLAIMS, METHODS, Claim, row
from .stats import Interval, percentile_interval, resample_counts, seed_level_interval, verdict

__all__ = ["Analysis", "TABLE_METRICS"]

TABLE_METRICS = (*AP_METRICS, *POINT_METRICS)
COMPARISON_WORDS = {
    "confirmed": "higher",
    "contradicted": "lower",
    "not shown": "no difference shown",
}


def _ap_replicates(run: RunData, counts: np.ndarray) -> np.ndarray:
    """``[resample, metric]``: every AP metric of every resample, each resample's five from one
    accumulation."""
    per_resample = [ap_metrics(run, w) for w in counts]
    return np.array([[values[name] for name in AP_METRICS] for values in per_resample])


_FORKED: tuple | None = None  # (runs, counts) of the Analysis whose precompute() forked


def _forked_ap_replicates(key: tuple[str, int]) -> np.ndarray:
    runs, counts = _FORKED
    return _ap_replicates(runs[key], counts)


@dataclass
class Analysis:
    """Evaluated runs of the study: ``runs[(row, seed)]`` with ``row`` = "method[/variant]"."""

    runs: dict[tuple[str, int], RunData]
    n_resamples: int = 1000
    variance_resamples: int = 200
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        sizes = {r.tables.num_images for r in self.runs.values()}
        if len(sizes) != 1:
            raise ValueError(f"study runs disagree on the validation set size: {sorted(sizes)}")
        self.num_images = sizes.pop()
        self.counts = resample_counts(self.num_images, self.n_resamples, self.seed)

    # ---- values ------------------------------------------------------------------------------
    def rows(self) -> list[str]:
        return list(dict.fromkeys(r for r, _ in self.runs))

    def seeds(self, row_name: str) -> list[int]:
        return sorted(s for r, s in self.runs if r == row_name)

    def value(self, row_name: str, seed: int, name: str) -> float:
        key = (row_name, seed, name, None)
        if key not in self._cache:
            self._cache[key] = metric(self.runs[(row_name, seed)], name)
        return self._cache[key]

    def replicates(self, row_name: str, seed: int, name: str) -> np.ndarray:
        """The metric on every bootstrap resample (NaN for point metrics)."""
        key = (row_name, seed, name, "reps")
        if key not in self._cache:
            run = self.runs[(row_name, seed)]
            if name in AP_METRICS:
                self._store_ap_replicates(row_name, seed, _ap_replicates(run, self.counts))
            elif name in SEED_ONLY_METRICS:
                self._cache[key] = np.full(len(self.counts), np.nan)
            else:
                self._cache[key] = np.array([metric(run, name, w) for w in self.counts])
        return self._cache[key]

    def _store_ap_replicates(self, row_name: str, seed: int, reps: np.ndarray) -> None:
        for i, ap_name in enumerate(AP_METRICS):
            self._cache[(row_name, seed, ap_name, "reps")] = reps[:, i]

    def precompute(self, jobs: int = 1) -> None:
        """Bootstrap every run's AP metrics now, ``jobs`` forked processes at a time: the
        analysis's main cost, otherwise paid run by run as comparisons ask for it."""
        keys = [k for k in self.runs if (*k, "AP", "reps") not in self._cache]
        if jobs <= 1 or len(keys) < 2:
            for row_name, seed in keys:
                self.replicates(row_name, seed, "AP")
            return
        global _FORKED
        _FORKED = (self.runs, self.counts)  # inherited by the forked workers, never pickled
        try:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as ex:
                for key, reps in zip(keys, ex.map(_forked_ap_replicates, keys)):
                    self._store_ap_replicates(*key, reps)
        finally:
            _FORKED = None

    def table(self) -> list[dict]:
        """Per row: mean, sd and n over seeds of every table metric."""
        out = []
        for r in self.rows():
            entry = {"row": r, "seeds": self.seeds(r)}
            for name in (*TABLE_METRICS, *MECHANISM_METRICS, *PROBE_METRICS):
                vals = np.array([self.value(r, s, name) for s in self.seeds(r)])
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    entry[name] = {
                        "mean": float(vals.mean()),
                        "sd": float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                        "n": int(vals.size),
                    }
            out.append(entry)
        return out

    # ---- comparisons -------------------------------------------------------------------------
    def compare(self, a: str, b: str, name: str) -> tuple[Interval, str]:
        """Interval of ``a - b`` on ``name`` (``b=""``: of ``a`` itself) and its kind."""
        if b == "":
            seeds = self.seeds(a)
            vals = [self.value(a, s, name) for s in seeds]
            if len(seeds) == 1 and name not in SEED_ONLY_METRICS:  # one checkpoint: images only
                return percentile_interval(vals[0], self.replicates(a, seeds[0], name)), "images"
            var = self._image_variance(
                lambda w: np.nanmean([self._rep(a, s, name, w) for s in seeds])
            )
            return seed_level_interval(vals, np.zeros(len(vals)), var), self._kind(name)
        if row(a)[0] == row(b)[0]:  # same checkpoints: paired over images and seeds
            seeds = sorted(set(self.seeds(a)) & set(self.seeds(b)))
            if not seeds:
                raise ValueError(f"rows {a} and {b} share no seed")
            observed = float(
                np.nanmean([self.value(a, s, name) - self.value(b, s, name) for s in seeds])
            )
            if name in SEED_ONLY_METRICS:
                diffs = [self.value(a, s, name) - self.value(b, s, name) for s in seeds]
                return seed_level_interval(diffs, np.zeros(len(diffs))), "seeds"
            reps = np.nanmean(
                [self.replicates(a, s, name) - self.replicates(b, s, name) for s in seeds], axis=0
            )
            return percentile_interval(observed, reps), "images (paired)"
        sa, sb = self.seeds(a), self.seeds(b)
        va = [self.value(a, s, name) for s in sa]
        vb = [self.value(b, s, name) for s in sb]
        var = 0.0
        if name not in SEED_ONLY_METRICS:
            var = self._image_variance(
                lambda w: (
                    np.nanmean([self._rep(a, s, name, w) for s in sa])
                    - np.nanmean([self._rep(b, s, name, w) for s in sb])
                )
            )
        return seed_level_interval(va, vb, var), self._kind(name)

    @staticmethod
    def _kind(name: str) -> str:
        """What a trained-row interval spans: seeds, and images where the metric resamples."""
        return "seeds" if name in SEED_ONLY_METRICS else "seeds+images"

    def _rep(self, row_name, seed, name, w_index):
        return self.replicates(row_name, seed, name)[w_index]

    def _image_variance(self, stat) -> float:
        """Bootstrap variance over images of ``stat(resample index)`` (the first
        ``variance_resamples`` shared draws)."""
        n = min(self.variance_resamples, len(self.counts))
        values = np.array([stat(i) for i in range(n)], dtype=np.float64)
        values = values[np.isfinite(values)]
        return float(values.var(ddof=1)) if values.size > 1 else 0.0

    def claims(self, claims: list[Claim] = CLAIMS) -> list[dict]:
        """Every claim whose rows were run, with its difference, 95% interval and verdict."""
        have = set(self.rows())
        out = []
        for c in claims:
            if c.a not in have or (c.b and c.b not in have):
                continue
            interval, kind = self.compare(c.a, c.b, c.metric)
            out.append(
                {
                    "name": c.name,
                    "a": c.a,
                    "b": c.b or "0",
                    "metric": c.metric,
                    **interval.as_dict(),
                    "interval": kind,
                    "direction": c.direction,
                    "verdict": verdict(interval, c.direction),
                    "source": c.source,
                }
            )
        return out

    def comparisons(self) -> list[dict]:
        """Every variant vs its method and every trained method vs its family's baseline, on the
        AP metrics (the forest plot)."""
        have = set(self.rows())
        pairs = []
        for r in self.rows():
            method, variant = row(r)
            if variant is not None:
                pairs.append((r, method))
            elif method in METHODS and method not in ("baseline", "focal"):
                base = "focal" if "retinanet" in METHODS[method].config else "baseline"
                pairs.append((r, base))
        out = []
        for a, b in pairs:
            if b not in have:
                continue
            for name in ("AP", "AP75", "AP90"):
                interval, kind = self.compare(a, b, name)
                out.append(
                    {
                        "name": f"{a} - {b}",
                        "metric": name,
                        **interval.as_dict(),
                        "interval": kind,
                        "verdict": COMPARISON_WORDS[verdict(interval, 1)],
                    }
                )
        return out
