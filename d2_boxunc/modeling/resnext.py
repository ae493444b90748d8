"""ResNeXt stages (and deformable variants) for LazyConfigs.

detectron2's ``ResNet.make_default_stages`` fixes ``bottleneck_channels = out_channels / 4``, which
is the plain ResNet; its yacs builder knows groups, but LazyConfigs need a function. This one
builds ResNeXt-``depth`` ``num_groups`` x ``width_per_group`` (e.g. X-101-64x4d), optionally with
modulated deformable convolutions in chosen stages (as the aLRP "dcn" config: c3-c5).
"""

from __future__ import annotations

from detectron2.layers import CNNBlockBase
from detectron2.modeling.backbone.resnet import BottleneckBlock, DeformBottleneckBlock, ResNet

__all__ = ["make_resnext_stages"]

_BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


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
            block = DeformBottleneckBlock
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
