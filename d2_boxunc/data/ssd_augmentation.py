"""SSD-style training augmentation (Liu et al., ECCV 2016, §2.2 "Data augmentation") as detectron2
:class:`~detectron2.data.transforms.Augmentation` s.

docs/design.md#retinanet-setting-for-alrp: the aLRP Loss "500"/"800" RetinaNets train with
photometric distortion, a zoom-out ("Expand" onto a mean-filled canvas), a min-IoU random crop, a
resize to a fixed square without keeping the aspect ratio and a horizontal flip. detectron2 has a
``MinIoURandomCrop`` but it keeps boxes whose centre falls outside the crop, and it has no Expand
and no hue jitter.

Every augmentation returns a deterministic :class:`~detectron2.data.transforms.Transform`, so the
image, boxes, polygons, bitmasks and semantic maps are all transformed consistently by detectron2.

Boxes dropped by the crop (centre outside it) are mapped to the empty box ``(0, 0, 0, 0)`` by
:class:`MinIoUCropTransform`; ``detectron2.data.detection_utils.filter_empty_instances`` (run by
every detectron2 mapper) then removes those instances together with their masks. Use
:class:`BoxAugDatasetMapper` to train with these augmentations: detectron2's ``DatasetMapper`` does
not pass the boxes to the augmentations, which the crop needs.

The defaults follow the pipeline of the official aLRP Loss code (its mmdetection 2.x
``PhotoMetricDistortion``, ``Expand``, ``MinIoURandomCrop``): the channel swap runs with
probability 0.5, and a crop patch must pass the IoU check against every box of the image,
crowd boxes included (docs/atss_ssd.md lists what still differs).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.data.dataset_mapper import DatasetMapper
from detectron2.structures import BoxMode

__all__ = [
    "BoxAugDatasetMapper",
    "Expand",
    "ExpandTransform",
    "MinIoUCropTransform",
    "MinIoURandomCrop",
    "PhotometricDistort",
    "PhotometricDistortTransform",
    "patch_accepted",
    "ssd_augmentations",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)


def _check_format(image_format: str) -> str:
    if image_format not in ("BGR", "RGB"):
        raise ValueError(f"image_format must be 'BGR' or 'RGB', got {image_format!r}")
    return image_format


def _check_range(name: str, lo_hi: Sequence[float], lower: float) -> tuple[float, float]:
    if len(lo_hi) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {lo_hi!r}")
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < lower or lo > hi:
        raise ValueError(f"{name} must satisfy {lower} <= low <= high, got {lo_hi!r}")
    return lo, hi


def _check_prob(name: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p!r}")
    return float(p)


# ------------------------------------------------------------------------------------------------
# Photometric distortion
# ------------------------------------------------------------------------------------------------
class PhotometricDistortTransform(T.Transform):
    """Colour jitter with fixed parameters; geometry (boxes, masks) is untouched.

    Order (SSD, mmdetection ``PhotoMetricDistortion``): brightness, [contrast if
    ``contrast_first``], saturation, hue, [contrast if not ``contrast_first``], then optionally a
    channel permutation. A parameter set to ``None`` skips that step. Arithmetic is in float32
    without intermediate clipping (as the references); the result is clipped to [0, 255] and
    returned in the input dtype (uint8 is rounded).

    Args:
        brightness_delta: added to every pixel.
        contrast_alpha: multiplies every pixel.
        contrast_first: contrast before (True) or after (False) the HSV steps.
        saturation_alpha: multiplies the HSV saturation.
        hue_delta: added to the hue, in degrees (wraps around 360).
        channel_order: permutation of the 3 channels applied last, or None.
        image_format: "BGR" or "RGB", the channel order of the images (for the HSV conversion).
    """

    def __init__(
        self,
        brightness_delta: float | None = None,
        contrast_alpha: float | None = None,
        contrast_first: bool = True,
        saturation_alpha: float | None = None,
        hue_delta: float | None = None,
        channel_order: Sequence[int] | None = None,
        image_format: str = "BGR",
    ):
        super().__init__()
        _check_format(image_format)
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"PhotometricDistort needs an HxWx3 image, got shape {img.shape}")
        x = img.astype(np.float32)
        if self.brightness_delta is not None:
            x += np.float32(self.brightness_delta)
        if self.contrast_first and self.contrast_alpha is not None:
            x *= np.float32(self.contrast_alpha)
        if self.saturation_alpha is not None or self.hue_delta is not None:
            to_hsv, from_hsv = (
                (cv2.COLOR_BGR2HSV, cv2.COLOR_HSV2BGR)
                if self.image_format == "BGR"
                else (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB)
            )
            # float32 HSV in OpenCV: H in [0, 360), S in [0, 1], V in the input's units.
            hsv = cv2.cvtColor(np.ascontiguousarray(x), to_hsv)
            if self.saturation_alpha is not None:
                hsv[..., 1] *= np.float32(self.saturation_alpha)
            if self.hue_delta is not None:
                hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(self.hue_delta), 360.0)
            x = cv2.cvtColor(hsv, from_hsv)
        if not self.contrast_first and self.contrast_alpha is not None:
            x *= np.float32(self.contrast_alpha)
        if self.channel_order is not None:
            x = x[..., list(self.channel_order)]
        x = np.clip(x, 0.0, 255.0)
        if img.dtype == np.uint8:
            return np.rint(x).astype(np.uint8)
        return x.astype(img.dtype)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> T.Transform:
        return T.NoOpTransform()  # colour jitter is not invertible; geometry is unchanged


class PhotometricDistort(T.Augmentation):
    """SSD photometric distortion: each step applied with probability 0.5, contrast randomly before
    or after the HSV steps.

    Args:
        brightness_delta (float): brightness offset drawn from U(-delta, delta). Default: 32.
        contrast_range (tuple[float, float]): contrast factor range. Default: (0.5, 1.5).
        saturation_range (tuple[float, float]): saturation factor range. Default: (0.5, 1.5).
        hue_delta (float): hue offset in degrees drawn from U(-delta, delta). Default: 18.
        swap_channels_prob (float): probability of a random channel permutation at the end
            (``np.random.permutation(3)``, which may be the identity). The aLRP Loss code's
            mmdetection ``PhotoMetricDistortion`` always does this with probability 0.5.
            Default: 0.5.
        image_format (str): "BGR" (detectron2's default) or "RGB". Default: "BGR".
    """

    def __init__(
        self,
        brightness_delta: float = 32.0,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18.0,
        swap_channels_prob: float = 0.5,
        image_format: str = "BGR",
    ):
        super().__init__()
        if not (math.isfinite(brightness_delta) and brightness_delta >= 0):
            raise ValueError(f"brightness_delta must be finite and >= 0, got {brightness_delta!r}")
        if not (math.isfinite(hue_delta) and 0 <= hue_delta <= 180):
            raise ValueError(f"hue_delta must be in [0, 180] degrees, got {hue_delta!r}")
        contrast_range = _check_range("contrast_range", contrast_range, 0.0)
        saturation_range = _check_range("saturation_range", saturation_range, 0.0)
        swap_channels_prob = _check_prob("swap_channels_prob", swap_channels_prob)
        _check_format(image_format)
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        def maybe(draw):
            return draw() if np.random.rand() < 0.5 else None

        d = self.brightness_delta
        return PhotometricDistortTransform(
            brightness_delta=maybe(lambda: float(np.random.uniform(-d, d))),
            contrast_alpha=maybe(lambda: float(np.random.uniform(*self.contrast_range))),
            contrast_first=bool(np.random.rand() < 0.5),
            saturation_alpha=maybe(lambda: float(np.random.uniform(*self.saturation_range))),
            hue_delta=maybe(lambda: float(np.random.uniform(-self.hue_delta, self.hue_delta))),
            channel_order=(
                np.random.permutation(3).tolist()
                if np.random.rand() < self.swap_channels_prob
                else None
            ),
            image_format=self.image_format,
        )


# ------------------------------------------------------------------------------------------------
# Expand (zoom out)
# ------------------------------------------------------------------------------------------------
class ExpandTransform(T.Transform):
    """Place the ``orig_h x orig_w`` image at ``(left, top)`` on a ``new_h x new_w`` canvas filled
    with ``fill`` (one value per channel); coordinates shift by ``(left, top)``.

    Segmentation maps and bitmasks are padded with ``seg_fill``.
    """

    def __init__(
        self,
        left: int,
        top: int,
        orig_w: int,
        orig_h: int,
        new_w: int,
        new_h: int,
        fill: Sequence[float],
        seg_fill: int = 0,
    ):
        super().__init__()
        if left < 0 or top < 0 or left + orig_w > new_w or top + orig_h > new_h:
            raise ValueError(
                f"image {orig_w}x{orig_h} at ({left}, {top}) does not fit a {new_w}x{new_h} canvas"
            )
        fill = tuple(float(v) for v in fill)
        self._set_attributes(locals())

    def _place(self, img: np.ndarray, fill) -> np.ndarray:
        if img.shape[:2] != (self.orig_h, self.orig_w):
            raise ValueError(
                f"ExpandTransform built for {self.orig_h}x{self.orig_w} images, got {img.shape[:2]}"
            )
        canvas = np.empty((self.new_h, self.new_w) + img.shape[2:], dtype=img.dtype)
        canvas[...] = fill
        canvas[self.top : self.top + self.orig_h, self.left : self.left + self.orig_w] = img
        return canvas

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        channels = img.shape[2] if img.ndim == 3 else 1
        if len(self.fill) not in (1, channels):
            raise ValueError(f"fill has {len(self.fill)} values but the image {channels} channels")
        fill = np.asarray(self.fill, dtype=np.float64)
        if img.ndim == 2:
            fill = fill.mean()
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            fill = np.clip(np.rint(fill), info.min, info.max)
        return self._place(img, fill.astype(img.dtype))

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._place(segmentation, self.seg_fill)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return np.asarray(coords) + np.array([self.left, self.top], dtype=np.float64)

    def inverse(self) -> T.Transform:
        return T.CropTransform(
            self.left, self.top, self.orig_w, self.orig_h, self.new_w, self.new_h
        )


class Expand(T.Augmentation):
    """SSD "zoom out": with probability ``prob`` put the image on a canvas ``ratio`` times larger
    (``ratio ~ U(ratio_range)``, same for both sides) filled with the dataset mean, at a uniformly
    random position. Creates small objects for the detector to learn from.

    Args:
        ratio_range (tuple[float, float]): canvas/image side ratio range, low >= 1. Default (1, 4).
        mean (tuple[float, ...]): fill colour, **in RGB order** as the usual normalisation mean
            (mmdetection's ``img_norm_cfg``); reordered to ``image_format``. Default: ImageNet mean.
        prob (float): probability of expanding. Default: 0.5.
        image_format (str): channel order of the images, "BGR" (detectron2) or "RGB".
        seg_fill (int): value of padded semantic-map / bitmask pixels. Default: 0.
    """

    def __init__(
        self,
        ratio_range: tuple[float, float] = (1.0, 4.0),
        mean: Sequence[float] = IMAGENET_MEAN_RGB,
        prob: float = 0.5,
        image_format: str = "BGR",
        seg_fill: int = 0,
    ):
        super().__init__()
        ratio_range = _check_range("ratio_range", ratio_range, 1.0)
        prob = _check_prob("prob", prob)
        _check_format(image_format)
        if len(mean) not in (1, 3) or not all(math.isfinite(float(v)) for v in mean):
            raise ValueError(f"mean must have 1 or 3 finite values, got {mean!r}")
        mean = tuple(float(v) for v in mean)
        self.fill = mean[::-1] if image_format == "BGR" else mean
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        if np.random.rand() >= self.prob:
            return T.NoOpTransform()
        h, w = image.shape[:2]
        ratio = np.random.uniform(*self.ratio_range)
        new_w, new_h = max(int(w * ratio), w), max(int(h * ratio), h)
        left = int(np.random.uniform(0, new_w - w))
        top = int(np.random.uniform(0, new_h - h))
        return ExpandTransform(left, top, w, h, new_w, new_h, self.fill, self.seg_fill)


# ------------------------------------------------------------------------------------------------
# Min-IoU random crop
# ------------------------------------------------------------------------------------------------
def _centres_inside(boxes: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    cx = (boxes[:, 0] + boxes[:, 2]) * 0.5
    cy = (boxes[:, 1] + boxes[:, 3]) * 0.5
    return (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)


def _iou_with_patch(boxes: np.ndarray, patch: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(boxes[:, 2], patch[2]) - np.maximum(boxes[:, 0], patch[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], patch[3]) - np.maximum(boxes[:, 1], patch[1]), 0, None)
    inter = iw * ih
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + (patch[2] - patch[0]) * (patch[3] - patch[1]) - inter
    return inter / np.maximum(union, 1e-12)


def patch_accepted(
    boxes: np.ndarray, patch: Sequence[float], min_iou: float, require_all_boxes: bool = True
) -> bool:
    """The acceptance rule of one crop patch ``(x0, y0, x1, y1)`` for the IoU threshold ``min_iou``.

    With ``require_all_boxes=True`` (the official pipeline, mmdetection 2.x ``MinIoURandomCrop``
    as the aLRP Loss code ships it): reject the patch if **any** box of the image has IoU with the
    patch below ``min_iou``, whether or not its centre lies in the patch; then reject it if no box
    centre lies strictly inside it. The centre test only decides which boxes the crop keeps.
    With ``require_all_boxes=False``: only the boxes whose centre is inside are IoU-checked.
    An image without boxes accepts every patch.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return True
    patch = np.asarray(patch, dtype=np.float64)
    keep = _centres_inside(boxes, *patch)
    if not keep.any():
        return False
    ious = _iou_with_patch(boxes if require_all_boxes else boxes[keep], patch)
    return bool(ious.min() >= min_iou)


class MinIoUCropTransform(T.CropTransform):
    """A :class:`~detectron2.data.transforms.CropTransform` that drops boxes whose centre is not
    strictly inside the crop: ``apply_box`` maps them to the empty box ``(0, 0, 0, 0)``, which
    ``filter_empty_instances`` removes (with the instance's masks and keypoints). Kept boxes are
    shifted and clipped to the crop.
    """

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
        keep = _centres_inside(box, self.x0, self.y0, self.x0 + self.w, self.y0 + self.h)
        out = box - np.array([self.x0, self.y0, self.x0, self.y0], dtype=np.float64)
        out[:, 0::2] = np.clip(out[:, 0::2], 0, self.w)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, self.h)
        out[~keep] = 0.0
        return out


class MinIoURandomCrop(T.Augmentation):
    """SSD min-IoU random crop.

    Draw a mode from ``{no crop, *min_ious, 0}`` uniformly. For a threshold ``m``, try up to
    ``crop_trials`` patches with sides ``U(min_crop_size, 1) x`` the image's and aspect ratio
    ``h/w in [0.5, 2]`` at a uniform position. A patch is accepted (:func:`patch_accepted`) when
    every box of the image has IoU >= ``m`` with it and at least one box has its centre strictly
    inside it, as the official aLRP Loss pipeline (mmdetection 2.x) decides; the crop then keeps
    the boxes whose centre is inside. ``require_all_boxes=False`` IoU-checks only those kept
    boxes, which accepts far more patches at high thresholds on crowded images (not the official
    rule). If no patch fits, draw a new mode (at most ``mode_trials`` times, then no crop; the
    reference loops until a mode succeeds). An image without boxes gets any patch.

    The boxes come from the :class:`~detectron2.data.transforms.AugInput`'s ``boxes`` (XYXY_ABS);
    ``boxes=None`` returns :class:`~detectron2.data.transforms.NoOpTransform`.
    :class:`BoxAugDatasetMapper` passes the crowd boxes too, since the reference checks its
    ``gt_bboxes_ignore`` (COCO crowd boxes) with the others.

    Args:
        min_ious (tuple[float]): IoU thresholds in [0, 1]. Default: (0.1, 0.3, 0.5, 0.7, 0.9).
        min_crop_size (float): smallest patch side as a fraction of the image side. Default: 0.3.
        require_all_boxes (bool): IoU-check every box (True, official) or only the boxes whose
            centre is in the patch (False). Default: True.
        mode_trials (int), crop_trials (int): sampling budget. Defaults: 50, 50.
    """

    def __init__(
        self,
        min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        require_all_boxes: bool = True,
        mode_trials: int = 50,
        crop_trials: int = 50,
    ):
        super().__init__()
        min_ious = tuple(float(v) for v in min_ious)
        if not all(0.0 <= v <= 1.0 for v in min_ious):
            raise ValueError(f"min_ious must lie in [0, 1], got {min_ious!r}")
        if not 0.0 < min_crop_size <= 1.0:
            raise ValueError(f"min_crop_size must be in (0, 1], got {min_crop_size!r}")
        if mode_trials < 1 or crop_trials < 1:
            raise ValueError("mode_trials and crop_trials must be >= 1")
        self._init(locals())

    def get_transform(self, image: np.ndarray, boxes: np.ndarray | None) -> T.Transform:
        if boxes is None:
            return T.NoOpTransform()
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not np.isfinite(boxes).all():
            raise ValueError("MinIoURandomCrop got NaN or Inf box coordinates")
        h, w = image.shape[:2]
        modes = (None, *self.min_ious, 0.0)  # None = keep the whole image
        for _ in range(self.mode_trials):
            min_iou = modes[np.random.randint(len(modes))]
            if min_iou is None:
                return T.NoOpTransform()
            for _ in range(self.crop_trials):
                tfm = self.sample_patch(boxes, w, h, min_iou)
                if tfm is not None:
                    return tfm
        return T.NoOpTransform()

    def sample_patch(
        self, boxes: np.ndarray, w: int, h: int, min_iou: float
    ) -> MinIoUCropTransform | None:
        """One crop trial for threshold ``min_iou``: the crop, or None if the patch is rejected."""
        new_w = np.random.uniform(self.min_crop_size * w, w)
        new_h = np.random.uniform(self.min_crop_size * h, h)
        if not 0.5 <= new_h / new_w <= 2.0:
            return None
        left = np.random.uniform(0, w - new_w)
        top = np.random.uniform(0, h - new_h)
        patch = np.array([int(left), int(top), int(left + new_w), int(top + new_h)], np.float64)
        if patch[2] <= patch[0] or patch[3] <= patch[1]:
            return None
        if not patch_accepted(boxes, patch, min_iou, self.require_all_boxes):
            return None
        x0, y0, x1, y1 = (int(v) for v in patch)
        return MinIoUCropTransform(x0, y0, x1 - x0, y1 - y0, w, h)


def ssd_augmentations(
    size: int,
    image_format: str = "BGR",
    mean: Sequence[float] = IMAGENET_MEAN_RGB,
) -> list[T.Augmentation]:
    """The SSD training pipeline of the aLRP Loss setting
    (docs/design.md#retinanet-setting-for-alrp): photometric distortion, Expand (ratio 1-4, p=0.5,
    mean fill), min-IoU random crop, resize to ``size x size`` (aspect ratio not kept), horizontal
    flip with p=0.5. Use with :class:`BoxAugDatasetMapper`.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    return [
        PhotometricDistort(image_format=image_format),
        Expand(mean=mean, image_format=image_format),
        MinIoURandomCrop(),
        T.Resize((size, size)),
        T.RandomFlip(),
    ]


# ------------------------------------------------------------------------------------------------
# Mapper
# ------------------------------------------------------------------------------------------------
class BoxAugDatasetMapper(DatasetMapper):
    """detectron2's :class:`~detectron2.data.DatasetMapper` that also gives the annotated boxes
    (XYXY_ABS; the non-crowd ones first, then the crowd ones) to the augmentations, so box-aware
    ones such as :class:`MinIoURandomCrop` work. Crowd boxes only take part in the crop's patch
    check (as the reference's ``gt_bboxes_ignore``); like detectron2's mapper, no instance is
    made from them. Instances whose box the augmentations emptied are dropped
    before masks could re-create their boxes (``recompute_boxes``). Same constructor and configs
    as ``DatasetMapper``, e.g. ``L(BoxAugDatasetMapper)(is_train=True,
    augmentations=ssd_augmentations(512), image_format="BGR")``.
    """

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            sem_seg = utils.read_image(dataset_dict.pop("sem_seg_file_name"), "L").squeeze(2)

        all_annos = dataset_dict.pop("annotations", [])
        annos = [a for a in all_annos if a.get("iscrowd", 0) == 0]
        crowd = [a for a in all_annos if a.get("iscrowd", 0) != 0]
        boxes = None
        if self.is_train:
            boxes = np.array(
                [
                    BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                    for a in annos + crowd
                ],
                dtype=np.float64,
            ).reshape(-1, 4)
        aug_input = T.AugInput(image, boxes=boxes, sem_seg=sem_seg)
        transforms = self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype("long"))
        if self.proposal_topk is not None:
            utils.transform_proposals(
                dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk
            )
        if not self.is_train:
            return dataset_dict

        for anno in annos:
            if not self.use_instance_mask:
                anno.pop("segmentation", None)
            if not self.use_keypoint:
                anno.pop("keypoints", None)
        annos = [
            utils.transform_instance_annotations(
                a, transforms, image_shape, keypoint_hflip_indices=self.keypoint_hflip_indices
            )
            for a in annos
        ]
        # Drop the boxes the crop emptied now: recompute_boxes would rebuild them from masks.
        annos = [a for a in annos if a["bbox"][2] > a["bbox"][0] and a["bbox"][3] > a["bbox"][1]]
        instances = utils.annotations_to_instances(
            annos, image_shape, mask_format=self.instance_mask_format
        )
        if self.recompute_boxes and instances.has("gt_masks"):  # absent when no box is left
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        dataset_dict["instances"] = utils.filter_empty_instances(instances)
        return dataset_dict
