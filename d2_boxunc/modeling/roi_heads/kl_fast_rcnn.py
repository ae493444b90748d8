"""KL-Loss box predictor: per-coordinate log-variance, KL loss, variance voting (He et al., CVPR 2019).

``KLFastRCNNOutputLayers`` is a drop-in ``box_predictor`` for detectron2's ``StandardROIHeads``
(LazyConfig: ``model.roi_heads.box_predictor``).
Design: docs/design.md#kl-loss.
"""

from __future__ import annotations

import torch
from detectron2.layers import ShapeSpec, nonzero_tuple
from detectron2.modeling.roi_heads.fast_rcnn import (
    FastRCNNOutputLayers,
    fast_rcnn_inference_single_image,
)
from detectron2.structures import Boxes, Instances
from torch import Tensor, nn

from d2_boxunc.losses import kl_loss
from d2_boxunc.modeling.box_regression import clip_boxes
from d2_boxunc.modeling.kl_head import (
    KL_DEFAULTS,
    NMS_METHODS,  # noqa: F401  (re-exported: the names existed here first)
    VARIANCE_SPACES,  # noqa: F401
    check_kl_test_settings,
    delta_std_scale,
    kl_nms_detections,
    log_variance_stats,
)
from d2_boxunc.modeling.roi_heads.diou_inference import diou_nms_inference_single_image

__all__ = ["KLFastRCNNOutputLayers"]


class KLFastRCNNOutputLayers(FastRCNNOutputLayers):
    """Fast R-CNN predictor with a ``bbox_pred_logvar`` layer and the KL box loss.

    ``forward`` returns ``(scores, deltas, log_vars)``; ``log_vars`` (alpha = log sigma^2, in
    delta units) has the shape of ``deltas``. The box loss (key ``loss_box_reg``) is
    :func:`d2_boxunc.losses.kl_loss` summed over foreground RoIs and coordinates, divided by the
    number of sampled RoIs, as detectron2 normalises its box loss.

    Inference, per image and per class, on the candidates above ``test_score_thresh``:

    - ``test_nms_method="hard"``, ``test_var_voting=False``: detectron2's own hard NMS (row K1);
    - ``"hard"`` + voting: NMS with variance voting (K2);
    - ``"soft"`` + voting: Gaussian soft-NMS with variance voting (K3);
    - ``"soft"`` without voting: soft-NMS alone (K4);
    - ``"diou"``: DIoU-NMS (Zheng et al., AAAI 2020) instead of detectron2's NMS, no voting.

    Every output ``Instances`` carries ``pred_boxes_std`` (k, 4): the predicted standard deviation
    of each coordinate in pixels, and ``pred_box_logvar`` (k, 4): its alpha in delta units (both of
    the selected box, before voting).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        box2box_transform,
        num_classes: int,
        logvar_init_std: float = 1e-4,
        kl_smooth_l1_beta: float = KL_DEFAULTS.kl_smooth_l1_beta,
        alpha_clamp: tuple[float, float] | None = KL_DEFAULTS.alpha_clamp,
        test_nms_method: str = KL_DEFAULTS.test_nms_method,
        test_var_voting: bool = KL_DEFAULTS.test_var_voting,
        sigma_t: float = KL_DEFAULTS.sigma_t,
        vote_iou_thresh: float = KL_DEFAULTS.vote_iou_thresh,
        soft_nms_sigma: float = KL_DEFAULTS.soft_nms_sigma,
        prune_thresh: float = KL_DEFAULTS.prune_thresh,
        variance_space: str = KL_DEFAULTS.variance_space,
        logvar_stop_gradient: bool = False,
        **kwargs,
    ):
        """
        Args (beyond :class:`FastRCNNOutputLayers`'s):
            logvar_init_std: std of the normal init of ``bbox_pred_logvar`` (bias 0); paper 1e-4.
            kl_smooth_l1_beta: smooth-L1 beta inside the KL loss (paper 1.0; 0 = L1).
            alpha_clamp: optional ``(lo, hi)`` straight-through clamp of alpha in the loss.
            test_nms_method: ``"hard"``, ``"soft"`` (Gaussian) or ``"diou"`` (DIoU-NMS, hard;
                without variance voting) suppression at test time.
            test_var_voting: replace each kept box by the variance vote of its cluster.
            sigma_t: voting IoU-closeness width (``p_i = exp(-(1-IoU)^2 / sigma_t)``).
            vote_iou_thresh: voters need IoU strictly above it (paper 0).
            soft_nms_sigma: Gaussian soft-NMS width.
            prune_thresh: soft-NMS drops boxes whose decayed score falls below it.
            variance_space: ``"delta"`` votes with alpha as predicted (both references);
                ``"pixel"`` converts it to pixels with the proposal size first.
            logvar_stop_gradient: the log-variance layer reads the shared box-head features
                without sending its gradient back into them (not in the paper: a control for
                whether learning the variance competes with classification for those features,
                docs/study.md). Default: False.
        """
        super().__init__(
            input_shape, box2box_transform=box2box_transform, num_classes=num_classes, **kwargs
        )
        if len(box2box_transform.weights) != 4:
            raise ValueError("KLFastRCNNOutputLayers supports 4-coordinate boxes only")
        check_kl_test_settings(
            test_nms_method, variance_space, sigma_t, soft_nms_sigma, test_var_voting
        )
        self.bbox_pred_logvar = nn.Linear(self.bbox_pred.in_features, self.bbox_pred.out_features)
        nn.init.normal_(self.bbox_pred_logvar.weight, std=logvar_init_std)
        nn.init.constant_(self.bbox_pred_logvar.bias, 0.0)
        self.kl_smooth_l1_beta = kl_smooth_l1_beta
        self.alpha_clamp = tuple(alpha_clamp) if alpha_clamp else None
        self.test_nms_method = test_nms_method
        self.test_var_voting = test_var_voting
        self.sigma_t = sigma_t
        self.vote_iou_thresh = vote_iou_thresh
        self.soft_nms_sigma = soft_nms_sigma
        self.prune_thresh = prune_thresh
        self.variance_space = variance_space
        self.logvar_stop_gradient = bool(logvar_stop_gradient)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        logvar_in = x.detach() if self.logvar_stop_gradient else x
        return self.cls_score(x), self.bbox_pred(x), self.bbox_pred_logvar(logvar_in)

    # ---- training --------------------------------------------------------------------------
    def losses(self, predictions, proposals):
        scores, deltas, log_vars = predictions
        # The parent computes the classification loss and calls box_reg_loss with the deltas;
        # the log-variances travel beside them in the same tensor.
        return super().losses((scores, torch.cat([deltas, log_vars], dim=1)), proposals)

    def box_reg_loss(self, proposal_boxes, gt_boxes, pred_deltas, gt_classes):
        pred_deltas, log_vars = pred_deltas.chunk(2, dim=1)
        fg = nonzero_tuple((gt_classes >= 0) & (gt_classes < self.num_classes))[0]
        if pred_deltas.shape[1] == 4:  # class-agnostic
            fg_deltas, fg_log_vars = pred_deltas[fg], log_vars[fg]
        else:
            fg_deltas = pred_deltas.view(-1, self.num_classes, 4)[fg, gt_classes[fg]]
            fg_log_vars = log_vars.view(-1, self.num_classes, 4)[fg, gt_classes[fg]]
        if fg.numel() == 0:  # still attached to the graph so DDP sees every parameter used
            return (pred_deltas.sum() + log_vars.sum()) * 0.0
        targets = self.box2box_transform.get_deltas(proposal_boxes[fg], gt_boxes[fg])
        loss = kl_loss(
            fg_deltas,
            fg_log_vars,
            targets,
            beta=self.kl_smooth_l1_beta,
            reduction="sum",
            alpha_clamp=self.alpha_clamp,
        )
        self._log_variance_stats(fg_log_vars.detach())
        return loss / max(gt_classes.numel(), 1)

    _log_variance_stats = staticmethod(log_variance_stats)

    # ---- the parent's helpers take (scores, deltas) ----------------------------------------
    def predict_boxes(self, predictions, proposals):
        return super().predict_boxes(predictions[:2], proposals)

    def predict_boxes_for_gt_classes(self, predictions, proposals):
        return super().predict_boxes_for_gt_classes(predictions[:2], proposals)

    def predict_probs(self, predictions, proposals):
        return super().predict_probs(predictions[:2], proposals)

    # ---- inference -------------------------------------------------------------------------
    def inference(self, predictions, proposals: list[Instances]):
        """Per-image post-processing of the chosen mode; returns ``(instances, kept_indices)``
        like detectron2's ``fast_rcnn_inference`` (indices into each image's proposals)."""
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        num_per_image = [p.proposal_boxes.tensor.shape[0] for p in proposals]
        log_vars = predictions[2].split(num_per_image)
        results = [
            self._inference_single_image(b, s, a, p.proposal_boxes.tensor, p.image_size)
            for b, s, a, p in zip(boxes, scores, log_vars, proposals)
        ]
        return [r[0] for r in results], [r[1] for r in results]

    def pixel_scale(self, proposal_boxes: Tensor) -> Tensor:
        """(R, 4): delta-unit std -> pixel std per coordinate (proposal size / weight)."""
        return delta_std_scale(proposal_boxes, self.box2box_transform.weights)

    def _inference_single_image(self, boxes, scores, log_vars, proposal_boxes, image_shape):
        num_reg = boxes.shape[1] // 4
        valid = (
            torch.isfinite(boxes).all(1)
            & torch.isfinite(scores).all(1)
            & torch.isfinite(log_vars).all(1)
        )
        log_vars = log_vars.view(-1, num_reg, 4)
        scale = self.pixel_scale(proposal_boxes)

        if self.test_nms_method == "diou" or (
            self.test_nms_method == "hard" and not self.test_var_voting
        ):  # one kept box per cluster, no voting: detectron2's NMS or DIoU-NMS
            infer = (
                diou_nms_inference_single_image
                if self.test_nms_method == "diou"
                else fast_rcnn_inference_single_image
            )
            # on the valid rows (always filtered: no branch on the data, so that torch.export
            # can trace it); one nonzero, then gathers
            row_ids = nonzero_tuple(valid)[0]
            result, rows = infer(
                boxes.index_select(0, row_ids),
                scores.index_select(0, row_ids),
                image_shape,
                self.test_score_thresh,
                self.test_nms_thresh,
                self.test_topk_per_image,
            )
            rows = row_ids[rows]
            cls = result.pred_classes if num_reg > 1 else torch.zeros_like(result.pred_classes)
            alpha = log_vars[rows, cls]
        else:
            result, rows, alpha = self._kl_nms_single_image(
                boxes, scores, log_vars, scale, valid, image_shape
            )
        result.pred_box_logvar = alpha
        result.pred_boxes_std = (0.5 * alpha).exp() * scale[rows]
        return result, rows

    def _kl_nms_single_image(self, boxes, scores, log_vars, scale, valid, image_shape):
        """KL-NMS / soft-NMS / variance voting of one image's candidates (valid rows with a cls
        score above the threshold: one mask, one ``nonzero``)."""
        num_reg = log_vars.shape[1]
        boxes = clip_boxes(boxes.view(-1, num_reg, 4), image_shape)
        mask = (scores[:, :-1] > self.test_score_thresh) & valid[:, None]
        rows, classes = nonzero_tuple(mask)
        reg = classes if num_reg > 1 else torch.zeros_like(classes)
        cand_boxes, cand_alpha = boxes[rows, reg], log_vars[rows, reg]
        keep, voted, out_scores = kl_nms_detections(
            cand_boxes,
            scores[rows, classes],
            cand_alpha,
            classes,
            scale[rows],
            test_nms_method=self.test_nms_method,
            test_var_voting=self.test_var_voting,
            nms_thresh=self.test_nms_thresh,
            sigma_t=self.sigma_t,
            vote_iou_thresh=self.vote_iou_thresh,
            soft_nms_sigma=self.soft_nms_sigma,
            prune_thresh=self.prune_thresh,
            variance_space=self.variance_space,
            topk=self.test_topk_per_image,
        )
        result = Instances(image_shape)
        result.pred_boxes = Boxes(voted)
        result.scores = out_scores
        result.pred_classes = classes[keep]
        return result, rows[keep], cand_alpha[keep]
