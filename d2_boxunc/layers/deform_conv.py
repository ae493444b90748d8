"""Deformable convolution (v1 and modulated v2) on ``torchvision.ops.deform_conv2d``.

detectron2's ``DeformConv`` / ``ModulatedDeformConv`` need its compiled ``_C`` extension, which a
pure-Python detectron2 install lacks (the classes are then dummies that raise when built).
:class:`TVDeformConv` is a drop-in with the same parameters (``weight``, optional ``bias``, the
``norm`` submodule) and the same offset / mask layout, so checkpoints move between the two:

- ``offset``: ``(N, 2 * G * kh * kw, H_out, W_out)``; for deformable group ``g`` and kernel tap
  ``k = i * kw + j``, channel ``2 (g kh kw + k)`` is the y (row) offset and the next one the x
  (column) offset, in input pixels;
- ``mask`` (modulated only): ``(N, G * kh * kw, H_out, W_out)``, multiplying each tap's sample.

This is the layout of detectron2's and mmcv's kernels and of torchvision's op, so the op is called
as is. ``groups`` (ResNeXt cardinality) comes from the weight shape, as in ``F.conv2d``.
"""

from __future__ import annotations

import torch
from detectron2.layers.wrappers import _NewEmptyTensorOp
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d

__all__ = ["TVDeformConv"]


class TVDeformConv(nn.Module):
    """Deformable convolution, ``modulated=True`` (DCNv2, takes a mask) or False (DCNv1).

    Args mirror detectron2's ``ModulatedDeformConv``: ``in_channels``, ``out_channels``,
    ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``, ``deformable_groups``,
    ``bias``, ``norm`` (module applied after the convolution), ``activation`` (callable after the
    norm).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = True,
        norm: nn.Module | None = None,
        activation=None,
        modulated: bool = True,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"TVDeformConv: in_channels {in_channels} and out_channels {out_channels} must "
                f"be divisible by groups {groups}"
            )
        if in_channels % deformable_groups:
            raise ValueError(
                f"TVDeformConv: in_channels {in_channels} must be divisible by deformable_groups "
                f"{deformable_groups}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.modulated = modulated
        self.with_bias = bias
        self.norm = norm
        self.activation = activation
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def _out_hw(self, h: int, w: int) -> list[int]:
        return [
            (size + 2 * p - (d * (k - 1) + 1)) // s + 1
            for size, p, d, k, s in zip(
                (h, w), self.padding, self.dilation, self.kernel_size, self.stride
            )
        ]

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None):
        if self.modulated and mask is None:
            raise ValueError("TVDeformConv(modulated=True) needs a mask")
        if not self.modulated and mask is not None:
            raise ValueError("TVDeformConv(modulated=False) takes no mask")
        taps = self.kernel_size[0] * self.kernel_size[1]
        if offset.shape[1] != 2 * self.deformable_groups * taps:
            raise ValueError(
                f"TVDeformConv: offset has {offset.shape[1]} channels, expected "
                f"{2 * self.deformable_groups * taps} (2 x deformable_groups x kh x kw)"
            )
        if x.numel() == 0:
            shape = [x.shape[0], self.out_channels, *self._out_hw(*x.shape[-2:])]
            return _NewEmptyTensorOp.apply(x, shape)
        out = deform_conv2d(
            x,
            offset.to(x.dtype),
            self.weight.to(x.dtype),
            None if self.bias is None else self.bias.to(x.dtype),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=None if mask is None else mask.to(x.dtype),
        )
        if self.norm is not None:
            out = self.norm(out)
        if self.activation is not None:
            out = self.activation(out)
        return out

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, groups={self.groups}, "
            f"deformable_groups={self.deformable_groups}, bias={self.with_bias}, "
            f"modulated={self.modulated}"
        )
