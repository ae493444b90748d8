"""The positive-anchor ranking probe inside the study: its cached values become seed-level metrics
of a run (no image resampling), compared with Welch intervals, and a run's train_net arguments
are split into overrides and the own-data test set."""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from d2_boxunc.study.analysis import Analysis
from d2_boxunc.study.eval_variants import parse_run_args
from d2_boxunc.study.metrics import load_run, metric
from d2_boxunc.study.stats import seed_level_interval


@pytest.fixture
def coco_gt():
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "width": 100, "height": 100} for i in (1, 2)],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
             "iscrowd": 0}
            for i in (1, 2)
        ],
        "categories": [{"id": 1, "name": "box"}],
    }  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def _run(tmp_path, name, probe):
    d = tmp_path / name
    d.mkdir()
    dets = [
        {"image_id": i, "category_id": 1, "bbox": [11, 10, 40, 40], "score": 0.9} for i in (1, 2)
    ]
    (d / "coco_instances_results.json").write_text(json.dumps(dets))
    (d / "eval_results.json").write_text(json.dumps({"lrp": {"oLRP": 50.0, "oLRP_loc": 10.0}}))
    if probe is not None:
        key = {"positive_score_iou_spearman": probe[0], "within_object_spearman": probe[1]}
        (d / "ranking_probe.json").write_text(json.dumps({"key": {}, "probe": key}))
    return str(d)


def test_probe_values_are_seed_level_metrics(tmp_path, coco_gt):
    values = {("alrp", 0): (0.5, 0.1), ("alrp", 1): (0.55, 0.12), ("focal", 0): (0.4, -0.02),
              ("focal", 1): (0.42, 0.0)}  # fmt: skip
    runs = {k: load_run(coco_gt, _run(tmp_path, f"{k[0]}{k[1]}", v)) for k, v in values.items()}
    assert metric(runs[("alrp", 1)], "pos_score_iou_spearman") == 0.55
    assert metric(runs[("focal", 0)], "pos_within_object_spearman") == -0.02
    analysis = Analysis(runs, n_resamples=20)
    interval, kind = analysis.compare("alrp", "focal", "pos_score_iou_spearman")
    expected = seed_level_interval([0.5, 0.55], [0.4, 0.42])  # no image variance added
    assert kind == "seeds"  # a value per run: no image resampling
    assert (interval.ci_low, interval.ci_high) == pytest.approx((expected.ci_low, expected.ci_high))
    assert np.isnan(analysis.replicates("alrp", 0, "pos_score_iou_spearman")).all()
    table = {e["row"]: e for e in analysis.table()}
    assert table["alrp"]["pos_within_object_spearman"]["mean"] == pytest.approx(0.11)


def test_a_run_without_a_probe_has_nan(tmp_path, coco_gt):
    run = load_run(coco_gt, _run(tmp_path, "baseline0", None))
    assert np.isnan(metric(run, "pos_score_iou_spearman"))


def test_train_net_arguments_split_into_flags_and_overrides():
    args = ["--config-file", "c.py", "--eval-only", "--synthetic", "--train-coco", "t.json", "t/",
            "--test-coco", "v.json", "v/", "train.max_iter=5",
            "dataloader.train.mapper._target_=X"]  # fmt: skip
    ns = parse_run_args(args)
    assert (ns.config_file, ns.eval_only, ns.synthetic) == ("c.py", True, True)
    assert (ns.train_coco, ns.test_coco) == (["t.json", "t/"], ["v.json", "v/"])
    assert ns.opts == ["train.max_iter=5", "dataloader.train.mapper._target_=X"]
    ns = parse_run_args(["--synthetic", "a=1"])
    assert (ns.opts, ns.test_coco, ns.config_file, ns.eval_only) == (["a=1"], None, None, False)
