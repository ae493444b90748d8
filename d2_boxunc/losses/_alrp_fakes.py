"""Fake (meta) kernels of the compiled aLRP band ops, so they trace under FakeTensor and
torch.compile. Output sizes follow from the number of band edges."""

import torch

from d2_boxunc._extension import has_ops

if has_ops():

    @torch.library.register_fake("d2_boxunc::alrp_band_stats")
    def _alrp_band_stats_fake(values, labels, edges):
        torch._check(values.dim() == 1 and labels.shape == values.shape)
        n = edges.shape[0]
        return values.new_empty(n + 2, dtype=torch.float64), values.new_empty(
            n + 1, dtype=torch.float64
        )

    @torch.library.register_fake("d2_boxunc::alrp_band_grad")
    def _alrp_band_grad_fake(values, labels, edges, offset, slope):
        torch._check(values.dim() == 1 and labels.shape == values.shape)
        return torch.empty_like(values)
