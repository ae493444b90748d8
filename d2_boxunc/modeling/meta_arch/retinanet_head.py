"""RetinaNet head with optional per-anchor sigma and IoU branches (docs/retinanet_heads.md).

``BoxUncRetinaNetHead`` is detectron2's ``RetinaNetHead`` plus up to two 3x3 convolutions on the
regression tower's last features, beside ``bbox_pred``:

- ``sigma_branch``: ``bbox_logvar`` (A x 4 outputs), ``alpha = log sigma^2`` of each corner delta
  of each anchor, trained by the KL loss (He et al., "Bounding Box Regression with Uncertainty for
  Accurate Object Detection", CVPR 2019);
- ``iou_branch``: ``bbox_iou`` (A outputs), the logit of the IoU between each anchor's decoded box
  and its object (Wu et al., "IoU-aware single-stage object detector for accurate localization",
  https://github.com/ShengkaiWu/IoU-aware-single-stage-object-detector).

``BoxUncRetinaNet`` reads ``sigma_branch`` / ``iou_branch`` from its head, trains the branches and
uses them at inference. With both off the head is ``RetinaNetHead`` (same parameters, same output).
"""

from __future__ import annotations

from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from torch import Tensor, nn

__all__ = ["BoxUncRetinaNetHead"]


class BoxUncRetinaNetHead(RetinaNetHead):
    """``RetinaNetHead`` whose ``forward`` returns ``(logits, bbox_reg[, logvars][, ious])``:
    per-level lists of ``(N, A*k, H, W)`` tensors with ``k`` = K, 4, 4, 1."""

    def __init__(
        self,
        *,
        sigma_branch: bool = False,
        iou_branch: bool = False,
        logvar_init_std: float = 1e-4,
        logvar_stop_gradient: bool = False,
        iou_init_std: float = 0.01,
        **kwargs,
    ):
        """
        Args:
            sigma_branch: add ``bbox_logvar``. Default: False.
            iou_branch: add ``bbox_iou``. Default: False.
            logvar_init_std: std of the normal init of ``bbox_logvar`` (bias 0, so sigma starts
                at 1 delta unit); KL-Loss's 1e-4. Default: 1e-4.
            logvar_stop_gradient: ``bbox_logvar`` reads the regression tower without sending its
                gradient back into it (the R-CNN head's control, docs/study.md). Default: False.
            iou_init_std: std of the normal init of ``bbox_iou`` (bias 0), as the IoU-aware
                RetinaNet code. Default: 0.01.
            kwargs: :class:`detectron2.modeling.meta_arch.retinanet.RetinaNetHead` arguments.
        """
        super().__init__(**kwargs)
        channels = self.bbox_pred.in_channels
        num_anchors = self.bbox_pred.out_channels // 4
        self.sigma_branch = bool(sigma_branch)
        self.iou_branch = bool(iou_branch)
        self.logvar_stop_gradient = bool(logvar_stop_gradient)
        self.bbox_logvar = None
        self.bbox_iou = None
        if self.sigma_branch:
            self.bbox_logvar = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
            nn.init.normal_(self.bbox_logvar.weight, std=logvar_init_std)
            nn.init.constant_(self.bbox_logvar.bias, 0.0)
        if self.iou_branch:
            self.bbox_iou = nn.Conv2d(channels, num_anchors, 3, padding=1)
            nn.init.normal_(self.bbox_iou.weight, std=iou_init_std)
            nn.init.constant_(self.bbox_iou.bias, 0.0)

    def forward(self, features: list[Tensor]):
        if not (self.sigma_branch or self.iou_branch):
            return super().forward(features)
        logits, deltas, logvars, ious = [], [], [], []
        for feature in features:
            box_features = self.bbox_subnet(feature)
            logits.append(self.cls_score(self.cls_subnet(feature)))
            deltas.append(self.bbox_pred(box_features))
            if self.sigma_branch:
                x = box_features.detach() if self.logvar_stop_gradient else box_features
                logvars.append(self.bbox_logvar(x))
            if self.iou_branch:
                ious.append(self.bbox_iou(box_features))
        out = [logits, deltas]
        if self.sigma_branch:
            out.append(logvars)
        if self.iou_branch:
            out.append(ious)
        return tuple(out)
