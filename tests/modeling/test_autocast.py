"""Mixed precision: one training step of each method's synthetic config under
``torch.autocast("cpu", dtype=torch.bfloat16)``, the code path AMP takes on a GPU (with float16
there). Every loss must be finite and float32: the losses whose numerics need it accumulate in
float32 (KL-Loss exp(-alpha), IoU ratios, aLRP ranking), whatever the autocast dtype of the
head's output."""

import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.utils.events import EventStorage

from d2_boxunc.config import to_synthetic
from d2_boxunc.demo import METHODS
from tests.test_configs import ROOT, _images, _targets

# the demo's methods, the RetinaNet sigma / IoU branches (docs/retinanet_heads.md) and the
# composed Faster R-CNN (docs/composition.md), which the demo does not run
CONFIGS = {name: (m.config, list(m.overrides)) for name, m in METHODS.items()}
CONFIGS.update(
    {
        "retina_kl": ("configs/KLLoss/kl_retinanet_R_50_FPN_100ep_512.py", []),
        "retina_iouaware": ("configs/aLRPLoss/iouaware_retinanet_R_50_FPN_100ep_512.py", []),
        "alrp_sigma": ("configs/Composed/alrp_sigma_retinanet_R_50_FPN_100ep_512.py", []),
        "composed": ("configs/Composed/kl_iounet_giou_faster_rcnn_R_50_FPN_1x.py", []),
    }
)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_training_step_under_bfloat16_autocast(name):
    config, overrides = CONFIGS[name]
    cfg = to_synthetic(LazyConfig.load(os.path.join(ROOT, config)), max_iter=10)
    LazyConfig.apply_overrides(cfg, [o for o in overrides if o.startswith("model.")])
    torch.manual_seed(0)
    model = instantiate(cfg.model).train()
    with EventStorage(), torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(_targets(_images()))
    assert losses
    for key, value in losses.items():
        assert value.dtype == torch.float32, (key, value.dtype)
        assert torch.isfinite(value), (key, value)
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_losses_accumulate_in_float32_from_half_inputs():
    """The documented float32 accumulation: inputs whose half-precision arithmetic overflows
    (float16 max 65504) still give finite float32 losses and gradients."""
    from d2_boxunc.losses import alrp_cls, iou_loss, kl_loss

    half = torch.float16
    # KL-Loss: exp(-alpha) = exp(12) ~ 1.6e5 overflows float16; the loss (~8) and its gradients
    # (~1600) do not
    pred = torch.tensor([[0.01, 0.02, -0.01, 0.015]], dtype=half, requires_grad=True)
    log_var = torch.full((1, 4), -12.0, dtype=half, requires_grad=True)
    loss = kl_loss(pred, log_var, torch.zeros(1, 4, dtype=half), reduction="sum")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and torch.isfinite(log_var.grad).all()
    # IoU ratios: areas of 300 px boxes (90000) overflow float16
    a = torch.tensor([[0.0, 0.0, 300.0, 300.0]], dtype=half, requires_grad=True)
    b = torch.tensor([[10.0, 20.0, 310.0, 290.0]], dtype=half)
    loss = iou_loss(a, b, "giou", reduction="sum")
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and 0 < loss.item() < 0.2
    loss.backward()
    assert torch.isfinite(a.grad).all()
    # aLRP ranking: 70000 bfloat16 logits, ranks above the float16 range
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(70000, generator=g) - 4).to(torch.bfloat16).requires_grad_()
    labels = torch.zeros(70000, dtype=torch.long)
    labels[:30] = 1
    loss, rank, _ = alrp_cls(logits, labels, torch.full((30,), 0.3))
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and 0 < loss.item() <= 1
    assert rank.dtype == torch.float32 and torch.isfinite(rank).all() and rank.max() > 30
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16 and torch.isfinite(logits.grad).all()
