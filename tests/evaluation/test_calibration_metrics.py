"""D-ECE, LaECE, energy score, sharpness and the outcome breakdown on hand-computed cases."""

import numpy as np
import pytest
from scipy.stats import norm

from d2_boxunc.evaluation.calibration import (
    OUTCOMES,
    ImageDetections,
    binned_calibration_error,
    box_iou,
    classify_detections,
    detection_calibration,
    detection_ece,
    energy_score,
    f1_optimal_threshold,
    gaussian_energy_score,
    localisation_aware_ece,
    match_detections,
    outcome_breakdown,
    sharpness,
)

# --- D-ECE -------------------------------------------------------------------------------------


def test_dece_is_zero_when_precision_equals_confidence_in_every_bin():
    scores, tp = [], []
    for b in range(10):
        conf = (b + 0.5) / 10  # 0.05, 0.15, ..., 0.95: one per bin
        n_tp = int(round(conf * 100))
        scores += [conf] * 100
        tp += [True] * n_tp + [False] * (100 - n_tp)
    ece, table = detection_ece(scores, tp, bins=10)
    assert ece == pytest.approx(0.0, abs=1e-12)
    assert table["count"].tolist() == [100] * 10
    assert table["target"] == pytest.approx(table["confidence"])


def test_dece_of_bernoulli_outcomes_is_small():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200_000)
    ece, _ = detection_ece(conf, rng.uniform(0, 1, conf.size) < conf)
    assert ece < 0.005  # sampling noise only
    # the same detections all counted as false positives: the gap is the mean score
    ece_fp, _ = detection_ece(conf, np.zeros(conf.size, dtype=bool))
    assert ece_fp == pytest.approx(conf.mean(), abs=1e-9)


def test_dece_of_an_over_confident_detector():
    # all at 0.95, none correct: the gap is 0.95
    assert detection_ece([0.95] * 7, [False] * 7)[0] == pytest.approx(0.95)
    # 10 detections at 0.9 with 6 TPs (gap 0.3), 30 at 0.3 with 3 TPs (gap 0.2): count-weighted
    scores = [0.9] * 10 + [0.3] * 30
    tp = [True] * 6 + [False] * 4 + [True] * 3 + [False] * 27
    ece, table = detection_ece(scores, tp, bins=10)
    assert ece == pytest.approx(10 / 40 * 0.3 + 30 / 40 * 0.2)
    assert np.flatnonzero(table["count"]).tolist() == [2, 8]  # 0.3 in (0.2, 0.3], 0.9 in (0.8, 0.9]


def test_bins_are_right_closed_and_the_first_takes_zero():
    _, table = binned_calibration_error([0.0, 0.1, 0.3, 0.30001, 1.0], [0, 0, 0, 0, 0], bins=10)
    assert table["count"].tolist() == [2, 0, 1, 1, 0, 0, 0, 0, 0, 1]
    assert np.isnan(table["target"][1])  # empty bin
    assert np.isnan(binned_calibration_error([], [], bins=10)[0])
    with pytest.raises(ValueError, match="same shape"):
        binned_calibration_error([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="finite"):
        binned_calibration_error([np.nan], [1.0])
    with pytest.raises(ValueError, match="positive integer"):
        binned_calibration_error([0.5], [1.0], bins=0)


# --- LaECE -------------------------------------------------------------------------------------


def test_laece_hand_case_is_a_mean_over_classes():
    # class 0: two detections at 0.9, one TP with IoU 0.8, one FP: target mean 0.4, gap 0.5
    # class 1: one detection at 0.6, a TP with IoU 0.7: gap 0.1
    scores, tp_iou, classes = [0.9, 0.9, 0.6], [0.8, 0.0, 0.7], [0, 0, 1]
    laece, per_class, table = localisation_aware_ece(scores, tp_iou, classes, bins=25)
    assert per_class == pytest.approx({0: 0.5, 1: 0.1})
    assert laece == pytest.approx(0.3)  # not the detection-weighted (2 x 0.5 + 0.1) / 3
    assert table["count"].sum() == 3
    # D-ECE of the same detections only asks TP or not: bin 0.9 has precision 1/2, bin 0.6 has 1
    assert detection_ece(scores, [True, False, True])[0] == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)
    with pytest.raises(ValueError, match="same length"):
        localisation_aware_ece([0.5], [0.5, 0.2], [0])


def _gt_image(boxes, scores, classes, gt_boxes, gt_classes, **kw):
    return ImageDetections(
        np.array(boxes, dtype=float).reshape(-1, 4),
        np.array(scores, dtype=float),
        np.array(classes),
        np.array(gt_boxes, dtype=float).reshape(-1, 4),
        np.array(gt_classes),
        **kw,
    )


def test_laece_from_boxes_is_zero_when_the_score_is_the_iou():
    # IoU of [0, 0, 10, 8] with [0, 0, 10, 10] is 0.8 and the score says 0.8
    img = _gt_image([[0, 0, 10, 8]], [0.8], [0], [[0, 0, 10, 10]], [0])
    assert detection_calibration([img])["laece"] == pytest.approx(0.0, abs=1e-12)
    # a far-away detection at 0.3 (another bin): its target is 0, so that class's error is
    # 1/2 x 0.3; D-ECE: bin 0.8 precision 1 (gap 0.2), bin 0.3 precision 0 (gap 0.3)
    img = _gt_image([[0, 0, 10, 8], [50, 50, 60, 60]], [0.8, 0.3], [0, 0], [[0, 0, 10, 10]], [0])
    out = detection_calibration([img])
    assert out["laece"] == pytest.approx(0.15)
    assert out["dece"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)
    assert out["laece_per_class"] == pytest.approx({0: 0.15})


def test_laece_zero_threshold_still_needs_an_overlap():
    # LaECE_0 (tau = 0): a detection that does not touch the GT must not take it, or the
    # well-placed lower-scoring detection would lose its match
    img = _gt_image([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.5], [0, 0], [[0, 0, 10, 10]], [0])
    m = match_detections(img, iou_threshold=0.0)
    assert m.gt_index.tolist() == [-1, 0] and m.iou.tolist() == [0.0, 1.0]


# --- energy score, sharpness -------------------------------------------------------------------


def test_energy_score_closed_form_matches_monte_carlo():
    rng = np.random.default_rng(0)
    for mu, sigma, y in [(0.0, 1.0, 0.0), (3.0, 2.0, 0.5), (-1.0, 0.5, 2.0)]:
        x = rng.normal(mu, sigma, 400_000)
        x2 = rng.normal(mu, sigma, 400_000)
        mc = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x - x2))
        closed = float(gaussian_energy_score(np.array(y - mu), np.array(sigma)))
        assert closed == pytest.approx(mc, abs=0.01 * sigma + 0.005)


def test_energy_score_known_values_and_limits():
    # at y = mu: sigma (2 phi(0) - 1/sqrt(pi)) = sigma (sqrt(2) - 1) / sqrt(pi)
    assert gaussian_energy_score(np.zeros(1), np.full(1, 3.0))[0] == pytest.approx(
        3.0 * (np.sqrt(2) - 1) / np.sqrt(np.pi)
    )
    # an independent evaluation of the CRPS formula at z = 1.5, sigma = 2
    z, s = 1.5, 2.0
    expected = s * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert gaussian_energy_score(np.array([z * s]), np.array([s]))[0] == pytest.approx(expected)
    # sigma -> 0: the absolute error; sigma = 0 exactly too
    e = np.array([-4.0, 0.5, 7.0])
    assert gaussian_energy_score(e, np.full(3, 1e-9)) == pytest.approx(np.abs(e), abs=1e-8)
    assert gaussian_energy_score(e, np.zeros(3)).tolist() == np.abs(e).tolist()
    # a wider Gaussian is penalised at y = mu, and a too narrow one far from y
    assert gaussian_energy_score(np.zeros(1), np.ones(1)) < gaussian_energy_score(
        np.zeros(1), np.full(1, 2.0)
    )
    assert gaussian_energy_score(np.full(1, 5.0), np.full(1, 0.1)) > gaussian_energy_score(
        np.full(1, 5.0), np.full(1, 5.0)
    )
    # the mean over coordinates of boxes
    pred, gt = np.zeros((2, 4)), np.array([[0, 0, 0, 0], [3.0, 3.0, 3.0, 3.0]])
    assert energy_score(pred, gt, np.zeros((2, 4))) == pytest.approx(1.5)
    assert np.isnan(energy_score(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4))))
    with pytest.raises(ValueError, match="non-negative"):
        gaussian_energy_score(np.zeros(1), -np.ones(1))


def test_sharpness_is_sigma_over_box_size():
    boxes = np.array([[0, 0, 10, 40], [5, 5, 5, 5]])  # sizes sqrt(400) = 20, and 0 -> 1
    sigma = np.array([[1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5]])
    assert sharpness(sigma, boxes) == pytest.approx((2.5 / 20 * 4 + 0.5 * 4) / 8)
    assert sharpness(sigma[:1] * 2, boxes[:1]) == pytest.approx(2 * 2.5 / 20)
    assert np.isnan(sharpness(np.zeros((0, 4)), np.zeros((0, 4))))


# --- F1-optimal threshold and outcome breakdown ------------------------------------------------


def test_f1_optimal_threshold_keeps_tied_scores_together():
    # kept 1: F1 2/3; kept 3 (both 0.8s): 2*2 / (3 + 2) = 0.8; kept 4: 4/6
    thr, f1 = f1_optimal_threshold([0.9, 0.8, 0.8, 0.1], [True, False, True, False], num_gt=2)
    assert (thr, f1) == (pytest.approx(0.8), pytest.approx(0.8))
    # a threshold cannot split tied scores: keeping the TP at 0.5 keeps the FP at 0.5 too
    for order in ([0, 1, 2], [0, 2, 1]):
        scores, tp = np.array([0.9, 0.5, 0.5])[order], np.array([True, True, False])[order]
        assert f1_optimal_threshold(scores, tp, num_gt=2) == (0.5, pytest.approx(0.8))
    thr, f1 = f1_optimal_threshold([0.9, 0.4, 0.2], [False, False, False], num_gt=3)
    assert (thr, f1) == (pytest.approx(0.2), 0.0)  # no TP: every detection kept
    assert all(np.isnan(f1_optimal_threshold([], [], num_gt=3)))


# one image, class 0 only: GT A found, GT B only loosely boxed
GT = [[0, 0, 100, 100], [200, 0, 300, 100]]
DETS = [
    ([2, 0, 100, 100], 0.9),  # TP on A (IoU 0.98)
    ([0, 0, 100, 95], 0.8),  # duplicate: IoU 0.95 with A, already taken
    ([200, 0, 240, 100], 0.7),  # localisation error: IoU 0.4 with B, which nobody found
    ([400, 400, 450, 450], 0.6),  # background: overlaps nothing
]


def _scene(extra=(), gt=GT, gt_classes=None, **kw):
    dets = DETS + list(extra)
    boxes = [d[0] for d in dets]
    classes = [d[2] if len(d) > 2 else 0 for d in dets]
    return _gt_image(boxes, [d[1] for d in dets], classes, gt, gt_classes or [0] * len(gt), **kw)


def test_outcome_of_one_tp_duplicate_loc_error_background_and_missed_gt():
    img = _scene()
    assert box_iou(img.boxes[2:3], img.gt_boxes[1:2])[0, 0] == pytest.approx(0.4)
    labels, found = classify_detections(img)
    assert [OUTCOMES[i] for i in labels] == ["TP", "duplicate", "loc_error", "background"]
    assert found.tolist() == [True, False]
    counts = outcome_breakdown([img], threshold=0.0)
    assert counts == {
        0: {"TP": 1, "duplicate": 1, "loc_error": 1, "background": 1, "missed": 1, "num_gt": 2}
    }
    # at 0.75 only the two best are kept; B is still missed
    high = outcome_breakdown([img], threshold=0.75)[0]
    assert (high["TP"], high["duplicate"], high["loc_error"], high["missed"]) == (1, 1, 0, 1)


def test_outcomes_are_class_aware_and_loose_duplicates_and_crowds_are_handled():
    img = _scene(
        extra=[
            ([0, 0, 100, 100], 0.95, 1),  # class 1 on A (a class-0 GT): background for class 1
            ([0, 0, 40, 100], 0.5),  # IoU 0.4 with A only, A already found: a duplicate
            ([500, 0, 600, 100], 0.4),  # on a class-0 crowd region: ignored
        ],
        crowd_boxes=np.array([[480.0, 0, 700, 120]]),
        crowd_classes=np.array([0]),
    )
    labels, _ = classify_detections(img)
    assert labels.tolist() == [0, 1, 2, 3, 3, 1, -1]
    counts = outcome_breakdown([img], threshold=0.0)
    assert counts[1] == {
        "TP": 0,
        "duplicate": 0,
        "loc_error": 0,
        "background": 1,
        "missed": 0,
        "num_gt": 0,
    }
    assert counts[0]["duplicate"] == 2 and counts[0]["background"] == 1
    # the same loose box when A has no TP: a localisation error, and A is missed
    alone = _gt_image([[0, 0, 40, 100], [0, 0, 100, 100]], [0.5, 0.9], [0, 1], GT[:1], [0])
    labels, found = classify_detections(alone)
    assert [OUTCOMES[i] for i in labels] == ["loc_error", "background"] and not found[0]


def test_detection_calibration_uses_the_f1_optimal_threshold():
    out = detection_calibration([_scene()])
    # sorted: TP, dup, loc, bg with 2 GTs: F1 = 2/3, 1/2, 2/5, 1/3 -> keep only the TP
    assert out["threshold"] == pytest.approx(0.9) and out["f1"] == pytest.approx(2 / 3)
    assert out["outcomes"][0] == {
        "TP": 1,
        "duplicate": 0,
        "loc_error": 0,
        "background": 0,
        "missed": 1,
        "num_gt": 2,
    }
    assert out["num_detections"] == 4
    # D-ECE over all four: bins 0.9 (TP), 0.8, 0.7, 0.6 (FPs): (0.1 + 0.8 + 0.7 + 0.6) / 4
    assert out["dece"] == pytest.approx((0.1 + 0.8 + 0.7 + 0.6) / 4)
    # nothing detected: no threshold, every GT missed
    empty = detection_calibration([_gt_image(np.zeros((0, 4)), [], [], GT, [0, 0])])
    assert np.isnan(empty["threshold"]) and np.isnan(empty["dece"])
    assert empty["outcomes"][0]["missed"] == 2


def test_image_detections_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="scores"):
        _gt_image([[0, 0, 1, 1]], [0.5, 0.4], [0], GT, [0, 0])
