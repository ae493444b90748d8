"""Localisation-Recall-Precision (LRP) error and optimal LRP (oLRP) for detectron2.

LRP (Oksuz et al., ECCV 2018; the form used by the aLRP Loss paper) of one class at one score
threshold s, with the detections scoring >= s matched to the ground truth as COCO matches them at
IoU tau (= 0.5):

    LRP = ( sum_{TP} (1 - IoU) / (1 - tau)  +  N_FP  +  N_FN ) / ( N_TP + N_FP + N_FN )

0 is perfect, 1 is the worst (nothing found, or only false positives).  oLRP is the minimum of LRP
over the class's score thresholds; its components at that optimum are

    localisation = mean (1 - IoU) over the TPs,  FP = N_FP / (N_TP + N_FP),  FN = N_FN / N_GT,

and the optimal threshold is the score of the last detection kept.  A class without a TP has
oLRP = 1, FN component 1 and undefined (NaN) localisation, FP component and threshold; a class
without ground truth is left out.  moLRP (reported as ``oLRP``) and the mean components are means
over classes (NaN entries left out).  Like COCO AP, the numbers are reported x 100.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.file_io import PathManager
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

from .coco_evaluator import coco_results_from

__all__ = ["LRPEvaluator", "LRPResult", "ClassLRP", "compute_lrp", "lrp_curve"]

logger = logging.getLogger(__name__)


@dataclass
class ClassLRP:
    """oLRP of one class and its components at the optimal threshold (fractions, not x 100)."""

    olrp: float
    loc: float  # mean 1 - IoU of the TPs at the optimum (NaN without TP)
    fp: float  # N_FP / (N_TP + N_FP) at the optimum (NaN without TP)
    fn: float  # N_FN / N_GT at the optimum
    threshold: float  # score of the last detection kept (NaN without TP)
    lrp: float  # LRP of all the class's detections (the model's own output threshold)
    num_gt: int
    num_dets: int


@dataclass
class LRPResult:
    """Per-class results (``None`` for a class without ground truth) and their means."""

    per_class: list[ClassLRP | None]
    tau: float = 0.5
    summary: dict = field(default_factory=dict)

    def __post_init__(self):
        valid = [c for c in self.per_class if c is not None]

        def mean(attr):
            values = [getattr(c, attr) for c in valid if not np.isnan(getattr(c, attr))]
            return float(np.mean(values)) if values else float("nan")

        self.summary = {
            "oLRP": mean("olrp"),
            "oLRP_loc": mean("loc"),
            "oLRP_FP": mean("fp"),
            "oLRP_FN": mean("fn"),
            "LRP": mean("lrp"),
        }


def lrp_curve(ious: np.ndarray, is_tp: np.ndarray, num_gt: int, tau: float = 0.5) -> np.ndarray:
    """LRP after each detection of a score-sorted list (index i: the first i + 1 detections kept).

    Args:
        ious: IoU of each detection with the ground truth it matched (ignored for FPs).
        is_tp: whether each detection is a true positive; the others are false positives.
        num_gt: number of (non-ignored) ground-truth objects, > 0.
    """
    if num_gt <= 0:
        raise ValueError(f"lrp_curve: num_gt must be positive, got {num_gt}")
    is_tp = np.asarray(is_tp, dtype=bool)
    tp = np.cumsum(is_tp)
    fp = np.cumsum(~is_tp)
    fn = num_gt - tp
    loc = np.cumsum(np.where(is_tp, 1.0 - np.asarray(ious, dtype=np.float64), 0.0))
    return (loc / (1.0 - tau) + fp + fn) / (tp + fp + fn)


def _no_detection(num_gt: int, num_dets: int = 0) -> ClassLRP:
    nan = float("nan")
    return ClassLRP(
        olrp=1.0, loc=nan, fp=nan, fn=1.0, threshold=nan, lrp=1.0, num_gt=num_gt, num_dets=num_dets
    )


def _class_lrp(scores, ious, is_tp, num_gt: int, tau: float) -> ClassLRP:
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    scores = np.asarray(scores, dtype=np.float64)[order]
    ious = np.asarray(ious, dtype=np.float64)[order]
    is_tp = np.asarray(is_tp, dtype=bool)[order]
    if not is_tp.any():  # LRP = (N_FP + N_FN) / (N_FP + N_FN) = 1 at every threshold
        return _no_detection(num_gt, len(scores))
    curve = lrp_curve(ious, is_tp, num_gt, tau)
    best = int(np.argmin(curve))
    tp = int(is_tp[: best + 1].sum())
    fp = best + 1 - tp
    loc = float((1.0 - ious[: best + 1][is_tp[: best + 1]]).sum())
    return ClassLRP(
        olrp=float(curve[best]),
        loc=loc / tp,
        fp=fp / (tp + fp),
        fn=(num_gt - tp) / num_gt,
        threshold=float(scores[best]),
        lrp=float(curve[-1]),
        num_gt=num_gt,
        num_dets=len(scores),
    )


def compute_lrp(
    coco_gt, coco_results: list[dict], img_ids=None, tau: float = 0.5, max_dets: int = 100
) -> tuple[list[int], LRPResult]:
    """oLRP of COCO-format box detections against a pycocotools ``COCO`` ground truth.

    Matching is COCO's (pycocotools ``COCOeval.evaluateImg`` at IoU ``tau``, all areas, at most
    ``max_dets`` detections per image, crowd/ignored GT absorb detections without counting).

    Returns:
        (category ids in ``coco_gt`` order, :class:`LRPResult` with one entry per category).
    """
    if not 0.0 <= tau < 1.0:
        raise ValueError(f"compute_lrp: tau must be in [0, 1), got {tau}")
    cat_ids = sorted(coco_gt.getCatIds())
    img_ids = sorted(coco_gt.getImgIds()) if img_ids is None else sorted(set(img_ids))
    if not coco_results:  # pycocotools cannot load an empty result list
        per_class = []
        for c in cat_ids:
            n = sum(
                1
                for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=img_ids, catIds=[c]))
                if not a.get("iscrowd", 0) and not a.get("ignore", 0)
            )
            per_class.append(_no_detection(n) if n else None)
        return cat_ids, LRPResult(per_class, tau)

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(coco_results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = img_ids
        ev.params.catIds = cat_ids
        ev.params.iouThrs = np.array([tau])
        ev.params.areaRng = [[0.0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [max_dets]
        ev.evaluate()

    num_imgs = len(img_ids)
    per_class: list[ClassLRP | None] = []
    for k in range(len(cat_ids)):
        entries = [e for e in ev.evalImgs[k * num_imgs : (k + 1) * num_imgs] if e is not None]
        num_gt = int(sum(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0) for e in entries))
        if num_gt == 0:
            per_class.append(None)
            continue
        scores, ious, is_tp = [], [], []
        for e in entries:
            for d, (dt_id, score) in enumerate(zip(e["dtIds"], e["dtScores"])):
                if e["dtIgnore"][0, d]:
                    continue  # matched a crowd / ignored GT, or outside the area range
                gt_id = int(e["dtMatches"][0, d])
                scores.append(score)
                is_tp.append(gt_id > 0)
                if gt_id > 0:
                    box_d = coco_dt.anns[dt_id]["bbox"]
                    box_g = coco_gt.anns[gt_id]["bbox"]
                    ious.append(float(mask_utils.iou([box_d], [box_g], [0])[0, 0]))
                else:
                    ious.append(0.0)
        per_class.append(_class_lrp(scores, ious, is_tp, num_gt, tau))
    return cat_ids, LRPResult(per_class, tau)


class LRPEvaluator(COCOEvaluator):
    """oLRP / moLRP and their components (box detection), under the results key ``"lrp"``.

    Reuses :class:`COCOEvaluator`'s conversion of ``Instances`` to COCO json and its gathering of
    predictions across ranks; only the metric differs.  Composable with a ``COCOEvaluator`` in
    ``DatasetEvaluators``.  Values are x 100 (like AP); per-class oLRP under ``"oLRP-<class>"``
    and per-class optimal score thresholds (0..1) under ``"thr-<class>"``.
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        tau: float = 0.5,
        max_dets_per_image: int = 100,
        allow_cached_coco: bool = True,
    ):
        if not 0.0 <= tau < 1.0:
            raise ValueError(f"LRPEvaluator: tau must be in [0, 1), got {tau}")
        self._tau = tau
        self._lrp_max_dets = max_dets_per_image
        self._lrp_output_dir = output_dir
        super().__init__(
            dataset_name,
            tasks=("bbox",),
            distributed=distributed,
            output_dir=output_dir,  # where a non-COCO dataset's converted json is cached
            use_fast_impl=False,
            allow_cached_coco=allow_cached_coco,
        )
        # the COCOEvaluator beside this one already saves the predictions
        self._output_dir = None

    def _eval_box_proposals(self, predictions):  # proposals are not what LRP measures
        return

    def _eval_predictions(self, predictions, img_ids=None):
        coco_results = coco_results_from(predictions, self._metadata)
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for LRP evaluation.")
            return
        cat_ids, result = compute_lrp(
            self._coco_api, coco_results, img_ids, self._tau, self._lrp_max_dets
        )
        names = self._class_names(cat_ids)
        out = {k: 100.0 * v for k, v in result.summary.items()}
        for name, c in zip(names, result.per_class):
            if c is not None:
                out[f"oLRP-{name}"] = 100.0 * c.olrp
        for name, c in zip(names, result.per_class):
            if c is not None:
                out[f"thr-{name}"] = c.threshold
        self._log_table(names, result)
        if self._lrp_output_dir:
            PathManager.mkdirs(self._lrp_output_dir)
            path = os.path.join(self._lrp_output_dir, "lrp_per_class.json")
            with PathManager.open(path, "w") as f:
                json.dump(
                    {
                        n: (vars(c) if c is not None else None)
                        for n, c in zip(names, result.per_class)
                    },
                    f,
                    indent=1,
                )
        self._results["lrp"] = out

    def _class_names(self, cat_ids: list[int]) -> list[str]:
        classes = self._metadata.get("thing_classes", None)
        mapping = self._metadata.get("thing_dataset_id_to_contiguous_id", None)
        if classes is not None and mapping is not None:
            return [classes[mapping[c]] for c in cat_ids]
        return [self._coco_api.cats[c]["name"] for c in cat_ids]

    def _log_table(self, names: list[str], result: LRPResult) -> None:
        def pct(v):
            return "nan" if np.isnan(v) else f"{100.0 * v:.3f}"

        rows = []
        for name, c in zip(names, result.per_class):
            if c is None:
                rows.append([name, "-", "-", "-", "-", "-", "-", 0])
                continue
            thr = "nan" if np.isnan(c.threshold) else f"{c.threshold:.3f}"
            rows.append(
                [name, pct(c.olrp), pct(c.loc), pct(c.fp), pct(c.fn), thr, pct(c.lrp), c.num_gt]
            )
        s = result.summary
        rows.append(
            [
                "(mean)",
                pct(s["oLRP"]),
                pct(s["oLRP_loc"]),
                pct(s["oLRP_FP"]),
                pct(s["oLRP_FN"]),
                "",
                pct(s["LRP"]),
                sum(c.num_gt for c in result.per_class if c is not None),
            ]
        )
        table = tabulate(
            rows,
            headers=["category", "oLRP", "loc", "FP", "FN", "opt. thr", "LRP (all dets)", "#GT"],
            tablefmt="pipe",
            numalign="left",
            stralign="center",
        )
        self._logger.info(
            f"Optimal LRP (tau={result.tau}; x100, lower is better; moLRP = {pct(s['oLRP'])}):\n"
            + table
        )
