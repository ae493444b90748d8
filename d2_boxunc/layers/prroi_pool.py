"""Precise RoI Pooling (PrRoIPool, IoU-Net): the exact average of the bilinearly interpolated
feature map over each bin, differentiable w.r.t. the features and the box coordinates.

Conventions (docs/design.md#prroipool-definition): feature sample (i, j) sits at map point
(x=j, y=i); the interpolant is zero-padded (falls linearly to 0 over one cell past the border); a
zero-area bin outputs 0 with zero gradients. ``aligned=False`` is the official op exactly;
``aligned=True`` (default) shifts the scaled coordinates by -0.5 like detectron2's ROIAlignV2.
"""

import logging
import math
from numbers import Real

import torch
from detectron2.utils.logger import log_first_n
from torch import Tensor, nn

from d2_boxunc import _extension
from d2_boxunc.layers import _reference

__all__ = ["prroi_pool", "PrRoIPool"]


def _pair(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        size = (output_size, output_size)
    else:
        size = tuple(output_size) if isinstance(output_size, (tuple, list)) else ()
    if len(size) != 2 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size
    ):
        raise ValueError(
            f"output_size must be a positive int or a pair of them, got {output_size!r}"
        )
    return size


def _to_roi_format(rois: Tensor | list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """Tensor[K, 5] as is, or list[Tensor[L, 4]] (one per image) -> Tensor[K, 5]."""
    if isinstance(rois, Tensor):
        if rois.dim() != 2 or rois.shape[1] != 5:
            raise ValueError(
                "rois must be a Tensor[K, 5] of (batch_index, x1, y1, x2, y2), "
                f"got shape {tuple(rois.shape)}"
            )
        return rois
    if not isinstance(rois, (list, tuple)) or not all(isinstance(b, Tensor) for b in rois):
        raise TypeError(f"rois must be a Tensor[K, 5] or a list of Tensor[L, 4], got {type(rois)}")
    for k, boxes in enumerate(rois):
        if boxes.dim() != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f"rois[{k}] must be a Tensor[L, 4] of (x1, y1, x2, y2), got shape {tuple(boxes.shape)}"
            )
    if len(rois) == 0:
        raise ValueError("rois is an empty list; pass one Tensor[L, 4] per image")
    index = torch.cat(
        [torch.full_like(b[:, :1], k, dtype=b.dtype) for k, b in enumerate(rois)], dim=0
    )
    return torch.cat([index, torch.cat(list(rois), dim=0)], dim=1)


def _check(input: Tensor, rois: Tensor, spatial_scale: float) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor, got {type(input)}")
    if input.dim() != 4:
        raise ValueError(f"input must be a Tensor[N, C, H, W], got shape {tuple(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {input.dtype}")
    # The kernels exist for float32 and float64; under autocast the op's registration (below; the
    # reference fallback does the same) casts half inputs to float32, so only that route takes them.
    if input.dtype not in (torch.float32, torch.float64) and not torch.is_autocast_enabled(
        input.device.type
    ):
        raise TypeError(
            f"prroi_pool supports float32 and float64 inputs, got {input.dtype}: cast them, or call "
            "it under torch.autocast, which runs it in float32"
        )
    if (
        not isinstance(spatial_scale, Real)
        or isinstance(spatial_scale, bool)
        or not (math.isfinite(spatial_scale) and spatial_scale > 0)
    ):
        raise ValueError(f"spatial_scale must be a finite positive number, got {spatial_scale!r}")
    if rois.device != input.device:
        raise ValueError(
            f"input and rois must be on the same device, got {input.device} and {rois.device}"
        )
    # Under autocast both are cast to float32 by the op's autocast registration.
    if rois.dtype != input.dtype and not torch.is_autocast_enabled(input.device.type):
        raise TypeError(
            f"input and rois must have the same dtype, got {input.dtype} and {rois.dtype}"
        )
    if _extension.has_ops():
        _extension.check_device_supported(input, "input")
    if not _extension.host_value_checks(rois) or rois.shape[0] == 0:
        # On CUDA reading values would be a device->host sync per call (IoU-Net refinement pools
        # every FPN level at every step): skipped unless D2_BOXUNC_CHECK_VALUES=1. The kernels
        # treat a RoI with a non-finite coordinate or an out-of-range batch index as empty
        # (output 0, gradient 0); a fractional batch index is truncated.
        return
    coords = rois.detach()
    if not torch.isfinite(coords).all():
        raise ValueError("rois must contain only finite coordinates (found NaN or inf)")
    batch = coords[:, 0]
    if not (batch == batch.round()).all():
        raise ValueError("rois[:, 0] (batch index) must hold integer values")
    if batch.min() < 0 or batch.max() >= input.shape[0]:
        raise ValueError(
            f"rois[:, 0] (batch index) must lie in [0, {input.shape[0] - 1}] for input of batch "
            f"size {input.shape[0]}, got values in [{batch.min().item():g}, {batch.max().item():g}]"
        )


def prroi_pool(
    input: Tensor,
    rois: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float,
    aligned: bool = True,
) -> Tensor:
    """Pool ``input (N, C, H, W)`` over each RoI into ``(K, C, h, w)`` bins, exactly.

    Args:
        input: feature map.
        rois: Tensor[K, 5] of ``(batch_index, x1, y1, x2, y2)`` in image coordinates, or a list of
            N Tensor[L, 4] boxes (one per image).
        output_size: ``h`` or ``(h, w)``, the number of bins.
        spatial_scale: ``1 / stride`` of the feature map.
        aligned: shift the scaled coordinates by -0.5 (detectron2's ROIAlignV2 geometry).

    Differentiable w.r.t. ``input`` and the box coordinates (the batch index gets gradient 0).
    ``input`` and ``rois`` are float32 or float64 of one dtype; float16/bfloat16 are accepted only
    under ``torch.autocast``, which computes in float32 (a TypeError otherwise). Falls back to the
    slow pure-PyTorch reference when the extension is not built.
    """
    ph, pw = _pair(output_size)
    rois = _to_roi_format(rois)
    _check(input, rois, spatial_scale)
    if _extension.has_ops():
        return torch.ops.d2_boxunc.prroi_pool(input, rois, float(spatial_scale), ph, pw, aligned)
    log_first_n(
        logging.WARNING,
        "d2_boxunc._C is not built: prroi_pool uses the slow pure-PyTorch reference.",
        n=1,
        name=__name__,
    )
    if input.dtype in (torch.float16, torch.bfloat16) or rois.dtype != input.dtype:
        input, rois = input.float(), rois.float()
    if not torch.is_autocast_enabled(input.device.type):
        return _reference.prroi_pool(input, rois, (ph, pw), float(spatial_scale), aligned)
    # As the op's autocast registration: float32 in, and no autocast inside (its einsums would
    # run in half precision and meet float32 buffers).
    with torch.autocast(input.device.type, enabled=False):
        return _reference.prroi_pool(input, rois, (ph, pw), float(spatial_scale), aligned)


class PrRoIPool(nn.Module):
    """Module form of :func:`prroi_pool`."""

    def __init__(
        self, output_size: int | tuple[int, int], spatial_scale: float, aligned: bool = True
    ) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = spatial_scale
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return prroi_pool(input, rois, self.output_size, self.spatial_scale, self.aligned)

    def rois_grad(self, grad: Tensor, input: Tensor, rois: Tensor, output: Tensor) -> Tensor:
        """d(sum(grad * output)) / d rois, (K, 5) (column 0 is 0), through the compiled backward
        op: box refinement's gradient without autograd, for ``torch.export``."""
        _extension.assert_has_ops()
        ph, pw = self.output_size
        args = (float(self.spatial_scale), ph, pw, self.aligned, False, True)
        return torch.ops.d2_boxunc._prroi_pool_backward(grad, input, rois, output, *args)[1]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, "
            f"spatial_scale={self.spatial_scale}, aligned={self.aligned})"
        )
