"""Per-run metrics of the study, each a function of the validation-image multiset.

Every metric takes ``weights`` (how often each validation image is drawn) so the bootstrap can
resample images.  Box AP comes from COCO match tables (:mod:`.coco_tables`); the mechanism
metrics use the true-positive pairs at IoU 0.5 and the extra fields the evaluator saves with
each detection (``bbox_std`` for KL-Loss, ``pred_iou`` for IoU-Net):

- ``mean_iou``: mean IoU of the matched pairs (how well the kept boxes localise);
- ``score_iou_spearman``: Spearman of detection score vs IoU over the pairs (aLRP's claim that
  ranking follows localisation quality);
- ``iou_spearman`` / ``iou_vs_score_spearman_gap``: Spearman of predicted IoU vs IoU, and its
  excess over the score's (IoU-Net, Fig. 2);
- ``sigma_err_spearman``: Spearman of σ vs |error| over the pairs' 4 coordinates (KL-Loss);
- ``sigma_blur_gap``: mean σ / object size on blurred-edge objects minus on sharp ones, with
  size = sqrt(w·h) of the ground-truth box.

oLRP and its localisation component come from the run's ``eval_results.json``, and for dense
detectors the positive-anchor ranking probe (aLRP's claim on the anchors the loss ranks, pooled
and within each object) from ``ranking_probe.json`` (:mod:`.ranking_hunt`); these have no
image-level resampling here (their intervals are seed-level only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from .coco_tables import MatchTables, ap_from_precision, average_precision, match, precision_table

__all__ = [
    "AP_METRICS",
    "MECHANISM_METRICS",
    "PROBE_METRICS",
    "SEED_ONLY_METRICS",
    "RunData",
    "ap_metrics",
    "load_run",
    "metric",
]

AP_METRICS = {"AP": None, "AP50": 0.5, "AP75": 0.75, "AP80": 0.8, "AP90": 0.9}
MECHANISM_METRICS = (
    "mean_iou",
    "score_iou_spearman",
    "iou_spearman",
    "iou_vs_score_spearman_gap",
    "sigma_err_spearman",
    "sigma_blur_gap",
)
POINT_METRICS = {"oLRP": ("lrp", "oLRP"), "oLRP_loc": ("lrp", "oLRP_loc")}
PROBE_METRICS = {  # study name: key of ranking_probe.json's "probe"
    "pos_score_iou_spearman": "positive_score_iou_spearman",
    "pos_within_object_spearman": "within_object_spearman",
}
SEED_ONLY_METRICS = (*POINT_METRICS, *PROBE_METRICS)  # one value per run, no image resampling


@dataclass
class RunData:
    """One evaluated (checkpoint, variant): match tables, pair fields and point metrics."""

    tables: MatchTables
    sigma: np.ndarray | None  # (P, 4) σ of the paired detections (pixels)
    abs_error: np.ndarray  # (P, 4) |detection - ground truth| per XYXY coordinate
    size: np.ndarray  # (P,) sqrt(w h) of the paired ground truth
    blurred: np.ndarray  # (P,) bool, the ground truth has blurred edges
    pred_iou: np.ndarray | None  # (P,) predicted IoU of the paired detections
    point: dict[str, float]  # oLRP etc. from eval_results.json, the ranking probe


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def load_run(coco_gt, run_dir: str) -> RunData:
    """Read ``coco_instances_results.json`` and ``eval_results.json`` of an evaluated run."""
    with open(os.path.join(run_dir, "coco_instances_results.json")) as f:
        results = json.load(f)
    with open(os.path.join(run_dir, "eval_results.json")) as f:
        evaluated = json.load(f)
    tables = match(coco_gt, results)
    pairs = tables.pairs
    det = [results[r] for r in pairs.result]
    gt = [coco_gt.anns[g] for g in pairs.gt_id]
    det_xyxy = _xyxy(np.asarray([d["bbox"] for d in det], dtype=np.float64).reshape(-1, 4))
    gt_xywh = np.asarray([g["bbox"] for g in gt], dtype=np.float64).reshape(-1, 4)
    has_sigma = bool(det) and all("bbox_std" in d for d in det)
    has_iou = bool(det) and all("pred_iou" in d for d in det)
    point = {}
    for name, (task, key) in POINT_METRICS.items():
        value = evaluated.get(task, {}).get(key, None)
        if value is not None:
            point[name] = float(value)
    probe_path = os.path.join(run_dir, "ranking_probe.json")
    if os.path.isfile(probe_path):
        with open(probe_path) as f:
            probe = json.load(f)["probe"]
        point.update({name: float(probe[key]) for name, key in PROBE_METRICS.items()})
    return RunData(
        tables=tables,
        sigma=np.asarray([d["bbox_std"] for d in det], dtype=np.float64) if has_sigma else None,
        abs_error=np.abs(det_xyxy - _xyxy(gt_xywh)),
        size=np.sqrt(np.clip(gt_xywh[:, 2] * gt_xywh[:, 3], 1e-12, None)),
        blurred=np.asarray([bool(g.get("blurred", 0)) for g in gt], dtype=bool),
        pred_iou=np.asarray([d["pred_iou"] for d in det], dtype=np.float64) if has_iou else None,
        point=point,
    )


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def ap_metrics(run: RunData, weights: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of :data:`AP_METRICS` on the image multiset ``weights``, from one
    accumulation (the bootstrap's cost is the accumulation, not the read-out)."""
    precision = precision_table(run.tables, weights)
    return {
        name: ap_from_precision(precision, run.tables.iou_thresholds, iou)
        for name, iou in AP_METRICS.items()
    }


def metric(run: RunData, name: str, weights: np.ndarray | None = None) -> float:
    """Value of metric ``name`` on the image multiset ``weights`` (default: every image once);
    NaN when the run lacks what the metric needs (e.g. σ for a model without a σ head)."""
    if name in AP_METRICS:
        return average_precision(run.tables, weights, AP_METRICS[name])
    if name in SEED_ONLY_METRICS:
        return run.point.get(name, float("nan"))
    if name not in MECHANISM_METRICS:
        raise KeyError(f"unknown study metric '{name}'")
    pairs = run.tables.pairs
    w = (
        np.ones(len(pairs.image), dtype=np.int64)
        if weights is None
        else np.asarray(weights)[pairs.image].astype(np.int64)
    )
    if w.sum() == 0:
        return float("nan")
    rep = lambda a: np.repeat(a, w, axis=0)  # noqa: E731  (an image drawn k times counts k times)
    if name == "mean_iou":
        return float(np.average(pairs.iou, weights=w))
    if name == "score_iou_spearman":
        return _spearman(rep(pairs.score), rep(pairs.iou))
    if name in ("iou_spearman", "iou_vs_score_spearman_gap"):
        if run.pred_iou is None:
            return float("nan")
        value = _spearman(rep(run.pred_iou), rep(pairs.iou))
        if name == "iou_spearman":
            return value
        return value - _spearman(rep(pairs.score), rep(pairs.iou))
    if run.sigma is None:
        return float("nan")
    if name == "sigma_err_spearman":
        return _spearman(rep(run.sigma).reshape(-1), rep(run.abs_error).reshape(-1))
    # sigma_blur_gap
    rel = run.sigma.mean(axis=1) / run.size
    wb, ws = w * run.blurred, w * ~run.blurred
    if wb.sum() == 0 or ws.sum() == 0:
        return float("nan")
    return float(np.average(rel, weights=wb) - np.average(rel, weights=ws))
