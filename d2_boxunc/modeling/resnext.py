"""ResNeXt stages (and deformable variants) for LazyConfigs.

detectron2's ``ResNet.make_default_stages`` fixes ``bottleneck_channels = out_channels / 4``, which
is the plain ResNet; its yacs builder knows groups, but LazyConfigs need a function. This one
builds ResNeXt-``depth`` ``num_groups`` x ``width_per_group`` (e.g. X-101-64x4d), optionally with
(modulated) deformable convolutions in chosen stages (as the aLRP "dcn" config: c3-c5).

The deformable stages use :class:`TVDeformBottleneckBlock`, detectron2's ``DeformBottleneckBlock``
rebuilt on ``torchvision.ops.deform_conv2d`` (:class:`d2_boxunc.layers.deform_conv.TVDeformConv`),
because detectron2's own deformable convolution needs its compiled ops. Parameter names and the
offset / mask layout are detectron2's, so checkpoints of either block load into the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.layers import CNNBlockBase, Conv2d, get_norm
from detectron2.modeling.backbone.resnet import BottleneckBlock, ResNet
from fvcore.nn import weight_init
from torch import nn

from d2_boxunc.layers.deform_conv import TVDeformConv

__all__ = ["TVDeformBottleneckBlock", "make_resnext_stages"]

_BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


class TVDeformBottleneckBlock(CNNBlockBase):
    """detectron2's ``DeformBottleneckBlock`` (1x1, deformable 3x3, 1x1 and the shortcut) on
    torchvision's deformable convolution; same constructor, parameter names and initialisation.

    ``conv2_offset`` (a plain 3x3 conv, zero-initialised) predicts, per deformable group, 18
    offsets (and, when ``deform_modulated``, 9 mask logits): its output is split into three equal
    chunks, the first two are the offsets and the sigmoid of the third is the mask, as detectron2
    and mmcv's DCNv2 do. At initialisation the offsets are 0 and the mask 0.5.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm="BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
        deform_modulated: bool = False,
        deform_num_groups: int = 1,
    ):
        super().__init__(in_channels, out_channels, stride)
        self.deform_modulated = deform_modulated
        self.shortcut = (
            Conv2d(
                in_channels,
                out_channels,
                kernel_size=1,
                stride=stride,
                bias=False,
                norm=get_norm(norm, out_channels),
            )
            if in_channels != out_channels
            else None
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            kernel_size=1,
            stride=stride_1x1,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        offset_channels = 27 if deform_modulated else 18
        self.conv2_offset = Conv2d(
            bottleneck_channels,
            offset_channels * deform_num_groups,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
        )
        self.conv2 = TVDeformConv(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
            deformable_groups=deform_num_groups,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
            modulated=deform_modulated,
        )
        self.conv3 = Conv2d(
            bottleneck_channels,
            out_channels,
            kernel_size=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                weight_init.c2_msra_fill(layer)
        nn.init.constant_(self.conv2_offset.weight, 0)
        nn.init.constant_(self.conv2_offset.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        if self.deform_modulated:
            offset_a, offset_b, mask_logits = torch.chunk(self.conv2_offset(out), 3, dim=1)
            offset = torch.cat((offset_a, offset_b), dim=1)
            out = self.conv2(out, offset, mask_logits.sigmoid())
        else:
            out = self.conv2(out, self.conv2_offset(out))
        out = self.conv3(F.relu_(out))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


def make_resnext_stages(
    depth: int = 101,
    num_groups: int = 64,
    width_per_group: int = 4,
    norm: str = "FrozenBN",
    stride_in_1x1: bool = False,
    deform_on_per_stage: tuple[bool, bool, bool, bool] = (False, False, False, False),
    deform_modulated: bool = True,
) -> list[list[CNNBlockBase]]:
    """Stages res2..res5 of a ResNeXt; pass to ``ResNet(stages=...)`` with a 64-wide ``BasicStem``."""
    if depth not in _BLOCKS:
        raise ValueError(
            f"make_resnext_stages: depth must be one of {sorted(_BLOCKS)}, got {depth}"
        )
    if len(deform_on_per_stage) != 4:
        raise ValueError("deform_on_per_stage needs 4 entries (res2..res5)")
    stages = []
    in_channels, out_channels = 64, 256
    bottleneck = num_groups * width_per_group
    for i, n in enumerate(_BLOCKS[depth]):
        kwargs = dict(
            bottleneck_channels=bottleneck,
            num_groups=num_groups,
            norm=norm,
            stride_in_1x1=stride_in_1x1,
        )
        block = BottleneckBlock
        if deform_on_per_stage[i]:
            block = TVDeformBottleneckBlock
            kwargs.update(deform_modulated=deform_modulated, deform_num_groups=1)
        stages.append(
            ResNet.make_stage(
                block_class=block,
                num_blocks=n,
                stride_per_block=[1 if i == 0 else 2] + [1] * (n - 1),
                in_channels=in_channels,
                out_channels=out_channels,
                **kwargs,
            )
        )
        in_channels, out_channels, bottleneck = out_channels, out_channels * 2, bottleneck * 2
    return stages
