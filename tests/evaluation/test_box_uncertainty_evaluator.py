"""Calibration metrics on synthetic Gaussian errors of known sigma, and the evaluator end to end."""

import json
import logging
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import Boxes, Instances
from scipy.stats import norm

from d2_boxunc.evaluation.box_uncertainty_evaluator import (
    BoxUncertaintyEvaluator,
    gaussian_nll,
    interval_coverage,
    iou_calibration,
    iou_metrics,
    sigma_metrics,
)


def gaussian_case(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(1.0, 10.0, size=(n, 4))
    pred = rng.uniform(0, 500, size=(n, 4))
    gt = pred + rng.normal(size=(n, 4)) * sigma
    return pred, gt, sigma


def test_calibrated_sigma_has_near_zero_calibration_error():
    pred, gt, sigma = gaussian_case()
    m = sigma_metrics(pred, gt, sigma)
    assert m["interval_ECE"] < 0.6  # percentage points; sampling noise only
    assert abs(m["coverage_gap"]) < 0.6
    # expected NLL of a calibrated Gaussian: E[0.5 log(2 pi sigma^2)] + 0.5
    assert m["NLL"] == pytest.approx(np.mean(0.5 * np.log(2 * np.pi * sigma**2)) + 0.5, abs=0.02)
    assert m["sigma_err_spearman"] > 0.3  # larger sigma, larger errors
    assert m["num_coordinates"] == gt.size


@pytest.mark.parametrize("factor,sign", [(0.5, -1), (2.0, 1)])
def test_over_and_under_confident_sigma_are_penalised(factor, sign):
    pred, gt, sigma = gaussian_case()
    calibrated = sigma_metrics(pred, gt, sigma)
    wrong = sigma_metrics(pred, gt, sigma * factor)
    assert wrong["interval_ECE"] > 10.0
    assert np.sign(wrong["coverage_gap"]) == sign  # too narrow: under-covered, and vice versa
    assert wrong["NLL"] > calibrated["NLL"] + 0.1
    # the exact coverage of the 68.27 % interval when sigma is scaled: P(|N(0,1)| <= factor)
    from scipy.stats import norm

    cov = interval_coverage(gt - pred, sigma * factor, levels=[0.6827])[0]
    assert cov == pytest.approx(2 * norm.cdf(factor) - 1, abs=0.01)


def test_nll_and_coverage_exact_values():
    assert gaussian_nll([0.0], [1.0]) == pytest.approx(0.5 * np.log(2 * np.pi))
    assert gaussian_nll([2.0], [1.0]) == pytest.approx(0.5 * np.log(2 * np.pi) + 2.0)
    # errors at 0.1, 1 and 3 sigma; z(0.5)=0.674, z(0.9)=1.645, z(0.99)=2.576
    cov = interval_coverage([0.1, 1.0, 3.0], [1.0, 1.0, 1.0], levels=[0.5, 0.9, 0.99])
    assert cov.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        gaussian_nll(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="non-negative"):
        gaussian_nll(np.zeros(2), -np.ones(2))
    with pytest.raises(ValueError, match="confidence levels"):
        interval_coverage(np.zeros(2), np.ones(2), levels=[0.5, 1.0])


def test_iou_metrics_rank_and_calibration():
    rng = np.random.default_rng(1)
    true_iou = rng.uniform(0.3, 1.0, 5000)
    good = np.clip(true_iou + rng.normal(0, 0.03, 5000), 0, 1)
    scores = rng.uniform(0, 1, 5000)  # a class score that knows nothing about localisation
    m = iou_metrics(good, true_iou, scores)
    assert m["iou_spearman"] > 0.95 and abs(m["score_iou_spearman"]) < 0.05
    assert m["iou_ECE"] < 1.0
    biased = iou_metrics(np.clip(true_iou - 0.2, 0, 1), true_iou, scores)
    assert biased["iou_ECE"] == pytest.approx(20.0, abs=0.5)  # always 0.2 too low
    ece, table = iou_calibration([0.05, 0.95, 0.97], [0.15, 0.75, 0.77], bins=10)
    assert ece == pytest.approx(0.1 / 3 + 0.2 * 2 / 3) and [n for *_, n in table] == [1, 2]


def _register(tmp_path):
    name = f"unc_test_{uuid.uuid4().hex[:8]}"
    data = {
        "images": [{"id": 1, "width": 400, "height": 400, "file_name": "1.png"}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [100, 100, 100, 100],
                "area": 10000,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 2,
                "bbox": [250, 250, 100, 100],
                "area": 10000,
                "iscrowd": 0,
            },
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(data))
    register_coco_instances(name, {}, str(tmp_path / "gt.json"), str(tmp_path))
    return name


def test_evaluator_end_to_end_writes_plots(tmp_path):
    name = _register(tmp_path)
    try:
        out = tmp_path / "out"
        ev = BoxUncertaintyEvaluator(name, output_dir=str(out))
        ev.reset()
        inst = Instances((400, 400))
        inst.pred_boxes = Boxes(
            torch.tensor(
                [
                    [102.0, 98.0, 200.0, 204.0],  # class a, IoU ~0.9
                    [250.0, 250.0, 330.0, 350.0],  # class b, IoU 0.8
                    [0.0, 0.0, 50.0, 50.0],
                ]
            )
        )  # FP
        inst.scores = torch.tensor([0.9, 0.8, 0.7])
        inst.pred_classes = torch.tensor([0, 1, 0])
        inst.pred_boxes_std = torch.tensor(
            [[2.0, 2.0, 1.0, 4.0], [1.0, 1.0, 40.0, 1.0], [5.0, 5.0, 5.0, 5.0]]
        )
        inst.pred_ious = torch.tensor([0.85, 0.75, 0.2])
        ev.process([{"image_id": 1}], [{"instances": inst}])
        res = ev.evaluate()["box_uncertainty"]
    finally:
        DatasetCatalog.remove(name)
    assert res["num_matched"] == 2 and res["num_detections"] == 3
    # errors (gt - pred): [-2, 2, 0, -4] with sigma [2, 2, 1, 4]; [0, 0, 20, 0] with [1, 1, 40, 1]
    e = np.array([-2, 2, 0, -4, 0, 0, 20, 0.0])
    s = np.array([2, 2, 1, 4, 1, 1, 40, 1.0])
    assert res["NLL"] == pytest.approx(np.mean(0.5 * np.log(2 * np.pi * s**2) + 0.5 * (e / s) ** 2))
    assert res["cov@0.5"] == pytest.approx(
        100 * 5 / 8
    )  # |e|/s = 1, 1, 0, 1, 0, 0, 0.5, 0 vs z = 0.674
    assert res["iou_spearman"] == pytest.approx(1.0)
    assert (out / "coverage_reliability.png").stat().st_size > 1000
    assert (out / "iou_reliability.png").stat().st_size > 1000
    assert (out / "reliability.png").stat().st_size > 1000
    # energy score of the matched coordinates (CRPS of N(box, sigma^2) at the GT), in pixels
    z = e / s
    crps = s * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert res["energy_score"] == pytest.approx(crps.mean())
    # sharpness over all three detections: sigma / sqrt(w h) of the predicted box
    sizes = np.sqrt([98 * 106, 80 * 100, 50 * 50])
    std = np.array([[2, 2, 1, 4], [1, 1, 40, 1], [5, 5, 5, 5.0]])
    assert res["sharpness"] == pytest.approx(np.mean(std / sizes[:, None]))
    # scores 0.9 (TP), 0.8 (TP) in bin (0.8, 0.9], 0.7 (FP): 2/3 x 0.15 + 1/3 x 0.7
    assert res["D-ECE"] == pytest.approx(100 * (2 / 3 * 0.15 + 1 / 3 * 0.7), abs=1e-4)
    # LaECE per class: a: the TP (IoU 9800/10588) at 0.9 and the FP at 0.7; b: IoU 0.8 at 0.8
    iou_a = 98 * 100 / (100 * 100 + 98 * 106 - 98 * 100)
    laece_a = 0.5 * abs(0.9 - iou_a) + 0.5 * 0.7
    assert res["LaECE-a"] == pytest.approx(100 * laece_a, abs=1e-4)
    assert res["LaECE-b"] == pytest.approx(0.0, abs=1e-4)
    assert res["LaECE"] == pytest.approx(100 * laece_a / 2, abs=1e-4)
    # F1: 2/3 (one kept), 1 (two kept: both GT found), 4/5 -> threshold 0.8, no error left
    assert res["outcome/threshold"] == pytest.approx(0.8) and res["outcome/F1"] == 1.0
    assert [res[f"outcome/{k}"] for k in ("TP", "duplicate", "loc_error", "background")] == [
        2,
        0,
        0,
        0,
    ]
    assert res["outcome/missed"] == 0 and res["outcome/TP_frac"] == 1.0
    assert res["outcome/TP-a"] == 1 and res["outcome/TP-b"] == 1
    assert res["outcome/missed_frac-b"] == 0.0
    json.dumps(res)  # train_net.py writes it to eval_results.json


def test_model_without_uncertainty_gets_score_calibration_only(tmp_path, caplog):
    name = _register(tmp_path)
    try:
        ev = BoxUncertaintyEvaluator(name, output_dir=str(tmp_path))
        inst = Instances((400, 400))
        inst.pred_boxes = Boxes(
            torch.tensor(
                [
                    [100.0, 100.0, 200.0, 200.0],  # a: TP
                    [100.0, 100.0, 200.0, 190.0],  # a: duplicate
                    [250.0, 250.0, 290.0, 350.0],  # b: IoU 0.4, the b GT is missed
                    [0.0, 0.0, 20.0, 20.0],  # a: background
                ]
            )
        )
        inst.scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
        inst.pred_classes = torch.tensor([0, 0, 1, 0])
        ev.process([{"image_id": 1}], [{"instances": inst}])
        with caplog.at_level(logging.INFO):
            res = ev.evaluate()["box_uncertainty"]
    finally:
        DatasetCatalog.remove(name)
    assert not {"NLL", "interval_ECE", "energy_score", "sharpness", "iou_spearman"} & set(res)
    assert {"D-ECE", "LaECE", "LaECE-a", "LaECE-b", "outcome/threshold"} <= set(res)
    assert res["outcome/threshold"] == pytest.approx(0.9)  # F1 2/3 with the TP alone
    # the F1-optimal threshold keeps one detection; every outcome over all four is in the
    # pure function's tests, here: the b GT is missed, a is found
    assert res["outcome/missed-b"] == 1 and res["outcome/missed-a"] == 0
    assert res["outcome/missed_frac"] == 0.5
    assert "D-ECE" in caplog.text and "| (all)" in caplog.text  # the table in the log
    assert (tmp_path / "reliability.png").is_file()


def test_model_without_instances_is_skipped(tmp_path, caplog):
    name = _register(tmp_path)
    try:
        ev = BoxUncertaintyEvaluator(name, output_dir=str(tmp_path))
        ev.process([{"image_id": 1}], [{"sem_seg": torch.zeros(2, 4, 4)}])
        with caplog.at_level(logging.INFO):
            assert ev.evaluate() == {}
    finally:
        DatasetCatalog.remove(name)
    assert "skipping" in caplog.text
