"""Detections against the ground truth of a detectron2 dataset dict: the GT boxes, greedy
COCO-style matching, and each detection's best IoU (used by the box-uncertainty evaluator and
the σ probe)."""

from __future__ import annotations

import torch
from detectron2.structures import Boxes, BoxMode, Instances, pairwise_iou

__all__ = ["ground_truth", "match_to_ground_truth", "true_ious"]


def ground_truth(dataset_dict: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Non-crowd GT of ``dataset_dict``: XYXY boxes (G, 4), classes (G,), ``blurred`` flags (G,)
    (the synthetic set's ambiguous-edge objects; False where a dataset has no such field)."""
    annos = [a for a in dataset_dict.get("annotations", []) if not a.get("iscrowd", 0)]
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    classes = torch.tensor([a["category_id"] for a in annos], dtype=torch.long)
    blurred = torch.tensor([bool(a.get("blurred", 0)) for a in annos], dtype=torch.bool)
    return boxes, classes, blurred


def _class_iou(pred: Instances, gt_boxes: torch.Tensor, gt_classes: torch.Tensor, fill: float):
    iou = pairwise_iou(pred.pred_boxes.to("cpu"), Boxes(gt_boxes))
    iou[pred.pred_classes.cpu()[:, None] != gt_classes[None, :]] = fill
    return iou


def match_to_ground_truth(
    pred: Instances, gt_boxes: torch.Tensor, gt_classes: torch.Tensor, iou_threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy COCO-style matching by decreasing score: each GT takes at most one detection of its
    class with IoU >= ``iou_threshold``. Returns (detection indices, GT indices)."""
    if len(pred) == 0 or len(gt_boxes) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    iou = _class_iou(pred, gt_boxes, gt_classes, -1.0)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    dets, gts = [], []
    for d in torch.argsort(pred.scores.cpu(), descending=True, stable=True).tolist():
        row = iou[d].masked_fill(taken, -1.0)
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            taken[best] = True
            dets.append(d)
            gts.append(best)
    return torch.tensor(dets, dtype=torch.long), torch.tensor(gts, dtype=torch.long)


def true_ious(pred: Instances, gt_boxes: torch.Tensor, gt_classes: torch.Tensor) -> torch.Tensor:
    """(k,) largest IoU of each detection with a GT box of its class (0 when there is none)."""
    if len(pred) == 0 or len(gt_boxes) == 0:
        return torch.zeros(len(pred))
    return _class_iou(pred, gt_boxes, gt_classes, 0.0).max(dim=1).values
