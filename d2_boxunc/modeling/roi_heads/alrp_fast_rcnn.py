"""The R-CNN stage of the aLRP paper's Faster R-CNN (row A7): a box predictor trained with aLRP
Loss and ROI heads that keep every proposal (the official code's ``aLRPLossShared2FCBBoxHead``
with mmdetection's ``PseudoSampler``, https://github.com/kemaloksuz/aLRPLoss,
``mmdet/models/roi_heads/bbox_heads/convfc_bbox_head.py``)."""

from __future__ import annotations

import contextlib

import torch
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.utils.events import get_event_storage
from torch import Tensor

from d2_boxunc.losses import iou_loss
from d2_boxunc.modeling.sampling import SAMPLE_ALL
from d2_boxunc.modeling.self_balance import SelfBalance

__all__ = ["ALRPFastRCNNOutputLayers", "ALRPROIHeads"]


class ALRPROIHeads(StandardROIHeads):
    """:class:`StandardROIHeads` that keeps every proposal: each one is labelled by the matcher
    (a ground-truth class at IoU >= 0.5, background below, detectron2's default ROI matcher) and
    none is sampled away, as mmdetection's ``PseudoSampler`` in the official config. The sampling
    is detectron2's own with ``batch_size_per_image = SAMPLE_ALL``
    (:mod:`d2_boxunc.modeling.sampling`): every RoI, positives first; aLRP Loss does not depend on
    the order of the RoIs. Whether the
    ground-truth boxes join the proposals is detectron2's ``proposal_append_gt`` (the official
    code: no, which the A7 config sets)."""

    def __init__(
        self, *, batch_size_per_image: int = SAMPLE_ALL, positive_fraction: float = 0.25, **kwargs
    ):
        """Args: those of :class:`StandardROIHeads`; ``batch_size_per_image`` defaults to
        :data:`SAMPLE_ALL` (keep every RoI; ``positive_fraction`` then has no effect)."""
        super().__init__(
            batch_size_per_image=batch_size_per_image,
            positive_fraction=positive_fraction,
            **kwargs,
        )


class ALRPFastRCNNOutputLayers(FastRCNNOutputLayers):
    """Fast R-CNN box predictor trained with aLRP Loss, as the official
    ``aLRPLossShared2FCBBoxHead``:

    - classification: one sigmoid logit per class (detectron2's ``use_sigmoid_ce`` layout, which
      this class forces: ``cls_score`` keeps its ``K + 1`` outputs, the last, background, column
      takes no part in the loss and is dropped at inference, so the scores are the per-class
      sigmoids as in the official head, which has no background output). The ranking covers every
      (RoI, class) logit of the GPU's batch: label 1 for a foreground RoI's ground-truth class, 0
      for its other classes and for every class of a background RoI (the official
      ``vectorize_labels``; no RoI is ignored, all label weights being 1 there);
    - localisation error of a foreground RoI: ``1 - GIoU`` of its class-specific box (decoded from
      the RoI, box coder weights (10, 10, 5, 5) = the official stds (0.1, 0.1, 0.2, 0.2)) with its
      ground-truth box, in ``[0, 2]``; at the positive threshold 0.5 the LRP normaliser
      ``2 (1 - 0.5)`` is 1 (the official head divides by nothing);
    - ``loss_cls`` is aLRP's classification component, ``loss_box_reg`` its localisation
      component times this head's own self-balance weight (``self.sb``, separate from the RPN's:
      50 at first, then once per epoch ``(mean L_cls + mean L_loc) / mean L_loc``); no head weight
      (detectron2's ``loss_weight``, 1, applies on top);
    - no foreground RoI on the GPU: both losses are 0, still in the graph.

    Inference is detectron2's with sigmoid scores (score threshold, per-class NMS, top-k).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        ranking_delta: float = 1.0,
        alrp_eps: float = 1e-5,
        ranking_impl: str = "sorted",
        sb_weight_init: float = 50.0,
        sb_update: bool = True,
        sb_period: int = 0,
        sb_dataset: str | list[str] | None = None,
        sb_total_batch_size: int | None = None,
        **kwargs,
    ):
        """
        Args (beyond :class:`FastRCNNOutputLayers`'s; ``use_sigmoid_ce`` is always True and
        ``box_reg_loss_type`` can only be ``"giou"``):
            ranking_delta: half-width ``delta`` of the smoothed step (on logits). Default: 1.0.
            alrp_eps: positives with ``N_FP <= eps`` get no aLRP gradient. Default: 1e-5.
            ranking_impl: ``"sorted"`` (fast) or ``"loop"`` (reference loop). Default: "sorted".
            sb_weight_init, sb_update, sb_period, sb_dataset, sb_total_batch_size: this head's
                self-balance (:class:`SelfBalance`'s ``init_weight``, ``update``, ``period``,
                ``dataset``, ``total_batch_size``).
        """
        if not kwargs.setdefault("use_sigmoid_ce", True):
            raise ValueError("ALRPFastRCNNOutputLayers: aLRP Loss ranks sigmoid logits")
        if kwargs.setdefault("box_reg_loss_type", "giou") != "giou":
            raise ValueError(
                "ALRPFastRCNNOutputLayers: the localisation error is 1 - GIoU "
                f"(box_reg_loss_type='giou'), got {kwargs['box_reg_loss_type']!r}"
            )
        if kwargs.get("use_fed_loss", False):
            raise ValueError("ALRPFastRCNNOutputLayers: no federated loss with aLRP Loss")
        super().__init__(input_shape, **kwargs)
        if ranking_impl not in ("sorted", "loop"):
            raise ValueError(f"ranking_impl must be 'sorted' or 'loop', got {ranking_impl!r}")
        self.ranking_delta = float(ranking_delta)
        self.alrp_eps = float(alrp_eps)
        self.ranking_impl = ranking_impl
        self.sb = SelfBalance(
            init_weight=sb_weight_init,
            update=sb_update,
            period=sb_period,
            dataset=sb_dataset,
            total_batch_size=sb_total_batch_size,
            name="ALRPFastRCNNOutputLayers",
        )

    def losses(self, predictions, proposals) -> dict[str, Tensor]:
        """aLRP Loss over all RoIs and classes (see the class docstring): ``loss_cls`` and
        ``loss_box_reg`` (``w_SB`` included), times ``loss_weight``."""
        scores, proposal_deltas = predictions
        k = self.num_classes
        if len(proposals):
            gt_classes = cat([p.gt_classes for p in proposals], dim=0)
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            # images without ground truth have no gt_boxes: their RoIs are all background
            gt_boxes = cat(
                [(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals],
                dim=0,
            )
        else:
            gt_classes = torch.empty(0, dtype=torch.long, device=scores.device)
            proposal_boxes = gt_boxes = torch.empty((0, 4), device=scores.device)
        fg = (gt_classes >= 0) & (gt_classes < k)
        fg_idx = fg.nonzero().squeeze(1)
        num_pos = fg_idx.numel()

        logits = scores[:, :k]  # the background column is not ranked
        labels = torch.zeros(logits.shape, dtype=torch.int8, device=logits.device)
        labels[gt_classes < 0] = -1
        labels[fg_idx, gt_classes[fg_idx]] = 1  # row-major: positives in fg_idx order

        if proposal_deltas.shape[1] == 4:  # class-agnostic
            fg_deltas = proposal_deltas[fg_idx]
        else:
            fg_deltas = proposal_deltas.view(len(proposal_deltas), k, 4)[fg_idx, gt_classes[fg_idx]]
        pred = self.box2box_transform.apply_deltas(fg_deltas, proposal_boxes[fg_idx])
        loc_err = iou_loss(pred.float(), gt_boxes[fg_idx].float(), mode="giou")
        with contextlib.suppress(AssertionError):  # no event storage outside a trainer
            get_event_storage().put_scalar("fast_rcnn/num_fg", num_pos)
        loss_cls, loss_loc = self.sb.alrp_losses(
            logits,
            labels,
            loc_err,
            proposal_deltas,
            "alrp_rcnn",
            delta=self.ranking_delta,
            eps=self.alrp_eps,
            impl=self.ranking_impl,
        )
        losses = {"loss_cls": loss_cls, "loss_box_reg": loss_loc}
        return {k_: v * self.loss_weight.get(k_, 1.0) for k_, v in losses.items()}
