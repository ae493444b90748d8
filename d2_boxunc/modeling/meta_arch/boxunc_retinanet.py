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

Optional branches of the head (:class:`~d2_boxunc.modeling.meta_arch.retinanet_head.BoxUncRetinaNetHead`,
both off by default; formulas and gradients in docs/retinanet_heads.md):

- ``sigma_branch``: per-anchor ``alpha = log sigma^2`` of the 4 corner deltas (the corner coder
  ``Box2BoxTransformXYXY`` is required, anchors playing the part of the R-CNN proposals). Trained
  with :func:`d2_boxunc.losses.kl_loss` on the positive anchors: with focal / AP Loss it replaces
  the box loss (same normalisation); with aLRP Loss it is an extra term ``loss_box_var`` on
  detached deltas, so it trains sigma only. At inference: variance voting and/or soft-NMS
  (``test_var_voting``, ``test_nms_method``) through :func:`d2_boxunc.layers.batched_kl_nms`, and
  ``pred_boxes_std`` (pixels) / ``pred_box_logvar`` in the output ``Instances``.
- ``iou_branch``: per-anchor IoU logit, trained with BCE (``loss_iou``) against the IoU of the
  decoded box with its ground truth on the positives (target detached); the detection score is
  ``cls^(1 - iou_score_alpha) * IoU^iou_score_alpha``; ``pred_ious`` in the output ``Instances``.
"""

from __future__ import annotations

import logging

import torch
from detectron2.layers import batched_nms, cat
from detectron2.modeling import RetinaNet
from detectron2.modeling.box_regression import _dense_box_regression_loss
from detectron2.modeling.meta_arch.dense_detector import permute_to_N_HWA_K
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage
from torch import Tensor
from torch.nn import functional as F

from d2_boxunc.layers import batched_diou_nms
from d2_boxunc.losses.alrp_loss import ap_loss
from d2_boxunc.losses.iou_losses import iou_loss
from d2_boxunc.losses.kl_loss import kl_loss
from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
from d2_boxunc.modeling.kl_head import (
    KL_DEFAULTS,
    check_kl_test_settings,
    delta_std_scale,
    kl_nms_detections,
    log_variance_stats,
    scale_boxes_std,
)
from d2_boxunc.modeling.self_balance import SelfBalance, epoch_length

__all__ = ["BoxUncRetinaNet", "epoch_length", "iou_aware_score"]

logger = logging.getLogger(__name__)

CLS_LOSS_TYPES = ("focal", "ap", "alrp")
LOC_ERRORS = ("giou", "iou")


def iou_aware_score(cls_scores: Tensor, ious: Tensor, alpha: float) -> Tensor:
    """IoU-aware detection score ``cls^(1 - alpha) * IoU^alpha`` (Wu et al.): ``cls_scores``
    (R, K) class probabilities, ``ious`` (R, 1) predicted IoUs in [0, 1]."""
    return cls_scores.pow(1.0 - alpha) * ious.pow(alpha)


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
        kl_smooth_l1_beta: float = KL_DEFAULTS.kl_smooth_l1_beta,
        alpha_clamp: tuple[float, float] | None = KL_DEFAULTS.alpha_clamp,
        test_nms_method: str = KL_DEFAULTS.test_nms_method,
        test_var_voting: bool = KL_DEFAULTS.test_var_voting,
        sigma_t: float = KL_DEFAULTS.sigma_t,
        vote_iou_thresh: float = KL_DEFAULTS.vote_iou_thresh,
        soft_nms_sigma: float = KL_DEFAULTS.soft_nms_sigma,
        prune_thresh: float = KL_DEFAULTS.prune_thresh,
        variance_space: str = KL_DEFAULTS.variance_space,
        iou_loss_weight: float = 1.0,
        iou_score_alpha: float = 0.5,
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
            kl_smooth_l1_beta, alpha_clamp: the KL loss of the sigma branch (smooth-L1 beta in
                delta units, optional clamp of alpha), as ``KLFastRCNNOutputLayers``'s.
                Default: 1.0, None.
            test_nms_method, test_var_voting, sigma_t, vote_iou_thresh, soft_nms_sigma,
                prune_thresh, variance_space: KL-Loss inference, as ``KLFastRCNNOutputLayers``'s
                (``"hard"`` without voting is RetinaNet's own NMS; ``"diou"`` is DIoU-NMS, with or
                without the branches). Voting and soft-NMS need the sigma branch. Defaults: "hard", False, 0.02, 0.0, 0.5, 0.001, "delta".
            iou_loss_weight: weight of the IoU branch's BCE. Default: 1.0 (IoU-aware RetinaNet).
            iou_score_alpha: ``alpha`` of the detection score ``cls^(1-alpha) * IoU^alpha`` with
                the IoU branch (0: class score only). Default: 0.5.
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

        # sigma / IoU branches: switched on in the head, trained and used here
        self.sigma_branch = bool(getattr(self.head, "sigma_branch", False))
        self.iou_branch = bool(getattr(self.head, "iou_branch", False))
        if self.sigma_branch and not isinstance(self.box2box_transform, Box2BoxTransformXYXY):
            raise ValueError(
                "BoxUncRetinaNet: the sigma branch predicts one variance per box corner and needs "
                "box2box_transform=Box2BoxTransformXYXY (docs/retinanet_heads.md)"
            )
        check_kl_test_settings(
            test_nms_method, variance_space, sigma_t, soft_nms_sigma, test_var_voting
        )
        if (test_var_voting or test_nms_method == "soft") and not self.sigma_branch:
            raise ValueError(
                "BoxUncRetinaNet: test_var_voting and test_nms_method='soft' need the head's "
                "sigma branch (BoxUncRetinaNetHead(sigma_branch=True))"
            )
        if not 0.0 <= iou_score_alpha <= 1.0:
            raise ValueError(f"iou_score_alpha must be in [0, 1], got {iou_score_alpha}")
        if iou_loss_weight < 0:
            raise ValueError(f"iou_loss_weight must be >= 0, got {iou_loss_weight}")
        self.kl_smooth_l1_beta = float(kl_smooth_l1_beta)
        self.alpha_clamp = tuple(alpha_clamp) if alpha_clamp else None
        self.test_nms_method = test_nms_method
        self.test_var_voting = bool(test_var_voting)
        self.sigma_t = float(sigma_t)
        self.vote_iou_thresh = float(vote_iou_thresh)
        self.soft_nms_sigma = float(soft_nms_sigma)
        self.prune_thresh = float(prune_thresh)
        self.variance_space = variance_space
        self.iou_loss_weight = float(iou_loss_weight)
        self.iou_score_alpha = float(iou_score_alpha)

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

    # ---- the head's outputs, per anchor -----------------------------------------------------
    def _per_anchor(self, predictions) -> dict[str, list[Tensor]]:
        """The head's per-level ``(N, A*k, H, W)`` outputs as ``(N, H*W*A, k)``, by name:
        ``logits``, ``deltas`` and, with the branches, ``logvars`` and ``ious``."""
        names, dims = ["logits", "deltas"], [self.num_classes, 4]
        if self.sigma_branch:
            names.append("logvars")
            dims.append(4)
        if self.iou_branch:
            names.append("ious")
            dims.append(1)
        if len(predictions) != len(names):
            raise ValueError(
                f"BoxUncRetinaNet: the head gave {len(predictions)} outputs, not {names}"
            )
        return {
            n: [permute_to_N_HWA_K(x, d) for x in level_outputs]
            for n, d, level_outputs in zip(names, dims, predictions)
        }

    def forward(self, batched_inputs):
        """``DenseDetector.forward``; in inference ``pred_boxes_std`` is then rescaled with the
        boxes to each image's output size."""
        results = super().forward(batched_inputs)
        if self.training or not self.sigma_branch:
            return results
        for out, inputs in zip(results, batched_inputs):
            inst = out["instances"]
            inst.pred_boxes_std = scale_boxes_std(
                inst.pred_boxes_std, inputs["image"].shape[-2:], inst.image_size
            )
        return results

    def forward_training(self, images, features, predictions, gt_instances):
        if not (self.sigma_branch or self.iou_branch):
            return super().forward_training(images, features, predictions, gt_instances)
        pred = self._per_anchor(predictions)
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(
            anchors,
            pred["logits"],
            gt_labels,
            pred["deltas"],
            gt_boxes,
            pred_logvars=pred.get("logvars"),
            pred_ious=pred.get("ious"),
        )

    # ---- losses ----------------------------------------------------------------------------
    def losses(
        self,
        anchors,
        pred_logits,
        gt_labels,
        pred_anchor_deltas,
        gt_boxes,
        pred_logvars=None,
        pred_ious=None,
    ):
        """The classification and box losses of ``cls_loss_type``, then the branches' terms
        (docs/retinanet_heads.md): the sigma branch's KL loss (``loss_box_reg``, replacing the
        box loss, with focal / AP Loss; ``loss_box_var``, on detached deltas, with aLRP Loss) and
        the IoU branch's BCE (``loss_iou``). ``pred_logvars`` / ``pred_ious``: per-level
        ``(N, R_l, 4)`` / ``(N, R_l, 1)``, or None without the branch."""
        if self.cls_loss_type == "focal":
            out = super().losses(anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes)
            # detectron2 divides both focal terms by an EMA of the positive count, set just now
            normalizer = self.loss_normalizer
        else:
            out = self._ranking_losses(
                anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes
            )
            normalizer = None
        if pred_logvars is None and pred_ious is None:
            return out
        labels = torch.stack(gt_labels)
        pos_mask = (labels >= 0) & (labels != self.num_classes)
        pos_anchors, pos_deltas, pos_gt = self._positives(
            anchors, pred_anchor_deltas, gt_boxes, pos_mask
        )
        num_pos = pos_anchors.shape[0]
        if normalizer is None:  # the ranking losses: per positive
            normalizer = max(num_pos, 1)
        if pred_logvars is not None:
            out.update(
                self._sigma_loss(
                    pos_anchors, pos_deltas, pos_gt, cat(pred_logvars, dim=1)[pos_mask], normalizer
                )
            )
        if pred_ious is not None:
            out["loss_iou"] = self._iou_branch_loss(
                pos_anchors, pos_deltas, pos_gt, cat(pred_ious, dim=1)[pos_mask][:, 0], normalizer
            )
        return out

    def _ranking_losses(self, anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes):
        """AP Loss + smooth-L1, or aLRP Loss (module docstring)."""
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

    def _positives(self, anchors, pred_anchor_deltas, gt_boxes, pos_mask):
        """``(anchors, deltas, gt boxes)`` of the positives, each ``(P, 4)``, in ``pos_mask``
        order."""
        all_anchors = type(anchors[0]).cat(anchors).tensor  # (R, 4)
        deltas = cat(pred_anchor_deltas, dim=1)  # (N, R, 4)
        n = deltas.shape[0]
        pos_anchors = all_anchors.unsqueeze(0).expand(n, -1, -1)[pos_mask]
        return pos_anchors, deltas[pos_mask], torch.stack(gt_boxes)[pos_mask]

    def _loc_error(self, anchors, pred_anchor_deltas, gt_boxes, pos_mask) -> torch.Tensor:
        """Localisation error of every positive, in ``pos_mask`` order
        (docs/design.md#ranking-setting)."""
        pos_anchors, pos_deltas, target = self._positives(
            anchors, pred_anchor_deltas, gt_boxes, pos_mask
        )
        pred = self.box2box_transform.apply_deltas(pos_deltas, pos_anchors).float()
        target = target.float()
        if self.loc_error == "giou":
            return iou_loss(pred, target, mode="giou")  # 1 - GIoU, NaN-safe on inverted boxes
        return 2 * iou_loss(pred, target, mode="iou")  # (1 - IoU) / (1 - tau), tau = 0.5

    def _sigma_loss(self, pos_anchors, pos_deltas, pos_gt, pos_alpha, normalizer) -> dict:
        """KL loss of the positives' corner deltas (docs/retinanet_heads.md#sigma-branch), as
        ``KLFastRCNNOutputLayers`` computes it with anchors for proposals: the box loss with
        focal / AP Loss, a sigma-only term (deltas detached) with aLRP Loss."""
        targets = self.box2box_transform.get_deltas(pos_anchors, pos_gt)
        alrp = self.cls_loss_type == "alrp"
        loss = kl_loss(
            pos_deltas.detach() if alrp else pos_deltas,
            pos_alpha,
            targets,
            beta=self.kl_smooth_l1_beta,
            reduction="sum",
            alpha_clamp=self.alpha_clamp,
        )
        if pos_alpha.numel():
            log_variance_stats(pos_alpha.detach())
        if alrp:
            return {"loss_box_var": loss / normalizer}
        if self.cls_loss_type == "ap":  # the smooth-L1 it replaces is averaged over 4 |P|
            return {"loss_box_reg": loss / max(4 * pos_alpha.shape[0], 1)}
        return {"loss_box_reg": loss / normalizer}

    def _iou_branch_loss(self, pos_anchors, pos_deltas, pos_gt, pos_iou_logits, normalizer):
        """``iou_loss_weight`` x BCE of the positives' IoU logits against the IoU of their
        decoded boxes with their ground truth (no gradient through the target)."""
        with torch.no_grad():
            boxes = self.box2box_transform.apply_deltas(pos_deltas.detach(), pos_anchors)
            target = 1.0 - iou_loss(boxes.float(), pos_gt.float(), mode="iou")
        loss = F.binary_cross_entropy_with_logits(pos_iou_logits.float(), target, reduction="sum")
        return self.iou_loss_weight * loss / normalizer

    # ---- inference -------------------------------------------------------------------------
    def forward_inference(self, images, features, predictions):
        if not (self.sigma_branch or self.iou_branch) and self.test_nms_method == "hard":
            return super().forward_inference(images, features, predictions)
        pred = self._per_anchor(predictions)
        anchors = self.anchor_generator(features)
        return [
            self.inference_single_image_with_branches(
                anchors, {k: [x[i] for x in v] for k, v in pred.items()}, image_size
            )
            for i, image_size in enumerate(images.image_sizes)
        ]

    def inference_single_image_with_branches(self, anchors, pred: dict, image_size) -> Instances:
        """One image's detections with the branches (docs/retinanet_heads.md#inference).

        Per level, RetinaNet's candidate selection (score above ``test_score_thresh``, at most
        ``test_topk_candidates``) on the detection score (the IoU-aware one with the IoU branch);
        then per-class NMS (hard, as RetinaNet; DIoU-NMS; or with voting / soft-NMS, through
        :func:`kl_nms_detections`), at most ``max_detections_per_image``.

        Args:
            anchors (list[Boxes]): per level.
            pred: per-level ``(R_l, k)`` tensors of this image by name (``logits``, ``deltas``,
                ``logvars``, ``ious``).
        """
        picked = {k: [] for k in ("boxes", "scores", "classes", "anchors", "alpha", "iou")}
        for lvl, level_anchors in enumerate(anchors):
            scores = pred["logits"][lvl].sigmoid()
            iou = pred["ious"][lvl].sigmoid() if self.iou_branch else None
            if iou is not None:
                scores = iou_aware_score(scores, iou, self.iou_score_alpha)
            above = scores > self.test_score_thresh
            cand = torch.nonzero(above)  # (M, 2): anchor, class
            cand_scores = scores[above]
            cand_scores, order = cand_scores.topk(
                min(cand_scores.shape[0], self.test_topk_candidates)
            )
            anchor_idx, classes = cand[order].unbind(dim=1)
            ref = level_anchors.tensor[anchor_idx]
            picked["boxes"].append(
                self.box2box_transform.apply_deltas(pred["deltas"][lvl][anchor_idx], ref)
            )
            picked["scores"].append(cand_scores)
            picked["classes"].append(classes)
            picked["anchors"].append(ref)
            if self.sigma_branch:
                picked["alpha"].append(pred["logvars"][lvl][anchor_idx])
            if iou is not None:
                picked["iou"].append(iou[anchor_idx, 0])
        boxes, scores, classes = (cat(picked[k]) for k in ("boxes", "scores", "classes"))
        scores = scores.to(boxes.dtype)  # detectron2's XYWH coder decodes in float32
        alpha = cat(picked["alpha"]).to(boxes.dtype) if self.sigma_branch else None
        if self.sigma_branch and (self.test_var_voting or self.test_nms_method == "soft"):
            keep, boxes_out, scores_out = kl_nms_detections(
                boxes,
                scores,
                alpha,
                classes,
                delta_std_scale(cat(picked["anchors"]), self.box2box_transform.weights),
                test_nms_method=self.test_nms_method,
                test_var_voting=self.test_var_voting,
                nms_thresh=self.test_nms_thresh,
                sigma_t=self.sigma_t,
                vote_iou_thresh=self.vote_iou_thresh,
                soft_nms_sigma=self.soft_nms_sigma,
                prune_thresh=self.prune_thresh,
                variance_space=self.variance_space,
                topk=self.max_detections_per_image,
            )
        else:
            nms = batched_diou_nms if self.test_nms_method == "diou" else batched_nms
            keep = nms(boxes, scores, classes, self.test_nms_thresh)
            keep = keep[: self.max_detections_per_image]
            boxes_out, scores_out = boxes[keep], scores[keep]
        result = Instances(image_size)
        result.pred_boxes = Boxes(boxes_out)
        result.scores = scores_out
        result.pred_classes = classes[keep]
        if self.sigma_branch:
            scale = delta_std_scale(cat(picked["anchors"])[keep], self.box2box_transform.weights)
            result.pred_box_logvar = alpha[keep]
            result.pred_boxes_std = (0.5 * alpha[keep]).exp() * scale
        if self.iou_branch:
            result.pred_ious = cat(picked["iou"])[keep]
        return result

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
