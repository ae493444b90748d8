"""ResNeXt stages and the torchvision-based deformable bottleneck (no detectron2 compiled ops)."""

import os

import pytest
import torch
import torch.nn.functional as F
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BasicStem, ResNet
from detectron2.modeling.backbone.resnet import BottleneckBlock

from d2_boxunc.layers.deform_conv import TVDeformConv
from d2_boxunc.modeling.resnext import TVDeformBottleneckBlock, make_resnext_stages

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _offsets(n, groups, h, w, dy=0.0, dx=0.0):
    off = torch.zeros(n, groups * 18, h, w, dtype=torch.float64)
    off[:, 0::2] = dy
    off[:, 1::2] = dx
    return off


@pytest.mark.parametrize(
    "stride,dilation,groups,dgroups", [(1, 1, 1, 1), (2, 1, 4, 1), (1, 2, 2, 2)]
)
def test_zero_offsets_and_unit_mask_give_the_plain_convolution(stride, dilation, groups, dgroups):
    torch.manual_seed(0)
    conv = TVDeformConv(
        8,
        12,
        3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        groups=groups,
        deformable_groups=dgroups,
        bias=True,
    ).double()
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 8, 11, 9, dtype=torch.float64)
    ref = F.conv2d(x, conv.weight, conv.bias, stride, dilation, dilation, groups)
    h, w = ref.shape[-2:]
    mask = torch.ones(2, dgroups * 9, h, w, dtype=torch.float64)
    torch.testing.assert_close(conv(x, _offsets(2, dgroups, h, w), mask), ref)
    # A constant mask scales the output (bias aside).
    half = conv(x, _offsets(2, dgroups, h, w), 0.5 * mask) - conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(half, 0.5 * (ref - conv.bias.view(1, -1, 1, 1)))
    # DCNv1 (no mask) with zero offsets is the plain convolution too.
    v1 = TVDeformConv(
        8,
        12,
        3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        groups=groups,
        deformable_groups=dgroups,
        modulated=False,
    ).double()
    v1.load_state_dict(conv.state_dict())
    torch.testing.assert_close(v1(x, _offsets(2, dgroups, h, w)), ref)


def test_offset_layout_is_y_then_x():
    """Channel 2k moves tap k down, channel 2k+1 right (detectron2's / mmcv's layout)."""
    torch.manual_seed(1)
    conv = TVDeformConv(3, 4, 3, padding=1, bias=False).double()
    x = torch.randn(1, 3, 10, 12, dtype=torch.float64)
    mask = torch.ones(1, 9, 10, 12, dtype=torch.float64)
    ref = F.conv2d(x, conv.weight, None, 1, 1)
    right = conv(x, _offsets(1, 1, 10, 12, dx=1.0), mask)  # samples x[.., j + 1]
    torch.testing.assert_close(right[..., :, :-2], ref[..., :, 1:-1])
    down = conv(x, _offsets(1, 1, 10, 12, dy=1.0), mask)
    torch.testing.assert_close(down[..., :-2, :], ref[..., 1:-1, :])


def test_block_matches_detectron2_names_and_a_plain_bottleneck_at_init():
    torch.manual_seed(0)
    kw = dict(bottleneck_channels=16, stride=2, num_groups=4, norm="FrozenBN")
    block = TVDeformBottleneckBlock(32, 64, deform_modulated=True, **kw).double()
    plain = BottleneckBlock(32, 64, **kw).double()
    names = set(block.state_dict())
    assert names - set(plain.state_dict()) == {"conv2_offset.weight", "conv2_offset.bias"}
    assert set(plain.state_dict()) <= names
    # Zero-initialised offset conv: offsets 0 and mask sigmoid(0) = 1/2, i.e. the plain block
    # with half the 3x3 weights.
    state = {k: v for k, v in block.state_dict().items() if not k.startswith("conv2_offset")}
    state["conv2.weight"] = 0.5 * state["conv2.weight"]
    plain.load_state_dict(state)
    x = torch.randn(2, 32, 15, 13, dtype=torch.float64)
    torch.testing.assert_close(block(x), plain(x))
    v1 = TVDeformBottleneckBlock(32, 64, deform_modulated=False, **kw).double()
    assert v1.conv2_offset.out_channels == 18 and block.conv2_offset.out_channels == 27
    state["conv2.weight"] = 2 * state["conv2.weight"]
    v1.load_state_dict({**state, **{k: v for k, v in v1.state_dict().items() if "offset" in k}})
    plain.load_state_dict(state)
    torch.testing.assert_close(v1(x), plain(x))


def test_block_trains_its_offsets():
    torch.manual_seed(0)
    block = TVDeformBottleneckBlock(8, 8, bottleneck_channels=8, deform_modulated=True, norm="")
    torch.nn.init.normal_(block.conv2_offset.weight, std=0.1)
    x = torch.randn(2, 8, 9, 9, requires_grad=True)
    block(x).square().sum().backward()
    for p in (block.conv2_offset.weight, block.conv2.weight, block.conv1.weight, x):
        g = p.grad if p is not x else x.grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    empty = block(torch.zeros(0, 8, 9, 9))
    assert empty.shape == (0, 8, 9, 9)


def test_deformable_resnext_backbone_builds_and_runs():
    stages = make_resnext_stages(
        depth=50,
        num_groups=2,
        width_per_group=4,
        norm="FrozenBN",
        deform_on_per_stage=(False, True, True, True),
    )
    kinds = [type(s[0]).__name__ for s in stages]
    assert kinds == ["BottleneckBlock"] + ["TVDeformBottleneckBlock"] * 3
    net = ResNet(BasicStem(3, 64, norm="FrozenBN"), stages, out_features=["res3", "res5"])
    out = net(torch.randn(1, 3, 64, 64))
    assert out["res3"].shape == (1, 512, 8, 8) and out["res5"].shape == (1, 2048, 2, 2)
    with pytest.raises(ValueError, match="depth"):
        make_resnext_stages(depth=34)


def test_dcn_config_backbone_builds_without_compiled_ops():
    cfg = LazyConfig.load(
        os.path.join(ROOT, "configs/aLRPLoss/alrp_retinanet_X_101_64x4d_FPN_100ep_800_atss_dcn.py")
    )
    bottom_up = instantiate(cfg.model.backbone.bottom_up)
    blocks = [b for stage in bottom_up.stages for b in stage]
    deform = [type(b).__name__ == "TVDeformBottleneckBlock" for b in blocks]
    assert len(blocks) == 33 and sum(deform) == 30 and not any(deform[:3])
    assert blocks[3].conv2.groups == 64 and blocks[3].conv2.modulated
    assert bottom_up.output_shape()["res5"] == ShapeSpec(channels=2048, stride=32)
    with torch.no_grad():
        out = bottom_up(torch.randn(1, 3, 64, 64))
    assert out["res5"].shape == (1, 2048, 2, 2)


def test_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        TVDeformConv(6, 8, 3, groups=4)
    conv = TVDeformConv(4, 4, 3, padding=1)
    x = torch.zeros(1, 4, 5, 5)
    with pytest.raises(ValueError, match="needs a mask"):
        conv(x, torch.zeros(1, 18, 5, 5))
    with pytest.raises(ValueError, match="offset has 9 channels"):
        conv(x, torch.zeros(1, 9, 5, 5), torch.ones(1, 9, 5, 5))
    with pytest.raises(ValueError, match="takes no mask"):
        TVDeformConv(4, 4, 3, modulated=False)(x, torch.zeros(1, 18, 3, 3), torch.ones(1, 9, 3, 3))
