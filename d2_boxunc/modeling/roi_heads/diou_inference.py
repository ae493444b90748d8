"""Fast R-CNN post-processing with DIoU-NMS (Zheng et al., "Distance-IoU Loss", AAAI 2020) in
place of NMS: the ``"diou"`` test-time choice of the box predictors (docs/nms.md#diou-nms)."""

from __future__ import annotations

import torch
from detectron2.layers import nonzero_tuple
from detectron2.structures import Boxes, Instances
from torch import Tensor

from d2_boxunc.layers import batched_diou_nms
from d2_boxunc.modeling.box_regression import clip_boxes

__all__ = ["diou_nms_inference_single_image"]


def diou_nms_inference_single_image(
    boxes: Tensor,
    scores: Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> tuple[Instances, Tensor]:
    """One image, with the inputs and outputs of detectron2's
    ``fast_rcnn_inference_single_image``: ``boxes`` (R, K*4) or (R, 4) and ``scores`` (R, K+1)
    of the predictor. Rows with a non-finite box or score are dropped; the boxes are clipped to
    the image; every (row, class) with score > ``score_thresh`` is a candidate; per-class
    DIoU-NMS at ``nms_thresh``; the ``topk_per_image`` best (all when < 0). Returns the
    ``Instances`` (``pred_boxes``, ``scores``, ``pred_classes``) and the row of each."""
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    row_ids = nonzero_tuple(valid)[0]
    boxes, scores = boxes.index_select(0, row_ids), scores.index_select(0, row_ids)[:, :-1]
    num_reg = boxes.shape[1] // 4
    boxes = clip_boxes(boxes.view(-1, num_reg, 4), image_shape)
    rows, classes = nonzero_tuple(scores > score_thresh)
    cand_boxes = boxes[rows, classes if num_reg > 1 else torch.zeros_like(classes)]
    cand_scores = scores[rows, classes]
    keep = batched_diou_nms(cand_boxes, cand_scores, classes, nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]
    result = Instances(image_shape)
    result.pred_boxes = Boxes(cand_boxes[keep])
    result.scores = cand_scores[keep]
    result.pred_classes = classes[keep]
    return result, row_ids[rows[keep]]
