"""BoxCOCOEvaluator: AP60-AP90 columns and the faster-coco-eval backend."""

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, Instances

from d2_boxunc.data.register import prepare_dataset
from d2_boxunc.data.tiny import TINY_VAL
from d2_boxunc.evaluation import BoxCOCOEvaluator
from d2_boxunc.evaluation.coco_evaluator import cocoeval_class

HAS_FAST = cocoeval_class("auto").__module__.startswith("faster_coco_eval")


def _scaled_about_centre(box: np.ndarray, iou: float) -> np.ndarray:
    """A box with the same centre, grown so that its IoU with ``box`` is exactly ``iou``."""
    c = (box[:2] + box[2:]) / 2
    half = (box[2:] - box[:2]) / 2 / np.sqrt(iou)  # area / iou, same aspect
    return np.concatenate([c - half, c + half])


def _run(evaluator, per_image):
    """Feed ``per_image`` (image dict -> (boxes XYXY, scores, classes)) through the evaluator."""
    evaluator.reset()
    for d in DatasetCatalog.get(TINY_VAL):
        boxes, scores, classes = per_image(d)
        inst = Instances((d["height"], d["width"]))
        inst.pred_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.as_tensor(scores, dtype=torch.float32)
        inst.pred_classes = torch.as_tensor(classes, dtype=torch.long)
        evaluator.process([{"image_id": d["image_id"]}], [{"instances": inst}])
    return evaluator.evaluate()["bbox"]


def _gt(d):
    boxes = np.array(
        [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]],
        dtype=np.float64,
    ).reshape(-1, 4)
    return boxes, np.array([a["category_id"] for a in d["annotations"]])


def test_high_iou_columns_follow_the_overlap(tmp_path):
    """Every object found once at IoU 0.87: AP at thresholds <= 0.85 is 100, AP90 is 0."""
    prepare_dataset(TINY_VAL)

    def dets(d):
        boxes, classes = _gt(d)
        return (
            np.stack([_scaled_about_centre(b, 0.87) for b in boxes]),
            np.ones(len(boxes)),
            classes,
        )

    res = _run(BoxCOCOEvaluator(TINY_VAL, distributed=False, output_dir=str(tmp_path)), dets)
    assert list(res)[:7] == ["AP", "AP50", "AP60", "AP70", "AP75", "AP80", "AP90"]
    for key in ("AP50", "AP60", "AP70", "AP75", "AP80"):
        assert res[key] == pytest.approx(100.0, abs=1e-6), key
    assert res["AP90"] == pytest.approx(0.0, abs=1e-6)
    assert res["AP"] == pytest.approx(100.0 * 8 / 10, abs=1e-6)  # thresholds 0.50 ... 0.85
    assert (tmp_path / "coco_instances_results.json").is_file()


@pytest.mark.skipif(not HAS_FAST, reason="faster-coco-eval is not installed")
def test_faster_coco_eval_gives_the_pycocotools_table():
    """Noisy, partly misclassified detections: both backends give the same numbers."""
    prepare_dataset(TINY_VAL)
    rng = np.random.default_rng(0)

    def dets(d):
        boxes, classes = _gt(d)
        out_b, out_s, out_c = [], [], []
        for b, c in zip(boxes, classes):
            wh = b[2:] - b[:2]
            for k in range(3):
                jitter = rng.normal(0, 0.03 + 0.08 * k, 4) * np.concatenate([wh, wh])
                out_b.append(b + jitter)
                out_s.append(rng.uniform())
                out_c.append(c if rng.uniform() < 0.8 else (c + 1) % 4)
        return np.array(out_b), np.array(out_s), np.array(out_c)

    fixed = {d["image_id"]: dets(d) for d in DatasetCatalog.get(TINY_VAL)}
    tables = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        ev = BoxCOCOEvaluator(TINY_VAL, distributed=False, backend=backend)
        assert ev.backend == backend
        tables[backend] = _run(ev, lambda d: fixed[d["image_id"]])
    slow, fast = tables["pycocotools"], tables["faster_coco_eval"]
    assert set(slow) == set(fast) and 0 < slow["AP"] < 100
    for key in slow:
        assert fast[key] == pytest.approx(slow[key], abs=1e-9, nan_ok=True), key


def test_no_detections_and_bad_backend():
    prepare_dataset(TINY_VAL)
    res = _run(
        BoxCOCOEvaluator(TINY_VAL, distributed=False),
        lambda d: (np.zeros((0, 4)), np.zeros(0), np.zeros(0)),
    )
    assert np.isnan(res["AP"]) and np.isnan(res["AP90"])
    with pytest.raises(ValueError, match="backend must be one of"):
        BoxCOCOEvaluator(TINY_VAL, backend="fast")


def test_saved_results_carry_sigma_and_predicted_iou(tmp_path):
    """KL / IoU-Net outputs keep their sigma and predicted IoU in coco_instances_results.json."""
    import json

    prepare_dataset(TINY_VAL)
    ev = BoxCOCOEvaluator(TINY_VAL, distributed=False, output_dir=str(tmp_path))
    ev.reset()
    d = DatasetCatalog.get(TINY_VAL)[0]
    boxes, classes = _gt(d)
    inst = Instances((d["height"], d["width"]))
    inst.pred_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
    inst.scores = torch.linspace(0.9, 0.5, len(boxes))
    inst.pred_classes = torch.as_tensor(classes)
    inst.pred_boxes_std = torch.arange(4 * len(boxes), dtype=torch.float32).reshape(-1, 4)
    inst.pred_ious = torch.linspace(0.6, 0.8, len(boxes))
    ev.process([{"image_id": d["image_id"]}, {"image_id": -1}], [{"instances": inst}, {}])
    ev.evaluate()
    saved = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert len(saved) == len(boxes)
    for i, r in enumerate(saved):
        assert r["bbox_std"] == pytest.approx([4.0 * i + k for k in range(4)])
        assert r["pred_iou"] == pytest.approx(float(inst.pred_ious[i]))
        assert r["image_id"] == d["image_id"]
