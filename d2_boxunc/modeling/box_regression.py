"""Box coders that detectron2 lacks, and a host-sync-free box clip."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Box2BoxTransformXYXY", "clip_boxes"]


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """``(..., 4)`` boxes clipped to ``[0, w] x [0, h]``: the values of detectron2's ``Boxes.clip``
    without its finiteness assert, a device->host sync on CUDA (docs/gpu.md#host-syncs). Non-finite
    rows stay non-finite (NaN) or are clamped (inf); callers drop them by their own mask."""
    h, w = image_size
    x = boxes[..., 0::2].clamp(min=0, max=w)
    y = boxes[..., 1::2].clamp(min=0, max=h)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


class Box2BoxTransformXYXY:
    """Corner-delta box coder of KL-Loss (He et al., CVPR 2019;
    docs/design.md#corner-delta-box-coder).

    Each corner moves independently, normalised by the proposal size:
    ``t_x1 = w_x1 * (g_x1 - a_x1) / a_w``, ``t_y1 = w_y1 * (g_y1 - a_y1) / a_h``, and the same for
    ``x2`` / ``y2``. Decoding inverts it after clamping every normalised delta ``t / w`` to
    ``[-clamp, clamp]`` (62.5 = 1000/16, Detectron's ``BBOX_XFORM_CLIP``). Unlike the XYWH coder a
    decoded box may be inverted (``x2 < x1``); downstream code treats its area as 0.

    A drop-in for detectron2's ``Box2BoxTransform`` (same methods, ``weights`` of length 4).
    """

    def __init__(
        self,
        weights: tuple[float, float, float, float] = (10.0, 10.0, 10.0, 10.0),
        clamp: float = 1000.0 / 16,
    ):
        weights = tuple(float(w) for w in weights)
        if len(weights) != 4 or not all(w > 0 for w in weights):
            raise ValueError(
                f"Box2BoxTransformXYXY: weights must be 4 positive numbers, got {weights}"
            )
        if not clamp > 0:
            raise ValueError(f"Box2BoxTransformXYXY: clamp must be positive, got {clamp}")
        self.weights = weights
        self.clamp = float(clamp)

    def __repr__(self) -> str:
        return f"Box2BoxTransformXYXY(weights={self.weights}, clamp={self.clamp})"

    def _per_coordinate(self, op, t: Tensor) -> Tensor:
        """``op(t[..., k], weights[k])`` for each coordinate k: the weights stay Python numbers
        (a tensor of them would be a host->device copy, which synchronises on CUDA)."""
        return torch.stack([op(t[..., k], w) for k, w in enumerate(self.weights)], dim=-1)

    @staticmethod
    def _sizes(boxes: Tensor) -> Tensor:
        """(N, 4) -> (N, 4): the proposal width for x coordinates, height for y coordinates."""
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        return torch.stack([w, h, w, h], dim=1)

    def get_deltas(self, src_boxes: Tensor, target_boxes: Tensor) -> Tensor:
        """Deltas ``(N, 4)`` that turn ``src_boxes`` (N, 4, non-empty) into ``target_boxes``."""
        if not isinstance(src_boxes, Tensor) or src_boxes.ndim != 2 or src_boxes.shape[-1] != 4:
            raise ValueError(f"get_deltas: src_boxes must be (N, 4), got {tuple(src_boxes.shape)}")
        if target_boxes.shape != src_boxes.shape:
            raise ValueError(
                f"get_deltas: target_boxes {tuple(target_boxes.shape)} must match src_boxes "
                f"{tuple(src_boxes.shape)}"
            )
        src_boxes = src_boxes.to(target_boxes.dtype)
        sizes = self._sizes(src_boxes)
        if (sizes <= 0).any():
            raise ValueError("get_deltas: src_boxes must have positive width and height")
        return self._per_coordinate(torch.mul, target_boxes - src_boxes) / sizes

    def apply_deltas(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """Apply ``deltas`` (N, 4k) to ``boxes`` (N, 4): returns (N, 4k) boxes, k corners sets."""
        if deltas.ndim != 2 or deltas.shape[1] % 4 != 0:
            raise ValueError(f"apply_deltas: deltas must be (N, 4k), got {tuple(deltas.shape)}")
        if boxes.shape != (deltas.shape[0], 4):
            raise ValueError(
                f"apply_deltas: boxes must be ({deltas.shape[0]}, 4), got {tuple(boxes.shape)}"
            )
        deltas = deltas.float() if deltas.dtype in (torch.float16, torch.bfloat16) else deltas
        boxes = boxes.to(deltas.dtype)
        n, k = deltas.shape[0], deltas.shape[1] // 4  # k explicit: N may be 0
        d = self._per_coordinate(torch.div, deltas.view(n, k, 4)).clamp(-self.clamp, self.clamp)
        return (boxes[:, None, :] + d * self._sizes(boxes)[:, None, :]).reshape(n, 4 * k)
