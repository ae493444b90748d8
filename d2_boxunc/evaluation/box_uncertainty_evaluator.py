"""Is a detector's localisation uncertainty calibrated?  A ``DatasetEvaluator`` for models whose
``Instances`` carry ``pred_boxes_std`` (per-coordinate Gaussian std in pixels, KL-Loss) and/or
``pred_ious`` (predicted IoU with the object, IoU-Net).

For ``pred_boxes_std`` (detections matched to ground truth as in
:func:`~d2_boxunc.evaluation.sigma_report.match_to_ground_truth`: same class, IoU >= 0.5, greedy
by score), over every coordinate x1, y1, x2, y2 of every matched detection:

- ``NLL``: mean Gaussian negative log-likelihood of the GT coordinate under N(prediction, sigma^2),
  in nats per coordinate (pixels of the original image);
- ``interval_ECE``: for confidence levels p, the fraction of GT coordinates inside the central
  interval prediction +- z_p sigma (z_p = Phi^-1((1 + p) / 2)) vs p; mean |observed - p| x 100.
  0 for a calibrated predictor; ``coverage_gap`` is the signed mean (observed - p) x 100:
  negative = over-confident (intervals too narrow), positive = under-confident;
- ``sigma_err_spearman``: Spearman rank correlation of sigma with |error|.

For ``pred_ious`` over every detection (true IoU = best IoU with a same-class GT, 0 if none):
``iou_spearman`` (predicted vs true IoU), ``score_iou_spearman`` (class score vs true IoU, the
baseline the IoU prediction should beat), ``iou_MAE`` and ``iou_ECE`` (mean |mean predicted -
mean true IoU| over 10 equal-width bins of the prediction, weighted by count; x 100).

Reliability plots (``coverage_reliability.png``, ``iou_reliability.png``) are written to
``output_dir``.  A model with neither output is skipped with a log line (empty results).
"""

from __future__ import annotations

import itertools
import logging
import os

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import Boxes, pairwise_iou
from detectron2.utils import comm
from scipy.special import ndtri
from scipy.stats import spearmanr

from .sigma_report import _gt as ground_truth_of
from .sigma_report import match_to_ground_truth

__all__ = [
    "BoxUncertaintyEvaluator",
    "DEFAULT_LEVELS",
    "gaussian_nll",
    "interval_coverage",
    "iou_calibration",
    "iou_metrics",
    "save_coverage_plot",
    "save_iou_reliability_plot",
    "sigma_metrics",
]

logger = logging.getLogger(__name__)

DEFAULT_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
_MIN_SIGMA = 1e-6


def _check(errors, sigma):
    errors = np.asarray(errors, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if errors.shape != sigma.shape:
        raise ValueError(f"errors {errors.shape} and sigma {sigma.shape} must have the same shape")
    if np.any(sigma < 0) or np.any(~np.isfinite(sigma)):
        raise ValueError("sigma must be finite and non-negative")
    return errors, np.maximum(sigma, _MIN_SIGMA)


def gaussian_nll(errors, sigma) -> float:
    """Mean of 0.5 log(2 pi sigma^2) + error^2 / (2 sigma^2) (nats); ``errors`` = gt - pred."""
    e, s = _check(errors, sigma)
    if e.size == 0:
        return float("nan")
    return float(np.mean(0.5 * np.log(2 * np.pi * s**2) + 0.5 * (e / s) ** 2))


def interval_coverage(errors, sigma, levels=DEFAULT_LEVELS) -> np.ndarray:
    """Observed fraction of |error| <= z_p sigma for each confidence level p in (0, 1)."""
    e, s = _check(errors, sigma)
    levels = np.asarray(levels, dtype=np.float64)
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"confidence levels must be in (0, 1), got {levels.tolist()}")
    if e.size == 0:
        return np.full(len(levels), np.nan)
    z = ndtri((1.0 + levels) / 2.0)
    ratio = np.abs(e).ravel() / s.ravel()
    return np.array([np.mean(ratio <= zi) for zi in z])


def _spearman(a, b) -> float:
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def sigma_metrics(pred, gt, sigma, levels=DEFAULT_LEVELS) -> dict:
    """Calibration of per-coordinate Gaussian predictions ``pred`` +- ``sigma`` of ``gt``.

    Returns NLL, interval_ECE and coverage_gap (x 100), sigma_err_spearman, num_coordinates, and
    the observed coverage per level under ``coverage`` (a list, fractions)."""
    errors = np.asarray(gt, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    observed = interval_coverage(errors, sigma, levels)
    gap = observed - np.asarray(levels)
    return {
        "NLL": gaussian_nll(errors, sigma),
        "interval_ECE": float(100.0 * np.mean(np.abs(gap))),
        "coverage_gap": float(100.0 * np.mean(gap)),
        "sigma_err_spearman": _spearman(sigma, np.abs(errors)),
        "num_coordinates": int(errors.size),
        "coverage": observed.tolist(),
    }


def iou_calibration(pred_iou, true_iou, bins: int = 10) -> tuple[float, list[tuple]]:
    """Count-weighted mean |mean predicted - mean true IoU| over equal-width bins of the
    prediction on [0, 1], and the per-bin (mean predicted, mean true, count) of non-empty bins."""
    p = np.clip(np.asarray(pred_iou, dtype=np.float64).ravel(), 0.0, 1.0)
    t = np.asarray(true_iou, dtype=np.float64).ravel()
    if p.size == 0:
        return float("nan"), []
    idx = np.minimum((p * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            table.append((float(p[m].mean()), float(t[m].mean()), int(m.sum())))
            ece += m.sum() / p.size * abs(p[m].mean() - t[m].mean())
    return float(ece), table


def iou_metrics(pred_iou, true_iou, scores) -> dict:
    """How well predicted IoU (and, for comparison, the class score) ranks the true IoU."""
    p, t = np.asarray(pred_iou, dtype=np.float64), np.asarray(true_iou, dtype=np.float64)
    ece, _ = iou_calibration(p, t)
    return {
        "iou_spearman": _spearman(p, t),
        "score_iou_spearman": _spearman(scores, t),
        "iou_MAE": float(100.0 * np.mean(np.abs(p - t))) if p.size else float("nan"),
        "iou_ECE": 100.0 * ece,
        "num_detections": int(p.size),
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_coverage_plot(
    levels, observed, path: str, title: str = "Box interval calibration"
) -> None:
    """Observed vs expected coverage of the predicted +- z sigma intervals (diagonal = ideal)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.plot(levels, observed, "o-", label="model")
    ax.set_xlabel("expected coverage (confidence level)")
    ax.set_ylabel("observed coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_iou_reliability_plot(pred_iou, true_iou, path: str, bins: int = 10) -> None:
    """Mean true IoU per bin of predicted IoU (diagonal = ideal)."""
    _, table = iou_calibration(pred_iou, true_iou, bins)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    if table:
        p, t, n = zip(*table)
        ax.plot(p, t, "o-", label="model")
        for x, y, c in table:
            ax.annotate(str(c), (x, y), fontsize=6, textcoords="offset points", xytext=(2, -8))
    ax.set_xlabel("predicted IoU")
    ax.set_ylabel("mean true IoU")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("IoU prediction reliability")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class BoxUncertaintyEvaluator(DatasetEvaluator):
    """Calibration of ``pred_boxes_std`` and ``pred_ious``; results under ``"box_uncertainty"``."""

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        iou_threshold: float = 0.5,
        levels=DEFAULT_LEVELS,
    ):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self._iou_threshold = iou_threshold
        self._levels = tuple(float(v) for v in levels)
        interval_coverage(np.zeros(1), np.ones(1), self._levels)  # validates the levels
        self._gt_by_id = None
        self.reset()

    def reset(self):
        self._sigma = []  # (pred (n, 4), gt (n, 4), std (n, 4)) per image
        self._iou = []  # (pred_iou (k,), true_iou (k,), score (k,)) per image

    def _ground_truth(self, image_id):
        if self._gt_by_id is None:
            self._gt_by_id = {d["image_id"]: d for d in DatasetCatalog.get(self._dataset_name)}
        if image_id not in self._gt_by_id:
            raise KeyError(f"image_id {image_id} is not in dataset '{self._dataset_name}'")
        return ground_truth_of(self._gt_by_id[image_id])

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            inst = out.get("instances", None)
            if inst is None or not (inst.has("pred_boxes_std") or inst.has("pred_ious")):
                continue
            inst = inst.to("cpu")
            gt_boxes, gt_classes, _ = self._ground_truth(inp["image_id"])
            boxes = inst.pred_boxes.tensor.float()
            if inst.has("pred_boxes_std"):
                d, g = match_to_ground_truth(inst, gt_boxes, gt_classes, self._iou_threshold)
                self._sigma.append(
                    (boxes[d].numpy(), gt_boxes[g].numpy(), inst.pred_boxes_std[d].float().numpy())
                )
            if inst.has("pred_ious"):
                true_iou = torch.zeros(len(inst))
                if len(inst) and len(gt_boxes):
                    iou = pairwise_iou(Boxes(boxes), Boxes(gt_boxes))
                    iou[inst.pred_classes[:, None] != gt_classes[None, :]] = 0.0
                    true_iou = iou.max(dim=1).values
                self._iou.append(
                    (
                        inst.pred_ious.float().reshape(-1).numpy(),
                        true_iou.numpy(),
                        inst.scores.float().numpy(),
                    )
                )

    def evaluate(self):
        sigma, ious = self._sigma, self._iou
        if self._distributed:
            comm.synchronize()
            sigma = list(itertools.chain(*comm.gather(sigma, dst=0)))
            ious = list(itertools.chain(*comm.gather(ious, dst=0)))
            if not comm.is_main_process():
                return {}
        if not sigma and not ious:
            logger.info(
                "BoxUncertaintyEvaluator: the model outputs neither 'pred_boxes_std' nor "
                "'pred_ious'; skipping the box-uncertainty evaluation."
            )
            return {}
        results = {}
        lines = []
        if sigma:
            pred, gt, std = (np.concatenate(x).reshape(-1, 4) for x in zip(*sigma))
            m = sigma_metrics(pred, gt, std, self._levels)
            coverage = m.pop("coverage")
            results.update(m)
            results["num_matched"] = int(len(pred))
            for level, c in zip(self._levels, coverage):
                results[f"cov@{level:g}"] = 100.0 * c
            lines.append(
                f"sigma ({len(pred)} matched detections x 4 coords): NLL {m['NLL']:.3f} nats, "
                f"interval ECE {m['interval_ECE']:.2f} (coverage gap {m['coverage_gap']:+.2f}), "
                f"Spearman(sigma, |err|) {m['sigma_err_spearman']:.3f}"
            )
            lines.append(
                "coverage: "
                + ", ".join(f"{100 * p:g}%->{100 * c:.1f}%" for p, c in zip(self._levels, coverage))
            )
            if self._output_dir and len(pred):
                os.makedirs(self._output_dir, exist_ok=True)
                save_coverage_plot(
                    self._levels,
                    coverage,
                    os.path.join(self._output_dir, "coverage_reliability.png"),
                )
        if ious:
            p, t, s = (np.concatenate(x) for x in zip(*ious))
            m = iou_metrics(p, t, s)
            results.update(m)
            lines.append(
                f"IoU prediction ({m['num_detections']} detections): Spearman(pred IoU, IoU) "
                f"{m['iou_spearman']:.3f} vs Spearman(score, IoU) {m['score_iou_spearman']:.3f}; "
                f"MAE {m['iou_MAE']:.2f}, ECE {m['iou_ECE']:.2f} (x100)"
            )
            if self._output_dir and len(p):
                os.makedirs(self._output_dir, exist_ok=True)
                save_iou_reliability_plot(
                    p, t, os.path.join(self._output_dir, "iou_reliability.png")
                )
        logger.info("Box uncertainty:\n  " + "\n  ".join(lines))
        return {"box_uncertainty": results}
