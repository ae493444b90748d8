"""Convert a torchvision-style ImageNet ResNet / ResNeXt state dict to detectron2's backbone names.

    python -m d2_boxunc.tools.convert_weights --arch resnet50 \\
        --input resnet50-0676ba61.pth --output models/R-50-torchvision.pkl

There is no download here: ``--input`` is a ``.pth`` file you fetched yourself, on a machine with
internet, either the file behind torchvision's weights enum, e.g.::

    python -c "import torchvision.models as m; print(m.ResNet50_Weights.IMAGENET1K_V1.url)"
    # https://download.pytorch.org/models/resnet50-0676ba61.pth  (curl -LO it)

or ``torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict(), "r50.pth")``.
The architectures and the files the paper configs expect:

============================  ===================================================  ===========================================
``--arch``                    torchvision weights                                  ``--output`` the configs load
============================  ===================================================  ===========================================
``resnet50``                  ``ResNet50_Weights.IMAGENET1K_V1``                   ``./models/R-50-torchvision.pkl``
``resnet101``                 ``ResNet101_Weights.IMAGENET1K_V1``                  ``./models/R-101-torchvision.pkl``
``resnext101_64x4d``          ``ResNeXt101_64X4D_Weights.IMAGENET1K_V1``           ``./models/X-101-64x4d-torchvision.pkl``
============================  ===================================================  ===========================================

(``IMAGENET1K_V1`` of ResNet-50/101 is what mmdetection's ``torchvision://resnet50`` loads.)
mmdetection's ResNet / ResNeXt checkpoints use the same names, so e.g. the official aLRP Loss
X-101 weights, ``open-mmlab://resnext101_64x4d`` (``resnext101_64x4d-ee2c6f71.pth``), convert
with ``--arch resnext101_64x4d`` too; a checkpoint wrapped in ``{"state_dict": ...}`` is unwrapped.

Renaming (detectron2's ``ResNet``): ``conv1``/``bn1`` -> ``stem.conv1``/``stem.conv1.norm``;
``layer{i}.{b}`` -> ``res{i+1}.{b}``; ``bn{k}`` -> ``conv{k}.norm``; ``downsample.0`` ->
``shortcut``, ``downsample.1`` -> ``shortcut.norm``. The classifier (``fc``) and
``num_batches_tracked`` are dropped; any other key, a missing key or a shape that does not fit
``--arch`` is an error. The output is detectron2's model-zoo ``.pkl`` (``{"model": ...,
"__author__": ..., "matching_heuristics": True}``), loaded by ``train.init_checkpoint`` like
detectron2's ``R-50.pkl``. The network then needs torchvision's input convention: RGB,
``pixel_mean=[123.675, 116.28, 103.53]``, ``pixel_std=[58.395, 57.12, 57.375]``, and the stride
in the 3x3 convolution (``stride_in_1x1=False``), which ``configs/common/alrp.py: use_backbone``
sets for the ``*_torchvision`` backbones.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["ARCHS", "ConversionError", "convert", "convert_file", "main"]

# arch -> (blocks per stage res2..res5, conv groups, bottleneck width of res2)
ARCHS = {
    "resnet50": ((3, 4, 6, 3), 1, 64),
    "resnet101": ((3, 4, 23, 3), 1, 64),
    "resnext101_64x4d": ((3, 4, 23, 3), 64, 256),
}
TORCHVISION_PIXEL_MEAN = (123.675, 116.28, 103.53)
TORCHVISION_PIXEL_STD = (58.395, 57.12, 57.375)

_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")
_NORM_FIELDS = ("weight", "bias", "running_mean", "running_var")


class ConversionError(ValueError):
    """The input does not hold the ``--arch`` network in torchvision naming (one line)."""


def _rename(key: str) -> str | None:
    """detectron2 name of a torchvision key; None for the keys that are dropped."""
    if key.startswith("fc.") or key.endswith("num_batches_tracked"):
        return None
    if key == "conv1.weight":
        return "stem.conv1.weight"
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[len("bn1.") :]
    m = _BLOCK_KEY.match(key)
    if m is None:
        raise ConversionError(f"unexpected key '{key}' (not a torchvision ResNet/ResNeXt key)")
    stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
    rest = re.sub(r"^bn([1-3])\.", r"conv\1.norm.", rest)
    rest = re.sub(r"^downsample\.0\.", "shortcut.", rest)
    rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
    if not re.match(r"^(conv[1-3]|shortcut)\.(weight|norm\.\w+)$", rest):
        raise ConversionError(f"unexpected key '{key}' (not a torchvision ResNet/ResNeXt key)")
    return f"res{stage}.{block}.{rest}"


def _expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    blocks, groups, width = ARCHS[arch]
    shapes: dict[str, tuple[int, ...]] = {"stem.conv1.weight": (64, 3, 7, 7)}
    shapes.update({f"stem.conv1.norm.{f}": (64,) for f in _NORM_FIELDS})
    in_ch, out_ch = 64, 256
    for s, n in enumerate(blocks):
        for b in range(n):
            p = f"res{s + 2}.{b}."
            cin = in_ch if b == 0 else out_ch
            convs = {
                "conv1": (width, cin, 1, 1),
                "conv2": (width, width // groups, 3, 3),
                "conv3": (out_ch, width, 1, 1),
            }
            if b == 0:
                convs["shortcut"] = (out_ch, cin, 1, 1)
            for name, shape in convs.items():
                shapes[p + name + ".weight"] = shape
                shapes.update({f"{p}{name}.norm.{f}": (shape[0],) for f in _NORM_FIELDS})
        in_ch, out_ch, width = out_ch, out_ch * 2, width * 2
    return shapes


def _unwrap(obj) -> Mapping:
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ConversionError("the input is not a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def convert(state_dict: Mapping, arch: str) -> dict[str, np.ndarray]:
    """detectron2-named numpy arrays of a torchvision ``arch`` state dict (checked against it)."""
    if arch not in ARCHS:
        raise ConversionError(f"unknown --arch '{arch}'; choose one of {', '.join(ARCHS)}")
    expected = _expected_shapes(arch)
    out: dict[str, np.ndarray] = {}
    for key, value in _unwrap(state_dict).items():
        new = _rename(key)
        if new is None:
            continue
        if new not in expected:
            raise ConversionError(f"key '{key}' does not belong to {arch}")
        if tuple(value.shape) != expected[new]:
            raise ConversionError(
                f"'{key}' has shape {tuple(value.shape)}, {arch} needs {expected[new]} "
                "(wrong --arch?)"
            )
        out[new] = value.detach().to(torch.float32).cpu().numpy()
    missing = sorted(set(expected) - set(out))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ConversionError(f"the input lacks {missing[0]}{more} of {arch} (wrong --arch?)")
    return out


def convert_file(input_path: str, output_path: str, arch: str) -> dict[str, np.ndarray]:
    """Read ``input_path`` (a torch ``.pth``), write detectron2's ``.pkl`` to ``output_path``."""
    if not os.path.isfile(input_path):
        raise ConversionError(f"input file not found: {input_path}")
    try:
        obj = torch.load(input_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any unreadable file: one line)
        raise ConversionError(f"cannot read {input_path} as a torch checkpoint: {e}") from None
    model = convert(obj, arch)
    out_dir = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(out_dir, exist_ok=True)
    with open(output_path, "wb") as f:
        pickle.dump(
            {
                "model": model,
                "__author__": f"torchvision {arch} (d2_boxunc.tools.convert_weights)",
                "matching_heuristics": True,
            },
            f,
        )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m d2_boxunc.tools.convert_weights",
        description="Convert a torchvision ImageNet ResNet/ResNeXt .pth to detectron2's .pkl "
        "(backbone names). See the module docstring for where to get the .pth.",
    )
    parser.add_argument("--arch", required=True, choices=sorted(ARCHS))
    parser.add_argument("--input", required=True, help="torchvision state dict (.pth)")
    parser.add_argument("--output", required=True, help="detectron2 checkpoint to write (.pkl)")
    args = parser.parse_args(argv)
    if not args.output.endswith(".pkl"):
        parser.error("--output must end in .pkl (detectron2 reads model-zoo weights from .pkl)")
    try:
        model = convert_file(args.input, args.output, args.arch)
    except ConversionError as e:
        print(f"convert_weights: error: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.output}: {len(model)} tensors of {args.arch}. Use it with RGB input, "
        f"pixel_mean={list(TORCHVISION_PIXEL_MEAN)}, pixel_std={list(TORCHVISION_PIXEL_STD)}, "
        "stride_in_1x1=False."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
