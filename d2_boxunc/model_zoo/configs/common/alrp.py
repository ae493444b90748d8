"""Shared pieces of the aLRP / AP Loss RetinaNet configs (rows A0-A6; the setting is described in
docs/design.md#retinanet-setting-for-alrp).

- model: detectron2's model-zoo RetinaNet R50-FPN (P3-P7, P6 from C5) as ``BoxUncRetinaNet``;
  6 anchors per location (scales {1, 2^(1/2)} x 4 x stride, ratios {0.5, 1, 2}), box coder
  (10, 10, 5, 5), IoU matcher 0.4/0.5 with low-quality matches, aLRP (GIoU) + self-balance
  (w_SB = 50, updated once per epoch of the training set at the config's total batch).
- data "512": SSD-style training augmentation (photometric distortion with the channel swap,
  expand 1-4 with mean fill, min-IoU random crop whose IoU check covers every box, crowd boxes
  included, resize to 512 x 512 without keeping the ratio, flip) through the box-aware mapper,
  as the official code's mmdetection pipeline (docs/atss_ssd.md lists the small differences);
  test resized to short side 500 (max 833). ``set_scale(800)`` gives the 800 rows.
- backbone (``use_backbone``): MSRA's caffe ResNets with FrozenBN by default; the
  ``*_official.py`` twins load torchvision's ImageNet weights as the official code does.
- optimiser: SGD momentum 0.9, weight decay 1e-4, batch 32; warm-up 500 iterations from 0.001.
- ``epoch_schedule``: 100 epochs with steps at given epochs, in iterations of the total batch.
- ``use_sigma_branch`` / ``use_iou_branch``: the head's optional branches
  (docs/retinanet_heads.md).

The SSD pieces are referenced by name (``d2_boxunc.data.ssd_augmentation``) and resolved when the
training data loader is built; the synthetic switch replaces the augmentations anyway.
"""

import math

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.model_zoo import get_config
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from d2_boxunc.modeling.meta_arch import BoxUncRetinaNet

from .data.coco_detection import dataloader

COCO_TRAIN_IMAGES = 117266  # train2017 images with annotations

# ---- model ---------------------------------------------------------------------------------
model = get_config("common/models/retinanet.py").model
model._target_ = BoxUncRetinaNet
model.backbone.bottom_up.freeze_at = 2
model.anchor_generator.sizes = [[x, x * 2**0.5] for x in [32, 64, 128, 256, 512]]
model.anchor_generator.aspect_ratios = [0.5, 1.0, 2.0]
model.head.num_anchors = 6
model.box2box_transform.weights = [10.0, 10.0, 5.0, 5.0]
model.smooth_l1_beta = 1.0  # used by the AP Loss rows and the focal baseline
model.cls_loss_type = "alrp"
model.loc_error = "giou"
model.ranking_delta = 1.0
model.alrp_eps = 1e-5
model.ranking_impl = "sorted"
model.sb_weight_init = 50.0
model.sb_update = True
model.sb_period = 0  # one epoch, derived from the two keys below
model.sb_dataset = "${dataloader.train.dataset.names}"
model.sb_total_batch_size = "${dataloader.train.total_batch_size}"

# ---- data ----------------------------------------------------------------------------------
dataloader.train.total_batch_size = 32
dataloader.train.mapper._target_ = "d2_boxunc.data.ssd_augmentation.BoxAugDatasetMapper"
dataloader.train.mapper.augmentations = L("d2_boxunc.data.ssd_augmentation.ssd_augmentations")(
    size=512, image_format="${..image_format}"
)
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=500, max_size=833)
]

# ---- optimiser / schedule ------------------------------------------------------------------
optimizer = get_config("common/optim.py").SGD
optimizer.lr = 0.008
optimizer.momentum = 0.9
optimizer.weight_decay = 1e-4

train = get_config("common/train.py").train
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.checkpointer.period = 3665 * 5


def epoch_schedule(epochs: int, steps: tuple, total_batch: int, warmup_iters: int = 500):
    """(max_iter, lr_multiplier) for ``epochs`` COCO epochs with x0.1 steps at ``steps`` (epochs)."""
    per_epoch = math.ceil(COCO_TRAIN_IMAGES / total_batch)
    max_iter = epochs * per_epoch
    milestones = [s * per_epoch for s in steps]
    lr = L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[0.1**i for i in range(len(milestones) + 1)],
            milestones=milestones + [max_iter],
        ),
        warmup_length=warmup_iters / max_iter,
        warmup_method="linear",
        warmup_factor=0.001,
    )
    return max_iter, lr


def set_scale(dataloader, model, scale: int) -> None:
    """The "800" recipe: 800 x 800 training crops, test short side 800 (max 1333)."""
    dataloader.train.mapper.augmentations.size = scale
    max_size = 833 if scale <= 512 else 1333
    dataloader.test.mapper.augmentations = [
        L(T.ResizeShortestEdge)(short_edge_length=500 if scale <= 512 else 800, max_size=max_size)
    ]


def use_atss(model, scales_per_octave: int = 2) -> None:
    """ATSS rows: ratio 1 only, 2 (512) or 3 (800) scales per octave, ATSS top-9 matcher."""
    from d2_boxunc.modeling.matchers import ATSSMatcher

    model.anchor_generator.sizes = [
        [x * 2 ** (i / scales_per_octave) for i in range(scales_per_octave)]
        for x in [32, 64, 128, 256, 512]
    ]
    model.anchor_generator.aspect_ratios = [1.0]
    model.head.num_anchors = scales_per_octave
    model.anchor_matcher = L(ATSSMatcher)(topk=9)


def use_sigma_branch(model) -> None:
    """The head's sigma branch (docs/retinanet_heads.md#sigma-branch): per-anchor log-variances of
    the 4 corner deltas, KL-Loss's corner coder (weights 10, as its R-CNN head), and variance
    voting after hard NMS at test time (sigma_t 0.02, voters with IoU > 0: the R-CNN K2 row's)."""
    from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
    from d2_boxunc.modeling.meta_arch import BoxUncRetinaNetHead

    model.head._target_ = BoxUncRetinaNetHead
    model.head.sigma_branch = True
    model.box2box_transform = L(Box2BoxTransformXYXY)(weights=(10, 10, 10, 10), clamp=1000.0 / 16)
    model.test_var_voting = True


def use_iou_branch(model) -> None:
    """The head's IoU branch (docs/retinanet_heads.md#iou-branch): per-anchor IoU prediction,
    detection score ``cls^(1 - alpha) * IoU^alpha`` (alpha: ``model.iou_score_alpha``)."""
    from d2_boxunc.modeling.meta_arch import BoxUncRetinaNetHead

    model.head._target_ = BoxUncRetinaNetHead
    model.head.iou_branch = True


def use_backbone(model, train, dataloader, name: str) -> None:
    """Backbone and ImageNet weights of the aLRP rows:

    - ``"R_50"`` | ``"R_101"``: MSRA's caffe ResNets (detectron2's ``R-50.pkl`` / ``R-101.pkl``,
      BGR, stride in the 1x1 convolution), detectron2's default;
    - ``"R_50_torchvision"`` | ``"R_101_torchvision"``: torchvision's ImageNet ResNets, as the
      official code (``pretrained='torchvision://resnet50'``); RGB input, ImageNet mean / std,
      stride in the 3x3 convolution; ``./models/R-<depth>-torchvision.pkl`` is written by
      ``python -m d2_boxunc.tools.convert_weights``;
    - ``"X_101_64x4d"`` | ``"X_101_64x4d_dcn"``: ResNeXt-101 64x4d (modulated deformable
      convolutions in c3-c5 for ``_dcn``, on torchvision's op), from
      ``./models/X-101-64x4d-torchvision.pkl`` written by the same tool (torchvision's
      ``resnext101_64x4d``, or the official ``open-mmlab://resnext101_64x4d`` file, which has the
      same key names).
    """
    from d2_boxunc.modeling.resnext import make_resnext_stages

    from .official import torchvision_backbone

    bottom_up = model.backbone.bottom_up
    if name == "R_50":
        return
    if name == "R_101":
        bottom_up.stages.depth = 101
        train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-101.pkl"
    elif name in ("R_50_torchvision", "R_101_torchvision"):
        torchvision_backbone(
            model, dataloader, train, depth=101 if name == "R_101_torchvision" else 50
        )
    elif name in ("X_101_64x4d", "X_101_64x4d_dcn"):
        bottom_up.stages = L(make_resnext_stages)(
            depth=101,
            num_groups=64,
            width_per_group=4,
            norm="FrozenBN",
            stride_in_1x1=False,
            deform_on_per_stage=(False, True, True, True)
            if name.endswith("_dcn")
            else (False, False, False, False),
        )
        model.pixel_mean = [123.675, 116.28, 103.53]
        model.pixel_std = [58.395, 57.12, 57.375]
        model.input_format = "RGB"
        dataloader.train.mapper.image_format = "RGB"
        train.init_checkpoint = "./models/X-101-64x4d-torchvision.pkl"
    else:
        raise ValueError(f"unknown backbone {name}")
