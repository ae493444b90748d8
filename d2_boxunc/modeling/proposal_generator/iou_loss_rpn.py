"""RPN trained with IoU / GIoU / -ln IoU box losses (the GIoU code's "rpn_giou" setting; see
docs/design.md#where-the-iou-losses-apply)."""

from __future__ import annotations

import torch
from detectron2.layers import cat
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import Boxes
from fvcore.nn import smooth_l1_loss
from torch import Tensor

from d2_boxunc.losses import IOU_LOSS_MODES, iou_loss
from d2_boxunc.modeling.roi_heads.iou_loss_fast_rcnn import log_iou_stats

__all__ = ["IoULossRPN"]

RPN_NORMS = ("batch", "actual")


class IoULossRPN(RPN):
    """:class:`RPN` whose ``box_reg_loss_type`` also accepts ``"iou"``, ``"ln_iou"``, ``"giou"``,
    ``"diou"``, ``"ciou"`` and ``"eiou"`` (ours, :func:`d2_boxunc.losses.iou_loss` on the decoded
    anchors), with a choice of normaliser for the localisation loss ``loss_rpn_loc``:

    - ``rpn_norm="batch"`` (detectron2): sum over positive anchors / (``batch_size_per_image`` x
      number of images);
    - ``rpn_norm="actual"`` (GIoU repo, ``bbox_outside_weights = 1 / num_examples``): each
      image's sum over its positive anchors divided by the number of anchors actually sampled in
      that image (positives + negatives), then averaged over the images. The two agree when every
      image fills its ``batch_size_per_image`` sample.

    Everything else is detectron2's :meth:`RPN.losses` (objectness loss, logging, loss weights):
    only its ``loss_rpn_loc`` term is replaced, so the parent runs with ``box_reg_loss_type``
    ``"smooth_l1"`` and the loss in use is ``loc_loss_type``.  ``"smooth_l1"`` (detectron2's)
    works with both normalisers too.
    """

    def __init__(
        self,
        *,
        box_reg_loss_type: str = "smooth_l1",
        rpn_norm: str = "batch",
        iou_loss_eps: float = 1e-7,
        **kwargs,
    ):
        """
        Args (beyond :class:`RPN`'s):
            box_reg_loss_type: ``"iou"``, ``"ln_iou"``, ``"giou"``, ``"diou"``, ``"ciou"``,
                ``"eiou"`` (ours) or ``"smooth_l1"`` (detectron2's).
            rpn_norm: ``"batch"`` or ``"actual"`` (see the class docstring). Default: "batch".
            iou_loss_eps: ``eps`` of :func:`iou_loss`. Default: 1e-7.
        """
        if rpn_norm not in RPN_NORMS:
            raise ValueError(f"rpn_norm must be one of {RPN_NORMS}, got {rpn_norm!r}")
        known = IOU_LOSS_MODES + ("smooth_l1",)
        if box_reg_loss_type not in known:
            raise ValueError(f"box_reg_loss_type must be one of {known}, got {box_reg_loss_type!r}")
        if not iou_loss_eps > 0:
            raise ValueError(f"iou_loss_eps must be positive, got {iou_loss_eps}")
        # detectron2's own pass (objectness loss) gets a box loss it knows; ours replaces it
        parent_type = "smooth_l1" if box_reg_loss_type in IOU_LOSS_MODES else box_reg_loss_type
        super().__init__(box_reg_loss_type=parent_type, **kwargs)
        self.loc_loss_type = box_reg_loss_type
        self.rpn_norm = rpn_norm
        self.iou_loss_eps = float(iou_loss_eps)

    def _per_anchor_loc_loss(self, anchors: Tensor, deltas: Tensor, gt_boxes: Tensor) -> Tensor:
        """Loss of each positive anchor: (P, 4) anchors, deltas and matched GT boxes -> (P,)."""
        if self.loc_loss_type == "smooth_l1":
            target = self.box2box_transform.get_deltas(anchors, gt_boxes)
            return smooth_l1_loss(deltas, target, self.smooth_l1_beta, reduction="none").sum(-1)
        pred_boxes = self.box2box_transform.apply_deltas(deltas, anchors)
        log_iou_stats("rpn", pred_boxes, gt_boxes)
        return iou_loss(pred_boxes, gt_boxes, mode=self.loc_loss_type, eps=self.iou_loss_eps)

    def _loc_loss(self, anchors, gt_labels, pred_anchor_deltas, gt_boxes) -> Tensor:
        """``loss_rpn_loc`` before its weight, with this RPN's box loss and normaliser."""
        gt_labels = torch.stack(gt_labels)  # (N, R)
        num_images = len(gt_labels)
        deltas = cat(pred_anchor_deltas, dim=1)  # (N, R, 4)
        img_idx, anchor_idx = (gt_labels == 1).nonzero(as_tuple=True)
        per_anchor = self._per_anchor_loc_loss(
            Boxes.cat(anchors).tensor[anchor_idx],
            deltas[img_idx, anchor_idx],
            torch.stack(gt_boxes)[img_idx, anchor_idx],
        )
        if self.rpn_norm == "actual":
            num_sampled = (gt_labels >= 0).sum(dim=1).clamp(min=1).to(per_anchor.dtype)
            loss = (per_anchor / num_sampled[img_idx]).sum() / num_images
        else:
            loss = per_anchor.sum() / (self.batch_size_per_image * num_images)
        # keeps the loss attached to the graph when there is no positive anchor
        return loss + deltas.sum() * 0.0

    def losses(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[Tensor],
        gt_labels: list[Tensor],
        pred_anchor_deltas: list[Tensor],
        gt_boxes: list[Tensor],
    ) -> dict[str, Tensor]:
        losses = super().losses(
            anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes
        )
        if self.loc_loss_type == "smooth_l1" and self.rpn_norm == "batch":
            return losses  # detectron2's setting, nothing to replace
        loc = self._loc_loss(anchors, gt_labels, pred_anchor_deltas, gt_boxes)
        losses["loss_rpn_loc"] = loc * self.loss_weight.get("loss_rpn_loc", 1.0)
        return losses
