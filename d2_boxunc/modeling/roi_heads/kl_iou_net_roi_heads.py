"""IoU-Net ROI heads over a KL-Loss box predictor: IoU-guided NMS, variance voting, refinement
(docs/composition.md).

Training is :class:`IoUNetROIHeads`' (R-CNN losses of the box predictor, ``loss_iou`` of the IoU
branch); with :class:`~d2_boxunc.modeling.roi_heads.KLIoULossFastRCNNOutputLayers` the R-CNN box
loss is the IoU-type loss plus the KL loss on sigma.
"""

from __future__ import annotations

import torch
from detectron2.layers import cat
from detectron2.structures import Instances
from torch import Tensor

from d2_boxunc.layers import var_voting
from d2_boxunc.modeling.roi_heads.iou_net_roi_heads import IoUNetROIHeads
from d2_boxunc.modeling.roi_heads.kl_fast_rcnn import KLFastRCNNOutputLayers

__all__ = ["KLIoUNetROIHeads"]

# Voting turns log-variances into variances; beyond +-60 (sigma^2 of 1e-26 to 1e26) exp would
# leave float32's normal range, and the weights there are all-or-nothing anyway.
ALPHA_LIMIT = 60.0


class KLIoUNetROIHeads(IoUNetROIHeads):
    """:class:`IoUNetROIHeads` whose box predictor is a :class:`KLFastRCNNOutputLayers` (sigma per
    corner coordinate). Inference, per image (docs/composition.md#inference):

    1. R-CNN branch: cls scores, regressed boxes and their log-variances ``alpha``;
    2. IoU head on the boxes; IoU-guided NMS (``test_nms_key``: ``"iou"`` or ``"cls_x_iou"``)
       chooses the kept boxes, each scored with its cluster's max cls score (or standard NMS,
       ``test_nms_type="standard"``); the top ``test_pre_refine_topk`` when refining;
    3. variance voting, when the predictor's ``test_var_voting``: each kept box becomes the vote
       of the same-class candidates with IoU above the predictor's ``vote_iou_thresh``, weights
       ``exp(-(1 - IoU)^2 / sigma_t) / sigma_k^2`` (:func:`d2_boxunc.layers.var_voting`; sigma in
       the predictor's ``variance_space``);
    4. refinement (``refine``) from the voted box, which gives its predicted IoU; without
       refinement the IoU head scores the voted boxes again, so ``pred_ious`` is always the
       predicted IoU of the output box;
    5. final score ``cls`` or ``cls x IoU`` (``final_score``), top ``test_topk_per_image``.

    Outputs carry IoU-Net's fields (``pred_ious``, ``cls_scores``) and KL-Loss's
    (``pred_boxes_std``: sigma in pixels, ``pred_box_logvar``: alpha in delta units), sigma being
    that of the kept box as regressed (before voting and refinement, as KL-Loss reports it).
    Every step is switchable at test time (``box_predictor.test_var_voting``, ``test_nms_type``,
    ``refine``, ``test_iou_head=False`` for the predictor's own KL-Loss inference). The voting
    settings are the predictor's; the constructor takes :class:`IoUNetROIHeads`' arguments.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(self._test_predictor, KLFastRCNNOutputLayers):
            raise ValueError(
                "KLIoUNetROIHeads needs a KLFastRCNNOutputLayers box predictor, got "
                f"{type(self._test_predictor).__name__}"
            )

    def box_extras(self, predictions, proposals: list[Instances]) -> list[Tensor]:
        """Per image ``(R_i, num_reg * 8)``: for each regressed box, ``alpha`` (4, delta units) and
        the log of the delta-to-pixel scale of its proposal (4)."""
        predictor = self._test_predictor
        alpha = predictions[2]
        num_reg = alpha.shape[1] // 4
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals])
        log_scale = predictor.pixel_scale(proposal_boxes).log().to(alpha.dtype)
        extras = torch.cat(
            [alpha.view(-1, num_reg, 4), log_scale[:, None, :].expand(-1, num_reg, 4)], dim=2
        )
        return list(extras.flatten(1).split([len(p) for p in proposals]))

    def update_kept(self, features: list[Tensor], cands: list, kept: list) -> None:
        """Stage 3 (variance voting), and the IoU of the voted boxes when no refinement follows."""
        if not self._test_predictor.test_var_voting or any(c[3] is None for c in cands):
            return  # (no extras: iou_net_inference called without box_extras)
        for cand, k in zip(cands, kept):
            k[0] = self.vote(k[0], k[2], cand[0], cand[2], self._vote_log_vars(cand[3]))
        if self.refine and self.refine_steps > 0:
            return  # refinement starts from the voted boxes and predicts their IoU
        with torch.no_grad():
            ious = self.predict_ious(features, [k[0] for k in kept], cat([k[2] for k in kept]))
        for k, i in zip(kept, ious.split([k[0].shape[0] for k in kept])):
            k[3] = i

    def _vote_log_vars(self, extras: Tensor) -> Tensor:
        alpha, log_scale = extras.chunk(2, dim=1)
        if self._test_predictor.variance_space == "pixel":
            return alpha + 2.0 * log_scale
        return alpha

    def vote(
        self,
        boxes: Tensor,
        classes: Tensor,
        cand_boxes: Tensor,
        cand_classes: Tensor,
        cand_log_vars: Tensor,
    ) -> Tensor:
        """Variance vote of each box over the candidates of its class (one image).

        Args:
            boxes (Tensor[M, 4]), classes (Tensor[M]): the kept boxes.
            cand_boxes (Tensor[N, 4]), cand_classes (Tensor[N]), cand_log_vars (Tensor[N, 4]): the
                voters, with their log-variances (clamped to +-``ALPHA_LIMIT``).
        Returns:
            Tensor[M, 4]: the voted boxes.
        """
        predictor = self._test_predictor
        variances = cand_log_vars.to(cand_boxes.dtype).clamp(-ALPHA_LIMIT, ALPHA_LIMIT).exp()
        voted = boxes.clone()
        for c in torch.unique(classes).tolist():
            k, m = classes == c, cand_classes == c
            voted[k] = var_voting(
                boxes[k],
                cand_boxes[m],
                variances[m],
                sigma_t=predictor.sigma_t,
                iou_threshold=predictor.vote_iou_thresh,
            )
        return voted

    def iou_net_inference(self, features, boxes, scores, image_sizes, box_extras=None):
        results = super().iou_net_inference(features, boxes, scores, image_sizes, box_extras)
        for r in results:
            if r.has("box_extras"):
                alpha, log_scale = r.box_extras.chunk(2, dim=1)
                r.remove("box_extras")
                r.pred_box_logvar = alpha
                r.pred_boxes_std = (0.5 * alpha + log_scale).exp()
        return results
