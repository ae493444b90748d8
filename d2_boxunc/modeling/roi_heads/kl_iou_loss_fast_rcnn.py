"""Box predictor composing KL-Loss's variance head with an IoU-type box loss (docs/composition.md).

``KLIoULossFastRCNNOutputLayers`` is :class:`KLFastRCNNOutputLayers` (per-coordinate log-variance
layer, KL loss, variance voting) and :class:`IoULossFastRCNNOutputLayers` (IoU / GIoU / DIoU / ...
loss on the decoded boxes) in one ``box_predictor``; it is the predictor of
:class:`~d2_boxunc.modeling.roi_heads.KLIoUNetROIHeads`.
"""

from __future__ import annotations

import torch
from detectron2.layers import ShapeSpec
from detectron2.utils.events import get_event_storage
from torch import Tensor

from d2_boxunc.losses import IOU_LOSS_MODES
from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
from d2_boxunc.modeling.roi_heads.iou_loss_fast_rcnn import IoULossFastRCNNOutputLayers
from d2_boxunc.modeling.roi_heads.kl_fast_rcnn import KLFastRCNNOutputLayers

__all__ = ["KLIoULossFastRCNNOutputLayers"]


class KLIoULossFastRCNNOutputLayers(KLFastRCNNOutputLayers, IoULossFastRCNNOutputLayers):
    """Fast R-CNN predictor: the box is trained by an IoU-type loss, sigma by the KL loss.

    ``forward`` returns ``(scores, deltas, log_vars)`` as :class:`KLFastRCNNOutputLayers`, and
    inference, when the ROI heads call the predictor's own (``test_iou_head=False``), is KL-Loss's
    (NMS, variance voting, ``pred_boxes_std``). The box loss (key ``loss_box_reg``) is, with ``N``
    the sampled RoIs, ``d`` / ``alpha`` the ground-truth class's deltas / log-variances of a
    foreground RoI, ``t`` its target deltas and ``sg`` a stop-gradient::

        iou_loss_weight   * sum_fg L_IoU(decode(d), gt) / N        (IoULossFastRCNNOutputLayers)
      + sigma_loss_weight * sum_fg sum_k KL(sg(d_k), alpha_k; t_k) / N   (KLFastRCNNOutputLayers)

    Each term is its parent's ``box_reg_loss``; both are logged (``composed/loss_box_iou``,
    ``composed/loss_box_sigma``). ``loss_weight["loss_box_reg"]`` is 1: the two weights above
    replace it.

    Why the KL term does not reach the box (``kl_box_gradient=False``): for the deltas, the KL
    loss is a second regression loss, ``dL/dd = exp(-alpha) * SL1'(d - t)``, a smooth-L1 whose
    per-coordinate weight grows as the head grows confident; it would pull the box towards the
    delta-space optimum and reweight the IoU loss's gradient coordinate by coordinate. With the
    stop-gradient the box has one objective, the IoU-type loss (the GIoU paper's argument for
    optimising the metric itself), and for a fixed residual ``r = d - t`` the KL term is minimised
    at ``alpha = log(2 * SL1(r))``: sigma learns the spread of the residuals of the box the IoU
    loss trains, which is what variance voting weighs. ``kl_box_gradient=True`` trains the box
    with both losses (an ablation).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        box2box_transform,
        box_reg_loss_type: str = "giou",
        sigma_loss_weight: float = 1.0,
        kl_box_gradient: bool = False,
        **kwargs,
    ):
        """
        Args (beyond :class:`KLFastRCNNOutputLayers`'s and :class:`IoULossFastRCNNOutputLayers`'s):
            box2box_transform: a :class:`Box2BoxTransformXYXY`: sigma is per corner coordinate,
                as variance voting reads it.
            box_reg_loss_type: an IoU-type loss of :data:`d2_boxunc.losses.IOU_LOSS_MODES`.
                Default: ``"giou"``.
            sigma_loss_weight: weight of the KL term. Default: 1.0 (KL-Loss's, whose box loss is
                the KL loss at weight 1).
            kl_box_gradient: let the KL term's gradient reach the deltas too. Default: False.
        """
        if not isinstance(box2box_transform, Box2BoxTransformXYXY):
            raise ValueError(
                "KLIoULossFastRCNNOutputLayers needs a Box2BoxTransformXYXY (sigma per corner), "
                f"got {type(box2box_transform).__name__}"
            )
        if box_reg_loss_type not in IOU_LOSS_MODES:
            raise ValueError(
                f"box_reg_loss_type must be one of {IOU_LOSS_MODES}, got {box_reg_loss_type!r}"
            )
        if not sigma_loss_weight >= 0:
            raise ValueError(f"sigma_loss_weight must be >= 0, got {sigma_loss_weight}")
        super().__init__(
            input_shape,
            box2box_transform=box2box_transform,
            box_reg_loss_type=box_reg_loss_type,
            **kwargs,
        )
        self.loss_weight = {**self.loss_weight, "loss_box_reg": 1.0}
        self.sigma_loss_weight = float(sigma_loss_weight)
        self.kl_box_gradient = bool(kl_box_gradient)

    def box_reg_loss(self, proposal_boxes, gt_boxes, pred_deltas, gt_classes):
        # KLFastRCNNOutputLayers.losses passes the deltas and log-variances side by side
        deltas, log_vars = pred_deltas.chunk(2, dim=1)
        iou_term = IoULossFastRCNNOutputLayers.box_reg_loss(
            self, proposal_boxes, gt_boxes, deltas, gt_classes
        )
        kl_deltas = deltas if self.kl_box_gradient else deltas.detach()
        sigma_term = KLFastRCNNOutputLayers.box_reg_loss(
            self, proposal_boxes, gt_boxes, torch.cat([kl_deltas, log_vars], dim=1), gt_classes
        )
        iou_term = self.iou_loss_weight * iou_term
        sigma_term = self.sigma_loss_weight * sigma_term
        self._log_terms(iou_term.detach(), sigma_term.detach())
        return iou_term + sigma_term

    @staticmethod
    def _log_terms(iou_term: Tensor, sigma_term: Tensor) -> None:
        try:
            storage = get_event_storage()
        except AssertionError:  # called outside a trainer (tests, notebooks)
            return
        storage.put_scalar("composed/loss_box_iou", iou_term.item())
        storage.put_scalar("composed/loss_box_sigma", sigma_term.item())
