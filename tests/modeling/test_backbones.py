"""Every paper backbone at its real size (R-50, R-101, X-101-64x4d, X-101-64x4d with DCN), as its
config builds it: the number of blocks, and one forward and backward pass on the CPU with finite,
non-zero gradients in every trainable stage. Slow tier (the two 101-layer nets take seconds)."""

import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKBONES = {  # config -> (blocks per stage, groups of a res3 3x3 conv, deformable blocks)
    "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512_atss.py": ((3, 4, 6, 3), 1, 0),
    "configs/aLRPLoss/alrp_retinanet_R_101_FPN_100ep_512_atss.py": ((3, 4, 23, 3), 1, 0),
    "configs/aLRPLoss/alrp_retinanet_X_101_64x4d_FPN_100ep_512_atss.py": ((3, 4, 23, 3), 64, 0),
    "configs/aLRPLoss/alrp_retinanet_X_101_64x4d_FPN_100ep_800_atss_dcn.py": (
        (3, 4, 23, 3),
        64,
        30,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("path", list(BACKBONES), ids=lambda p: os.path.basename(p)[:-3])
def test_paper_backbone_forward_and_backward_on_cpu(path):
    blocks, groups, deformable = BACKBONES[path]
    cfg = LazyConfig.load(os.path.join(ROOT, path))
    torch.manual_seed(0)
    backbone = instantiate(cfg.model.backbone).train()
    bottom_up = backbone.bottom_up
    assert tuple(len(s) for s in bottom_up.stages) == blocks
    assert bottom_up.stages[1][0].conv2.groups == groups
    kinds = [type(b).__name__ for s in bottom_up.stages for b in s]
    assert kinds.count("TVDeformBottleneckBlock") == deformable

    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    out = backbone(x)
    assert set(out) == set(backbone.output_shape())
    sum(o.square().mean() for o in out.values()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    trainable = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable
    for name, p in trainable:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for k, stage in enumerate(bottom_up.stages):
        params = [p for p in stage.parameters() if p.requires_grad]
        if params:  # stages below freeze_at are frozen
            assert sum(p.grad.abs().sum() for p in params) > 0, f"res{k + 2}"
