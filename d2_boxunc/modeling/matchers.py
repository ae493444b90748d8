"""Anchor matchers: ATSS (Adaptive Training Sample Selection, Zhang et al., CVPR 2020).

detectron2 ships only the IoU-threshold :class:`detectron2.modeling.matcher.Matcher`. ATSS replaces
the fixed IoU thresholds with a per-ground-truth threshold computed from the statistics of the
anchors closest to the object (paper Alg. 1); the ATSS variants of the aLRP Loss RetinaNet use it
(rows A2-A6 of docs/design.md#experiment-matrix).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from detectron2.structures import Boxes

__all__ = ["ATSSMatcher"]

BoxesLike = Boxes | torch.Tensor


def _as_box_tensor(boxes: BoxesLike, name: str) -> torch.Tensor:
    tensor = boxes.tensor if isinstance(boxes, Boxes) else boxes
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be detectron2 Boxes or a Tensor, got {type(boxes).__name__}")
    if tensor.dim() != 2 or tensor.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) in XYXY format, got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {tensor.dtype}")
    return tensor


def _centers(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., :2] + boxes[..., 2:]) * 0.5


def _elementwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``a[..., :]`` and ``b[..., :]`` (broadcast), both XYXY."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(dim=-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(dim=-1)
    union = area_a + area_b - inter
    # A zero union only happens for two degenerate boxes: their IoU is 0, not NaN.
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def _smallest_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of the ``k`` smallest entries of every row, ties broken by lower index
    (what a stable sort gives), returned in increasing index order. Shape (R, k).

    ``topk`` alone breaks ties arbitrarily (and differently on CPU and CUDA). Ties are the rule,
    not the exception, for ATSS: all anchors of one location share a centre, so with 2 anchors per
    location and k = 9 the cut always falls inside a group.
    """
    kth = values.topk(k, dim=1, largest=False).values[:, -1:]  # (R, 1) k-th smallest value
    below = values < kth
    tied = values == kth
    need = k - below.sum(dim=1, keepdim=True)  # how many of the tied entries to take
    take = below | (tied & (tied.cumsum(dim=1) <= need))
    return take.nonzero()[:, 1].view(values.shape[0], k)


class ATSSMatcher:
    """Adaptive Training Sample Selection (Zhang et al., CVPR 2020, Alg. 1).

    For every ground-truth box ``g``:

    1. on every pyramid level take the ``topk`` anchors whose centres are closest (L2) to the centre
       of ``g`` (all of them when a level has fewer; equal distances: the lower anchor index
       first, so the result is deterministic and the same on CPU and CUDA); the union over levels
       is ``g``'s candidate set ``C_g``;
    2. ``t_g = mean + std`` of the IoUs between ``g`` and ``C_g`` (unbiased std, as the reference
       implementations; 0 when ``|C_g| = 1``);
    3. a candidate is positive for ``g`` when its IoU is ``>= t_g`` and its centre lies inside ``g``
       by more than ``center_margin`` pixels on every side.

    An anchor that is positive for several ground truths goes to the one with the highest IoU
    (ties: the lowest ground-truth index, like ``argmax``). Every other anchor is background; the
    matcher never produces the ignore label. No Python loop runs over ground truths; one short loop
    runs over the pyramid levels.

    Args:
        topk (int): candidates per level and ground truth. Default: 9 (the paper's value).
        center_margin (float): how far (pixels) inside the ground truth an anchor centre must be.
            ``0`` means strictly inside. Default: 0.01 (ATSS and mmdetection reference code).

    Call with ``(gt_boxes, anchors_per_level)``:
        gt_boxes (Boxes or Tensor[G, 4]): ground truth, XYXY absolute.
        anchors_per_level (list[Boxes] or list[Tensor[A_l, 4]]): anchors of each level, XYXY.

    Returns:
        matched_idxs (LongTensor[A]): index of the matched ground truth for every anchor,
            ``A = sum(A_l)`` with anchors concatenated level by level. Background anchors get 0
            (a valid index, so ``gt_boxes[matched_idxs]`` always works; their label says they
            are background).
        labels (Int8Tensor[A]): 1 foreground, 0 background (-1 ignore is never produced, kept for
            compatibility with :class:`detectron2.modeling.matcher.Matcher`).
    """

    def __init__(self, topk: int = 9, center_margin: float = 0.01):
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive int, got {topk!r}")
        if not math.isfinite(center_margin) or center_margin < 0:
            raise ValueError(f"center_margin must be finite and >= 0, got {center_margin!r}")
        self.topk = topk
        self.center_margin = float(center_margin)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(topk={self.topk}, center_margin={self.center_margin})"

    def __call__(
        self, gt_boxes: BoxesLike, anchors_per_level: Sequence[BoxesLike]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gt, levels = self._validate(gt_boxes, anchors_per_level)
        anchors = torch.cat(levels, dim=0)
        device = anchors.device
        # One host sync for both finiteness checks.
        finite = torch.stack([torch.isfinite(gt).all(), torch.isfinite(anchors).all()]).tolist()
        if not all(finite):
            bad = "gt_boxes" if not finite[0] else "anchors_per_level"
            raise ValueError(f"{bad} contain NaN or Inf coordinates")
        num_anchors, num_gt = anchors.shape[0], gt.shape[0]

        matched_idxs = torch.zeros(num_anchors, dtype=torch.int64, device=device)
        labels = torch.zeros(num_anchors, dtype=torch.int8, device=device)
        if num_gt == 0 or num_anchors == 0:
            return matched_idxs, labels
        # Squared pixel distances overflow float16 (> 65504 beyond ~256 px): work in >= float32.
        work = torch.promote_types(anchors.dtype, torch.float32)
        anchors, levels = anchors.to(work), [lv.to(work) for lv in levels]
        gt = gt.to(work)

        # 1. candidates: top-k closest anchor centres per level (indices into the concatenation).
        gt_ctr = _centers(gt)
        candidates = []
        offset = 0
        for level in levels:
            n = level.shape[0]
            if n > 0:
                # Squared distances computed directly (not cdist's matmul form) so anchors sharing a
                # location get bit-identical distances and the tie-break below sees the tie.
                dist = (gt_ctr[:, None, :] - _centers(level)[None]).square().sum(dim=-1)
                candidates.append(_smallest_k(dist, min(self.topk, n)) + offset)
            offset += n
        cand = torch.cat(candidates, dim=1)  # (G, C), C identical for every GT

        # 2. adaptive IoU threshold per GT.
        cand_boxes = anchors[cand]  # (G, C, 4)
        ious = _elementwise_iou(gt[:, None, :], cand_boxes)  # (G, C)
        correction = 1 if ious.shape[1] > 1 else 0
        threshold = ious.mean(dim=1) + ious.std(dim=1, correction=correction)

        # 3. centre of the candidate strictly inside the GT (by more than the margin).
        ctr = _centers(cand_boxes)  # (G, C, 2)
        g = gt[:, None, :]
        inside = (
            torch.stack(
                [
                    ctr[..., 0] - g[..., 0],
                    ctr[..., 1] - g[..., 1],
                    g[..., 2] - ctr[..., 0],
                    g[..., 3] - ctr[..., 1],
                ],
                dim=-1,
            ).amin(dim=-1)
            > self.center_margin
        )
        positive = (ious >= threshold[:, None]) & inside

        # 4. resolve anchors positive for several GTs: highest IoU, then lowest GT index.
        gt_idx = torch.arange(num_gt, device=device)[:, None].expand_as(cand)[positive]
        anchor_idx = cand[positive]
        pos_iou = ious[positive]
        best_iou = torch.full((num_anchors,), -1.0, dtype=ious.dtype, device=device)
        best_iou.scatter_reduce_(0, anchor_idx, pos_iou, reduce="amax")
        wins = pos_iou == best_iou[anchor_idx]
        winner = torch.full((num_anchors,), num_gt, dtype=torch.int64, device=device)
        winner.scatter_reduce_(0, anchor_idx[wins], gt_idx[wins], reduce="amin")

        fg = winner < num_gt
        matched_idxs[fg] = winner[fg]
        labels[fg] = 1
        return matched_idxs, labels

    @staticmethod
    def _validate(
        gt_boxes: BoxesLike, anchors_per_level: Sequence[BoxesLike]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if isinstance(anchors_per_level, (Boxes, torch.Tensor)) or not isinstance(
            anchors_per_level, Sequence
        ):
            raise ValueError(
                "anchors_per_level must be a list with one Boxes (or Tensor[A_l, 4]) per level, "
                f"got {type(anchors_per_level).__name__}"
            )
        if len(anchors_per_level) == 0:
            raise ValueError("anchors_per_level is empty: ATSS needs at least one pyramid level")
        gt = _as_box_tensor(gt_boxes, "gt_boxes")
        levels = [
            _as_box_tensor(a, f"anchors_per_level[{i}]") for i, a in enumerate(anchors_per_level)
        ]
        device = levels[0].device
        for i, level in enumerate(levels):
            if level.device != device or level.dtype != levels[0].dtype:
                raise ValueError(
                    f"anchors_per_level[{i}] is {level.dtype} on {level.device}, level 0 is "
                    f"{levels[0].dtype} on {device}: all levels must match"
                )
        if gt.device != device:
            raise ValueError(f"gt_boxes are on {gt.device} but anchors on {device}")
        return gt, levels
