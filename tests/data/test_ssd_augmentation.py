"""SSD-style augmentation: valid boxes, exact Expand, crop rules, photometric jitter, detectron2 I/O."""

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_boxunc.data import (
    BoxAugDatasetMapper,
    Expand,
    MinIoURandomCrop,
    PhotometricDistort,
    ssd_augmentations,
)
from d2_boxunc.data.ssd_augmentation import (
    ExpandTransform,
    MinIoUCropTransform,
    PhotometricDistortTransform,
    _iou_with_patch,
    patch_accepted,
)


def random_boxes(rng, n, w, h):
    x0 = rng.uniform(0, w - 4, n)
    y0 = rng.uniform(0, h - 4, n)
    x1 = np.minimum(x0 + rng.uniform(2, w / 2, n), w)
    y1 = np.minimum(y0 + rng.uniform(2, h / 2, n), h)
    return np.stack([x0, y0, x1, y1], 1)


def label_map(boxes, h, w):
    """uint8 map: pixels of box k carry k + 1 (later boxes drawn over earlier ones)."""
    sem = np.zeros((h, w), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        sem[int(np.ceil(y0)) : int(y1), int(np.ceil(x0)) : int(x1)] = k + 1
    return sem


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    w=st.integers(24, 96),
    h=st.integers(24, 96),
    n=st.integers(0, 5),
    size=st.sampled_from([32, 48]),
)
def test_pipeline_keeps_boxes_valid_and_consistent_with_the_image(seed, w, h, n, size):
    rng = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)
    boxes = random_boxes(rng, n, w, h)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    sem = label_map(boxes, h, w)
    inp = T.AugInput(image, boxes=boxes.copy(), sem_seg=sem)
    tfms = T.AugmentationList(ssd_augmentations(size))(inp)

    assert inp.image.shape == (size, size, 3) and inp.image.dtype == np.uint8
    assert inp.sem_seg.shape == (size, size)
    out = inp.boxes
    assert out.shape == (n, 4) and np.isfinite(out).all()
    kept = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    # Dropped boxes are empty; kept ones lie inside the image.
    assert (out[kept] >= 0).all() and (out[kept][:, [0, 2]] <= size).all()
    assert (out[kept][:, [1, 3]] <= size).all()
    # The same transforms through detectron2's annotation path: nothing empty survives the filter.
    annos = [{"bbox": b.tolist(), "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0} for b in boxes]
    annos = [utils.transform_instance_annotations(a, tfms, (size, size)) for a in annos]
    inst = utils.filter_empty_instances(utils.annotations_to_instances(annos, (size, size)))
    assert len(inst) == int(kept.sum())
    assert inst.gt_boxes.nonempty().all()
    # Image and boxes moved together: every visible pixel of box k lies in transformed box k.
    for k in np.flatnonzero(kept):
        ys, xs = np.nonzero(inp.sem_seg == k + 1)
        if len(xs):
            x0, y0, x1, y1 = out[k]
            assert xs.min() >= x0 - 1.5 and xs.max() + 1 <= x1 + 1.5
            assert ys.min() >= y0 - 1.5 and ys.max() + 1 <= y1 + 1.5


def test_expand_places_image_and_shifts_boxes_exactly():
    np.random.seed(1)
    image = np.random.randint(0, 256, (30, 40, 3), dtype=np.uint8)
    boxes = np.array([[1.5, 2.0, 10.0, 20.25], [0, 0, 40, 30]])
    polygon = np.array([[1.0, 2.0], [10.0, 2.0], [5.0, 20.0]])
    inp = T.AugInput(image, boxes=boxes.copy())
    tfm = Expand(ratio_range=(2.0, 3.0), prob=1.0)(inp)
    assert isinstance(tfm, ExpandTransform)
    left, top = tfm.left, tfm.top
    H, W = inp.image.shape[:2]
    assert 80 <= W <= 120 and 60 <= H <= 90 and W / 40 == pytest.approx(H / 30, abs=0.05)
    assert 0 <= left <= W - 40 and 0 <= top <= H - 30
    np.testing.assert_array_equal(inp.image[top : top + 30, left : left + 40], image)
    canvas = inp.image.copy()
    canvas[top : top + 30, left : left + 40] = 0
    mask = np.ones((H, W), bool)
    mask[top : top + 30, left : left + 40] = False
    # BGR images: the RGB ImageNet mean (123.675, 116.28, 103.53) reversed and rounded.
    np.testing.assert_array_equal(canvas[mask], np.broadcast_to([104, 116, 124], (mask.sum(), 3)))
    np.testing.assert_array_equal(inp.boxes, boxes + [left, top, left, top])
    np.testing.assert_array_equal(tfm.apply_polygons([polygon])[0], polygon + [left, top])
    seg = np.ones((30, 40), np.uint8)
    seg_out = tfm.apply_segmentation(seg)
    assert seg_out.sum() == 30 * 40 and seg_out[top : top + 30, left : left + 40].all()
    np.testing.assert_array_equal(tfm.inverse().apply_image(inp.image), image)
    np.testing.assert_array_equal(tfm.inverse().apply_box(inp.boxes), boxes)


def test_expand_fill_follows_image_format_and_probability():
    image = np.zeros((4, 5, 3), np.uint8)
    np.random.seed(0)
    rgb = Expand(ratio_range=(3.0, 3.0), mean=(10, 20, 30), prob=1.0, image_format="RGB")
    out = T.AugInput(image.copy())
    tfm = rgb(out)
    assert out.image.shape == (12, 15, 3)
    assert tuple(out.image[0 if tfm.top else -1, 0 if tfm.left else -1]) == (10, 20, 30)
    never = Expand(prob=0.0)
    assert all(isinstance(never(T.AugInput(image.copy())), T.NoOpTransform) for _ in range(20))
    np.random.seed(0)
    draws = [Expand(prob=0.5).get_transform(image) for _ in range(400)]
    frac = np.mean([isinstance(d, ExpandTransform) for d in draws])
    assert 0.4 < frac < 0.6


def test_crop_transform_drops_boxes_whose_centre_is_outside():
    tfm = MinIoUCropTransform(10, 20, 50, 40, 100, 100)  # crop x in [10, 60], y in [20, 60]
    boxes = np.array(
        [
            [15, 25, 25, 35],  # fully inside
            [0, 0, 40, 50],  # centre (20, 25) inside: kept, clipped
            [50, 50, 90, 90],  # overlaps the crop, centre (70, 70) outside: dropped
            [0, 0, 10, 10],  # outside
        ],
        dtype=np.float64,
    )
    out = tfm.apply_box(boxes)
    np.testing.assert_array_equal(out[0], [5, 5, 15, 15])
    np.testing.assert_array_equal(out[1], [0, 0, 30, 30])
    np.testing.assert_array_equal(out[2:], 0)
    img = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    np.testing.assert_array_equal(tfm.apply_image(img), img[20:60, 10:60])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), require_all=st.booleans())
def test_sampled_patches_meet_the_min_iou_rule(seed, n, require_all):
    rng = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)
    w, h = 120, 90
    boxes = random_boxes(rng, n, w, h)
    crop = MinIoURandomCrop(min_crop_size=0.3, require_all_boxes=require_all)
    for min_iou in (0.0, 0.3, 0.5):
        for _ in range(60):
            tfm = crop.sample_patch(boxes, w, h, min_iou)
            if tfm is None:
                continue
            x0, y0, x1, y1 = tfm.x0, tfm.y0, tfm.x0 + tfm.w, tfm.y0 + tfm.h
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert tfm.w >= 0.3 * w - 1 and tfm.h >= 0.3 * h - 1
            patch = np.array([x0, y0, x1, y1], np.float64)
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            inside = (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
            assert inside.any()
            checked = boxes if require_all else boxes[inside]
            assert _iou_with_patch(checked, patch).min() >= min_iou
            out = tfm.apply_box(boxes)
            assert ((out[:, 2] > out[:, 0]) == inside).all()


def test_patch_check_uses_every_box_as_the_official_crop():
    # A: centre (20, 20) inside the patch, IoU 400 / 2500 = 0.16.
    # B: centre (70, 70) outside, overlaps 10 x 10: IoU 100 / (3600 + 2500 - 100) = 1/60.
    boxes = np.array([[10.0, 10.0, 30.0, 30.0], [40.0, 40.0, 100.0, 100.0]])
    patch = (0, 0, 50, 50)
    assert patch_accepted(boxes, patch, 0.0)
    assert patch_accepted(boxes, patch, 1 / 60 - 1e-9)
    assert not patch_accepted(boxes, patch, 0.1)  # B fails the IoU check, though it is dropped
    assert patch_accepted(boxes, patch, 0.1, require_all_boxes=False)  # only A is checked
    assert not patch_accepted(boxes, patch, 0.2, require_all_boxes=False)
    # A box disjoint from the patch has IoU 0: any positive threshold rejects the patch.
    far = np.array([[10.0, 10.0, 30.0, 30.0], [80.0, 80.0, 90.0, 90.0]])
    assert not patch_accepted(far, patch, 0.1) and patch_accepted(far, patch, 0.0)
    # Every IoU passes but no centre is strictly inside: rejected (even in mode 0).
    edge = np.array([[40.0, 40.0, 60.0, 60.0]])  # centre (50, 50) on the patch corner
    assert not patch_accepted(edge, patch, 0.0)
    assert patch_accepted(np.zeros((0, 4)), patch, 0.9)  # no boxes: any patch


def test_crop_transform_uses_the_official_rule_by_default():
    boxes = np.array([[10.0, 10.0, 30.0, 30.0], [40.0, 40.0, 100.0, 100.0]])
    assert MinIoURandomCrop().require_all_boxes
    np.random.seed(3)
    crop = MinIoURandomCrop()
    for _ in range(300):
        tfm = crop.sample_patch(boxes, 100, 100, 0.3)
        if tfm is not None:
            patch = np.array([tfm.x0, tfm.y0, tfm.x0 + tfm.w, tfm.y0 + tfm.h], np.float64)
            assert _iou_with_patch(boxes, patch).min() >= 0.3


def test_random_crop_modes_and_no_boxes():
    image = np.zeros((50, 60, 3), np.uint8)
    crop = MinIoURandomCrop()
    assert isinstance(crop.get_transform(image, None), T.NoOpTransform)
    np.random.seed(0)
    draws = [crop.get_transform(image, np.zeros((0, 4))) for _ in range(140)]
    crops = [d for d in draws if isinstance(d, MinIoUCropTransform)]
    # Mode "no crop" is 1 of 7: about 1/7 of the draws keep the image, the rest crop it.
    assert 100 <= len(crops) <= 135
    # Aspect ratio h/w in [0.5, 2] up to the integer truncation of the patch corners.
    assert all(0.5 - 2 / c.w <= c.h / c.w <= 2.0 + 2 / c.w for c in crops)
    assert all(c.w >= 0.3 * 60 - 1 and c.h >= 0.3 * 50 - 1 for c in crops)
    # A large central box: most draws find a patch (no-crop mode aside), all keep the box.
    box = np.array([[15.0, 10.0, 45.0, 40.0]])
    draws = [crop.get_transform(image, box) for _ in range(140)]
    crops = [d for d in draws if isinstance(d, MinIoUCropTransform)]
    assert len(crops) >= 90
    assert all((c.apply_box(box)[:, 2:] > c.apply_box(box)[:, :2]).all() for c in crops)


def test_photometric_transform_steps():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(PhotometricDistortTransform().apply_image(img), img)
    bright = PhotometricDistortTransform(brightness_delta=40.4).apply_image(img)
    np.testing.assert_array_equal(bright, np.clip(img.astype(np.float64) + 40.4, 0, 255).round())
    cont = PhotometricDistortTransform(contrast_alpha=0.5).apply_image(img)
    np.testing.assert_array_equal(cont, np.rint(img.astype(np.float32) * 0.5))
    # Hue and saturation: identity parameters round-trip within the HSV conversion error.
    same = PhotometricDistortTransform(saturation_alpha=1.0, hue_delta=0.0).apply_image(img)
    assert np.abs(same.astype(int) - img).max() <= 1
    red_bgr = np.zeros((2, 2, 3), np.uint8)
    red_bgr[..., 2] = 200
    green = PhotometricDistortTransform(hue_delta=120.0).apply_image(red_bgr)
    np.testing.assert_array_equal(green[0, 0], [0, 200, 0])
    blue_rgb = PhotometricDistortTransform(hue_delta=120.0, image_format="RGB").apply_image(
        red_bgr
    )  # seen as RGB the same array is blue; +120 degrees makes it red
    np.testing.assert_array_equal(blue_rgb[0, 0], [200, 0, 0])
    gray = PhotometricDistortTransform(saturation_alpha=0.0).apply_image(red_bgr)
    np.testing.assert_array_equal(gray[0, 0], [200, 200, 200])
    # Float images keep their dtype and are clipped to [0, 255].
    f = PhotometricDistortTransform(brightness_delta=100.0).apply_image(img.astype(np.float32))
    assert f.dtype == np.float32 and f.max() == 255.0
    with pytest.raises(ValueError, match="HxWx3"):
        PhotometricDistortTransform(hue_delta=1.0).apply_image(np.zeros((4, 4, 1), np.uint8))


def test_photometric_augmentation_draws():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.random.seed(0)
    aug = PhotometricDistort()
    boxes = np.array([[1.0, 2.0, 5.0, 9.0]])
    changed = swaps = 0
    steps = np.zeros(4)
    for _ in range(200):
        inp = T.AugInput(img.copy(), boxes=boxes.copy())
        tfm = aug(inp)
        assert inp.image.shape == img.shape and inp.image.dtype == np.uint8
        np.testing.assert_array_equal(inp.boxes, boxes)
        changed += not np.array_equal(inp.image, img)
        steps += [
            tfm.brightness_delta is not None,
            tfm.contrast_alpha is not None,
            tfm.saturation_alpha is not None,
            tfm.hue_delta is not None,
        ]
        if tfm.brightness_delta is not None:
            assert abs(tfm.brightness_delta) <= 32
        if tfm.hue_delta is not None:
            assert abs(tfm.hue_delta) <= 18
        if tfm.contrast_alpha is not None:
            assert 0.5 <= tfm.contrast_alpha <= 1.5
        if tfm.channel_order is not None:
            assert sorted(tfm.channel_order) == [0, 1, 2]
        swaps += tfm.channel_order is not None
    assert changed > 170  # all four steps are skipped with probability 1/16
    assert ((steps > 70) & (steps < 130)).all()  # each step with probability 1/2
    assert 70 < swaps < 130  # the official channel swap: probability 1/2
    np.random.seed(0)
    never = PhotometricDistort(swap_channels_prob=0.0)
    assert all(never.get_transform(img).channel_order is None for _ in range(50))


def test_channel_swap_permutes_the_channels_exactly():
    img = np.empty((3, 4, 3), np.uint8)
    img[...] = (10, 20, 30)
    out = PhotometricDistortTransform(channel_order=[2, 0, 1]).apply_image(img)
    np.testing.assert_array_equal(out[1, 2], [30, 10, 20])
    assert out.shape == img.shape and out.dtype == np.uint8
    # After the other steps, last (as mmdetection): brightness +5 then swap.
    out = PhotometricDistortTransform(brightness_delta=5.0, channel_order=[1, 2, 0]).apply_image(
        img
    )
    np.testing.assert_array_equal(out[0, 0], [25, 35, 15])


def rle(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), np.uint8, order="F")
    m[y0:y1, x0:x1] = 1
    return mask_util.encode(m)


def test_mapper_passes_boxes_and_drops_cropped_instances(tmp_path):
    np.random.seed(0)
    path = str(tmp_path / "img.png")
    cv2.imwrite(path, np.full((60, 80, 3), 128, np.uint8))
    record = {
        "file_name": path,
        "height": 60,
        "width": 80,
        "annotations": [
            {
                "bbox": [5, 5, 30, 30],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 1,
                "segmentation": rle(60, 80, 5, 5, 35, 35),
            },
            {
                "bbox": [50, 30, 75, 55],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "segmentation": rle(60, 80, 50, 30, 75, 55),
            },
            {"bbox": [0, 0, 80, 60], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 2, "iscrowd": 1},
        ],
    }
    mapper = BoxAugDatasetMapper(
        is_train=True,
        augmentations=[MinIoURandomCrop(), T.Resize((32, 32))],
        image_format="BGR",
        use_instance_mask=True,
        instance_mask_format="bitmask",  # polygon crops would need shapely
        recompute_boxes=True,
    )
    counts = set()
    for _ in range(40):
        out = mapper(record)
        assert tuple(out["image"].shape) == (3, 32, 32)
        inst = out["instances"]
        # The crop keeps at least one box centre, possibly only the crowd box's, which makes no
        # instance (as the reference, whose crowd boxes are its ignored boxes).
        assert len(inst) in (0, 1, 2)
        assert inst.gt_boxes.nonempty().all()
        assert len(inst) == 0 or len(inst.gt_masks) == len(inst)
        assert set(inst.gt_classes.tolist()) <= {0, 1}
        counts.add(len(inst))
    assert {1, 2} <= counts
    eval_out = BoxAugDatasetMapper(
        is_train=False, augmentations=ssd_augmentations(32), image_format="BGR"
    )(record)
    assert "instances" not in eval_out and tuple(eval_out["image"].shape)[0] == 3


class _RecordBoxes(T.Augmentation):
    def __init__(self):
        super().__init__()
        self.seen = []

    def get_transform(self, image, boxes):
        self.seen.append(None if boxes is None else np.array(boxes))
        return T.NoOpTransform()


def test_mapper_gives_the_crop_the_crowd_boxes_too(tmp_path):
    path = str(tmp_path / "img.png")
    cv2.imwrite(path, np.full((60, 80, 3), 128, np.uint8))
    record = {
        "file_name": path,
        "height": 60,
        "width": 80,
        "annotations": [
            {"bbox": [0, 0, 80, 60], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 2, "iscrowd": 1},
            {"bbox": [5, 5, 30, 30], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1},
        ],
    }
    rec = _RecordBoxes()
    out = BoxAugDatasetMapper(is_train=True, augmentations=[rec], image_format="BGR")(record)
    # non-crowd first, then crowd; only the non-crowd box becomes an instance
    np.testing.assert_array_equal(rec.seen[0], [[5, 5, 35, 35], [0, 0, 80, 60]])
    assert out["instances"].gt_boxes.tensor.tolist() == [[5.0, 5.0, 35.0, 35.0]]
    # A crowd box that covers the image caps the patch: IoU = patch area / image area >= 0.7.
    np.random.seed(0)
    crop = MinIoURandomCrop(min_ious=(0.7,))
    boxes = rec.seen[0]
    for _ in range(100):
        tfm = crop.get_transform(np.zeros((60, 80, 3), np.uint8), boxes)
        if isinstance(tfm, MinIoUCropTransform) and tfm.w * tfm.h < 0.7 * 80 * 60:
            # only mode 0 ("any IoU") may give a smaller patch
            assert tfm.w * tfm.h >= 0.3 * 80 * 0.3 * 60 - 80 - 60


def test_errors():
    with pytest.raises(ValueError, match="ratio_range"):
        Expand(ratio_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="prob"):
        Expand(prob=1.5)
    with pytest.raises(ValueError, match="mean"):
        Expand(mean=(1.0, 2.0))
    with pytest.raises(ValueError, match="image_format"):
        PhotometricDistort(image_format="YUV")
    with pytest.raises(ValueError, match="contrast_range"):
        PhotometricDistort(contrast_range=(1.5, 0.5))
    with pytest.raises(ValueError, match="hue_delta"):
        PhotometricDistort(hue_delta=200)
    with pytest.raises(ValueError, match="min_ious"):
        MinIoURandomCrop(min_ious=(0.5, 1.5))
    with pytest.raises(ValueError, match="min_crop_size"):
        MinIoURandomCrop(min_crop_size=0.0)
    with pytest.raises(ValueError, match="NaN"):
        MinIoURandomCrop().get_transform(np.zeros((4, 4, 3)), np.array([[0, 0, np.nan, 1]]))
    with pytest.raises(ValueError, match="does not fit"):
        ExpandTransform(5, 0, 10, 10, 12, 12, (0, 0, 0))
    with pytest.raises(ValueError, match="size"):
        ssd_augmentations(0)
