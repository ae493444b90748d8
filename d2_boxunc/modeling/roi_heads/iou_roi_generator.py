"""IoU-balanced jittered RoIs built from the ground truth, to train IoU-Net's IoU head.

docs/design.md#jittered-training-rois (the lattice procedure of the OpenMMLab-IoUNet
reimplementation, https://github.com/thisisi3/OpenMMLab-IoUNet, written in our own words):

1. At construction: a lattice of transforms ``(dx, dy, sw, sh)`` applied as
   ``cx' = cx + w dx, cy' = cy + h dy, w' = w sw, h' = h sh``; ``dx, dy`` are 31 values in
   [-1, 1] clustered near 0 (``±linspace(0, 1, n)^2``), ``sw, sh`` 16 values in
   [sqrt(1/3), sqrt(3)] clustered near the low end. Each transform's IoU with the untransformed box
   (scale-free) puts it in a bin ``[0.1k, 0.1(k+1))``; at most ``pre_sample`` per bin are kept.
2. Per image: ``"per_image"`` draws ``num_samples // num_bins + 1`` transforms per bin in
   [``min_iou``, 1) and applies the same set to every GT, then keeps ``num_samples`` of the
   candidates, uniformly. ``"per_iou"`` draws ``per_iou`` transforms per bin *for each GT*
   independently and keeps at most ``num_samples`` per image.
3. Candidates are clipped to the image and assigned to the GT they overlap most; those below
   ``min_iou`` (after clipping) are dropped. Target = that IoU, class = that GT's class.

Draws come from a ``torch.Generator`` seeded with ``seed + rank``, so every rank gets different
RoIs and a run is reproducible.
"""

from __future__ import annotations

import functools
import math

import torch
from detectron2.structures import Boxes, pairwise_iou
from detectron2.utils import comm
from torch import Tensor, nn

__all__ = ["IoURoIGenerator", "build_jitter_lattice", "SAMPLERS"]

SAMPLERS = ("per_image", "per_iou")


def _squash(values: Tensor) -> Tensor:
    """Normalise to [0, 1], square ("nonlinearity 2": points cluster at the low end), map back."""
    lo, hi = values[0], values[-1]
    u = (values - lo) / (hi - lo)
    return lo + u * u * (hi - lo)


@functools.lru_cache(maxsize=4)
def build_jitter_lattice(num_steps: int = 16) -> tuple[Tensor, Tensor]:
    """The full transform lattice and the IoU of each transform with the original box.

    Returns:
        (Tensor[N, 4] float64 of (dx, dy, sw, sh), Tensor[N] float64 IoUs); with the default
        ``num_steps = 16``, N = 31 * 31 * 16 * 16 = 246,016. Cached: do not modify in place.
    """
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    t = _squash(torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64))
    shifts = torch.unique(torch.cat([-t, t]))  # sorted, 0 once: 2 * num_steps - 1 values
    scales = _squash(
        torch.linspace(math.sqrt(1.0 / 3.0), math.sqrt(3.0), num_steps, dtype=torch.float64)
    )
    dx, dy, sw, sh = (
        g.reshape(-1) for g in torch.meshgrid(shifts, shifts, scales, scales, indexing="ij")
    )
    # IoU against the unit square centred at the origin (IoU is scale invariant).
    ix = (torch.clamp(dx + sw / 2, max=0.5) - torch.clamp(dx - sw / 2, min=-0.5)).clamp(min=0)
    iy = (torch.clamp(dy + sh / 2, max=0.5) - torch.clamp(dy - sh / 2, min=-0.5)).clamp(min=0)
    inter = ix * iy
    iou = inter / (1.0 + sw * sh - inter)
    return torch.stack([dx, dy, sw, sh], dim=1), iou


def apply_jitter(boxes: Tensor, transforms: Tensor) -> Tensor:
    """Apply every transform to every box: (G, 4) x (T, 4) -> (G, T, 4) XYXY boxes."""
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    cx = (boxes[:, 0] + boxes[:, 2])[:, None] * 0.5
    cy = (boxes[:, 1] + boxes[:, 3])[:, None] * 0.5
    t = transforms.to(boxes.dtype)
    ncx, ncy = cx + w * t[:, 0], cy + h * t[:, 1]
    nw, nh = w * t[:, 2], h * t[:, 3]
    return torch.stack([ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2], dim=-1)


class IoURoIGenerator(nn.Module):
    """Jittered, IoU-balanced RoIs around the ground truth with their IoU targets
    (docs/design.md#jittered-training-rois).

    ``forward(gt_boxes, gt_classes, image_sizes)`` (lists, one entry per image) returns, per image,
    ``(rois Tensor[n, 4], target_ious Tensor[n], classes Tensor[n])`` with every
    ``target_ious >= min_iou``. Images without GT give ``n = 0``.
    """

    def __init__(
        self,
        num_samples: int = 1000,
        sampler: str = "per_image",
        per_iou: int = 50,
        pre_sample: int = 4000,
        num_steps: int = 16,
        min_iou: float = 0.5,
        seed: int = 0,
    ):
        """
        Args:
            num_samples (int): RoIs per image (``"per_image"``) or the cap per image
                (``"per_iou"``). Default: 1000 (OpenMMLab-IoUNet).
            sampler (str): ``"per_image"`` (default) or ``"per_iou"``.
            per_iou (int): transforms per IoU bin per GT for ``"per_iou"``. Default: 50.
            pre_sample (int): lattice transforms kept per IoU bin. Default: 4000.
            num_steps (int): lattice resolution per axis. Default: 16.
            min_iou (float): lowest IoU kept (paper's Omega_train). Default: 0.5.
            seed (int): base seed; rank r draws from ``seed + r``.
        """
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if num_samples <= 0 or per_iou <= 0 or pre_sample <= 0:
            raise ValueError("num_samples, per_iou and pre_sample must be positive")
        if not 0.0 < min_iou < 1.0:
            raise ValueError(f"min_iou must be in (0, 1), got {min_iou}")
        self.num_samples = num_samples
        self.sampler = sampler
        self.per_iou = per_iou
        self.min_iou = min_iou
        self.seed = seed
        self._generator: torch.Generator | None = None

        transforms, ious = build_jitter_lattice(num_steps)
        bins = torch.floor(ious * 10).long()
        lattice_gen = torch.Generator().manual_seed(seed)  # same lattice on every rank
        first_bin = int(math.floor(min_iou * 10 + 1e-9))
        kept, bin_ids = [], []
        for b in range(first_bin, 10):
            idx = torch.nonzero(bins == b).flatten()
            if idx.numel() > pre_sample:
                idx = idx[torch.randperm(idx.numel(), generator=lattice_gen)[:pre_sample]]
            kept.append(idx)
            bin_ids.append(torch.full_like(idx, b - first_bin))
        kept, bin_ids = torch.cat(kept), torch.cat(bin_ids)
        # non-persistent: rebuilt from the arguments, never stored in checkpoints
        self.register_buffer("transforms", transforms[kept].float(), persistent=False)
        self.register_buffer("transform_ious", ious[kept].float(), persistent=False)
        self.register_buffer("transform_bins", bin_ids, persistent=False)
        self.num_bins = 10 - first_bin
        counts = torch.bincount(bin_ids, minlength=self.num_bins)
        self._bin_members = [torch.nonzero(bin_ids == b).flatten() for b in range(self.num_bins)]
        self.bin_counts = counts.tolist()

    @property
    def generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed + comm.get_rank())
        return self._generator

    def _draw_from_bins(self, per_bin: int) -> Tensor:
        """Indices into ``self.transforms``: ``per_bin`` from each bin, all of a smaller bin."""
        out = []
        for members in self._bin_members:
            if members.numel() <= per_bin:
                out.append(members)
            else:
                out.append(
                    members[torch.randperm(members.numel(), generator=self.generator)[:per_bin]]
                )
        return torch.cat(out)

    def _subsample(self, n: int, k: int) -> Tensor:
        if n <= k:
            return torch.arange(n)
        return torch.randperm(n, generator=self.generator)[:k]

    def sample_image(
        self, gt_boxes: Tensor, gt_classes: Tensor, image_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One image: see :class:`IoURoIGenerator`."""
        device = gt_boxes.device
        if gt_boxes.shape[0] == 0:
            return (
                gt_boxes.new_zeros((0, 4)),
                gt_boxes.new_zeros((0,)),
                gt_classes.new_zeros((0,)),
            )
        gt_boxes = gt_boxes.detach().float()
        transforms = self.transforms.cpu()
        if self.sampler == "per_image":
            idx = self._draw_from_bins(self.num_samples // self.num_bins + 1)
            cand = apply_jitter(gt_boxes.cpu(), transforms[idx]).reshape(-1, 4)
        else:
            idx = torch.stack(
                [self._draw_from_bins(self.per_iou) for _ in range(gt_boxes.shape[0])]
            )  # (G, T); equal T per GT since every bin has >= per_iou members or gives all
            cand = torch.cat(
                [
                    apply_jitter(gt_boxes[g : g + 1].cpu(), transforms[idx[g]])[0]
                    for g in range(gt_boxes.shape[0])
                ]
            )
        cand = cand[self._subsample(cand.shape[0], self.num_samples)].to(device)
        rois = Boxes(cand)
        rois.clip(image_size)
        iou = pairwise_iou(rois, Boxes(gt_boxes))  # (n, G)
        best_iou, best_gt = iou.max(dim=1)
        keep = best_iou >= self.min_iou
        return rois.tensor[keep], best_iou[keep], gt_classes[best_gt[keep]]

    @torch.no_grad()
    def forward(
        self,
        gt_boxes: list[Tensor],
        gt_classes: list[Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        if not len(gt_boxes) == len(gt_classes) == len(image_sizes):
            raise ValueError("gt_boxes, gt_classes and image_sizes need one entry per image")
        return [self.sample_image(b, c, s) for b, c, s in zip(gt_boxes, gt_classes, image_sizes)]

    def extra_repr(self) -> str:
        return (
            f"sampler={self.sampler}, num_samples={self.num_samples}, per_iou={self.per_iou}, "
            f"min_iou={self.min_iou}, bin_counts={self.bin_counts}"
        )
