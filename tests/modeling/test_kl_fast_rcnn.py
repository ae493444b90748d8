"""KLFastRCNNOutputLayers: shapes, the KL box loss, inference modes, batching."""

import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.fast_rcnn import fast_rcnn_inference_single_image
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from d2_boxunc.config import to_synthetic
from d2_boxunc.evaluation.matching import match_to_ground_truth
from d2_boxunc.losses import kl_loss
from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
from d2_boxunc.modeling.meta_arch import BoxUncRCNN
from d2_boxunc.modeling.roi_heads import KLFastRCNNOutputLayers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KL_CONFIG = os.path.join(ROOT, "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x.py")
K = 3
FEAT = 16
MODES = [("hard", False), ("hard", True), ("soft", True), ("soft", False), ("diou", False)]


def make_predictor(agnostic=False, **kwargs):
    return KLFastRCNNOutputLayers(
        ShapeSpec(channels=FEAT),
        box2box_transform=Box2BoxTransformXYXY(),
        num_classes=K,
        cls_agnostic_bbox_reg=agnostic,
        test_score_thresh=0.05,
        **kwargs,
    )


def proposals_with_gt(n=12, image_size=(100, 120), gt=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 60
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 40], dim=1)
    p = Instances(image_size)
    p.proposal_boxes = Boxes(boxes)
    if gt:
        p.gt_boxes = Boxes(boxes + torch.randn(n, 4, generator=g) * 3)
        p.gt_classes = torch.randint(0, K + 1, (n,), generator=g)  # K = background
    return p


@pytest.mark.parametrize("agnostic", [False, True])
def test_forward_shapes_and_init(agnostic):
    pred = make_predictor(agnostic)
    scores, deltas, log_vars = pred(torch.randn(7, FEAT, 2, 2).flatten(1)[:, :FEAT])
    width = 4 if agnostic else 4 * K
    assert scores.shape == (7, K + 1) and deltas.shape == log_vars.shape == (7, width)
    assert pred.bbox_pred_logvar.weight.std() < 1e-3 and (pred.bbox_pred_logvar.bias == 0).all()
    assert log_vars.abs().max() < 0.05  # alpha ~ 0 at the start: the loss starts as smooth-L1


@pytest.mark.parametrize("agnostic", [False, True])
def test_box_loss_is_kl_normalised_by_sampled_rois_and_reaches_both_layers(agnostic):
    pred = make_predictor(agnostic)
    proposals = [proposals_with_gt(seed=1), proposals_with_gt(seed=2)]
    x = torch.randn(24, FEAT)
    predictions = pred(x)
    with EventStorage() as storage:
        losses = pred.losses(predictions, proposals)
        assert "kl/sigma_mean" in storage.latest()
    assert set(losses) == {"loss_cls", "loss_box_reg"}

    _, deltas, log_vars = predictions
    boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
    gt = torch.cat([p.gt_boxes.tensor for p in proposals])
    cls = torch.cat([p.gt_classes for p in proposals])
    fg = (cls < K).nonzero().squeeze(1)
    col = torch.zeros_like(cls[fg]) if agnostic else cls[fg]
    d = deltas.view(24, -1, 4)[fg, col]
    a = log_vars.view(24, -1, 4)[fg, col]
    target = Box2BoxTransformXYXY().get_deltas(boxes[fg], gt[fg])
    expected = kl_loss(d, a, target, beta=1.0, reduction="sum") / 24
    torch.testing.assert_close(losses["loss_box_reg"], expected)

    losses["loss_box_reg"].backward()
    assert pred.bbox_pred_logvar.weight.grad.abs().sum() > 0
    assert pred.bbox_pred.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("stop", [False, True])
def test_logvar_stop_gradient_keeps_the_variance_out_of_the_shared_features(stop):
    pred = make_predictor(logvar_stop_gradient=stop)
    x = torch.randn(12, FEAT, requires_grad=True)
    scores, deltas, log_vars = pred(x)
    log_vars.sum().backward()  # the variance layer's gradient alone
    assert pred.bbox_pred_logvar.weight.grad.abs().sum() > 0  # the layer itself still learns
    assert (x.grad is None or (x.grad == 0).all()) == stop
    plain = make_predictor()
    plain.load_state_dict(pred.state_dict())
    for a, b in zip(pred(x), plain(x)):  # the switch changes gradients only, not values
        torch.testing.assert_close(a, b)


def test_no_foreground_gives_zero_loss_attached_to_graph():
    pred = make_predictor()
    p = proposals_with_gt()
    p.gt_classes = torch.full_like(p.gt_classes, K)
    with EventStorage():
        loss = pred.losses(pred(torch.randn(12, FEAT)), [p])["loss_box_reg"]
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert (pred.bbox_pred_logvar.weight.grad == 0).all()


def clustered_predictions(pred, n_images=2, seed=0):
    """Predictions on proposals that form overlapping clusters, so NMS and voting matter."""
    g = torch.Generator().manual_seed(seed)
    proposals = []
    for _ in range(n_images):
        centres = torch.rand(3, 2, generator=g) * 60 + 20
        boxes = []
        for c in centres:
            for _ in range(6):
                half = 10 + torch.rand(2, generator=g) * 4
                shift = torch.randn(2, generator=g) * 2
                boxes.append(torch.cat([c + shift - half, c + shift + half]))
        p = Instances((100, 110))
        p.proposal_boxes = Boxes(torch.stack(boxes))
        proposals.append(p)
    n = sum(len(p) for p in proposals)
    with torch.no_grad():
        pred.cls_score.weight.normal_(std=0.5)
        pred.bbox_pred.weight.normal_(std=0.05)
        pred.bbox_pred_logvar.weight.normal_(std=0.5)
        predictions = pred(torch.randn(n, FEAT, generator=g))
    return predictions, proposals


@pytest.mark.parametrize("mode", MODES)
def test_inference_modes_give_valid_instances(mode):
    pred = make_predictor(test_nms_method=mode[0], test_var_voting=mode[1])
    predictions, proposals = clustered_predictions(pred)
    results, kept = pred.inference(predictions, proposals)
    assert len(results) == 2
    for r, k, p in zip(results, kept, proposals):
        assert len(r) > 0 and len(r) == len(k) and r.image_size == p.image_size
        assert r.pred_boxes_std.shape == r.pred_box_logvar.shape == (len(r), 4)
        assert (r.pred_boxes_std > 0).all() and torch.isfinite(r.pred_box_logvar).all()
        assert (r.pred_classes >= 0).all() and (r.pred_classes < K).all()
        assert (r.scores[:-1] >= r.scores[1:]).all()
        assert int(k.max()) < len(p)
        # std in pixels = exp(alpha / 2) * proposal size / 10, of the selected box's own proposal
        prop = p.proposal_boxes.tensor[k]
        size = torch.stack([prop[:, 2] - prop[:, 0], prop[:, 3] - prop[:, 1]] * 2, dim=1)
        torch.testing.assert_close(r.pred_boxes_std, (0.5 * r.pred_box_logvar).exp() * size / 10)


def test_hard_mode_without_voting_is_detectron2_inference():
    pred = make_predictor()
    predictions, proposals = clustered_predictions(pred, n_images=1)
    ours = pred.inference(predictions, proposals)[0][0]
    boxes = pred.predict_boxes(predictions, proposals)[0]
    scores = pred.predict_probs(predictions, proposals)[0]
    ref, _ = fast_rcnn_inference_single_image(boxes, scores, (100, 110), 0.05, 0.5, 100)
    torch.testing.assert_close(ours.pred_boxes.tensor, ref.pred_boxes.tensor)
    torch.testing.assert_close(ours.scores, ref.scores)


def test_voting_moves_the_kept_box_towards_the_confident_neighbour():
    pred = make_predictor(test_var_voting=True, sigma_t=1.0)
    p = Instances((100, 100))
    p.proposal_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 50.0], [14.0, 14.0, 54.0, 54.0]]))
    scores = torch.tensor([[5.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    deltas = torch.zeros(2, 4 * K)
    log_vars = torch.zeros(2, 4 * K)
    log_vars[0, :4] = 4.0  # the top-scoring box is uncertain, its neighbour confident
    log_vars[1, :4] = -4.0
    r = pred.inference((scores, deltas, log_vars), [p])[0][0]
    assert len(r) == 1
    # weights exp(-(1-IoU)^2 / 1) * exp(-alpha): the vote lands very near the confident box
    assert (r.pred_boxes.tensor[0] - torch.tensor([14.0, 14.0, 54.0, 54.0])).abs().max() < 0.1
    assert r.scores[0] == torch.softmax(scores[0], 0)[0]  # voting never changes the score


@pytest.mark.parametrize("mode", MODES)
def test_inference_is_batch_size_invariant(mode):
    pred = make_predictor(test_nms_method=mode[0], test_var_voting=mode[1])
    (scores, deltas, log_vars), proposals = clustered_predictions(pred, n_images=2)
    together, _ = pred.inference((scores, deltas, log_vars), proposals)
    n0 = len(proposals[0])
    for i, sl in enumerate([slice(0, n0), slice(n0, None)]):
        alone, _ = pred.inference((scores[sl], deltas[sl], log_vars[sl]), [proposals[i]])
        for field in ("pred_boxes", "scores", "pred_classes", "pred_boxes_std"):
            a, b = together[i].get(field), alone[0].get(field)
            a, b = (a.tensor, b.tensor) if isinstance(a, Boxes) else (a, b)
            assert torch.equal(a, b), field


@pytest.mark.parametrize("mode", MODES)
def test_empty_images_and_non_finite_rows(mode):
    pred = make_predictor(test_nms_method=mode[0], test_var_voting=mode[1])
    empty = Instances((50, 50))
    empty.proposal_boxes = Boxes(torch.zeros(0, 4))
    (scores, deltas, log_vars), proposals = clustered_predictions(pred, n_images=1)
    log_vars = log_vars.clone()
    log_vars[0] = float("inf")  # a broken row is dropped, not fatal
    n = len(proposals[0])
    results, kept = pred.inference(
        (torch.cat([scores[:0], scores]), torch.cat([deltas[:0], deltas]), log_vars),
        [empty, proposals[0]],
    )
    assert len(results[0]) == 0 and results[0].pred_boxes_std.shape == (0, 4)
    assert len(results[1]) > 0 and 0 not in kept[1].tolist() and int(kept[1].max()) < n


def test_pixel_variance_space_changes_the_vote_not_the_outputs_fields():
    kw = dict(test_var_voting=True, test_nms_method="soft")
    a, b = make_predictor(**kw), make_predictor(variance_space="pixel", **kw)
    b.load_state_dict(a.state_dict())
    predictions, proposals = clustered_predictions(a, n_images=1)
    ra, rb = a.inference(predictions, proposals)[0][0], b.inference(predictions, proposals)[0][0]
    torch.testing.assert_close(ra.scores, rb.scores)
    assert not torch.allclose(ra.pred_boxes.tensor, rb.pred_boxes.tensor)


# two boxes side by side, IoU 1/3 (above the 0.3 threshold); DIoU 1/3 - 1/13 (below it)
SIDE_BY_SIDE = torch.tensor([[20.0, 20.0, 40.0, 40.0], [30.0, 20.0, 50.0, 40.0]])


@pytest.mark.parametrize("method,kept", [("hard", 1), ("diou", 2)])
def test_diou_nms_keeps_the_box_beside_that_nms_suppresses(method, kept):
    pred = make_predictor(test_nms_method=method, test_nms_thresh=0.3)
    p = Instances((100, 100))
    p.proposal_boxes = Boxes(SIDE_BY_SIDE)
    scores = torch.tensor([[5.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    log_vars = torch.zeros(2, 4 * K)
    r, rows = pred.inference((scores, torch.zeros(2, 4 * K), log_vars), [p])
    assert rows[0].tolist() == list(range(kept))
    torch.testing.assert_close(r[0].pred_boxes.tensor, SIDE_BY_SIDE[:kept])
    assert r[0].pred_boxes_std.shape == (kept, 4) and r[0].pred_classes.tolist() == [0] * kept


def test_bad_arguments():
    with pytest.raises(
        ValueError, match=r"test_nms_method must be one of \('hard', 'soft', 'diou'\)"
    ):
        make_predictor(test_nms_method="linear")
    with pytest.raises(ValueError, match="test_var_voting needs test_nms_method"):
        make_predictor(test_nms_method="diou", test_var_voting=True)
    with pytest.raises(ValueError, match="variance_space"):
        make_predictor(variance_space="log")
    with pytest.raises(ValueError, match="sigma_t"):
        make_predictor(sigma_t=0.0)


def test_postprocess_rescales_std_with_the_boxes():
    cfg = to_synthetic(LazyConfig.load(KL_CONFIG), max_iter=1)
    model = instantiate(cfg.model).eval()
    assert isinstance(model, BoxUncRCNN)
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8)
    det = Instances((64, 96))
    det.pred_boxes = Boxes(torch.tensor([[4.0, 8.0, 40.0, 30.0], [50.0, 10.0, 90.0, 60.0]]))
    det.pred_classes = torch.tensor([0, 1])
    det.scores = torch.tensor([0.9, 0.8])
    det.pred_boxes_std = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]])
    inputs = [{"image": image, "height": 128, "width": 288}]  # x3 in x, x2 in y
    boxes, std = det.pred_boxes.tensor.clone(), det.pred_boxes_std.clone()  # scaled in place
    with torch.no_grad():
        out = model.inference(inputs, detected_instances=[det])[0]["instances"]
    scale = torch.tensor([3.0, 2.0, 3.0, 2.0])
    torch.testing.assert_close(out.pred_boxes.tensor, boxes * scale)
    torch.testing.assert_close(out.pred_boxes_std, std * scale)


def test_matching_is_greedy_by_score_within_a_class():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 70.0, 90.0], [20.0, 0.0, 30.0, 10.0]])
    pred = Instances((100, 100))
    err = torch.tensor([[0.5, 0.5, 0.5, 0.5], [3.0, 3.0, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    pred.pred_boxes = Boxes(torch.cat([gt + err, gt[:1] + 1.0]))
    pred.scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    pred.pred_classes = torch.tensor([1, 1, 2, 1])  # the third has the wrong class: unmatched
    dets, gts = match_to_ground_truth(pred, gt, torch.ones(3, dtype=torch.long))
    # the 4th detection (highest score) takes GT 0 first; detection 0 then has no GT left
    assert dets.tolist() == [3, 1] and gts.tolist() == [0, 1]
    empty = match_to_ground_truth(pred[:0], gt, torch.ones(3, dtype=torch.long))
    assert [t.numel() for t in empty] == [0, 0]


def test_sigma_at_ground_truth_reads_the_head_on_the_true_boxes():
    from detectron2.data import DatasetCatalog

    from d2_boxunc.evaluation.sigma_probe import sigma_at_ground_truth

    cfg = to_synthetic(LazyConfig.load(KL_CONFIG), max_iter=1)
    model = instantiate(cfg.model)
    dicts = DatasetCatalog.get("boxunc_synth_val")[:6]
    stats = sigma_at_ground_truth(model, cfg, dicts)
    flags = [a["blurred"] for d in dicts for a in d["annotations"]]
    assert stats["num_blurred"] == sum(flags) > 0 and stats["num_sharp"] == len(flags) - sum(flags)
    # untrained: alpha ~ 0 everywhere, so sigma / size = exp(0) / weight 10
    assert stats["rel_sigma_at_gt_blurred"] == pytest.approx(0.1, rel=1e-2)
    assert stats["rel_sigma_at_gt_sharp"] == pytest.approx(0.1, rel=1e-2)
