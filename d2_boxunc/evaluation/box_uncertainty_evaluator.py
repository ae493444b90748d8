"""Is a detector's localisation uncertainty calibrated, and its score?  A ``DatasetEvaluator``
for any detector, with more for models whose ``Instances`` carry ``pred_boxes_std`` (per-coordinate Gaussian std in pixels, KL-Loss) and/or
``pred_ious`` (predicted IoU with the object, IoU-Net).

For ``pred_boxes_std`` (detections matched to ground truth as in
:func:`~d2_boxunc.evaluation.matching.match_to_ground_truth`: same class, IoU >= 0.5, greedy
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

For every detector, whatever it outputs (boxes, scores and classes only; the pure functions and
their exact definitions are in :mod:`d2_boxunc.evaluation.calibration`):

- ``D-ECE``: detection expected calibration error of the score against precision (TP at IoU >=
  ``iou_threshold``, 10 bins, class-agnostic), x 100;
- ``LaECE`` (and ``LaECE-<class>``): localisation-aware ECE, the score against IoU-if-TP-else-0
  per class (TP at IoU >= ``laece_iou_threshold`` = 0, i.e. LaECE_0, 25 bins), mean over
  classes, x 100;
- ``outcome/...``: the detections kept at the F1-optimal score threshold (``outcome/threshold``,
  ``outcome/F1``, at IoU >= ``iou_threshold``) split into ``TP``, ``duplicate``, ``loc_error``,
  ``background`` and the GTs ``missed``: counts and ``_frac`` fractions (of the kept detections;
  ``missed_frac`` of the GTs), overall and ``-<class>``.

These are computed over all detections the model returns (its own score threshold and
detections-per-image cap apply, which changes D-ECE and LaECE).  With ``pred_boxes_std`` also
``energy_score`` (mean closed-form Gaussian energy score = CRPS of the matched GT coordinates,
pixels) and ``sharpness`` (mean sigma / sqrt(w h) over every detection).

Reliability plots (``reliability.png`` for the scores, ``coverage_reliability.png``,
``iou_reliability.png``) are written to ``output_dir``.  Images without ``instances`` are
skipped; a model that outputs none at all gets empty results and a log line.
"""

from __future__ import annotations

import itertools
import logging
import os

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import BoxMode
from detectron2.utils import comm
from scipy.special import ndtri
from scipy.stats import spearmanr

from .calibration import OUTCOMES, ImageDetections, detection_calibration, energy_score, sharpness
from .matching import ground_truth, match_to_ground_truth, true_ious

__all__ = [
    "BoxUncertaintyEvaluator",
    "DEFAULT_LEVELS",
    "gaussian_nll",
    "interval_coverage",
    "iou_calibration",
    "iou_metrics",
    "save_coverage_plot",
    "save_iou_reliability_plot",
    "save_reliability_diagram",
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


def save_reliability_diagram(calib: dict, path: str) -> None:
    """Two panels from :func:`~d2_boxunc.evaluation.calibration.detection_calibration`'s output:
    precision per score bin (D-ECE) and mean IoU-if-TP target per score bin, averaged over
    classes (LaECE); bars = bin target, grey = fraction of detections in the bin, dashed =
    calibrated."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=100)
    panels = (
        (calib["dece_table"], "precision", f"D-ECE {100 * calib['dece']:.2f}"),
        (calib["laece_table"], "mean IoU (0 if not TP)", f"LaECE {100 * calib['laece']:.2f}"),
    )
    for ax, (table, ylabel, title) in zip(axes, panels):
        edges = table["edges"]
        width = np.diff(edges)
        count = np.asarray(table["count"], dtype=np.float64)
        share = count / count.sum() if count.sum() else count
        ax.bar(
            edges[:-1], share, width=width, align="edge", color="0.85", label="share of detections"
        )
        target = np.nan_to_num(table["target"], nan=0.0)
        ax.bar(
            edges[:-1], target, width=width, align="edge", fill=False, edgecolor="C0", label=ylabel
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("score")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class BoxUncertaintyEvaluator(DatasetEvaluator):
    """Calibration of the scores (any detector), of ``pred_boxes_std`` and of ``pred_ious``, and
    the outcome breakdown; results under ``"box_uncertainty"``.

    ``iou_threshold`` (tau of the sigma matching, D-ECE and the outcomes), ``laece_iou_threshold``
    (tau of LaECE, 0 = LaECE_0), ``dece_bins`` and ``laece_bins`` (equal-width score bins)."""

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        iou_threshold: float = 0.5,
        levels=DEFAULT_LEVELS,
        laece_iou_threshold: float = 0.0,
        dece_bins: int = 10,
        laece_bins: int = 25,
    ):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if not 0.0 <= laece_iou_threshold <= 1.0:
            raise ValueError(f"laece_iou_threshold must be in [0, 1], got {laece_iou_threshold}")
        for name, b in (("dece_bins", dece_bins), ("laece_bins", laece_bins)):
            if int(b) != b or b < 1:
                raise ValueError(f"{name} must be a positive integer, got {b}")
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self._iou_threshold = iou_threshold
        self._laece_iou_threshold = float(laece_iou_threshold)
        self._dece_bins, self._laece_bins = int(dece_bins), int(laece_bins)
        self._levels = tuple(float(v) for v in levels)
        interval_coverage(np.zeros(1), np.ones(1), self._levels)  # validates the levels
        self._gt_by_id = None
        self.reset()

    def reset(self):
        self._sigma = []  # (pred (n, 4), gt (n, 4), std (n, 4)) per image
        self._iou = []  # (pred_iou (k,), true_iou (k,), score (k,)) per image
        self._images = []  # ImageDetections per image (every model)
        self._spread = []  # (boxes (n, 4), std (n, 4)) of every detection, per image

    def _dataset_dict(self, image_id):
        if self._gt_by_id is None:
            self._gt_by_id = {d["image_id"]: d for d in DatasetCatalog.get(self._dataset_name)}
        if image_id not in self._gt_by_id:
            raise KeyError(f"image_id {image_id} is not in dataset '{self._dataset_name}'")
        return self._gt_by_id[image_id]

    def _ground_truth(self, image_id):
        return ground_truth(self._dataset_dict(image_id))

    def _crowd(self, image_id) -> tuple[np.ndarray, np.ndarray]:
        annos = [a for a in self._dataset_dict(image_id).get("annotations", []) if a.get("iscrowd")]
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
        classes = [a["category_id"] for a in annos]
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(classes, np.int64)

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            inst = out.get("instances", None)
            if inst is None or not (inst.has("scores") and inst.has("pred_classes")):
                continue
            inst = inst.to("cpu")
            gt_boxes, gt_classes, _ = self._ground_truth(inp["image_id"])
            boxes = inst.pred_boxes.tensor.float()
            crowd_boxes, crowd_classes = self._crowd(inp["image_id"])
            self._images.append(
                ImageDetections(
                    boxes.numpy(),
                    inst.scores.float().numpy(),
                    inst.pred_classes.numpy(),
                    gt_boxes.numpy(),
                    gt_classes.numpy(),
                    crowd_boxes,
                    crowd_classes,
                )
            )
            if inst.has("pred_boxes_std"):
                self._spread.append((boxes.numpy(), inst.pred_boxes_std.float().numpy()))
                d, g = match_to_ground_truth(inst, gt_boxes, gt_classes, self._iou_threshold)
                self._sigma.append(
                    (boxes[d].numpy(), gt_boxes[g].numpy(), inst.pred_boxes_std[d].float().numpy())
                )
            if inst.has("pred_ious"):
                true_iou = true_ious(inst, gt_boxes, gt_classes)
                self._iou.append(
                    (
                        inst.pred_ious.float().reshape(-1).numpy(),
                        true_iou.numpy(),
                        inst.scores.float().numpy(),
                    )
                )

    def evaluate(self):
        sigma, ious, images, spread = self._sigma, self._iou, self._images, self._spread
        if self._distributed:
            comm.synchronize()
            sigma = list(itertools.chain(*comm.gather(sigma, dst=0)))
            ious = list(itertools.chain(*comm.gather(ious, dst=0)))
            images = list(itertools.chain(*comm.gather(images, dst=0)))
            spread = list(itertools.chain(*comm.gather(spread, dst=0)))
            if not comm.is_main_process():
                return {}
        if not images:
            logger.info(
                "BoxUncertaintyEvaluator: the model outputs no 'instances' with scores and "
                "classes; skipping the box-uncertainty evaluation."
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
            results["energy_score"] = energy_score(pred, gt, std)
            boxes_all, std_all = (np.concatenate(x).reshape(-1, 4) for x in zip(*spread))
            results["sharpness"] = sharpness(std_all, boxes_all)
            lines.append(
                f"sigma ({len(pred)} matched detections x 4 coords): NLL {m['NLL']:.3f} nats, "
                f"interval ECE {m['interval_ECE']:.2f} (coverage gap {m['coverage_gap']:+.2f}), "
                f"Spearman(sigma, |err|) {m['sigma_err_spearman']:.3f}, energy score "
                f"{results['energy_score']:.3f} px; sharpness (sigma / box size, "
                f"{len(boxes_all)} detections) {results['sharpness']:.4f}"
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
        results.update(self._detection_metrics(images, lines))
        logger.info("Box uncertainty:\n  " + "\n  ".join(lines))
        return {"box_uncertainty": results}

    def _class_names(self) -> dict:
        names = MetadataCatalog.get(self._dataset_name).get("thing_classes", None) or []
        return dict(enumerate(names))

    def _detection_metrics(self, images, lines: list) -> dict:
        """D-ECE, LaECE and the outcome breakdown (flat keys); appends the log table to
        ``lines`` and saves ``reliability.png``."""
        calib = detection_calibration(
            images,
            iou_threshold=self._iou_threshold,
            laece_iou_threshold=self._laece_iou_threshold,
            dece_bins=self._dece_bins,
            laece_bins=self._laece_bins,
        )
        names = self._class_names()
        name = lambda c: str(names.get(c, c))  # noqa: E731
        res = {"D-ECE": 100.0 * calib["dece"], "LaECE": 100.0 * calib["laece"]}
        for c, v in sorted(calib["laece_per_class"].items()):
            res[f"LaECE-{name(c)}"] = 100.0 * v
        res["outcome/threshold"] = calib["threshold"]
        res["outcome/F1"] = calib["f1"]

        def fractions(row: dict) -> dict:
            kept = sum(row[k] for k in OUTCOMES)
            frac = {f"{k}_frac": row[k] / kept if kept else float("nan") for k in OUTCOMES}
            frac["missed_frac"] = row["missed"] / row["num_gt"] if row["num_gt"] else float("nan")
            return {**{k: row[k] for k in (*OUTCOMES, "missed")}, **frac}

        per_class = calib["outcomes"]
        total = {k: sum(r[k] for r in per_class.values()) for k in (*OUTCOMES, "missed", "num_gt")}
        for k, v in fractions(total).items():
            res[f"outcome/{k}"] = v
        res["outcome/num_detections"] = sum(total[k] for k in OUTCOMES)
        res["outcome/num_gt"] = total["num_gt"]
        for c, row in sorted(per_class.items()):
            for k, v in fractions(row).items():
                res[f"outcome/{k}-{name(c)}"] = v

        from tabulate import tabulate

        header = ["category", "#GT", "kept", *OUTCOMES, "missed", "LaECE"]
        rows = [
            [name(c), r["num_gt"], sum(r[k] for k in OUTCOMES), *(r[k] for k in OUTCOMES)]
            + [r["missed"], 100.0 * calib["laece_per_class"].get(c, float("nan"))]
            for c, r in sorted(per_class.items())
        ]
        rows.append(
            ["(all)", total["num_gt"], res["outcome/num_detections"]]
            + [total[k] for k in OUTCOMES]
            + [total["missed"], res["LaECE"]]
        )
        lines.append(
            f"score calibration ({calib['num_detections']} detections, x100): D-ECE "
            f"{res['D-ECE']:.2f} (IoU >= {self._iou_threshold:g}, {self._dece_bins} bins), LaECE "
            f"{res['LaECE']:.2f} (IoU >= {self._laece_iou_threshold:g}, {self._laece_bins} bins, "
            f"mean over classes); outcomes at the F1-optimal score threshold "
            f"{res['outcome/threshold']:.3f} (F1 {res['outcome/F1']:.3f}):"
        )
        lines.extend(tabulate(rows, headers=header, tablefmt="pipe", floatfmt=".2f").splitlines())
        if self._output_dir and calib["num_detections"]:
            os.makedirs(self._output_dir, exist_ok=True)
            save_reliability_diagram(calib, os.path.join(self._output_dir, "reliability.png"))
        return res
