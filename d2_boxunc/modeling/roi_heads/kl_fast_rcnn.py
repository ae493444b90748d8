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
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from d2_boxunc.layers import batched_kl_nms
from d2_boxunc.losses import kl_loss

__all__ = ["KLFastRCNNOutputLayers"]

NMS_METHODS = ("hard", "soft")
VARIANCE_SPACES = ("delta", "pixel")


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
    - ``"soft"`` without voting: soft-NMS alone (K4).

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
        kl_smooth_l1_beta: float = 1.0,
        alpha_clamp: tuple[float, float] | None = None,
        test_nms_method: str = "hard",
        test_var_voting: bool = False,
        sigma_t: float = 0.02,
        vote_iou_thresh: float = 0.0,
        soft_nms_sigma: float = 0.5,
        prune_thresh: float = 0.001,
        variance_space: str = "delta",
        logvar_stop_gradient: bool = False,
        **kwargs,
    ):
        """
        Args (beyond :class:`FastRCNNOutputLayers`'s):
            logvar_init_std: std of the normal init of ``bbox_pred_logvar`` (bias 0); paper 1e-4.
            kl_smooth_l1_beta: smooth-L1 beta inside the KL loss (paper 1.0; 0 = L1).
            alpha_clamp: optional ``(lo, hi)`` straight-through clamp of alpha in the loss.
            test_nms_method: ``"hard"`` or ``"soft"`` (Gaussian) suppression at test time.
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
        if test_nms_method not in NMS_METHODS:
            raise ValueError(
                f"test_nms_method must be one of {NMS_METHODS}, got {test_nms_method!r}"
            )
        if variance_space not in VARIANCE_SPACES:
            raise ValueError(
                f"variance_space must be one of {VARIANCE_SPACES}, got {variance_space!r}"
            )
        for name, value in (("sigma_t", sigma_t), ("soft_nms_sigma", soft_nms_sigma)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
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

    @staticmethod
    def _log_variance_stats(alpha: Tensor) -> None:
        try:
            storage = get_event_storage()
        except AssertionError:  # called outside a trainer (tests, notebooks)
            return
        storage.put_scalar("kl/alpha_mean", alpha.mean().item())
        storage.put_scalar("kl/alpha_min", alpha.min().item())
        storage.put_scalar("kl/alpha_max", alpha.max().item())
        storage.put_scalar("kl/sigma_mean", alpha.mul(0.5).exp().mean().item())

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
        w = (proposal_boxes[:, 2] - proposal_boxes[:, 0]).clamp(min=1e-6)
        h = (proposal_boxes[:, 3] - proposal_boxes[:, 1]).clamp(min=1e-6)
        weights = torch.tensor(self.box2box_transform.weights, dtype=w.dtype, device=w.device)
        return torch.stack([w, h, w, h], dim=1) / weights

    def _inference_single_image(self, boxes, scores, log_vars, proposal_boxes, image_shape):
        num_reg = boxes.shape[1] // 4
        valid = (
            torch.isfinite(boxes).all(1)
            & torch.isfinite(scores).all(1)
            & torch.isfinite(log_vars).all(1)
        )
        # always filtered (no branch on the data, so that torch.export can trace it)
        boxes, scores, log_vars = boxes[valid], scores[valid], log_vars[valid]
        proposal_boxes = proposal_boxes[valid]
        row_ids = nonzero_tuple(valid)[0]
        log_vars = log_vars.view(-1, num_reg, 4)
        scale = self.pixel_scale(proposal_boxes)

        if self.test_nms_method == "hard" and not self.test_var_voting:
            result, rows = fast_rcnn_inference_single_image(
                boxes,
                scores,
                image_shape,
                self.test_score_thresh,
                self.test_nms_thresh,
                self.test_topk_per_image,
            )
            cls = result.pred_classes if num_reg > 1 else torch.zeros_like(result.pred_classes)
            alpha = log_vars[rows, cls]
        else:
            result, rows, alpha = self._kl_nms_single_image(
                boxes, scores, log_vars, scale, image_shape
            )
        result.pred_box_logvar = alpha
        result.pred_boxes_std = (0.5 * alpha).exp() * scale[rows]
        return result, row_ids[rows]

    def _kl_nms_single_image(self, boxes, scores, log_vars, scale, image_shape):
        num_reg = log_vars.shape[1]
        boxes = Boxes(boxes.reshape(-1, 4))
        boxes.clip(image_shape)
        boxes = boxes.tensor.view(-1, num_reg, 4)
        mask = scores[:, :-1] > self.test_score_thresh
        rows, classes = nonzero_tuple(mask)
        reg = classes if num_reg > 1 else torch.zeros_like(classes)
        cand_boxes, cand_alpha = boxes[rows, reg], log_vars[rows, reg]
        vote_alpha = None
        if self.test_var_voting:
            vote_alpha = cand_alpha
            if self.variance_space == "pixel":
                vote_alpha = cand_alpha + 2.0 * scale[rows].log()
        keep, voted, out_scores = batched_kl_nms(
            cand_boxes,
            scores[rows, classes],
            vote_alpha,
            classes,
            iou_threshold=self.test_nms_thresh,
            score_threshold=self.prune_thresh if self.test_nms_method == "soft" else 0.0,
            sigma_t=self.sigma_t,
            soft=self.test_nms_method == "soft",
            soft_sigma=self.soft_nms_sigma,
            vote_iou_threshold=self.vote_iou_thresh,
        )
        if self.test_topk_per_image >= 0:
            keep = keep[: self.test_topk_per_image]
            voted, out_scores = voted[: keep.shape[0]], out_scores[: keep.shape[0]]
        result = Instances(image_shape)
        result.pred_boxes = Boxes(voted)
        result.scores = out_scores
        result.pred_classes = classes[keep]
        return result, rows[keep], cand_alpha[keep]
