"""Fake (meta) kernels of the NMS-family ops, so they trace under FakeTensor and torch.compile.

The number of kept boxes depends on the data, so it is a fresh unbacked symbolic size. The ops are
inference-only: no autograd formula is registered (the wrappers detach their inputs).
"""

import torch

from d2_boxunc._extension import has_ops


def _dynamic_keep(boxes: torch.Tensor) -> tuple[torch.Tensor, int]:
    k = torch.library.get_ctx().new_dynamic_size()
    torch._check(k <= boxes.shape[0])
    return boxes.new_empty(k, dtype=torch.long), k


def _check_boxes(boxes: torch.Tensor) -> None:
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 4, lambda: "boxes must have shape (N, 4)")


if has_ops():

    @torch.library.register_fake("d2_boxunc::soft_nms")
    def _soft_nms_fake(boxes, scores, idxs, sigma, iou_threshold, score_threshold, method):
        _check_boxes(boxes)
        keep, k = _dynamic_keep(boxes)
        return keep, scores.new_empty(k)

    @torch.library.register_fake("d2_boxunc::iou_guided_nms")
    def _iou_guided_nms_fake(boxes, cls_scores, keys, idxs, iou_threshold):
        _check_boxes(boxes)
        keep, k = _dynamic_keep(boxes)
        return keep, cls_scores.new_empty(k)

    @torch.library.register_fake("d2_boxunc::kl_nms")
    def _kl_nms_fake(
        boxes,
        scores,
        log_vars,
        idxs,
        iou_threshold,
        score_threshold,
        sigma_t,
        vote_iou_threshold,
        soft,
        soft_sigma,
    ):
        _check_boxes(boxes)
        keep, k = _dynamic_keep(boxes)
        return keep, boxes.new_empty(k, 4), scores.new_empty(k)

    @torch.library.register_fake("d2_boxunc::var_voting")
    def _var_voting_fake(kept_boxes, candidate_boxes, candidate_vars, sigma_t, iou_threshold):
        _check_boxes(kept_boxes)
        return torch.empty_like(kept_boxes, memory_format=torch.contiguous_format)
