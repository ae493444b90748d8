"""Pieces of the official training recipes, for the ``*_official.py`` twin configs.

The paper rows keep detectron2's defaults where they are at least as good (multi-scale training,
a 1000-iteration warm-up from 0.001, ROIAlignV2, MSRA's caffe ImageNet weights) and list what
differs under "Deviations from the official recipe" in their docstrings. The twins apply the
recipes below on top of the row they copy, so both can be run (docs/design.md#experiment-matrix
and the tables in docs/kl.md, docs/iounet.md, docs/giou.md, docs/alrp.md):

- Detectron (the official KL-Loss code, https://github.com/ethanhe42/KL-Loss, and the official
  GIoU code, https://github.com/generalized-iou/Detectron.pytorch): ``TRAIN.SCALES (800,)`` /
  ``MAX_SIZE 1333``; ``SOLVER.WARM_UP_ITERS 500`` from ``WARM_UP_FACTOR 1/3``, linear;
  ``ROI_XFORM_METHOD RoIAlign`` with ``ROI_XFORM_SAMPLING_RATIO 2`` in the box (and mask) head,
  i.e. detectron2's ``ROIAlign`` (``aligned=False``); smooth-L1 with beta 1 in the Fast R-CNN
  head and 1/9 in the RPN; MSRA's caffe ResNet-50 (detectron2's ``R-50.pkl``).
- mmdetection 2.x (OpenMMLab-IoUNet, https://github.com/thisisi3/OpenMMLab-IoUNet, which the
  IoU-Net rows follow; the official aLRP Loss code): ``img_scale=(1333, 800)`` single scale;
  linear warm-up for 500 iterations from ``warmup_ratio=0.001``; torchvision's ImageNet ResNet
  (``torchvision://resnet50``, RGB input, ImageNet mean / std, stride in the 3x3 convolution).
  The ``.pkl`` it loads is written by ``python -m d2_boxunc.tools.convert_weights``.

Deviations the twins keep (no detectron2 equivalent, or outside a config): boxes without
Detectron's "+1" (docs/design.md#conventions); frozen BatchNorm (detectron2's ``FrozenBN``:
statistics and affine parameters frozen) where mmdetection's ``norm_eval=True`` freezes the
statistics but trains the affine parameters; the batch (16 images, lr 0.02, detectron2's
iteration schedule) where the mmdetection reimplementations used fewer GPUs and a linearly
scaled lr over the same number of epochs.
"""

TORCHVISION_PIXEL_MEAN = [123.675, 116.28, 103.53]
TORCHVISION_PIXEL_STD = [58.395, 57.12, 57.375]


def single_scale(dataloader, short_edge: int = 800, max_size: int = 1333) -> None:
    """Train at one short side (the first augmentation must be ``ResizeShortestEdge``)."""
    resize = dataloader.train.mapper.augmentations[0]
    resize.short_edge_length = (short_edge,)
    resize.max_size = max_size


def warmup(lr_multiplier, max_iter: int, iters: int, factor: float) -> None:
    """Linear warm-up over ``iters`` iterations from ``factor`` x the base lr."""
    lr_multiplier.warmup_length = iters / max_iter
    lr_multiplier.warmup_factor = factor
    lr_multiplier.warmup_method = "linear"


def detectron_roi_align(model) -> None:
    """Detectron's ``RoIAlign``, sampling ratio 2, no half-pixel shift, in every R-CNN pooler."""
    for key in ("box_pooler", "mask_pooler"):
        pooler = model.roi_heads.get(key, None)
        if pooler is not None:
            pooler.update(pooler_type="ROIAlign", sampling_ratio=2)


def detectron_recipe(dataloader, lr_multiplier, model, max_iter: int) -> None:
    """Single scale 800 / 1333, warm-up 500 from 1/3, RoIAlign sampling 2, Detectron's betas."""
    single_scale(dataloader)
    warmup(lr_multiplier, max_iter, iters=500, factor=1.0 / 3)
    detectron_roi_align(model)
    model.proposal_generator.smooth_l1_beta = 1.0 / 9
    model.roi_heads.box_predictor.smooth_l1_beta = 1.0


def torchvision_backbone(model, dataloader, train, depth: int = 50) -> None:
    """torchvision's ImageNet ResNet-``depth`` (``./models/R-<depth>-torchvision.pkl``)."""
    stages = model.backbone.bottom_up.stages
    stages.depth = depth
    stages.stride_in_1x1 = False
    model.pixel_mean = list(TORCHVISION_PIXEL_MEAN)
    model.pixel_std = list(TORCHVISION_PIXEL_STD)
    model.input_format = "RGB"
    dataloader.train.mapper.image_format = "RGB"  # the test mapper interpolates this one
    train.init_checkpoint = f"./models/R-{depth}-torchvision.pkl"


def mmdet_recipe(dataloader, lr_multiplier, model, train, max_iter: int) -> None:
    """Single scale 800 / 1333, warm-up 500 from 0.001, torchvision's ImageNet ResNet-50."""
    single_scale(dataloader)
    warmup(lr_multiplier, max_iter, iters=500, factor=0.001)
    torchvision_backbone(model, dataloader, train, depth=50)
