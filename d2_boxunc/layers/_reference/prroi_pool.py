"""Pure-PyTorch PrRoIPool: the separable closed form of docs/design.md#prroipool-definition,
differentiated by autograd.

Each bin integral of the zero-padded bilinear interpolant is ``Ky @ F @ Kx^T`` with tent weights
``K(j; a, b) = Phi(b - j) - Phi(a - j)``. Cost is O(K * C * H * W * P): fine as a test oracle and
as a slow fallback, not for training.
"""

import torch
from torch import Tensor


def _tent_cdf(u: Tensor) -> Tensor:
    """Integral of the tent max(0, 1 - |t|) from -inf to u."""
    u = u.clamp(-1.0, 1.0)
    return torch.where(u <= 0, 0.5 * (1 + u) ** 2, 1 - 0.5 * (1 - u) ** 2)


def _axis_weights(start: Tensor, bin_size: Tensor, bins: int, size: int) -> Tensor:
    """(K, bins, size) tent weights of every bin along one axis."""
    q = torch.arange(bins + 1, dtype=start.dtype, device=start.device)
    edges = start[:, None] + q * bin_size[:, None]  # (K, bins + 1)
    j = torch.arange(size, dtype=start.dtype, device=start.device)
    cdf = _tent_cdf(edges[:, :, None] - j)  # (K, bins + 1, size)
    return cdf[:, 1:] - cdf[:, :-1]


def prroi_pool(
    input: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    aligned: bool = True,
) -> Tensor:
    """Precise RoI pooling of ``input (N, C, H, W)`` over ``rois (K, 5)`` -> ``(K, C, h, w)``.

    Same conventions as :func:`d2_boxunc.layers.prroi_pool`; expects validated arguments.
    """
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
    num_rois, channels, height, width = (
        rois.shape[0],
        input.shape[1],
        input.shape[2],
        input.shape[3],
    )
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, k] * spatial_scale - offset for k in range(1, 5))
    valid = (x2 > x1) & (y2 > y1)
    # Zero-area RoIs output 0; `where` keeps their (undefined) bin sizes out of the gradient.
    bw = torch.where(valid, x2 - x1, torch.ones_like(x1)) / pw
    bh = torch.where(valid, y2 - y1, torch.ones_like(y1)) / ph
    kx = _axis_weights(x1, bw, pw, width)  # (K, pw, W)
    ky = _axis_weights(y1, bh, ph, height)  # (K, ph, H)
    scale = torch.where(valid, 1.0 / (bw * bh), torch.zeros_like(bw))

    out = input.new_zeros((num_rois, channels, ph, pw))
    batch = rois[:, 0].long()
    for b in batch.unique().tolist():
        idx = (batch == b).nonzero()[:, 0]
        cols = torch.einsum("cij,mqj->mciq", input[b], kx[idx])  # integrate along x first
        out = out.index_put((idx,), torch.einsum("mpi,mciq->mcpq", ky[idx], cols))
    return out * scale[:, None, None, None]
