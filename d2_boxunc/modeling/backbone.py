"""Backbone parts: small ResNets for CPU-sized runs (the synthetic switch of
:mod:`d2_boxunc.config.synthetic`) and an FPN that runs in mixed precision."""

from __future__ import annotations

import torch
from detectron2.layers import CNNBlockBase
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.resnet import BasicBlock, ResNet

__all__ = ["AUTOCAST_DTYPES", "AutocastFPN", "make_small_resnet_stages"]

AUTOCAST_DTYPES = ("bfloat16", "float16")


class AutocastFPN(FPN):
    """detectron2's :class:`FPN` (bottom-up network included) run under ``torch.autocast`` in
    ``autocast_dtype``, its feature maps cast back to the input's dtype.

    Mixed precision for the backbone only: the heads, the box coders and every loss stay in
    float32, where the localisation losses and their gradients need the precision (bfloat16 keeps
    8 bits of mantissa: IoU values near 0.9 would move by ~0.4%).  On CPUs with AMX-BF16 the
    convolutions then run in bfloat16 (docs/study.md#wall-time).  ``autocast_dtype=None`` is
    exactly :class:`FPN`; the weights and their names are FPN's either way.
    """

    def __init__(self, *args, autocast_dtype: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if autocast_dtype is not None and autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(
                f"AutocastFPN: autocast_dtype must be None or one of {AUTOCAST_DTYPES}, "
                f"got {autocast_dtype!r}"
            )
        self.autocast_dtype = autocast_dtype

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.autocast_dtype is None:
            return super().forward(x)
        with torch.autocast(x.device.type, dtype=getattr(torch, self.autocast_dtype)):
            features = super().forward(x)
        return {k: v.to(x.dtype) for k, v in features.items()}


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
