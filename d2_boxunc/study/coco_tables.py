"""COCO box AP under image resampling, for the study's paired bootstrap.

COCO's matching of detections to ground truth happens image by image, so it does not change when
the validation images are resampled; only the accumulation over images does.  :func:`match` runs
pycocotools' ``COCOeval.evaluate`` once and keeps, per category, every detection's score, image
and match flags at the ten IoU thresholds.  :func:`average_precision` then accumulates COCO's
101-point interpolated AP for any multiset of images, given as a count per image: a detection of
an image drawn k times counts k times.  With every count 1 it equals ``COCOeval.accumulate`` +
``summarize`` (``tests/study/test_coco_tables.py``).

Why not re-run COCOeval per resample: it de-duplicates ``imgIds``, so it cannot evaluate a
resample drawn with replacement, and re-matching 1000 resamples would cost minutes per
comparison instead of seconds.

Weighting instead of repeating is exact: copies of one detection share its score, so they sit
side by side in the ranking; inside a block of true-positive copies precision rises monotonically,
so the interpolated (right-max) precision is that of the block's end, and a block of false
positives adds points at an unchanged recall with lower precision, which interpolation ignores.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np
import torch
from detectron2.structures import Boxes, BoxMode
from detectron2.structures.boxes import matched_pairwise_iou
from pycocotools.cocoeval import COCOeval

__all__ = [
    "CategoryTable",
    "MatchTables",
    "Pairs",
    "ap_from_precision",
    "average_precision",
    "match",
    "precision_table",
]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


@dataclass
class CategoryTable:
    """One category's detections in COCO's ranking order, with per-image ground-truth counts."""

    image: np.ndarray  # (D,) image index (0..I-1) of each detection
    tp: np.ndarray  # (T, D) bool: matched a non-ignored GT at threshold t
    counted: np.ndarray  # (T, D) bool: not ignored at threshold t (matched a crowd/ignored GT)
    num_gt: np.ndarray  # (I,) non-ignored GT of this category per image


@dataclass
class Pairs:
    """The true positives at IoU 0.5: each matched (detection, ground truth) pair."""

    image: np.ndarray  # (P,) image index
    result: np.ndarray  # (P,) index of the detection in the results list
    gt_id: np.ndarray  # (P,) COCO annotation id
    iou: np.ndarray  # (P,) IoU of the pair
    score: np.ndarray  # (P,) detection score

    @classmethod
    def empty(cls) -> Pairs:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), z.astype(np.int64), z, z)


@dataclass
class MatchTables:
    """Per-category match tables of one set of detections on one validation set, and the
    detection / ground-truth pairs matched at IoU 0.5."""

    image_ids: list[int]  # COCO image ids, in index order
    categories: list[int]  # COCO category ids, in table order
    tables: list[CategoryTable]
    pairs: Pairs
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS.copy())

    @property
    def num_images(self) -> int:
        return len(self.image_ids)


def match(coco_gt, coco_results: list[dict], max_dets: int = 100) -> MatchTables:
    """COCO matching (all areas, ``max_dets`` per image) of ``coco_results`` against ``coco_gt``
    (a pycocotools ``COCO``); returns the tables :func:`average_precision` accumulates."""
    image_ids = sorted(coco_gt.getImgIds())
    categories = sorted(coco_gt.getCatIds())
    num_images, num_t = len(image_ids), len(IOU_THRESHOLDS)
    if not coco_results:
        tables = []
        for c in categories:
            num_gt = np.zeros(num_images, dtype=np.int64)
            for i, img in enumerate(image_ids):
                anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[img], catIds=[c]))
                num_gt[i] = sum(
                    1 for a in anns if not a.get("iscrowd", 0) and not a.get("ignore", 0)
                )
            empty = np.zeros((num_t, 0), dtype=bool)
            tables.append(CategoryTable(np.zeros(0, dtype=np.int64), empty, empty, num_gt))
        return MatchTables(image_ids, categories, tables, Pairs.empty())
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(coco_results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = image_ids
        ev.params.catIds = categories
        ev.params.iouThrs = IOU_THRESHOLDS
        ev.params.areaRng = [[0.0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [max_dets]
        ev.evaluate()
    tables = []
    pairs = {"image": [], "result": [], "gt_id": [], "iou": [], "score": []}
    for k in range(len(categories)):
        scores, image, tp, counted = [], [], [], []
        num_gt = np.zeros(num_images, dtype=np.int64)
        for i in range(num_images):
            e = ev.evalImgs[k * num_images + i]
            if e is None:
                continue
            num_gt[i] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
            d = len(e["dtScores"])
            if d == 0:
                continue
            scores.append(np.asarray(e["dtScores"], dtype=np.float64)[:max_dets])
            image.append(np.full(min(d, max_dets), i, dtype=np.int64))
            matches = np.asarray(e["dtMatches"])[:, :max_dets]
            ignored = np.asarray(e["dtIgnore"], dtype=bool)[:, :max_dets]
            tp.append((matches > 0) & ~ignored)
            counted.append(~ignored)
            for d in np.flatnonzero(tp[-1][0]):  # pairs at the first threshold, 0.5
                pairs["image"].append(i)
                pairs["result"].append(int(e["dtIds"][d]) - 1)  # loadRes numbers results from 1
                pairs["gt_id"].append(int(matches[0, d]))
                pairs["score"].append(float(e["dtScores"][d]))
        if scores:
            s = np.concatenate(scores)
            order = np.argsort(-s, kind="mergesort")  # COCO's ranking: stable, image order
            table = CategoryTable(
                np.concatenate(image)[order],
                np.concatenate(tp, axis=1)[:, order],
                np.concatenate(counted, axis=1)[:, order],
                num_gt,
            )
        else:
            empty = np.zeros((num_t, 0), dtype=bool)
            table = CategoryTable(np.zeros(0, dtype=np.int64), empty, empty, num_gt)
        tables.append(table)
    result = np.asarray(pairs["result"], dtype=np.int64)
    gt_id = np.asarray(pairs["gt_id"], dtype=np.int64)
    det_boxes = [coco_results[r]["bbox"] for r in result]
    gt_boxes = [coco_gt.anns[g]["bbox"] for g in gt_id]
    p = Pairs(
        np.asarray(pairs["image"], dtype=np.int64),
        result,
        gt_id,
        _matched_iou_xywh(det_boxes, gt_boxes),
        np.asarray(pairs["score"], dtype=np.float64),
    )
    return MatchTables(image_ids, categories, tables, p)


def _matched_iou_xywh(a: list, b: list) -> np.ndarray:
    """IoU of row-wise pairs of COCO XYWH boxes (detectron2's ``matched_pairwise_iou``)."""
    if not len(a):
        return np.zeros(0)
    to_xyxy = lambda boxes: Boxes(  # noqa: E731
        BoxMode.convert(
            torch.tensor(boxes, dtype=torch.float64), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS
        )
    )
    return matched_pairwise_iou(to_xyxy(a), to_xyxy(b)).numpy()


def _category_precision(table: CategoryTable, weights: np.ndarray) -> np.ndarray:
    """(T, 101) interpolated precision at COCO's recall thresholds; -1 rows without GT."""
    num_t, num_r = table.tp.shape[0], len(RECALL_THRESHOLDS)
    npig = float(np.dot(weights, table.num_gt))
    if npig == 0:
        return np.full((num_t, num_r), -1.0)
    out = np.zeros((num_t, num_r))
    if table.tp.shape[1] == 0:
        return out
    w = weights[table.image]
    # ignored detections add a point equal to the one before them, which changes nothing
    tps = np.cumsum(w * table.tp, axis=1)
    fps = np.cumsum(w * (table.counted & ~table.tp), axis=1)
    recall = tps / npig
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for t in range(num_t):
        idx = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
        valid = idx < recall.shape[1]
        out[t, valid] = precision[t, idx[valid]]
    return out


def precision_table(tables: MatchTables, weights: np.ndarray | None = None) -> np.ndarray:
    """COCO's (T, 101, K) precision array (all areas, one maxDets) of the image multiset
    ``weights`` (count per image; default each once); -1 where a category has no GT."""
    w = np.ones(tables.num_images) if weights is None else np.asarray(weights, dtype=np.float64)
    if not tables.tables:
        return np.full((len(tables.iou_thresholds), len(RECALL_THRESHOLDS), 0), -1.0)
    return np.stack([_category_precision(t, w) for t in tables.tables], axis=-1)


def ap_from_precision(
    precision: np.ndarray, iou_thresholds: np.ndarray, iou: float | None
) -> float:
    """AP x 100 from a :func:`precision_table` (``iou=None``: mean over 0.50:0.95)."""
    if iou is not None:
        hits = np.flatnonzero(np.isclose(iou_thresholds, iou))
        if hits.size == 0:
            raise ValueError(f"IoU threshold {iou} is not one of {iou_thresholds.tolist()}")
        precision = precision[hits[0]]
    p = precision[precision > -1]
    return float(100.0 * p.mean()) if p.size else float("nan")


def average_precision(
    tables: MatchTables, weights: np.ndarray | None = None, iou: float | None = None
) -> float:
    """COCO AP x 100 of the image multiset ``weights`` (count per image; default each once).

    ``iou=None`` averages the ten thresholds 0.50:0.95 (COCO "AP"); ``iou=0.5`` gives AP50, etc.
    NaN when no category has ground truth in the multiset.
    """
    return ap_from_precision(precision_table(tables, weights), tables.iou_thresholds, iou)
