"""RPN trained with aLRP Loss, as the RPN of the aLRP paper's Faster R-CNN (row A7; the official
code's ``aLRPLossRPNHead``, https://github.com/kemaloksuz/aLRPLoss,
``mmdet/models/dense_heads/alrp_loss_rpn_head.py``)."""

from __future__ import annotations

import torch
from detectron2.layers import cat
from detectron2.modeling.proposal_generator import RPN
from detectron2.structures import Boxes
from detectron2.utils.events import get_event_storage
from torch import Tensor

from d2_boxunc.losses import iou_loss
from d2_boxunc.modeling.sampling import SAMPLE_ALL
from d2_boxunc.modeling.self_balance import SelfBalance

__all__ = ["ALRPRPN", "positive_iou_threshold"]


def positive_iou_threshold(matcher) -> float:
    """The lowest IoU a detectron2 ``Matcher`` labels positive (label 1) without the low-quality
    rule: ``tau`` of the localisation error ``(1 - GIoU) / (2 (1 - tau))``."""
    for lo, label in zip(matcher.thresholds[:-1], matcher.labels):
        if label == 1:
            return float(lo)
    raise ValueError(f"the matcher labels nothing positive: labels {matcher.labels}")


class ALRPRPN(RPN):
    """detectron2's :class:`RPN` whose objectness and boxes are trained with aLRP Loss (one
    "class": each anchor's sigmoid objectness logit), as the official ``aLRPLossRPNHead``:

    - every anchor is kept: the positives (IoU >= 0.7 with a ground-truth box, or a box's best
      anchors) and the negatives (IoU < 0.3) of all images of the GPU's batch form one ranking,
      the anchors in between are ignored: detectron2's sampling with ``batch_size_per_image =
      SAMPLE_ALL`` (:mod:`d2_boxunc.modeling.sampling`) keeps every label (the official head uses
      mmdetection's ``PseudoSampler``, which samples nothing);
    - localisation error of a positive: ``(1 - GIoU) / (2 (1 - tau))``, ``tau`` = the matcher's
      positive IoU threshold (0.7: ``(1 - GIoU) / 0.6``, in ``[0, 2 / 0.6]``), of the box decoded
      from the anchor and the matched ground-truth box. The official code decodes prediction
      and target deltas around a unit box at the origin instead of the anchor; GIoU does not change
      under the per-axis affine map between the two, so the errors are equal;
    - ``loss_rpn_cls`` is aLRP's classification component, ``loss_rpn_loc`` its localisation
      component times this head's own self-balance weight ``w_SB`` (a :class:`SelfBalance`,
      ``self.sb``: 50 at first, then once per epoch ``(mean L_cls + mean L_loc) / mean L_loc`` of
      the unweighted components);
    - both are multiplied by detectron2's ``loss_weight`` (the official ``head_weight`` = 0.2 on
      both, which leaves ``w_SB`` unchanged: the official head balances the weighted values, whose
      ratio is the same).

    The objectness bias is detectron2's (0); the official head starts it at ``-log(99)`` (prior
    0.01). A constant logit shift changes neither aLRP Loss nor its gradients (they depend on
    logit differences only) nor the proposals (ranked by logit), so the two train alike.
    Proposals, anchors, matcher and head are detectron2's (the config sets the official box coder
    weights).
    """

    def __init__(
        self,
        *,
        ranking_delta: float = 1.0,
        alrp_eps: float = 1e-5,
        ranking_impl: str = "sorted",
        sb_weight_init: float = 50.0,
        sb_update: bool = True,
        sb_period: int = 0,
        sb_dataset: str | list[str] | None = None,
        sb_total_batch_size: int | None = None,
        batch_size_per_image: int = SAMPLE_ALL,
        positive_fraction: float = 0.5,
        **kwargs,
    ):
        """
        Args (beyond :class:`RPN`'s; ``batch_size_per_image`` defaults to :data:`SAMPLE_ALL`,
        every anchor kept, and ``positive_fraction`` then has no effect):
            ranking_delta: half-width ``delta`` of the smoothed step (on logits). Default: 1.0.
            alrp_eps: positives with ``N_FP <= eps`` get no aLRP gradient. Default: 1e-5.
            ranking_impl: ``"sorted"`` (fast) or ``"loop"`` (reference loop). Default: "sorted".
            sb_weight_init, sb_update, sb_period, sb_dataset, sb_total_batch_size: this head's
                self-balance (:class:`SelfBalance`'s ``init_weight``, ``update``, ``period``,
                ``dataset``, ``total_batch_size``).
        """
        super().__init__(
            batch_size_per_image=batch_size_per_image,
            positive_fraction=positive_fraction,
            **kwargs,
        )
        if ranking_impl not in ("sorted", "loop"):
            raise ValueError(f"ranking_impl must be 'sorted' or 'loop', got {ranking_impl!r}")
        self.ranking_delta = float(ranking_delta)
        self.alrp_eps = float(alrp_eps)
        self.ranking_impl = ranking_impl
        tau = positive_iou_threshold(self.anchor_matcher)
        if not 0 <= tau < 1:
            raise ValueError(f"ALRPRPN: the positive IoU threshold must be in [0, 1), got {tau}")
        self.loc_error_norm = 2.0 * (1.0 - tau)
        self.sb = SelfBalance(
            init_weight=sb_weight_init,
            update=sb_update,
            period=sb_period,
            dataset=sb_dataset,
            total_batch_size=sb_total_batch_size,
            name="ALRPRPN",
        )

    def losses(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[Tensor],
        gt_labels: list[Tensor],
        pred_anchor_deltas: list[Tensor],
        gt_boxes: list[Tensor],
    ) -> dict[str, Tensor]:
        """aLRP Loss of the batch (see the class docstring): ``loss_rpn_cls`` and
        ``loss_rpn_loc`` (``w_SB`` included), times ``loss_weight``."""
        num_images = len(gt_labels)
        gt_labels = torch.stack(gt_labels)  # (N, R): 1 positive, 0 negative, -1 ignored
        pos_mask = gt_labels == 1
        num_pos = int(pos_mask.sum())
        storage = get_event_storage()
        storage.put_scalar("rpn/num_pos_anchors", num_pos / num_images)
        storage.put_scalar("rpn/num_neg_anchors", (gt_labels == 0).sum().item() / num_images)

        logits = cat(pred_objectness_logits, dim=1)  # (N, R)
        deltas = cat(pred_anchor_deltas, dim=1)  # (N, R, 4)
        # positives in (image, anchor) order, the order alrp_cls finds them in the flat labels
        _, anchor_idx = pos_mask.nonzero(as_tuple=True)
        pred = self.box2box_transform.apply_deltas(
            deltas[pos_mask], Boxes.cat(anchors).tensor[anchor_idx]
        )
        target = torch.stack(gt_boxes)[pos_mask]
        loc_err = iou_loss(pred.float(), target.float(), mode="giou") / self.loc_error_norm
        loss_cls, loss_loc = self.sb.alrp_losses(
            logits,
            gt_labels.to(torch.int8),
            loc_err,
            deltas,
            "alrp_rpn",
            delta=self.ranking_delta,
            eps=self.alrp_eps,
            impl=self.ranking_impl,
            max_loc_err=2.0 / self.loc_error_norm,
        )
        losses = {"loss_rpn_cls": loss_cls, "loss_rpn_loc": loss_loc}
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}
