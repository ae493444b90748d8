"""The study's resampled COCO AP equals pycocotools' on the plain and on a duplicated image set."""

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from d2_boxunc.study.coco_tables import average_precision, match


def _dataset(rng, num_images=12, num_cats=3):
    images, anns = [], []
    for i in range(1, num_images + 1):
        images.append({"id": i, "width": 200, "height": 200, "file_name": f"{i}.png"})
        for _ in range(rng.integers(0, 5)):
            x, y = rng.uniform(0, 120, 2)
            w, h = rng.uniform(15, 70, 2)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(rng.integers(1, num_cats + 1)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(rng.uniform() < 0.05),
                }
            )
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, num_cats + 1)]
    return {"images": images, "annotations": anns, "categories": cats}


def _detections(rng, data, num_cats=3):
    dets = []
    for a in data["annotations"]:
        for k in range(rng.integers(0, 4)):
            x, y, w, h = a["bbox"]
            j = rng.normal(0, 0.05 + 0.1 * k, 4)
            cat = a["category_id"] if rng.uniform() < 0.8 else int(rng.integers(1, num_cats + 1))
            dets.append(
                {
                    "image_id": a["image_id"],
                    "category_id": cat,
                    "bbox": [x + j[0] * w, y + j[1] * h, w * (1 + j[2]), h * (1 + j[3])],
                    "score": float(np.round(rng.uniform(), 2)),  # ties on purpose
                }
            )
    for img in data["images"]:  # background false positives
        for _ in range(rng.integers(0, 3)):
            dets.append(
                {
                    "image_id": img["id"],
                    "category_id": int(rng.integers(1, num_cats + 1)),
                    "bbox": [*rng.uniform(0, 150, 2), *rng.uniform(10, 50, 2)],
                    "score": float(np.round(rng.uniform(), 2)),
                }
            )
    return dets


def _coco(data):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(data)
        gt.createIndex()
    return gt


def _cocoeval_stats(gt, dets):
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    p = ev.eval["precision"][:, :, :, 0, -1]

    def at(t):
        q = p[t][p[t] > -1]
        return 100 * q.mean()

    return {
        "AP": 100 * ev.stats[0],
        "AP50": 100 * ev.stats[1],
        "AP75": 100 * ev.stats[2],
        "AP90": at(8),
    }


def _ours(tables, weights=None):
    return {
        "AP": average_precision(tables, weights),
        "AP50": average_precision(tables, weights, 0.5),
        "AP75": average_precision(tables, weights, 0.75),
        "AP90": average_precision(tables, weights, 0.9),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_cocoeval(seed):
    rng = np.random.default_rng(seed)
    data = _dataset(rng)
    dets = _detections(rng, data)
    gt = _coco(data)
    expected = _cocoeval_stats(gt, dets)
    got = _ours(match(gt, copy.deepcopy(dets)))
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-9), k


def test_weights_equal_duplicated_images():
    """Drawing image i twice (weight 2) equals a dataset holding two copies of image i."""
    rng = np.random.default_rng(5)
    data = _dataset(rng)
    dets = _detections(rng, data)
    weights = rng.integers(0, 3, len(data["images"])).astype(float)
    # build the multiset explicitly: copy k of image i gets a new id
    dup = {"images": [], "annotations": [], "categories": data["categories"]}
    dup_dets = []
    for img, w in zip(data["images"], weights):
        for k in range(int(w)):
            new_id = img["id"] * 10 + k
            dup["images"].append({**img, "id": new_id})
            for a in data["annotations"]:
                if a["image_id"] == img["id"]:
                    dup["annotations"].append(
                        {**a, "id": len(dup["annotations"]) + 1, "image_id": new_id}
                    )
            dup_dets += [{**d, "image_id": new_id} for d in dets if d["image_id"] == img["id"]]
    expected = _cocoeval_stats(_coco(dup), dup_dets)
    got = _ours(match(_coco(data), copy.deepcopy(dets)), weights)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-9), k


def test_pairs_are_the_true_positives_at_half_iou():
    rng = np.random.default_rng(3)
    data = _dataset(rng)
    dets = _detections(rng, data)
    tables = match(_coco(data), copy.deepcopy(dets))
    p = tables.pairs
    assert len(p.iou) == sum(int(t.tp[0].sum()) for t in tables.tables) > 0
    assert (p.iou >= 0.5).all() and (p.iou <= 1).all()
    for r, g in zip(p.result, p.gt_id):  # same image, same class
        gt = next(a for a in data["annotations"] if a["id"] == g)
        assert dets[r]["image_id"] == gt["image_id"] and dets[r]["category_id"] == gt["category_id"]
    assert np.isnan(average_precision(match(_coco({**data, "annotations": []}), []))), "no GT"


def test_bootstrap_ap_replicates_equal_each_metric_alone():
    """The analysis reads every AP metric of a resample from one accumulation; each equals the
    metric computed on its own for that resample."""
    from d2_boxunc.study.analysis import Analysis
    from d2_boxunc.study.metrics import AP_METRICS, RunData, metric

    rng = np.random.default_rng(7)
    data = _dataset(rng, num_images=20)
    gt = _coco(data)
    tables = match(gt, _detections(rng, data))
    z = np.zeros(0)
    run = RunData(tables, None, z.reshape(0, 4), z, z.astype(bool), None, {})
    analysis = Analysis({("baseline", 0): run}, n_resamples=25)
    for name in AP_METRICS:
        reps = analysis.replicates("baseline", 0, name)
        expected = [metric(run, name, w) for w in analysis.counts]
        np.testing.assert_array_equal(reps, expected)
        assert np.nanstd(reps) > 0, name  # the resamples differ


def test_forked_precompute_equals_run_by_run_replicates(monkeypatch):
    """The analysis bootstraps its runs in forked processes (``precompute``); the replicates are
    exactly those computed run by run in the study process."""
    from d2_boxunc.study import analysis as analysis_module
    from d2_boxunc.study.analysis import Analysis
    from d2_boxunc.study.metrics import AP_METRICS, RunData

    rng = np.random.default_rng(11)
    z = np.zeros(0)
    runs = {}
    data = _dataset(rng, num_images=15)
    for seed in range(3):
        tables = match(_coco(data), _detections(rng, data))
        runs[("baseline", seed)] = RunData(
            tables, None, z.reshape(0, 4), z, z.astype(bool), None, {}
        )
    alone = Analysis(runs, n_resamples=20)
    expected = {(k, name): alone.replicates(*k, name) for k in runs for name in AP_METRICS}
    forked = Analysis(runs, n_resamples=20)
    forked.precompute(jobs=2)

    def not_again(*args):
        raise AssertionError("replicates recomputed after precompute")

    monkeypatch.setattr(analysis_module, "_ap_replicates", not_again)
    for (k, name), reps in expected.items():
        np.testing.assert_array_equal(forked.replicates(*k, name), reps)
    assert not np.array_equal(expected[(("baseline", 0), "AP")], expected[(("baseline", 1), "AP")])
