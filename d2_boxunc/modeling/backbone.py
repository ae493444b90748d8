"""Small ResNets for CPU-sized runs (the synthetic switch of :mod:`d2_boxunc.config.synthetic`)."""

from detectron2.layers import CNNBlockBase
from detectron2.modeling.backbone.resnet import BasicBlock, ResNet


def make_small_resnet_stages(
    depth: int = 18,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    stem_width: int = 32,
    norm: str = "GN",
) -> list[list[CNNBlockBase]]:
    """Stages of a ResNet-18/34 built from :class:`BasicBlock` with custom widths.

    detectron2's ``ResNet.make_default_stages`` fixes the widths at 64..512; this keeps the
    architecture and lets the CPU configs halve them.  Use with ``BasicStem(out_channels=stem_width)``.
    """
    blocks_per_stage = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}
    if depth not in blocks_per_stage:
        raise ValueError(f"make_small_resnet_stages supports depth 18 or 34, got {depth}")
    if len(widths) != 4:
        raise ValueError(f"widths must have 4 entries (res2..res5), got {widths}")
    stages = []
    in_channels = stem_width
    for i, (n, out_channels) in enumerate(zip(blocks_per_stage[depth], widths)):
        stages.append(
            ResNet.make_stage(
                block_class=BasicBlock,
                num_blocks=n,
                stride_per_block=[1 if i == 0 else 2] + [1] * (n - 1),
                in_channels=in_channels,
                out_channels=out_channels,
                norm=norm,
            )
        )
        in_channels = out_channels
    return stages
