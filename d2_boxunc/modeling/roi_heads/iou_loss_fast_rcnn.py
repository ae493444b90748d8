"""Fast R-CNN box predictor trained with IoU / GIoU / -ln IoU losses (Rezatofighi et al., CVPR 2019).

``IoULossFastRCNNOutputLayers`` is a drop-in ``box_predictor`` for detectron2's
``StandardROIHeads`` (LazyConfig: ``model.roi_heads.box_predictor``). Design:
docs/design.md#iou-based-box-losses.
"""

from __future__ import annotations

import torch
from detectron2.layers import ShapeSpec, nonzero_tuple
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.utils.events import get_event_storage
from torch import Tensor

from d2_boxunc.losses import IOU_LOSS_MODES, iou_loss
from d2_boxunc.modeling.roi_heads.diou_inference import diou_nms_inference_single_image

__all__ = ["IoULossFastRCNNOutputLayers"]

NMS_TYPES = ("standard", "diou")


def log_iou_stats(prefix: str, pred_boxes: Tensor, gt_boxes: Tensor) -> None:
    """Mean IoU of the decoded foreground boxes with their targets (``<prefix>/fg_iou``)."""
    try:
        storage = get_event_storage()
    except AssertionError:  # called outside a trainer (tests, notebooks)
        return
    if pred_boxes.numel() == 0:
        return
    with torch.no_grad():
        iou = 1.0 - iou_loss(pred_boxes.detach(), gt_boxes, mode="iou")
    storage.put_scalar(f"{prefix}/fg_iou", iou.mean().item())


class IoULossFastRCNNOutputLayers(FastRCNNOutputLayers):
    """:class:`FastRCNNOutputLayers` whose ``box_reg_loss_type`` also accepts ``"iou"``
    (``1 - IoU``), ``"ln_iou"`` (``-ln IoU``), ``"giou"`` (``1 - GIoU``) and ``"eiou"``, and
    takes over ``"diou"`` / ``"ciou"``, all computed by :func:`d2_boxunc.losses.iou_loss` on the
    decoded boxes (``IOU_LOSS_MODES``).

    For these types the loss (key ``loss_box_reg``) is summed over the foreground RoIs, on
    the ground-truth class's box, divided by the number of sampled RoIs (foreground and background,
    as detectron2 and the GIoU repo normalise), and multiplied by ``iou_loss_weight`` (paper: 10).
    The GIoU / DIoU / CIoU here replace detectron2's built-in ones: they re-order inverted boxes
    instead of asserting, so they also work with box coders that can invert a box. Any other type
    (``"smooth_l1"``) is detectron2's, unchanged, weighted by ``loss_weight["loss_box_reg"]``.

    At test time ``test_nms_type="diou"`` replaces detectron2's per-class NMS by DIoU-NMS
    (Zheng et al., AAAI 2020; the DIoU paper pairs it with the DIoU loss), same threshold.
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        box_reg_loss_type: str = "smooth_l1",
        iou_loss_weight: float = 10.0,
        iou_loss_eps: float = 1e-7,
        test_nms_type: str = "standard",
        **kwargs,
    ):
        """
        Args (beyond :class:`FastRCNNOutputLayers`'s):
            box_reg_loss_type: ``"iou"``, ``"ln_iou"``, ``"giou"``, ``"diou"``, ``"ciou"``,
                ``"eiou"`` (ours) or any other type detectron2 accepts (``"smooth_l1"``).
            iou_loss_weight: weight of ``loss_box_reg`` for the IoU-type losses; replaces
                ``loss_weight["loss_box_reg"]`` for them. Default: 10 (GIoU repo / paper).
            iou_loss_eps: ``eps`` of :func:`iou_loss`. Default: 1e-7.
            test_nms_type: ``"standard"`` (detectron2's NMS) or ``"diou"`` (DIoU-NMS at
                ``test_nms_thresh``). Default: ``"standard"``.
        """
        super().__init__(input_shape, box_reg_loss_type=box_reg_loss_type, **kwargs)
        if not iou_loss_weight >= 0:
            raise ValueError(f"iou_loss_weight must be >= 0, got {iou_loss_weight}")
        if not iou_loss_eps > 0:
            raise ValueError(f"iou_loss_eps must be positive, got {iou_loss_eps}")
        if test_nms_type not in NMS_TYPES:
            raise ValueError(f"test_nms_type must be one of {NMS_TYPES}, got {test_nms_type!r}")
        self.test_nms_type = test_nms_type
        self.iou_loss_weight = float(iou_loss_weight)
        self.iou_loss_eps = float(iou_loss_eps)
        if box_reg_loss_type in IOU_LOSS_MODES:
            self.loss_weight = {**self.loss_weight, "loss_box_reg": self.iou_loss_weight}

    def box_reg_loss(self, proposal_boxes, gt_boxes, pred_deltas, gt_classes):
        if self.box_reg_loss_type not in IOU_LOSS_MODES:
            return super().box_reg_loss(proposal_boxes, gt_boxes, pred_deltas, gt_classes)
        box_dim = proposal_boxes.shape[1]
        if box_dim != 4:
            raise ValueError(f"IoU-type box losses need 4-coordinate boxes, got {box_dim}")
        fg = nonzero_tuple((gt_classes >= 0) & (gt_classes < self.num_classes))[0]
        if pred_deltas.shape[1] == box_dim:  # class-agnostic
            fg_deltas = pred_deltas[fg]
        else:
            fg_deltas = pred_deltas.view(-1, self.num_classes, box_dim)[fg, gt_classes[fg]]
        if fg.numel() == 0:  # still attached to the graph so DDP sees every parameter used
            return pred_deltas.sum() * 0.0
        pred_boxes = self.box2box_transform.apply_deltas(fg_deltas, proposal_boxes[fg])
        loss = iou_loss(
            pred_boxes,
            gt_boxes[fg],
            mode=self.box_reg_loss_type,
            eps=self.iou_loss_eps,
            reduction="sum",
        )
        log_iou_stats("fast_rcnn", pred_boxes, gt_boxes[fg])
        # Divided by all sampled RoIs, not only foreground ones (see the parent's comment).
        return loss / max(gt_classes.numel(), 1)

    def inference(self, predictions, proposals):
        """detectron2's ``fast_rcnn_inference``, or its DIoU-NMS variant with
        ``test_nms_type="diou"``; returns ``(instances, kept_indices)`` per image."""
        if self.test_nms_type == "standard":
            return super().inference(predictions, proposals)
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        results = [
            diou_nms_inference_single_image(
                b,
                s,
                p.image_size,
                self.test_score_thresh,
                self.test_nms_thresh,
                self.test_topk_per_image,
            )
            for b, s, p in zip(boxes, scores, proposals)
        ]
        return [r[0] for r in results], [r[1] for r in results]
