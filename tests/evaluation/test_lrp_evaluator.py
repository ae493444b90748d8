"""LRP / oLRP on hand-built detections with known answers, a brute-force cross-check, and the
detectron2 evaluator end to end."""

import contextlib
import io
import json
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO

from d2_boxunc.evaluation.lrp_evaluator import LRPEvaluator, compute_lrp, lrp_curve

GT_A1 = [0.0, 0.0, 100.0, 100.0]  # xywh, class 1, image 1
GT_A2 = [200.0, 0.0, 100.0, 100.0]  # class 1, image 1
GT_B1 = [0.0, 200.0, 100.0, 100.0]  # class 2, image 2


def coco_json(path, anns, num_images=2, crowd=()):
    data = {
        "images": [
            {"id": i, "width": 400, "height": 400, "file_name": f"{i}.png"}
            for i in range(1, num_images + 1)
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {
                "id": j + 1,
                "image_id": img,
                "category_id": cat,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": int(j in crowd),
            }
            for j, (img, cat, box) in enumerate(anns)
        ],
    }
    with open(path, "w") as f:
        json.dump(data, f)
    return str(path)


def load(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(path)


def det(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": list(box), "score": score}


@pytest.fixture
def gt(tmp_path):
    return load(coco_json(tmp_path / "gt.json", [(1, 1, GT_A1), (1, 1, GT_A2), (2, 2, GT_B1)]))


def summary(gt, dets):
    _, res = compute_lrp(gt, dets)
    return res.summary, res.per_class


def test_perfect_detections_have_zero_error(gt):
    dets = [det(1, 1, GT_A1, 0.9), det(1, 1, GT_A2, 0.8), det(2, 2, GT_B1, 0.7)]
    s, per_class = summary(gt, dets)
    assert s == {"oLRP": 0.0, "oLRP_loc": 0.0, "oLRP_FP": 0.0, "oLRP_FN": 0.0, "LRP": 0.0}
    assert per_class[0].threshold == pytest.approx(0.8)  # keeps both class-a detections
    assert per_class[1].threshold == pytest.approx(0.7)


def test_only_false_positives_give_one(gt):
    dets = [
        det(1, 1, [300.0, 300.0, 50.0, 50.0], 0.9),
        det(2, 2, [300.0, 300.0, 50.0, 50.0], 0.5),
        det(1, 2, GT_A1, 0.8),
    ]  # right place, wrong class
    s, per_class = summary(gt, dets)
    assert s["oLRP"] == 1.0 and s["oLRP_FN"] == 1.0 and s["LRP"] == 1.0
    assert np.isnan(s["oLRP_loc"]) and np.isnan(s["oLRP_FP"])
    assert all(np.isnan(c.threshold) for c in per_class)


def test_known_mixture(gt):
    dets = [
        # class a: TP IoU 0.75, FP, TP IoU 0.8 in decreasing score
        det(1, 1, [0.0, 0.0, 75.0, 100.0], 0.9),
        det(1, 1, [100.0, 300.0, 50.0, 50.0], 0.8),
        det(1, 1, [200.0, 0.0, 100.0, 80.0], 0.7),
        # class b: TP IoU 0.6, then an FP
        det(2, 2, [0.0, 200.0, 60.0, 100.0], 0.95),
        det(2, 2, [300.0, 300.0, 50.0, 50.0], 0.3),
    ]
    s, (a, b) = summary(gt, dets)
    # class a after each detection: (0.25/0.5)/2 = 0.75, (0.5+1+1)/3, (0.5+0.4+1)/3 = 19/30
    assert a.olrp == pytest.approx(19 / 30)
    assert (a.loc, a.fp, a.fn, a.threshold) == pytest.approx((0.225, 1 / 3, 0.0, 0.7))
    assert a.lrp == pytest.approx(19 / 30)
    # class b: 0.4/0.5 = 0.8 after the TP, (0.8+1)/2 = 0.9 with the FP
    assert (b.olrp, b.loc, b.fp, b.fn, b.threshold) == pytest.approx((0.8, 0.4, 0.0, 0.0, 0.95))
    assert b.lrp == pytest.approx(0.9)
    assert s["oLRP"] == pytest.approx((19 / 30 + 0.8) / 2)
    assert s["oLRP_loc"] == pytest.approx((0.225 + 0.4) / 2)
    assert s["oLRP_FP"] == pytest.approx(1 / 6)
    assert s["LRP"] == pytest.approx((19 / 30 + 0.9) / 2)


def test_duplicates_and_misses(gt):
    # class a: the same GT found twice (the lower-scored copy is an FP, as in COCO), GT_A2 missed
    dets = [det(1, 1, GT_A1, 0.9), det(1, 1, [0.0, 0.0, 100.0, 90.0], 0.8)]
    _, (a, b) = summary(gt, dets)
    assert (a.olrp, a.fp, a.fn, a.threshold) == pytest.approx((0.5, 0.0, 0.5, 0.9))
    assert a.lrp == pytest.approx(2 / 3)  # 1 TP (IoU 1), 1 FP, 1 FN
    assert b.olrp == 1.0 and b.fn == 1.0  # no class-b detection


def test_empty_predictions(gt):
    s, per_class = summary(gt, [])
    assert s["oLRP"] == 1.0 and s["oLRP_FN"] == 1.0 and np.isnan(s["oLRP_loc"])
    assert [c.num_gt for c in per_class] == [2, 1]


def test_classes_without_ground_truth_are_left_out(tmp_path):
    gt = load(coco_json(tmp_path / "gt.json", [(1, 1, GT_A1)]))  # no class-b object anywhere
    s, (a, b) = summary(gt, [det(1, 1, GT_A1, 0.9), det(1, 2, [300.0, 0.0, 50.0, 50.0], 0.9)])
    assert b is None and a.olrp == 0.0 and s["oLRP"] == 0.0
    empty = load(coco_json(tmp_path / "empty.json", []))
    s, per_class = summary(empty, [det(1, 1, GT_A1, 0.9)])
    assert per_class == [None, None] and np.isnan(s["oLRP"])


def test_crowd_ground_truth_absorbs_detections(tmp_path):
    gt = load(
        coco_json(
            tmp_path / "gt.json", [(1, 1, GT_A1), (1, 1, [200.0, 0.0, 150.0, 150.0])], crowd=(1,)
        )
    )
    _, (a, _) = summary(gt, [det(1, 1, GT_A1, 0.9), det(1, 1, [210.0, 10.0, 50.0, 50.0], 0.95)])
    assert a.olrp == 0.0 and a.num_gt == 1  # the crowd-matched detection is neither TP nor FP


def test_lrp_curve_rejects_no_ground_truth():
    with pytest.raises(ValueError, match="num_gt"):
        lrp_curve(np.ones(2), np.ones(2, bool), 0)


def _brute_force_olrp(gt_boxes, dets, tau=0.5):
    """min over thresholds of LRP, re-matching greedily (score order, best IoU) at each one."""

    def iou(a, b):
        ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        inter = ix * iy
        return inter / (a[2] * a[3] + b[2] * b[3] - inter)

    best = 1.0
    for s in sorted({d["score"] for d in dets}):
        kept = sorted([d for d in dets if d["score"] >= s], key=lambda d: -d["score"])
        taken, tp, loc = set(), 0, 0.0
        for d in kept:
            cands = [
                (iou(d["bbox"], g), j)
                for j, (img, g) in enumerate(gt_boxes)
                if img == d["image_id"] and j not in taken
            ]
            if cands and max(cands)[0] >= tau:
                v, j = max(cands)
                taken.add(j)
                tp += 1
                loc += (1 - v) / (1 - tau)
        fp, fn = len(kept) - tp, len(gt_boxes) - tp
        best = min(best, (loc + fp + fn) / (tp + fp + fn))
    return best


def test_agrees_with_brute_force_on_random_scenes(tmp_path):
    rng = np.random.default_rng(0)
    for trial in range(5):
        gt_boxes = []
        for img in (1, 2, 3):
            for _ in range(rng.integers(1, 4)):
                x, y = rng.uniform(0, 300, 2)
                gt_boxes.append(
                    (
                        img,
                        [
                            float(x),
                            float(y),
                            float(rng.uniform(20, 90)),
                            float(rng.uniform(20, 90)),
                        ],
                    )
                )
        dets = []
        for img, g in gt_boxes:  # jittered copies, some duplicated, plus random false positives
            for _ in range(rng.integers(0, 3)):
                x, y = g[0] + rng.normal(0, 8), g[1] + rng.normal(0, 8)
                box = [x, y, g[2] * rng.uniform(0.8, 1.2), g[3] * rng.uniform(0.8, 1.2)]
                dets.append(det(img, 1, [float(v) for v in box], float(rng.uniform())))
        for _ in range(4):
            x, y = rng.uniform(0, 300, 2)
            dets.append(
                det(
                    int(rng.integers(1, 4)),
                    1,
                    [float(x), float(y), 40.0, 40.0],
                    float(rng.uniform()),
                )
            )
        gt = load(coco_json(tmp_path / f"gt{trial}.json", [(i, 1, b) for i, b in gt_boxes], 3))
        _, res = compute_lrp(gt, dets)
        assert res.per_class[0].olrp == pytest.approx(_brute_force_olrp(gt_boxes, dets), abs=1e-9)


def test_evaluator_end_to_end(tmp_path):
    name = f"lrp_test_{uuid.uuid4().hex[:8]}"
    path = coco_json(tmp_path / "gt.json", [(1, 1, GT_A1), (1, 1, GT_A2), (2, 2, GT_B1)])
    register_coco_instances(name, {}, path, str(tmp_path))
    DatasetCatalog.get(name)  # fills the dataset-id -> contiguous-id mapping
    try:
        ev = LRPEvaluator(name, output_dir=str(tmp_path / "out"))
        ev.reset()

        def instances(boxes_xywh, scores, classes):
            inst = Instances((400, 400))
            b = torch.tensor(boxes_xywh, dtype=torch.float32)
            inst.pred_boxes = Boxes(torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1))
            inst.scores = torch.tensor(scores)
            inst.pred_classes = torch.tensor(classes)
            return {"instances": inst}

        ev.process(
            [{"image_id": 1}, {"image_id": 2}],
            [
                instances(
                    [[0, 0, 75, 100], [100, 300, 50, 50], [200, 0, 100, 80]],
                    [0.9, 0.8, 0.7],
                    [0, 0, 0],
                ),
                instances([[0, 200, 60, 100], [300, 300, 50, 50]], [0.95, 0.3], [1, 1]),
            ],
        )
        res = ev.evaluate()["lrp"]
    finally:
        DatasetCatalog.remove(name)
    assert res["oLRP"] == pytest.approx(100 * (19 / 30 + 0.8) / 2, abs=1e-4)
    assert res["oLRP-a"] == pytest.approx(100 * 19 / 30, abs=1e-4)
    assert res["oLRP-b"] == pytest.approx(80.0, abs=1e-4)
    assert res["thr-b"] == pytest.approx(0.95)
    per_class = json.loads((tmp_path / "out" / "lrp_per_class.json").read_text())
    assert per_class["a"]["fp"] == pytest.approx(1 / 3)
