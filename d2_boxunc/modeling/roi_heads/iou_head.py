"""IoU-Net's IoU-prediction head (Jiang et al., ECCV 2018; docs/design.md#iou-head).

Flattened PrRoIPool features -> FC + ReLU (x2) -> ``fc_iou`` with K outputs (class-aware, paper)
or 1 (class-agnostic). The raw output is mapped to an IoU in [0, 1] by :meth:`IoUHead.predict_iou`
(``0.5 * raw + 0.5`` for the paper's smooth-L1 on [-1, 1] targets, ``sigmoid(raw)`` for BCE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from fvcore.nn import weight_init
from torch import Tensor, nn

__all__ = ["IoUHead", "IOU_LOSS_TYPES"]

IOU_LOSS_TYPES = ("smooth_l1", "bce")


class IoUHead(nn.Module):
    """FC head predicting the IoU of each RoI with its (unknown) ground truth.

    ``forward(x)`` returns raw outputs ``(M, K)`` (or ``(M, 1)`` when class-agnostic);
    :meth:`losses` and :meth:`predict_iou` interpret them according to ``loss_type``.
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_classes: int,
        fc_dims: list[int] | tuple[int, ...] = (1024, 1024),
        class_agnostic: bool = False,
        loss_type: str = "smooth_l1",
        loss_weight: float = 5.0,
        smooth_l1_beta: float = 1.0,
        iou_init_std: float = 0.01,
    ):
        """
        Args:
            input_shape (ShapeSpec): pooled feature shape (channels, height, width).
            num_classes (int): K foreground classes (ignored when ``class_agnostic``).
            fc_dims (list[int]): hidden FC widths. Default: (1024, 1024) (OpenMMLab-IoUNet, paper).
            class_agnostic (bool): one IoU output instead of one per class. Default: False.
            loss_type (str): ``"smooth_l1"`` (paper: smooth-L1 against ``(IoU - 0.5) / 0.5``) or
                ``"bce"`` (OpenMMLab-IoUNet's improvement: BCE-with-logits against the soft IoU).
            loss_weight (float): IoU loss weight. Default: 5.0 (OpenMMLab-IoUNet; not in the paper).
            smooth_l1_beta (float): beta of the smooth-L1 loss. Default: 1.0.
            iou_init_std (float): std of the normal init of ``fc_iou`` (bias 0). Default: 0.01.
        """
        super().__init__()
        if loss_type not in IOU_LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {IOU_LOSS_TYPES}, got {loss_type!r}")
        if not class_agnostic and num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if loss_weight < 0:
            raise ValueError(f"loss_weight must be >= 0, got {loss_weight}")
        if not fc_dims:
            raise ValueError("fc_dims must name at least one hidden layer")
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.loss_type = loss_type
        self.loss_weight = loss_weight
        self.smooth_l1_beta = smooth_l1_beta
        in_dim = input_shape.channels * (input_shape.height or 1) * (input_shape.width or 1)
        self._fc_names = []
        for k, dim in enumerate(fc_dims):
            fc = nn.Linear(in_dim, dim)
            weight_init.c2_xavier_fill(fc)
            self.add_module(f"fc{k + 1}", fc)
            self._fc_names.append(f"fc{k + 1}")
            in_dim = dim
        self.fc_iou = nn.Linear(in_dim, 1 if class_agnostic else num_classes)
        nn.init.normal_(self.fc_iou.weight, std=iou_init_std)
        nn.init.constant_(self.fc_iou.bias, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        """(M, C, H, W) pooled features -> (M, K) or (M, 1) raw outputs."""
        x = torch.flatten(x, start_dim=1)
        for name in self._fc_names:
            x = F.relu(getattr(self, name)(x))
        return self.fc_iou(x)

    def iou_and_input_grad(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """``(iou, d iou / d x)`` for (M, C, H, W) pooled features ``x``: the predicted IoU of each
        row's class and its gradient, by an explicit backward pass through the FC layers (no
        autograd; ``torch.export`` cannot trace ``torch.autograd.grad``). Box refinement at export
        time chains it with PrRoIPool's backward op."""
        h = torch.flatten(x, start_dim=1)
        weights, masks = [], []
        for name in self._fc_names:
            fc = getattr(self, name)
            h = F.relu(fc(h))
            weights.append(fc.weight)
            masks.append(h > 0)
        sel = self.select(self.fc_iou(h), classes)
        iou = self.predict_iou(sel)
        d_sel = iou * (1 - iou) if self.loss_type == "bce" else torch.full_like(sel, 0.5)
        rows = self.fc_iou.weight[torch.zeros_like(classes) if self.class_agnostic else classes]
        g = d_sel[:, None] * rows
        for w, mask in zip(reversed(weights), reversed(masks)):
            g = (g * mask) @ w
        return iou, g.view_as(x)

    def select(self, raw: Tensor, classes: Tensor) -> Tensor:
        """(M, K) raw outputs -> (M,) the column of each row's class (column 0 if agnostic)."""
        if self.class_agnostic:
            return raw[:, 0]
        idx = torch.arange(raw.shape[0], device=raw.device)
        return raw[idx, classes]

    def predict_iou(self, raw: Tensor) -> Tensor:
        """Raw outputs -> IoU space (same shape): in [0, 1] for ``bce``; the smooth-L1 head's linear
        map can step slightly outside (inference clamps the reported IoU). Differentiable:
        refinement ascends it."""
        if self.loss_type == "bce":
            return raw.sigmoid()
        return raw * 0.5 + 0.5

    def losses(self, raw: Tensor, classes: Tensor, target_ious: Tensor) -> Tensor:
        """Weighted IoU loss averaged over the M IoU RoIs (OpenMMLab-IoUNet ``avg_factor = M``).

        Args:
            raw (Tensor[M, K] or Tensor[M, 1]): head outputs.
            classes (Tensor[M]): class of each RoI's assigned ground truth.
            target_ious (Tensor[M]): IoU of each RoI with that ground truth, in [0.5, 1].
        Returns:
            Tensor: scalar ``loss_weight * mean loss``; ``raw.sum() * 0`` for M = 0 (attached to
            the graph so DDP sees every parameter used).
        """
        if raw.shape[0] == 0:
            return raw.sum() * 0.0
        pred = self.select(raw, classes).float()
        target = target_ious.to(pred.dtype)
        if self.loss_type == "bce":
            loss = F.binary_cross_entropy_with_logits(pred, target, reduction="sum")
        else:
            norm_target = (target - 0.5) / 0.5  # paper: targets normalised to [-1, 1]
            loss = F.smooth_l1_loss(pred, norm_target, beta=self.smooth_l1_beta, reduction="sum")
        return self.loss_weight * loss / pred.shape[0]
