"""A7, aLRP Loss Faster R-CNN: ALRPRPN and ALRPFastRCNNOutputLayers against hand-computed
values and gradients, no anchor or RoI sampled away (detectron2's sampling with SAMPLE_ALL), a loss
that does not depend on the RoI order, no-positive batches, each head's own
self-balance, and one training step of the config's model through the synthetic switch."""

import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.proposal_generator.rpn import StandardRPNHead
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

from d2_boxunc.config import to_synthetic
from d2_boxunc.modeling import SAMPLE_ALL
from d2_boxunc.modeling.proposal_generator import ALRPRPN
from d2_boxunc.modeling.roi_heads import ALRPFastRCNNOutputLayers, ALRPROIHeads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
A7 = os.path.join(ROOT, "configs/aLRPLoss/alrp_faster_rcnn_R_50_FPN_100ep_512.py")
SQUARE = [0.0, 0.0, 10.0, 10.0]


def _rpn(**kw):
    return ALRPRPN(
        in_features=["p2"],
        head=StandardRPNHead(in_channels=4, num_anchors=1),
        anchor_generator=DefaultAnchorGenerator(sizes=[[8]], aspect_ratios=[1.0], strides=[4]),
        anchor_matcher=Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        pre_nms_topk=(100, 100),
        post_nms_topk=(50, 50),
        loss_weight=0.2,
        **{"sb_period": 10, **kw},
    )


def _predictor(**kw):
    return ALRPFastRCNNOutputLayers(
        ShapeSpec(channels=8),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=2,
        **{"sb_period": 10, **kw},
    )


def test_rpn_loss_hand_case():
    """Anchors labelled [1, 1, 0, -1] with logits [2, 0, 0.5, 5], delta 1, zero deltas:
    positive 0: rank+ 1, N_FP 0, rank 1; positive 1: rank+ 1 + H(2) = 2, N_FP H(0.5) = 0.75,
    rank 2.75. Errors (1 - GIoU) / 0.6: 0 (exact box) and 0.5 / 0.6 (GIoU 0.5)."""
    rpn = _rpn().train()
    assert rpn.loc_error_norm == pytest.approx(0.6)
    logits = torch.tensor([[2.0, 0.0, 0.5, 5.0]], requires_grad=True)
    deltas = torch.zeros(1, 4, 4, requires_grad=True)
    gt = torch.tensor([SQUARE, [0.0, 0.0, 10.0, 20.0], SQUARE, SQUARE])
    with EventStorage():
        losses = rpn.losses(
            [Boxes(torch.tensor([SQUARE] * 4))],
            [logits],
            [torch.tensor([1, 1, 0, -1])],
            [deltas],
            [gt],
        )
    err1 = 0.5 / 0.6
    cls = 1 - (1 / 1 + 2 / 2.75) / 2
    loc = (0 / 1 + err1 / 2.75) / 2
    assert float(losses["loss_rpn_cls"].detach()) == pytest.approx(0.2 * cls, rel=1e-6)
    assert float(losses["loss_rpn_loc"].detach()) == pytest.approx(0.2 * 50 * loc, rel=1e-6)
    sum(losses.values()).backward()
    # positive 0 has N_FP = 0: no update; positive 1: -(N_FP + E) / (|P| rank), E = H(2) * 0
    g = 0.75 / (2 * 2.75)
    assert torch.allclose(logits.grad, 0.2 * torch.tensor([[0.0, -g, g, 0.0]]), atol=1e-7)
    assert torch.isfinite(deltas.grad).all() and deltas.grad[0, 1].abs().sum() > 0
    assert deltas.grad[0, [0, 2, 3]].abs().sum() == 0  # exact box: GIoU's gradient vanishes
    assert int(rpn.sb.num_iter) == 1 and float(rpn.sb.cls_sum) == pytest.approx(cls, rel=1e-6)


def test_rcnn_loss_hand_case():
    """3 RoIs, 2 classes, classes [0, background, 1], (RoI, class) logits
    [[3, 0], [2.5, -5], [-5, 1]] (background column 7, not ranked). Positive (0, 0): s 3,
    rank+ 1, N_FP H(-0.5) = 0.25, rank 1.25; positive (2, 1): s 1, rank+ 2, N_FP H(1.5) = 1,
    rank 3. Errors 1 - GIoU: 0 and 2/3 (GIoU 1/3)."""
    pred = _predictor().train()
    scores = torch.tensor([[3.0, 0.0, 7.0], [2.5, -5.0, 7.0], [-5.0, 1.0, 7.0]], requires_grad=True)
    deltas = torch.zeros(3, 8, requires_grad=True)
    p = Instances((20, 20))
    p.proposal_boxes = Boxes(torch.tensor([SQUARE] * 3))
    p.gt_classes = torch.tensor([0, 2, 1])
    p.gt_boxes = Boxes(torch.tensor([SQUARE, SQUARE, [5.0, 0.0, 15.0, 10.0]]))
    with EventStorage():
        losses = pred.losses((scores, deltas), [p])
    cls = 1 - (1 / 1.25 + 2 / 3) / 2
    loc = (0 / 1.25 + (2 / 3) / 3) / 2
    assert float(losses["loss_cls"].detach()) == pytest.approx(cls, rel=1e-6)
    assert float(losses["loss_box_reg"].detach()) == pytest.approx(50 * loc, rel=1e-6)
    sum(losses.values()).backward()
    neg = (0.25 / 1.25 + 1 / 3) / 2  # the negative at 2.5 is in reach of both positives
    expected = torch.tensor([[-0.25 / 2.5, 0.0, 0.0], [neg, 0.0, 0.0], [0.0, -1 / 6, 0.0]])
    assert torch.allclose(scores.grad, expected, atol=1e-7)
    # only the ground-truth class's box of the foreground RoI with an error gets a gradient
    nz = deltas.grad.abs().reshape(3, 2, 4).sum(-1) > 0
    assert nz.tolist() == [[False, False], [False, False], [False, True]]


def test_no_positive_gives_zero_losses_in_the_graph():
    rpn, pred = _rpn().train(), _predictor().train()
    logits = torch.randn(1, 4, requires_grad=True)
    deltas = torch.randn(1, 4, 4, requires_grad=True)
    scores = torch.randn(3, 3, requires_grad=True)
    box_deltas = torch.randn(3, 8, requires_grad=True)
    p = Instances((20, 20))
    p.proposal_boxes = Boxes(torch.tensor([SQUARE] * 3))
    p.gt_classes = torch.tensor([2, 2, 2])
    with EventStorage():
        a = rpn.losses(
            [Boxes(torch.tensor([SQUARE] * 4))],
            [logits],
            [torch.tensor([0, 0, -1, 0])],
            [deltas],
            [torch.zeros(4, 4)],
        )
        b = pred.losses((scores, box_deltas), [p])
    total = sum(a.values()) + sum(b.values())
    assert float(total) == 0
    total.backward()
    for t in (logits, deltas, scores, box_deltas):
        assert t.grad is not None and not t.grad.any()
    assert float(rpn.sb.cls_sum) == 0 and int(rpn.sb.num_iter) == 1  # counted, adds nothing


def test_settings_are_checked():
    with pytest.raises(ValueError, match="sigmoid"):
        _predictor(use_sigmoid_ce=False)
    with pytest.raises(ValueError, match="GIoU"):
        _predictor(box_reg_loss_type="smooth_l1")
    with pytest.raises(ValueError, match="ALRPRPN: self-balance needs sb_period"):
        _rpn(sb_period=0)


def test_no_anchor_is_sampled_away():
    """detectron2's own anchor sampling with the default SAMPLE_ALL: every anchor keeps the
    matcher's label (detectron2's usual 256 per image would drop most negatives)."""
    gt = Instances((64, 64))
    gt.gt_boxes = Boxes(torch.tensor([[8.0, 8.0, 24.0, 24.0], [30.0, 30.0, 60.0, 50.0]]))
    features = [torch.zeros(1, 4, 16, 16)]
    anchors = DefaultAnchorGenerator(sizes=[[8]], aspect_ratios=[1.0], strides=[4])(features)
    expected = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(
        pairwise_iou(gt.gt_boxes, anchors[0])
    )[1]
    assert (expected == 0).sum() > 100 and (expected == 1).sum() > 0
    rpn = _rpn()
    assert rpn.batch_size_per_image == SAMPLE_ALL
    labels, _ = rpn.label_and_sample_anchors(anchors, [gt])
    assert torch.equal(labels[0], expected)
    # the same call with a sample size does sample (the check above can fail)
    labels, _ = _rpn(batch_size_per_image=16).label_and_sample_anchors(anchors, [gt])
    assert (labels[0] >= 0).sum() == 16


def _roi_heads(**kw):
    return ALRPROIHeads(
        num_classes=2,
        proposal_matcher=Matcher([0.5], [0, 1], allow_low_quality_matches=False),
        box_in_features=["p2"],
        box_pooler=None,
        box_head=None,
        box_predictor=None,
        **{"proposal_append_gt": False, **kw},
    )


def _pairs(instances):
    """Sorted (box, class) rows: the RoI set whatever its order."""
    rows = torch.cat([instances.proposal_boxes.tensor, instances.gt_classes[:, None]], 1)
    return sorted(map(tuple, rows.tolist()))


def test_no_roi_is_sampled_away():
    """Every proposal (and, with proposal_append_gt, every ground-truth box) reaches the loss,
    with its matched class, through detectron2's sampling with the default SAMPLE_ALL."""
    props = Instances((40, 40))
    props.proposal_boxes = Boxes(
        torch.tensor([SQUARE, [0.0, 0.0, 10.0, 12.0], [20.0, 20.0, 30.0, 30.0]] * 10)
    )
    props.objectness_logits = torch.zeros(30)
    gt = Instances((40, 40))
    gt.gt_boxes = Boxes(torch.tensor([SQUARE]))
    gt.gt_classes = torch.tensor([1])
    empty = Instances((40, 40))
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.long)
    boxes = props.proposal_boxes.tensor.tolist()
    with EventStorage():
        heads = _roi_heads()
        assert heads.batch_size_per_image == SAMPLE_ALL
        out = heads.label_and_sample_proposals([props, props], [gt, empty])
        assert [len(o) for o in out] == [30, 30]
        assert _pairs(out[0]) == sorted(tuple(b + [c]) for b, c in zip(boxes, [1, 1, 2] * 10))
        assert _pairs(out[1]) == sorted(tuple(b + [2]) for b in boxes)  # IoU 1, 10/12, 0
        out = _roi_heads(proposal_append_gt=True).label_and_sample_proposals(
            [props, props], [gt, empty]
        )
        assert [len(o) for o in out] == [30 + 1, 30 + 0]  # proposals + ground truth
        out = _roi_heads(batch_size_per_image=8).label_and_sample_proposals([props], [gt])
        assert len(out[0]) == 8  # a sample size samples (the checks above can fail)


def test_rcnn_loss_does_not_depend_on_the_roi_order():
    """detectron2's sampling returns the RoIs positives first, each group shuffled (the former
    private override kept them in proposal order): the loss and its gradients are the same."""
    g = torch.Generator().manual_seed(3)
    n = 40
    scores = torch.randn(n, 3, generator=g)
    deltas = torch.randn(n, 8, generator=g) * 0.2
    xy = torch.rand(n, 2, generator=g) * 20
    boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 10], 1)
    classes = torch.randint(0, 3, (n,), generator=g)  # 2 = background

    def losses(order):
        pred = _predictor(sb_update=False).train()
        s, d = scores[order].clone().requires_grad_(), deltas[order].clone().requires_grad_()
        p = Instances((40, 40))
        p.proposal_boxes = Boxes(boxes[order])
        p.gt_classes = classes[order]
        p.gt_boxes = Boxes(boxes[order] + 1.5)
        with EventStorage():
            out = pred.losses((s, d), [p])
        sum(out.values()).backward()
        inverse = torch.argsort(order)
        return [out["loss_cls"], out["loss_box_reg"], s.grad[inverse], d.grad[inverse]]

    assert (classes < 2).sum() > 5
    for a, b in zip(losses(torch.arange(n)), losses(torch.randperm(n, generator=g))):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_config_model_trains_one_step_with_two_self_balances(one_thread):
    cfg = to_synthetic(LazyConfig.load(A7), max_iter=10)
    rpn, roi = cfg.model.proposal_generator, cfg.model.roi_heads
    assert "batch_size_per_image" not in rpn and "batch_size_per_image" not in roi
    assert roi.proposal_append_gt is False and cfg.optimizer.lr == 1e-3  # the switch's AdamW
    torch.manual_seed(0)
    model = instantiate(cfg.model).train()
    # the synthetic switch leaves the keep-everything sampling alone
    assert model.proposal_generator.batch_size_per_image == SAMPLE_ALL
    assert model.roi_heads.batch_size_per_image == SAMPLE_ALL
    seen = {}
    sample, rcnn_losses = (
        model.roi_heads.label_and_sample_proposals,
        model.roi_heads.box_predictor.losses,
    )

    def spy_sample(proposals, targets):
        seen["proposals"] = sum(len(p) for p in proposals)
        return sample(proposals, targets)

    def spy_losses(predictions, proposals):
        seen["loss_rois"] = predictions[0].shape[0]
        return rcnn_losses(predictions, proposals)

    model.roi_heads.label_and_sample_proposals = spy_sample
    model.roi_heads.box_predictor.losses = spy_losses
    keys = set(model.state_dict())
    for head in ("proposal_generator.sb.", "roi_heads.box_predictor.sb."):
        assert {head + k for k in ("weight", "cls_sum", "loc_sum", "num_iter")} <= keys
    g = torch.Generator().manual_seed(0)
    batch = []
    for boxes in (
        [[10.0, 20.0, 90.0, 100.0], [120.0, 40.0, 200.0, 150.0]],
        [[30.0, 30.0, 160.0, 140.0]],
    ):
        inst = Instances((192, 224))
        inst.gt_boxes = Boxes(torch.tensor(boxes))
        inst.gt_classes = torch.arange(len(boxes))
        img = (torch.rand(3, 192, 224, generator=g) * 255).to(torch.uint8)
        batch.append({"image": img, "instances": inst, "height": 192, "width": 224})
    with EventStorage() as storage:
        losses = model(batch)
        assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
        assert all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        hist = storage.histories()
        assert hist["rpn/num_pos_anchors"].latest() > 0
        assert "alrp_rpn/sb_weight" in hist and "alrp_rcnn/sb_weight" in hist
    # every proposal reaches the loss (no ground truth is appended: proposal_append_gt=False)
    assert seen["loss_rois"] == seen["proposals"] > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(x).all() for x in grads)
    assert int(model.proposal_generator.sb.num_iter) == 1
    assert int(model.roi_heads.box_predictor.sb.num_iter) == 1
    assert model.proposal_generator.sb.period == 75  # 300 synthetic images / batch 4


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
