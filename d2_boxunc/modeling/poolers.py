"""FPN RoI pooler that pools with PrRoIPool, so box coordinates receive gradients."""

import torch
from detectron2.modeling.poolers import ROIPooler
from torch import Tensor, nn

from d2_boxunc.layers import PrRoIPool

__all__ = ["PrRoIPooler"]


class PrRoIPooler(ROIPooler):
    """detectron2's :class:`ROIPooler` (same FPN level assignment) with a :class:`PrRoIPool` per
    level. ``sampling_ratio`` and ``pooler_type`` are accepted for config compatibility and
    ignored: PrRoIPool integrates exactly instead of sampling.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        scales: list[float] | tuple[float, ...],
        sampling_ratio: int = 0,
        pooler_type: str = "PrRoIPool",
        canonical_box_size: int = 224,
        canonical_level: int = 4,
        aligned: bool = True,
    ) -> None:
        super().__init__(
            output_size,
            scales,
            sampling_ratio=sampling_ratio,
            pooler_type="ROIAlignV2",
            canonical_box_size=canonical_box_size,
            canonical_level=canonical_level,
        )
        self.level_poolers = nn.ModuleList(
            PrRoIPool(self.output_size, spatial_scale=scale, aligned=aligned) for scale in scales
        )

    def forward(self, x: list[Tensor], box_lists: list) -> Tensor:
        # Under autocast PrRoIPool computes in, and returns, float32 (its autocast registration
        # casts the inputs). detectron2's ROIPooler allocates its output in the maps' dtype, so
        # half-precision maps (AMP) are cast here, once per level, instead of inside the op: the
        # same copy, and the pooled features and their buffer agree.
        if x and x[0].dtype != torch.float32 and torch.is_autocast_enabled(x[0].device.type):
            x = [f.float() for f in x]
        return super().forward(x, box_lists)
