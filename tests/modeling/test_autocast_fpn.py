"""AutocastFPN: FPN's weights and names, FPN's outputs without a dtype, bfloat16 convolutions
with float32 feature maps with one, and the config override that selects it."""

import pytest
import torch
from detectron2.config import instantiate
from detectron2.modeling.backbone import FPN

from d2_boxunc.config.cli import load_config
from d2_boxunc.modeling.backbone import AutocastFPN

BASELINE = "configs/Baselines/faster_rcnn_R_50_FPN_1x.py"
AUTOCAST = [
    "model.backbone._target_=d2_boxunc.modeling.backbone.AutocastFPN",
    "+model.backbone.autocast_dtype=bfloat16",
]


def _backbones():
    torch.manual_seed(0)
    plain = instantiate(load_config(BASELINE, [], synthetic=True).model.backbone)
    mixed = instantiate(load_config(BASELINE, AUTOCAST, synthetic=True).model.backbone)
    assert type(plain) is FPN and type(mixed) is AutocastFPN
    assert mixed.autocast_dtype == "bfloat16"
    assert plain.state_dict().keys() == mixed.state_dict().keys(), "FPN's checkpoints load"
    mixed.load_state_dict(plain.state_dict())
    return plain, mixed


def test_without_a_dtype_it_is_fpn():
    plain, mixed = _backbones()
    mixed.autocast_dtype = None
    x = torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(1))
    want, got = plain(x), mixed(x)
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k


def test_bfloat16_convolutions_give_float32_features_and_gradients():
    plain, mixed = _backbones()
    x = torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(1))
    want = plain(x)
    convs = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: convs.append(o.dtype) if isinstance(m, torch.nn.Conv2d) else None
    )
    try:
        got = mixed(x)
    finally:
        hook.remove()
    assert convs and set(convs) == {torch.bfloat16}, "the convolutions ran in bfloat16"
    for k in want:
        assert got[k].dtype == torch.float32
        # bfloat16 keeps ~3 significant digits; a few percent over ~20 layers from scratch
        err = (got[k] - want[k]).norm() / want[k].norm()
        assert 0 < err < 0.05, (k, float(err))
    sum(v.sum() for v in got.values()).backward()
    grads = [p.grad for p in mixed.parameters()]
    assert all(
        g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads
    )


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="autocast_dtype must be None or one of"):
        instantiate(
            load_config(
                BASELINE, [AUTOCAST[0], "+model.backbone.autocast_dtype=int8"], synthetic=True
            ).model.backbone  # fmt: skip
        )
