"""The CPU switch: turn ANY paper LazyConfig into a CPU-sized run on the synthetic dataset.

``train_net.py --synthetic`` (and the demo and tests) call :func:`to_synthetic` on the loaded
config before the command-line overrides are applied, so ``key=value`` still wins.

What changes, and why it is generic:
- backbone: a GroupNorm ResNet-18 with halved widths (32..256) replaces any ResNet bottom-up,
  trained from scratch (no pretrained weights are reachable offline);
- every FPN/head width of 256 becomes :data:`FEATURE_CHANNELS`, found by walking the config
  tree (``out_channels`` of FPN, ``in_channels`` of RPN/RetinaNet heads, ``ShapeSpec.channels``),
  so method configs that add heads keep working as long as they state their widths the same way
  (or interpolate them, ``"${...}"``);
- FC widths of 1024 (box/IoU heads) become :data:`FC_DIM`;
- every ``num_classes`` becomes the synthetic class count;
- anchors fit objects of 30-160 px (halved where each level keeps anchors of >= 4x its stride:
  the RPN's, not RetinaNet's), inputs are ~256 px, sampling counts are reduced (except a
  head's that keeps every anchor or RoI, as aLRP's);
- a RetinaNet head without normalisation gets GroupNorm (trained from scratch);
- data: ``boxunc_synth_train`` / ``boxunc_synth_val``;
- schedule: :data:`MAX_ITER` iterations of AdamW (lr 1e-3) with warm-up and two steps, on ``train.device="cpu"``.
"""

from __future__ import annotations

import copy
import os

import detectron2.data.transforms as T
import torch
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BasicStem, ResNet
from detectron2.solver import WarmupParamScheduler, get_default_optimizer_params
from fvcore.common.param_scheduler import MultiStepParamScheduler
from omegaconf import DictConfig, ListConfig, OmegaConf

from d2_boxunc.data.synthetic import CLASS_NAMES
from d2_boxunc.modeling.backbone import make_small_resnet_stages
from d2_boxunc.modeling.sampling import SAMPLE_ALL

FEATURE_CHANNELS = 32
FC_DIM = 256
MAX_ITER = 300
IMS_PER_BATCH = 4
BASE_LR = 1e-3
TRAIN_SIZES = (224, 256, 288)
TEST_SIZE = 256
MAX_SIZE = 400
TRAIN_DATASET = "boxunc_synth_train"
MIN_ANCHOR_PER_STRIDE = 4
TEST_DATASET = "boxunc_synth_val"


def _target_name(node) -> str:
    target = node.get("_target_", None) if isinstance(node, DictConfig) else None
    if target is None:
        return ""
    return target if isinstance(target, str) else getattr(target, "__qualname__", str(target))


def _is_shape_spec(node) -> bool:
    return isinstance(node, DictConfig) and OmegaConf.get_type(node) is ShapeSpec


def _walk(node, fn) -> None:
    """Call ``fn(dict_node)`` on every DictConfig below ``node`` (including it), depth first."""
    if isinstance(node, DictConfig):
        fn(node)
        for key in list(node.keys()):
            child = node._get_node(key)
            if isinstance(child, (DictConfig, ListConfig)):
                _walk(child, fn)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            child = node._get_node(i)
            if isinstance(child, (DictConfig, ListConfig)):
                _walk(child, fn)


def _is_interpolation(node: DictConfig, key: str) -> bool:
    return OmegaConf.is_interpolation(node, key)


def _shrink_widths(model: DictConfig) -> None:
    wide, fc_wide = 256, 1024

    def fix(node: DictConfig) -> None:
        for key in ("out_channels", "in_channels", "channels", "conv_dim"):
            if key in node and not _is_interpolation(node, key) and node[key] == wide:
                node[key] = FEATURE_CHANNELS
        for key in ("conv_dims", "fc_dims"):
            if key in node and not _is_interpolation(node, key) and node[key] is not None:
                node[key] = [
                    FEATURE_CHANNELS if d == wide else FC_DIM if d == fc_wide else d
                    for d in node[key]
                ]
        if _is_shape_spec(node) and node.channels == fc_wide:
            node.channels = FC_DIM

    _walk(model, fix)


def set_num_classes(model: DictConfig, n: int) -> None:
    """Set every ``num_classes`` below ``model`` to ``n`` (interpolated ones follow their source).

    Also used by :func:`d2_boxunc.config.own_data.use_own_data`.
    """

    def fix(node: DictConfig) -> None:
        if "num_classes" in node and not _is_interpolation(node, "num_classes"):
            node.num_classes = n

    _walk(model, fix)


def set_evaluator_dataset(evaluator, name: str) -> None:
    """Set ``dataset_name`` of every evaluator in ``evaluator`` to ``name``: a LazyCall node, a
    list of them, or a ``DatasetEvaluators`` node with its ``evaluators`` list (nested ones too).

    Interpolated names (``"${dataloader.test.dataset.names}"``, the shipped configs) follow their
    source and are left alone.  Also used by :func:`d2_boxunc.config.own_data.use_own_data`.
    """

    def fix(node: DictConfig) -> None:
        if "dataset_name" in node and not _is_interpolation(node, "dataset_name"):
            node.dataset_name = name

    _walk(evaluator, fix)


def _small_backbone(model: DictConfig) -> None:
    backbone = model.get("backbone", None)
    if backbone is None:
        return
    bottom_up = backbone.get("bottom_up", None)
    if bottom_up is None or not _target_name(bottom_up).endswith("ResNet"):
        return
    widths = (32, 64, 128, 256)
    backbone.bottom_up = L(ResNet)(
        stem=L(BasicStem)(in_channels=3, out_channels=32, norm="GN"),
        stages=L(make_small_resnet_stages)(depth=18, widths=widths, stem_width=32, norm="GN"),
        out_features=list(bottom_up.out_features),
        freeze_at=0,
    )
    # RetinaNet's P6 block reads C5: its input width follows the new res5.
    top = backbone.get("top_block", None)
    if top is not None and "in_channels" in top and not _is_interpolation(top, "in_channels"):
        if top.in_channels == 2048:
            top.in_channels = widths[-1]


def _small_anchors(model: DictConfig) -> None:
    """Halve the anchors (objects here are 30-160 px, COCO's up to ~800), unless that would put
    a level's smallest anchor under ``MIN_ANCHOR_PER_STRIDE`` times its stride.

    Anchors much smaller than their level's stride are too sparse for the IoU >= 0.5 matcher:
    most objects then get no positive anchor at all.  The RPN's anchors (8x stride) halve to 4x;
    RetinaNet's (4x stride) stay.  Halving RetinaNet's too (the switch's old rule) left it at 18 AP
    on the synthetic set where the full-size anchors reach 43 (docs/study.md#findings).
    """

    def fix(node: DictConfig) -> None:
        if not _target_name(node).endswith("AnchorGenerator") or "sizes" not in node:
            return
        if _is_interpolation(node, "sizes"):
            return
        strides = node.get("strides", None)
        halved = [[s / 2 for s in level] for level in node.sizes]
        if strides is not None and not _is_interpolation(node, "strides"):
            strides = list(strides)
            levels = halved if len(halved) == len(strides) else halved * len(strides)
            if any(min(lv) < MIN_ANCHOR_PER_STRIDE * st for lv, st in zip(levels, strides)):
                return
        node.sizes = halved

    _walk(model, fix)


def _dense_head_norm(model: DictConfig) -> None:
    """GroupNorm in a dense (RetinaNet) head that has none: trained from scratch, like the
    backbone (He et al., "Rethinking ImageNet Pre-training", ICCV 2019, train heads with GN
    from scratch; one pair of synthetic runs gave 13 -> 18 AP with halved anchors)."""
    head = model.get("head", None)
    if head is None or not _target_name(head).endswith("RetinaNetHead"):
        return
    if not head.get("norm", ""):
        head.norm = "GN"


def _small_sampling(model: DictConfig) -> None:
    """Smaller RPN / ROI samples and proposal counts. A ``batch_size_per_image`` the config
    leaves to the class, or sets to :data:`SAMPLE_ALL` (aLRP's heads: keep every anchor / RoI,
    the loss is defined over all of them), is left alone."""
    pg = model.get("proposal_generator", None)
    if pg is not None:
        if pg.get("batch_size_per_image", SAMPLE_ALL) != SAMPLE_ALL:
            pg.batch_size_per_image = 128
        if "pre_nms_topk" in pg:
            pg.pre_nms_topk = (1000, 500)
        if "post_nms_topk" in pg:
            pg.post_nms_topk = (500, 300)
    rh = model.get("roi_heads", None)
    if rh is not None and rh.get("batch_size_per_image", SAMPLE_ALL) != SAMPLE_ALL:
        rh.batch_size_per_image = 128


def _synthetic_data(cfg: DictConfig) -> None:
    dl = cfg.dataloader
    dl.train.dataset.names = TRAIN_DATASET
    dl.train.total_batch_size = IMS_PER_BATCH
    dl.train.num_workers = 1
    dl.train.mapper.augmentations = [
        L(T.ResizeShortestEdge)(
            short_edge_length=TRAIN_SIZES, sample_style="choice", max_size=MAX_SIZE
        ),
        L(T.RandomFlip)(horizontal=True),
    ]
    dl.test.dataset.names = TEST_DATASET
    dl.test.num_workers = 1
    dl.test.mapper.augmentations = [
        L(T.ResizeShortestEdge)(short_edge_length=TEST_SIZE, max_size=MAX_SIZE)
    ]
    evaluator = dl.get("evaluator", None)
    if evaluator is not None:
        set_evaluator_dataset(evaluator, TEST_DATASET)


def _schedule(cfg: DictConfig, max_iter: int) -> None:
    cfg.train.max_iter = max_iter
    cfg.train.device = "cpu"
    cfg.train.init_checkpoint = ""
    cfg.train.amp.enabled = False
    cfg.train.eval_period = max_iter
    cfg.train.checkpointer.period = max(max_iter // 2, 1)
    cfg.train.checkpointer.max_to_keep = 3
    cfg.train.log_period = 20
    # AdamW: from-scratch training in a few hundred iterations needs it; SGD reaches far less.
    cfg.optimizer = L(torch.optim.AdamW)(
        params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
        lr=BASE_LR,
        betas=(0.9, 0.999),
        weight_decay=1e-4,
    )
    steps = sorted({s for s in (int(max_iter * 0.75), int(max_iter * 0.9)) if 0 < s < max_iter})
    cfg.lr_multiplier = L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[0.1**i for i in range(len(steps) + 1)],
            milestones=steps + [max_iter],
        ),
        warmup_length=min(100 / max_iter, 0.25),
        warmup_method="linear",
        warmup_factor=0.001,
    )


def to_synthetic(cfg: DictConfig, max_iter: int = MAX_ITER) -> DictConfig:
    """Return a copy of ``cfg`` resized for a CPU run on the synthetic dataset.

    Args:
        cfg: a LazyConfig with the usual ``model``, ``dataloader``, ``optimizer``,
            ``lr_multiplier`` and ``train`` nodes.
        max_iter: number of training iterations.
    """
    for key in ("model", "dataloader", "optimizer", "train"):
        if key not in cfg:
            raise KeyError(f"to_synthetic: the config has no top-level '{key}' node")
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    if "pixel_std" in model:  # trained from scratch: normalise inputs to unit scale
        model.pixel_std = [57.375, 57.120, 58.395]
    _shrink_widths(model)
    _small_backbone(model)  # after shrinking: the P6 block's input width is res5's, not the FPN's
    set_num_classes(model, len(CLASS_NAMES))
    _small_anchors(model)
    _dense_head_norm(model)
    _small_sampling(model)
    _synthetic_data(cfg)
    _schedule(cfg, max_iter)
    if cfg.train.output_dir == "./output":
        cfg.train.output_dir = os.path.join("output", "synthetic")
    return cfg
