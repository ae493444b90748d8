"""IoU-Net on Cascade R-CNN (IoUNetCascadeROIHeads) through the I6 cascade config."""

import os

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.utils.events import EventStorage

from d2_boxunc.config import to_synthetic
from tests.test_configs import _images, _targets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs/IoUNet/iounet_cascade_rcnn_R_50_FPN_1x.py")


def _model():
    torch.manual_seed(0)
    cfg = to_synthetic(LazyConfig.load(CONFIG), max_iter=10)
    return instantiate(cfg.model)


def test_training_adds_the_iou_loss_to_the_three_stages():
    model = _model().train()
    with EventStorage():
        losses = model(_targets(_images()))
    expected = {f"loss_{n}_stage{k}" for n in ("cls", "box_reg") for k in range(3)}
    assert expected | {"loss_iou", "loss_rpn_cls", "loss_rpn_loc"} == set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    head = model.roi_heads
    assert head.iou_head.fc_iou.weight.grad.abs().sum() > 0
    assert all(p.bbox_pred.weight.grad is not None for p in head.box_predictor)


def test_inference_matches_the_plain_cascade_when_the_iou_stages_are_off():
    model = _model().eval()
    head = model.roi_heads
    images = _images()
    with torch.no_grad():
        head.test_iou_head = False
        plain = model(images)
        head.test_iou_head = True
        head.test_nms_type, head.refine, head.final_score = "standard", False, "cls"
        same = model(images)
        head.test_nms_type, head.refine, head.final_score = "iou_guided", True, "cls_x_iou"
        full = model(images)
    for a, b in zip(plain, same):
        a, b = a["instances"], b["instances"]
        assert len(a) > 0 and len(a) == len(b)
        torch.testing.assert_close(b.pred_boxes.tensor, a.pred_boxes.tensor)
        torch.testing.assert_close(b.scores, a.scores)
        assert torch.equal(b.pred_classes, a.pred_classes)
    for out in full:
        inst = out["instances"]
        assert inst.has("pred_ious") and inst.has("cls_scores")
        assert ((inst.pred_ious >= 0) & (inst.pred_ious <= 1)).all()


def test_thresholds_come_from_the_last_stage():
    model = _model().eval()
    head = model.roi_heads
    assert head._test_predictor is head.box_predictor[-1]
    head.box_predictor[-1].test_topk_per_image = 3
    with torch.no_grad():
        out = model(_images())
    assert all(len(o["instances"]) <= 3 for o in out)
