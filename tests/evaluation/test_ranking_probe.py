"""The positive-anchor ranking probe (aLRP's score-follows-IoU claim) on a tiny RetinaNet with
hand-set head outputs: each positive's score is its class's, its box is its anchor (zero
deltas), and every object's best anchor is among its positives."""

import os

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, BoxMode, pairwise_iou
from PIL import Image

from d2_boxunc.config import to_synthetic
from d2_boxunc.evaluation.ranking_probe import positive_ranking_probe, positive_scores_and_ious

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
A1 = os.path.join(ROOT, "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py")
BOXES = [[10, 12, 60, 70], [90, 30, 150, 90]]
CLASSES = [2, 0]


@pytest.fixture(scope="module")
def model_and_cfg():
    cfg = to_synthetic(LazyConfig.load(A1), max_iter=1)
    cfg.model.head.conv_dims = [32]
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    with torch.no_grad():
        model.head.bbox_pred.weight.zero_()
        model.head.bbox_pred.bias.zero_()
        model.head.cls_score.weight.zero_()
        a = model.head.cls_score.bias.numel() // model.num_classes  # anchors per location
        model.head.cls_score.bias.copy_(torch.arange(model.num_classes).repeat(a) * 0.5 - 1.0)
    return model, cfg


@pytest.fixture
def dataset_dict(tmp_path):
    path = str(tmp_path / "im.png")
    Image.fromarray(np.full((100, 160, 3), 90, dtype=np.uint8)).save(path)
    annos = [
        {"bbox": b, "bbox_mode": BoxMode.XYXY_ABS, "category_id": c} for b, c in zip(BOXES, CLASSES)
    ]
    crowd = {"bbox": [0, 0, 5, 5], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1, "iscrowd": 1}
    return {"file_name": path, "height": 100, "width": 160, "image_id": 0,
            "annotations": annos + [crowd]}  # fmt: skip


def test_scores_are_the_matched_class_and_boxes_the_anchors(model_and_cfg, dataset_dict):
    model, cfg = model_and_cfg
    scores, ious, obj = positive_scores_and_ious(model, cfg, dataset_dict)
    assert len(scores) > 2 and set(obj.tolist()) == {0, 1}
    expected = torch.sigmoid(torch.tensor(CLASSES, dtype=torch.float32)[obj] * 0.5 - 1.0)
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-6)

    # zero deltas: each positive's box is its anchor, so an object's best positive is its best
    # anchor over the whole pyramid (detectron2's matcher keeps it as a low-quality match)
    from detectron2.config import instantiate as inst

    inputs = inst(cfg.dataloader.test.mapper)(dict(dataset_dict))
    h, w = inputs["image"].shape[1:]
    scale = torch.tensor([w / 160, h / 100] * 2)
    features = model.backbone(model.preprocess_image([inputs]).tensor)
    anchors = Boxes.cat(model.anchor_generator([features[f] for f in model.head_in_features]))
    best = pairwise_iou(anchors, Boxes(torch.tensor(BOXES, dtype=torch.float32) * scale)).max(0)
    for k in (0, 1):
        assert ious[obj == k].max() == pytest.approx(float(best.values[k]), abs=1e-6)
    assert np.all((ious > 0) & (ious <= 1))


def test_probe_pools_images_and_ranks_within_objects(model_and_cfg, dataset_dict):
    model, cfg = model_and_cfg
    report = positive_ranking_probe(model, cfg, [dataset_dict, dataset_dict])
    scores, ious, obj = positive_scores_and_ious(model, cfg, dataset_dict)
    assert report["num_positives"] == 2 * len(scores)
    assert report["positive_mean_iou"] == pytest.approx(float(ious.mean()), rel=1e-6)
    # one score per class: no ranking within an object (NaN, left out), none pooled either
    assert report["num_objects_ranked"] == 0
    assert np.isnan(report["within_object_spearman"])
    assert report["positive_score_iou_spearman"] == report["positive_score_iou_spearman"]


def test_an_image_without_objects_has_no_positives(model_and_cfg, dataset_dict):
    model, cfg = model_and_cfg
    empty = dict(dataset_dict, annotations=[])
    scores, ious, obj = positive_scores_and_ious(model, cfg, empty)
    assert len(scores) == len(ious) == len(obj) == 0
