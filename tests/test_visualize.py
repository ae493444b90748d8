"""Drawing of predicted uncertainty on detections."""

import numpy as np
import torch
from detectron2.structures import Boxes, Instances
from detectron2.utils.visualizer import Visualizer

from d2_boxunc.visualize import draw_detections, draw_std_extents, quality_labels


def test_std_extents_are_drawn_around_each_box():
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    inst = Instances((120, 160))
    inst.pred_boxes = Boxes(torch.tensor([[40.0, 30.0, 110.0, 90.0]]))
    inst.pred_boxes_std = torch.tensor([[10.0, 5.0, 20.0, 10.0]])
    vis = Visualizer(image)
    draw_std_extents(vis, inst)
    out = vis.output.get_image().astype(int).sum(axis=2)
    # outer box (30, 25, 130, 100) and inner box (50, 35, 90, 80): their edges are painted
    for x in (30, 50, 90, 130):
        assert out[40:70, x - 2 : x + 3].max() > 0, x
    # nothing far from both boxes
    assert out[:15, :].max() == 0 and out[:, 145:].max() == 0


def test_inverted_inner_extent_is_skipped():
    image = np.zeros((60, 60, 3), dtype=np.uint8)
    inst = Instances((60, 60))
    inst.pred_boxes = Boxes(torch.tensor([[20.0, 20.0, 30.0, 30.0]]))
    inst.pred_boxes_std = torch.tensor([[8.0, 8.0, 8.0, 8.0]])  # the inner box would invert
    vis = Visualizer(image)
    draw_std_extents(vis, inst)
    out = vis.output.get_image().astype(int).sum(axis=2)
    assert out[25, 25] == 0  # nothing drawn inside the box
    assert out[12:38, 10:14].max() > 0  # the outer extent at x = 12


def _detections(with_ious: bool):
    inst = Instances((120, 160))
    inst.pred_boxes = Boxes(torch.tensor([[20.0, 40.0, 100.0, 110.0], [110.0, 10.0, 150.0, 60.0]]))
    inst.scores = torch.tensor([0.876, 0.5])
    inst.pred_classes = torch.tensor([1, 0])
    if with_ious:
        inst.pred_ious = torch.tensor([0.7234, 0.41])
    return inst


def test_labels_show_predicted_iou():
    assert quality_labels(_detections(True), ["rectangle", "ellipse"]) == [
        "ellipse 88% IoU 0.72",
        "rectangle 50% IoU 0.41",
    ]
    assert quality_labels(_detections(False), ["rectangle", "ellipse"]) == [
        "ellipse 88%",
        "rectangle 50%",
    ]


def test_predicted_iou_drawing_writes_png(tmp_path):
    from PIL import Image

    images = {}
    for with_ious in (False, True):
        vis = Visualizer(np.zeros((120, 160, 3), dtype=np.uint8))
        draw_detections(vis, _detections(with_ious))
        images[with_ious] = vis.output.get_image()
    # same boxes; the longer labels of the IoU version paint more pixels
    assert (images[True].sum(axis=2) > 0).sum() > (images[False].sum(axis=2) > 0).sum()
    path = tmp_path / "dets.png"
    Image.fromarray(images[True]).save(path)
    assert Image.open(path).size == (160, 120)
