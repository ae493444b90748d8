"""Calibration and error-breakdown metrics of a detector, as small pure numpy functions.

Used by :class:`~d2_boxunc.evaluation.box_uncertainty_evaluator.BoxUncertaintyEvaluator`; every
function takes plain arrays (boxes XYXY in pixels) so that it can be tested on hand-built cases.

**Matching** (:func:`match_detections`): per image, detections in decreasing score order (stable
for ties) each take the not yet taken ground truth (GT) box of their own class with the largest
IoU, if that IoU is >= tau and > 0; such a detection is a true positive (TP).  A detection that
is not a TP but covers a same-class crowd region (intersection / detection area >= tau and > 0)
is *ignored*, as COCO ignores it, and left out of every metric below.

**Confidence calibration** (10 / 25 equal-width bins of the score on [0, 1]; bin b holds the
scores in (b/B, (b+1)/B], the first bin also 0, as the reference implementation bins them):

- D-ECE (Kueppers et al., CVPR-W 2020), class-agnostic: sum over bins of
  N_b / N * |mean score_b - precision_b|, precision_b = fraction of the bin's detections that are
  TPs at tau = 0.5;
- LaECE (Oksuz et al., CVPR 2023; the LaECE_0 of Kuzucu, Oksuz et al., ECCV 2024, whose official
  code https://github.com/fiveai/detection_calibration was read for the definition): for each class
  c, the same sum over the class's detections with the target IoU(detection, matched GT) for a TP
  and 0 for any other detection (TPs at tau = 0, i.e. any overlap, and 25 bins by default, as
  there); LaECE is the mean over the classes that have at least one detection.  (The reference
  implementation also leaves out classes without any GT in the dataset, and a class whose error is
  exactly 0; neither is done here.)  A detector is LaECE-calibrated when its score predicts the IoU
  it will reach.

The binned computation is written out here instead of taken from ``netcal``: netcal's ECE
expects binary labels (it cannot take the IoU targets of LaECE), has no per-class averaging, and
installing it pulls in scikit-learn, pyro-ppl and gpytorch, for about thirty lines of numpy.

**Per-coordinate regression** with a Gaussian N(mu, sigma^2) per box coordinate:

- energy score with beta = 1, ES(F, y) = E|X - y| - E|X - X'| / 2 for X, X' ~ F independent,
  which in one dimension is the CRPS and has the closed form (Gneiting & Raftery, 2007)
  ES = sigma [ z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi) ],  z = (y - mu) / sigma,
  in pixels, -> |y - mu| as sigma -> 0 (a point prediction scores its absolute error); lower is
  better, and it rewards sharp predictions only when they are also right.  This is the mean of
  the four one-dimensional scores, not the joint 4-D energy score (which has no closed form);
- sharpness: mean of sigma / sqrt(w h) over the coordinates of the detections (w, h of the
  predicted box, clamped to >= 1 pixel): how wide the predicted distributions are relative to the
  object, whatever the error.

**Outcome breakdown** at the F1-optimal score threshold (:func:`f1_optimal_threshold`, on the TP
flags of the tau = 0.5 matching pooled over the dataset), for the detections kept (score >=
threshold) and matched among themselves as above, by :func:`classify_detections`:

- ``TP``: took a same-class GT with IoU >= 0.5;
- ``duplicate``: not a TP, and IoU >= 0.5 with a same-class GT (which a higher-scoring kept
  detection has therefore already taken); also a detection whose only same-class overlaps of
  IoU >= 0.1 are with GTs found by a TP (a loose second box on an object already found);
- ``loc_error``: not a TP, IoU < 0.5 with every same-class GT, and 0.1 <= IoU < 0.5 with a
  same-class GT that no kept TP found (the object was seen, but too poorly localised to count);
- ``background``: IoU < 0.1 with every GT of its class (including images with none of them);
- ``missed``: a GT that no kept TP took (counted per GT; a missed GT may also have a
  ``loc_error`` detection on it).

The four detection outcomes partition the kept (not ignored) detections; the fractions are of the
kept detections, and ``missed`` of the GTs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

__all__ = [
    "OUTCOMES",
    "ImageDetections",
    "Matching",
    "binned_calibration_error",
    "box_iou",
    "classify_detections",
    "detection_calibration",
    "detection_ece",
    "energy_score",
    "f1_optimal_threshold",
    "gaussian_energy_score",
    "localisation_aware_ece",
    "match_detections",
    "outcome_breakdown",
    "sharpness",
]

OUTCOMES = ("TP", "duplicate", "loc_error", "background")
_TP, _DUPLICATE, _LOC_ERROR, _BACKGROUND, _IGNORED = 0, 1, 2, 3, -1


def _boxes(b) -> np.ndarray:
    return np.asarray(b, dtype=np.float64).reshape(-1, 4)


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def box_iou(a, b) -> np.ndarray:
    """(n, m) IoU of XYXY boxes (0 where the union is empty)."""
    a, b = _boxes(a), _boxes(b)
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class ImageDetections:
    """One image: detections (``boxes`` XYXY, ``scores``, ``classes``), its non-crowd ground truth
    and (optionally) its crowd regions, all as numpy arrays."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    crowd_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    crowd_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self):
        self.boxes = _boxes(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        self.gt_boxes = _boxes(self.gt_boxes)
        self.gt_classes = np.asarray(self.gt_classes, dtype=np.int64).reshape(-1)
        self.crowd_boxes = _boxes(self.crowd_boxes)
        self.crowd_classes = np.asarray(self.crowd_classes, dtype=np.int64).reshape(-1)
        n, m = len(self.boxes), len(self.gt_boxes)
        if len(self.scores) != n or len(self.classes) != n:
            raise ValueError(
                f"{n} boxes but {len(self.scores)} scores, {len(self.classes)} classes"
            )
        if len(self.gt_classes) != m or len(self.crowd_classes) != len(self.crowd_boxes):
            raise ValueError("ground-truth boxes and classes differ in length")

    def subset(self, keep: np.ndarray) -> ImageDetections:
        return ImageDetections(
            self.boxes[keep],
            self.scores[keep],
            self.classes[keep],
            self.gt_boxes,
            self.gt_classes,
            self.crowd_boxes,
            self.crowd_classes,
        )


@dataclass
class Matching:
    """Per detection: ``gt_index`` (the GT it took, -1 if none: not a TP), ``iou`` with that GT
    (0 if none) and ``ignored`` (unmatched, on a same-class crowd region)."""

    gt_index: np.ndarray
    iou: np.ndarray
    ignored: np.ndarray

    @property
    def is_tp(self) -> np.ndarray:
        return self.gt_index >= 0


def _same_class_iou(img: ImageDetections) -> np.ndarray:
    iou = box_iou(img.boxes, img.gt_boxes)
    iou[img.classes[:, None] != img.gt_classes[None, :]] = -1.0
    return iou


def match_detections(img: ImageDetections, iou_threshold: float = 0.5) -> Matching:
    """Greedy one-to-one matching of one image's detections to its GT (see the module doc)."""
    n = len(img.boxes)
    gt_index = np.full(n, -1, dtype=np.int64)
    matched_iou = np.zeros(n)
    if n and len(img.gt_boxes):
        iou = _same_class_iou(img)
        taken = np.zeros(len(img.gt_boxes), dtype=bool)
        for d in np.argsort(-img.scores, kind="stable"):
            row = np.where(taken, -1.0, iou[d])
            best = int(row.argmax())
            if row[best] >= iou_threshold and row[best] > 0:
                taken[best] = True
                gt_index[d], matched_iou[d] = best, row[best]
    ignored = np.zeros(n, dtype=bool)
    if n and len(img.crowd_boxes):
        ioa = (
            _intersection(img.boxes, img.crowd_boxes) / np.maximum(_area(img.boxes), 1e-12)[:, None]
        )
        ioa[img.classes[:, None] != img.crowd_classes[None, :]] = 0.0
        best = ioa.max(axis=1)
        ignored = (gt_index < 0) & (best >= iou_threshold) & (best > 0)
    return Matching(gt_index, matched_iou, ignored)


def binned_calibration_error(confidence, target, bins: int = 10) -> tuple[float, dict]:
    """Sum over equal-width bins of [0, 1] of N_b / N * |mean confidence_b - mean target_b|.

    Returns the error (a fraction, NaN without samples) and the per-bin table: ``confidence``,
    ``target`` (means, NaN for an empty bin), ``count`` and ``edges``.  Bin b holds
    (edges[b], edges[b+1]], the first also 0; confidences outside [0, 1] go to the end bins."""
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    bins = int(bins)
    c = np.asarray(confidence, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    if c.shape != t.shape:
        raise ValueError(f"confidence {c.shape} and target {t.shape} must have the same shape")
    if np.any(~np.isfinite(c)) or np.any(~np.isfinite(t)):
        raise ValueError("confidence and target must be finite")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, c, side="left") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_c = np.bincount(idx, weights=c, minlength=bins) / count
        mean_t = np.bincount(idx, weights=t, minlength=bins) / count
    table = {"confidence": mean_c, "target": mean_t, "count": count, "edges": edges}
    if c.size == 0:
        return float("nan"), table
    full = count > 0
    ece = float(np.sum(count[full] / c.size * np.abs(mean_c[full] - mean_t[full])))
    return ece, table


def detection_ece(scores, is_tp, bins: int = 10) -> tuple[float, dict]:
    """D-ECE: binned calibration of the score against precision (target 1 for a TP, 0 else)."""
    return binned_calibration_error(scores, np.asarray(is_tp, dtype=np.float64), bins)


def localisation_aware_ece(
    scores, tp_iou, classes, bins: int = 25
) -> tuple[float, dict[int, float], dict]:
    """LaECE: per class, the binned error of the score against ``tp_iou`` (IoU with the matched
    GT for a TP, 0 for any other detection); the mean over classes with detections.

    Returns (LaECE, {class: its error}, table) where the table has, per bin, the mean over
    classes (with detections in the bin) of the bin's mean score and mean target, and the count
    of all detections."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(tp_iou, dtype=np.float64).ravel()
    k = np.asarray(classes).ravel()
    if not (s.shape == t.shape == k.shape):
        raise ValueError("scores, tp_iou and classes must have the same length")
    per_class, confs, targets = {}, [], []
    count = np.zeros(int(bins), dtype=np.int64)
    for c in np.unique(k):
        m = k == c
        per_class[int(c)], table = binned_calibration_error(s[m], t[m], bins)
        confs.append(table["confidence"])
        targets.append(table["target"])
        count += table["count"]
    _, table = binned_calibration_error([], [], bins)
    if per_class:
        with warnings.catch_warnings():  # all-NaN columns (bins empty in every class)
            warnings.simplefilter("ignore", category=RuntimeWarning)
            table["confidence"] = np.nanmean(np.stack(confs), axis=0)
            table["target"] = np.nanmean(np.stack(targets), axis=0)
        table["count"] = count
    value = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return value, per_class, table


def gaussian_energy_score(errors, sigma) -> np.ndarray:
    """Elementwise energy score (beta = 1, = CRPS) of N(mu, sigma^2) at y, ``errors`` = y - mu:
    sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = errors / sigma; |errors| at sigma = 0."""
    e = np.asarray(errors, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    if e.shape != s.shape:
        raise ValueError(f"errors {e.shape} and sigma {s.shape} must have the same shape")
    if np.any(s < 0) or np.any(~np.isfinite(s)):
        raise ValueError("sigma must be finite and non-negative")
    pos = s > 0
    safe = np.where(pos, s, 1.0)
    z = e / safe
    pdf = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    es = safe * (z * (2 * ndtr(z) - 1) + 2 * pdf - 1 / np.sqrt(np.pi))
    return np.where(pos, es, np.abs(e))


def energy_score(pred, gt, sigma) -> float:
    """Mean :func:`gaussian_energy_score` of every coordinate (pixels); NaN when empty."""
    errors = np.asarray(gt, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    es = gaussian_energy_score(errors, np.asarray(sigma, dtype=np.float64))
    return float(es.mean()) if es.size else float("nan")


def sharpness(sigma, boxes, min_size: float = 1.0) -> float:
    """Mean of sigma / sqrt(w h) (w, h of the predicted XYXY ``boxes``, size >= ``min_size``) over
    every coordinate of ``sigma`` (n, 4); NaN when empty."""
    s = np.asarray(sigma, dtype=np.float64).reshape(-1, 4)
    b = _boxes(boxes)
    if len(s) != len(b):
        raise ValueError(f"{len(s)} sigma rows for {len(b)} boxes")
    if s.size == 0:
        return float("nan")
    size = np.maximum(np.sqrt(_area(b)), min_size)
    return float(np.mean(s / size[:, None]))


def f1_optimal_threshold(scores, is_tp, num_gt: int) -> tuple[float, float]:
    """The score threshold t maximising F1 = 2 TP / (2 TP + FP + FN) of the detections with
    score >= t (TP flags fixed, as greedy matching by score makes them); returns (t, F1).

    Candidate thresholds are the detection scores.  Among equal F1 the lowest t is taken (so
    with no TP at all, t keeps every detection).  (NaN, NaN) without detections."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    tp = np.asarray(is_tp, dtype=bool).ravel()
    if s.shape != tp.shape:
        raise ValueError("scores and is_tp must have the same length")
    if s.size == 0:
        return float("nan"), float("nan")
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], tp[order]
    ctp = np.cumsum(tp)
    kept = np.arange(1, s.size + 1)
    f1 = 2 * ctp / (kept + num_gt)  # 2 TP / (TP + FP + TP + FN), TP + FP = kept, TP + FN = num_gt
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    cand = np.flatnonzero(last_of_tie)
    best = cand[np.flatnonzero(f1[cand] == f1[cand].max())[-1]]
    return float(s[best]), float(f1[best])


def classify_detections(
    img: ImageDetections, iou_threshold: float = 0.5, background_iou: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Outcome of each detection of ``img`` (indices into :data:`OUTCOMES`, -1 = ignored on a
    crowd region) and, per GT, whether a TP found it; definitions in the module doc."""
    match = match_detections(img, iou_threshold)
    found = np.zeros(len(img.gt_boxes), dtype=bool)
    found[match.gt_index[match.is_tp]] = True
    labels = np.full(len(img.boxes), _BACKGROUND, dtype=np.int64)
    labels[match.is_tp] = _TP
    labels[match.ignored] = _IGNORED
    if len(img.gt_boxes):
        iou = np.clip(_same_class_iou(img), 0.0, None)
        for d in np.flatnonzero(labels == _BACKGROUND):
            row = iou[d]
            if row.max() >= iou_threshold:
                labels[d] = _DUPLICATE
            elif np.any((row >= background_iou) & ~found):
                labels[d] = _LOC_ERROR
            elif row.max() >= background_iou:
                labels[d] = _DUPLICATE
    return labels, found


def outcome_breakdown(
    images, threshold: float, iou_threshold: float = 0.5, background_iou: float = 0.1
) -> dict[int, dict[str, int]]:
    """Counts of ``TP``, ``duplicate``, ``loc_error``, ``background`` (kept detections, score >=
    ``threshold``) and ``missed`` / ``num_gt`` (GTs) per class, over a list of
    :class:`ImageDetections`."""
    counts: dict[int, dict[str, int]] = {}

    def row(c):
        return counts.setdefault(int(c), dict.fromkeys((*OUTCOMES, "missed", "num_gt"), 0))

    for img in images:
        kept = img.subset(img.scores >= threshold)  # nothing for a NaN threshold
        labels, found = classify_detections(kept, iou_threshold, background_iou)
        for c, lab in zip(kept.classes, labels):
            if lab != _IGNORED:
                row(c)[OUTCOMES[lab]] += 1
        for c, f in zip(kept.gt_classes, found):
            r = row(c)
            r["num_gt"] += 1
            r["missed"] += int(not f)
    return counts


def detection_calibration(
    images,
    iou_threshold: float = 0.5,
    laece_iou_threshold: float = 0.0,
    dece_bins: int = 10,
    laece_bins: int = 25,
) -> dict:
    """Everything that needs only boxes and scores, over a list of :class:`ImageDetections`:

    ``dece`` / ``dece_table`` (tau = ``iou_threshold``), ``laece`` / ``laece_per_class`` /
    ``laece_table`` (tau = ``laece_iou_threshold``), ``threshold`` / ``f1`` (F1-optimal at
    ``iou_threshold``), ``outcomes`` (:func:`outcome_breakdown` at that threshold) and
    ``num_detections`` (not ignored)."""
    images = list(images)
    scores, tp, la_scores, la_classes, la_target = [], [], [], [], []
    num_gt = 0
    for img in images:
        m = match_detections(img, iou_threshold)
        scores.append(img.scores[~m.ignored])
        tp.append(m.is_tp[~m.ignored])
        la = match_detections(img, laece_iou_threshold)  # its own TPs and crowd-ignored set
        la_scores.append(img.scores[~la.ignored])
        la_classes.append(img.classes[~la.ignored])
        la_target.append(np.where(la.is_tp, la.iou, 0.0)[~la.ignored])
        num_gt += len(img.gt_boxes)

    def cat(xs, dtype):
        return np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)

    scores, tp = cat(scores, np.float64), cat(tp, bool)
    dece, dece_table = detection_ece(scores, tp, dece_bins)
    laece, laece_per_class, laece_table = localisation_aware_ece(
        cat(la_scores, np.float64),
        cat(la_target, np.float64),
        cat(la_classes, np.int64),
        laece_bins,
    )
    threshold, f1 = f1_optimal_threshold(scores, tp, num_gt)
    outcomes = outcome_breakdown(images, threshold, iou_threshold)
    return {
        "dece": dece,
        "dece_table": dece_table,
        "laece": laece,
        "laece_per_class": laece_per_class,
        "laece_table": laece_table,
        "threshold": threshold,
        "f1": f1,
        "outcomes": outcomes,
        "num_detections": int(scores.size),
    }
