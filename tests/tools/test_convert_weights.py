"""torchvision -> detectron2 backbone conversion, on randomly initialised torchvision networks."""

import pickle

import pytest
import torch
import torchvision
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from torch import nn

from d2_boxunc.config.cli import ConfigError, check_checkpoint
from d2_boxunc.modeling.resnext import make_resnext_stages
from d2_boxunc.tools.convert_weights import ConversionError, convert, main

OUT = ["res2", "res3", "res4", "res5"]


def _d2_backbone(arch):
    if arch == "resnext101_64x4d":
        stages = make_resnext_stages(depth=101, num_groups=64, width_per_group=4)
    else:
        depth = {"resnet50": 50, "resnet101": 101}[arch]
        stages = ResNet.make_default_stages(depth, stride_in_1x1=False, norm="FrozenBN")
    return ResNet(BasicStem(3, 64, norm="FrozenBN"), stages, out_features=OUT)


def _randomise_norms(net):
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.1 * torch.randn(n, generator=g)
            m.running_var = 0.5 + torch.rand(n, generator=g)


@pytest.mark.parametrize("arch", ["resnet50", "resnet101", "resnext101_64x4d"])
def test_every_converted_key_loads_strictly(arch):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, arch)(weights=None)
    converted = convert(tv.state_dict(), arch)
    d2 = _d2_backbone(arch)
    d2.load_state_dict({k: torch.from_numpy(v) for k, v in converted.items()}, strict=True)
    assert len(converted) == len(d2.state_dict())


def test_converted_resnet50_computes_what_torchvision_computes():
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None).eval()
    _randomise_norms(tv)
    d2 = _d2_backbone("resnet50").eval()
    d2.load_state_dict(
        {k: torch.from_numpy(v) for k, v in convert(tv.state_dict(), "resnet50").items()}
    )
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = d2(x)
        y = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        for name, layer in zip(OUT, (tv.layer1, tv.layer2, tv.layer3, tv.layer4)):
            y = layer(y)
            torch.testing.assert_close(out[name], y, rtol=1e-4, atol=1e-4)


def test_cli_writes_a_pkl_that_detectron2_loads_into_a_detector_backbone(tmp_path, capsys):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None)
    _randomise_norms(tv)
    src, dst = tmp_path / "r50.pth", tmp_path / "models" / "R-50-torchvision.pkl"
    torch.save({"state_dict": tv.state_dict()}, src)  # mmdetection-style wrapper
    assert main(["--arch", "resnet50", "--input", str(src), "--output", str(dst)]) == 0
    assert "stride_in_1x1=False" in capsys.readouterr().out
    with open(dst, "rb") as f:
        data = pickle.load(f)
    assert data["matching_heuristics"] and "torchvision" in data["__author__"]

    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = FPN(
                bottom_up=_d2_backbone("resnet50"),
                in_features=OUT,
                out_channels=32,
                top_block=LastLevelMaxPool(),
            )

    model = Detector()
    DetectionCheckpointer(model).load(str(dst))
    state = model.backbone.bottom_up.state_dict()
    assert set(state) == set(data["model"])
    for k, v in data["model"].items():
        torch.testing.assert_close(state[k], torch.from_numpy(v), msg=k)


def test_errors(tmp_path, capsys):
    sd = torchvision.models.resnet50(weights=None).state_dict()
    with pytest.raises(ConversionError, match=r"lacks res4\.\d+\..* more of resnet101"):
        convert(sd, "resnet101")
    with pytest.raises(ConversionError, match="wrong --arch"):
        convert(sd, "resnext101_64x4d")
    with pytest.raises(ConversionError, match="unexpected key 'head.weight'"):
        convert({**sd, "head.weight": torch.zeros(1)}, "resnet50")
    with pytest.raises(ConversionError, match="unknown --arch"):
        convert(sd, "vgg16")
    with pytest.raises(ConversionError, match="not a state dict"):
        convert({"a": 1}, "resnet50")
    assert (
        main(
            [
                "--arch",
                "resnet50",
                "--input",
                str(tmp_path / "no.pth"),
                "--output",
                str(tmp_path / "o.pkl"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("convert_weights: error: input file not found") and "\n" not in err


def test_missing_converted_checkpoint_names_the_command(tmp_path):
    path = str(tmp_path / "X-101-64x4d-torchvision.pkl")
    with pytest.raises(ConfigError) as e:
        check_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert (
        f"python -m d2_boxunc.tools.convert_weights --arch resnext101_64x4d "
        f"--input resnext101_64x4d.pth --output {path}"
    ) in msg
    with pytest.raises(
        ConfigError, match=r"^checkpoint not found: train.init_checkpoint='[^']*other.pkl'$"
    ):
        check_checkpoint(str(tmp_path / "other.pkl"))
    check_checkpoint("detectron2://ImageNetPretrained/MSRA/R-50.pkl")  # URLs are not checked
    check_checkpoint("")
