"""RetinaNet trained with focal loss, AP Loss or aLRP Loss (see
docs/design.md#alrp-loss-and-ap-loss).

``BoxUncRetinaNet`` is detectron2's ``RetinaNet`` with the loss chosen by ``cls_loss_type``:

- ``"focal"``: detectron2's focal loss and its regression loss (``box_reg_loss_type``).
- ``"ap"``: AP Loss (docs/design.md#ap-loss) + smooth-L1 on the deltas, averaged over the ``4 |P|``
  coordinates.
- ``"alrp"``: aLRP Loss (docs/design.md#alrp-values-and-update): the ranking classification
  component plus ``w_SB`` times the localisation component, whose error is ``1 - GIoU``
  (``loc_error="giou"``) or ``2 (1 - IoU)`` (``"iou"``) of the decoded boxes.

Self-balance (docs/design.md#self-balance): ``w_SB`` starts at ``sb_weight_init`` (50) and, every
``sb_period`` iterations (one epoch: ``ceil(len(train set) / total batch)``, derived from the
dataset unless given), becomes ``(mean L_cls + mean L_loc) / mean L_loc`` of that period; the
shared :class:`d2_boxunc.modeling.self_balance.SelfBalance` module ``self.sb`` holds the weight,
sums and counter (buffers ``sb.weight``, ``sb.cls_sum``, ``sb.loc_sum``, ``sb.num_iter``;
checkpoints written before it, with ``sb_weight``, ``sb_cls_sum``, ``sb_loc_sum``, ``sb_iter``,
still load) and all-reduces across ranks. ``sb_update=False`` keeps the weight fixed.

The anchor matcher may be detectron2's IoU ``Matcher`` or ``d2_boxunc``'s ``ATSSMatcher``, which
labels anchors from the per-level anchor lists.
"""

from __future__ import annotations

import logging

import torch
from detectron2.layers import cat
from detectron2.modeling import RetinaNet
from detectron2.modeling.box_regression import _dense_box_regression_loss
from detectron2.structures import Boxes
from detectron2.utils.events import get_event_storage
from torch.nn import functional as F

from d2_boxunc.losses.alrp_loss import ap_loss
from d2_boxunc.losses.iou_losses import iou_loss
from d2_boxunc.modeling.self_balance import SelfBalance, epoch_length

__all__ = ["BoxUncRetinaNet", "epoch_length"]

logger = logging.getLogger(__name__)

CLS_LOSS_TYPES = ("focal", "ap", "alrp")
LOC_ERRORS = ("giou", "iou")


def _atss_matcher_class():
    try:
        from d2_boxunc.modeling.matchers import ATSSMatcher
    except ImportError:
        return None
    return ATSSMatcher


class BoxUncRetinaNet(RetinaNet):
    """RetinaNet with focal / AP / aLRP classification losses and aLRP self-balance."""

    def __init__(
        self,
        *,
        cls_loss_type: str = "focal",
        loc_error: str = "giou",
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
        Args:
            cls_loss_type: ``"focal"`` | ``"ap"`` | ``"alrp"``. Default: "focal".
            loc_error: aLRP localisation error, ``"giou"`` (``1 - GIoU``) or ``"iou"``
                (``2 (1 - IoU)``). Default: "giou".
            ranking_delta: half-width ``delta`` of the smoothed step (on logits). Default: 1.0.
            alrp_eps: positives with ``N_FP <= eps`` get no aLRP gradient. Default: 1e-5.
            ranking_impl: ``"sorted"`` (fast) or ``"loop"`` (reference loop). Default: "sorted".
            sb_weight_init: initial self-balance weight. Default: 50.
            sb_update: update the weight once per period; False keeps it fixed. Default: True.
            sb_period: iterations between updates; 0 derives one epoch from ``sb_dataset`` and
                ``sb_total_batch_size`` at the first training step. Default: 0.
            sb_dataset, sb_total_batch_size: training dataset name(s) and images per iteration
                over all GPUs, used when ``sb_period == 0``.
            kwargs: :class:`detectron2.modeling.RetinaNet` arguments. For ``"ap"``,
                ``smooth_l1_beta`` is the smooth-L1 beta (the paper setting is 1.0).
        """
        super().__init__(**kwargs)
        if cls_loss_type not in CLS_LOSS_TYPES:
            raise ValueError(
                f"cls_loss_type must be one of {CLS_LOSS_TYPES}, got {cls_loss_type!r}"
            )
        if loc_error not in LOC_ERRORS:
            raise ValueError(f"loc_error must be one of {LOC_ERRORS}, got {loc_error!r}")
        if ranking_impl not in ("sorted", "loop"):
            raise ValueError(f"ranking_impl must be 'sorted' or 'loop', got {ranking_impl!r}")
        self.cls_loss_type = cls_loss_type
        self.loc_error = loc_error
        self.ranking_delta = float(ranking_delta)
        self.alrp_eps = float(alrp_eps)
        self.ranking_impl = ranking_impl
        # only aLRP updates the weight, so only aLRP needs a period
        self.sb = SelfBalance(
            init_weight=sb_weight_init,
            update=sb_update and cls_loss_type == "alrp",
            period=sb_period,
            dataset=sb_dataset,
            total_batch_size=sb_total_batch_size,
            name="BoxUncRetinaNet",
        )
        self.register_load_state_dict_pre_hook(_rename_old_sb_keys)

    # the self-balance state under its earlier names
    sb_weight = property(lambda self: self.sb.weight)
    sb_cls_sum = property(lambda self: self.sb.cls_sum)
    sb_loc_sum = property(lambda self: self.sb.loc_sum)
    sb_iter = property(lambda self: self.sb.num_iter)
    sb_period = property(lambda self: self.sb.period)

    # ---- anchor labelling ------------------------------------------------------------------
    @torch.no_grad()
    def label_anchors(self, anchors, gt_instances):
        atss = _atss_matcher_class()
        if atss is None or not isinstance(self.anchor_matcher, atss):
            return super().label_anchors(anchors, gt_instances)
        all_anchors = Boxes.cat(anchors)
        gt_labels, matched_gt_boxes = [], []
        for gt in gt_instances:
            if len(gt) == 0:
                gt_labels.append(
                    torch.full(
                        (len(all_anchors),),
                        self.num_classes,
                        dtype=torch.long,
                        device=all_anchors.device,
                    )
                )
                matched_gt_boxes.append(torch.zeros_like(all_anchors.tensor))
                continue
            matched_idxs, anchor_labels = self.anchor_matcher(gt.gt_boxes, anchors)
            labels = gt.gt_classes[matched_idxs].clone()
            labels[anchor_labels == 0] = self.num_classes
            labels[anchor_labels == -1] = -1
            gt_labels.append(labels)
            matched_gt_boxes.append(gt.gt_boxes.tensor[matched_idxs])
        return gt_labels, matched_gt_boxes

    # ---- losses ----------------------------------------------------------------------------
    def losses(self, anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes):
        if self.cls_loss_type == "focal":
            return super().losses(anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes)
        storage = get_event_storage()
        gt_labels = torch.stack(gt_labels)  # (N, R), in {-1, 0..K-1, K}
        pos_mask = (gt_labels >= 0) & (gt_labels != self.num_classes)
        num_pos = int(pos_mask.sum())
        storage.put_scalar("num_pos_anchors", num_pos / len(gt_labels))

        # per (image, anchor, class): 1 at the GT class of a positive anchor, 0 elsewhere on
        # valid anchors, -1 on ignored anchors. Flattened in (image, anchor, class) order, so the
        # positives appear in the order of pos_mask's nonzeros, like the box terms below.
        logits = cat(pred_logits, dim=1)  # (N, R, K)
        labels = torch.zeros(logits.shape, dtype=torch.int8, device=logits.device)
        labels[gt_labels < 0] = -1
        labels[pos_mask] = F.one_hot(gt_labels[pos_mask], self.num_classes).to(torch.int8)

        if self.cls_loss_type == "ap":
            loss_cls = ap_loss(logits, labels, delta=self.ranking_delta, impl=self.ranking_impl)
            loss_box = _dense_box_regression_loss(
                anchors,
                self.box2box_transform,
                pred_anchor_deltas,
                [b for b in gt_boxes],
                pos_mask,
                box_reg_loss_type="smooth_l1",
                smooth_l1_beta=self.smooth_l1_beta,
            ) / max(4 * num_pos, 1)
            storage.put_scalar("ap_loss/cls", float(loss_cls.detach()))
            storage.put_scalar("ap_loss/loc", float(loss_box.detach()))
            return {"loss_cls": loss_cls, "loss_box_reg": loss_box}

        loc_err = self._loc_error(anchors, pred_anchor_deltas, gt_boxes, pos_mask)
        loss_cls, loss_loc = self.sb.alrp_losses(
            logits,
            labels,
            loc_err,
            cat(pred_anchor_deltas, dim=1),
            "alrp",
            delta=self.ranking_delta,
            eps=self.alrp_eps,
            impl=self.ranking_impl,
        )
        return {"loss_cls": loss_cls, "loss_box_reg": loss_loc}

    def _loc_error(self, anchors, pred_anchor_deltas, gt_boxes, pos_mask) -> torch.Tensor:
        """Localisation error of every positive, in ``pos_mask`` order
        (docs/design.md#ranking-setting)."""
        anchors = type(anchors[0]).cat(anchors).tensor  # (R, 4)
        deltas = cat(pred_anchor_deltas, dim=1)  # (N, R, 4)
        n = deltas.shape[0]
        pred = self.box2box_transform.apply_deltas(
            deltas[pos_mask], anchors.unsqueeze(0).expand(n, -1, -1)[pos_mask]
        ).float()
        target = torch.stack(gt_boxes)[pos_mask].float()
        if self.loc_error == "giou":
            return iou_loss(pred, target, mode="giou")  # 1 - GIoU, NaN-safe on inverted boxes
        return 2 * iou_loss(pred, target, mode="iou")  # (1 - IoU) / (1 - tau), tau = 0.5

    def _self_balance_step(self, loss_cls, loss_loc, has_pos: bool) -> None:
        """:meth:`SelfBalance.step` of ``self.sb``."""
        self.sb.step(loss_cls, loss_loc, has_pos)


_OLD_SB_KEYS = {
    "sb_weight": "weight",
    "sb_cls_sum": "cls_sum",
    "sb_loc_sum": "loc_sum",
    "sb_iter": "num_iter",
}


def _rename_old_sb_keys(module, state_dict, prefix, *args) -> None:
    """Load hook: checkpoints written before ``SelfBalance`` kept its buffers on the model."""
    for old, new in _OLD_SB_KEYS.items():
        if prefix + old in state_dict and prefix + "sb." + new not in state_dict:
            state_dict[prefix + "sb." + new] = state_dict.pop(prefix + old)
