"""IoULossFastRCNNOutputLayers and IoULossRPN: loss values and normalisers, robustness to inverted
and huge predictions, short trainings, Mask R-CNN."""

import copy
import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.proposal_generator import RPN, StandardRPNHead
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from fvcore.nn import giou_loss as fvcore_giou_loss

from d2_boxunc.config import to_synthetic
from d2_boxunc.losses import IOU_LOSS_MODES, iou_loss
from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
from d2_boxunc.modeling.proposal_generator import IoULossRPN
from d2_boxunc.modeling.roi_heads import IoULossFastRCNNOutputLayers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K = 3
FEAT = 16


def make_predictor(loss_type="giou", agnostic=False, coder=None, **kwargs):
    return IoULossFastRCNNOutputLayers(
        ShapeSpec(channels=FEAT),
        box2box_transform=coder or Box2BoxTransform(weights=(10, 10, 5, 5)),
        num_classes=K,
        cls_agnostic_bbox_reg=agnostic,
        box_reg_loss_type=loss_type,
        **kwargs,
    )


def proposals_with_gt(n=12, seed=0, image_size=(100, 120)):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 60
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 40], dim=1)
    p = Instances(image_size)
    p.proposal_boxes = Boxes(boxes)
    p.gt_boxes = Boxes(boxes + torch.randn(n, 4, generator=g) * 4)
    p.gt_classes = torch.randint(0, K + 1, (n,), generator=g)  # K = background
    p.gt_classes[0] = 0  # at least one foreground RoI
    return p


# ---- Fast R-CNN head -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", IOU_LOSS_MODES)
@pytest.mark.parametrize("agnostic", [False, True])
def test_roi_loss_is_weighted_iou_loss_over_sampled_rois(mode, agnostic):
    pred = make_predictor(mode, agnostic)
    assert pred.loss_weight["loss_box_reg"] == 10.0  # paper weight by default
    proposals = [proposals_with_gt(seed=1), proposals_with_gt(seed=2)]
    with torch.no_grad():
        pred.bbox_pred.weight.normal_(std=0.1)
    predictions = pred(torch.randn(24, FEAT))
    with EventStorage() as storage:
        losses = pred.losses(predictions, proposals)
        assert 0.0 < storage.latest()["fast_rcnn/fg_iou"][0] < 1.0
    boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
    gt = torch.cat([p.gt_boxes.tensor for p in proposals])
    cls = torch.cat([p.gt_classes for p in proposals])
    fg = (cls < K).nonzero().squeeze(1)
    col = torch.zeros_like(cls[fg]) if agnostic else cls[fg]
    deltas = predictions[1].view(24, -1, 4)[fg, col]
    decoded = pred.box2box_transform.apply_deltas(deltas, boxes[fg])
    expected = 10.0 * iou_loss(decoded, gt[fg], mode, reduction="sum") / 24
    torch.testing.assert_close(losses["loss_box_reg"], expected)
    losses["loss_box_reg"].backward()
    assert pred.bbox_pred.weight.grad.abs().sum() > 0


def test_giou_matches_detectron2_builtin_and_other_types_fall_back():
    proposals = [proposals_with_gt(seed=3)]
    x = torch.randn(12, FEAT)
    for loss_type, beta in [("giou", 0.0), ("smooth_l1", 1.0), ("diou", 0.0)]:
        ours = make_predictor(loss_type, smooth_l1_beta=beta, iou_loss_weight=1.0)
        ref = FastRCNNOutputLayers(
            ShapeSpec(channels=FEAT),
            box2box_transform=Box2BoxTransform(weights=(10, 10, 5, 5)),
            num_classes=K,
            box_reg_loss_type=loss_type,
            smooth_l1_beta=beta,
        )
        ref.load_state_dict(ours.state_dict())
        with EventStorage():
            a = ours.losses(ours(x), proposals)["loss_box_reg"]
            b = ref.losses(ref(x), proposals)["loss_box_reg"]
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # for the detectron2 types the weight is detectron2's loss_weight, not iou_loss_weight
    assert make_predictor("smooth_l1").loss_weight["loss_box_reg"] == 1.0
    assert make_predictor("iou", iou_loss_weight=3.0).loss_weight["loss_box_reg"] == 3.0


def test_no_foreground_gives_zero_loss_attached_to_graph():
    pred = make_predictor("iou")
    p = proposals_with_gt()
    p.gt_classes = torch.full_like(p.gt_classes, K)
    with EventStorage():
        loss = pred.losses(pred(torch.randn(12, FEAT)), [p])["loss_box_reg"]
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert (pred.bbox_pred.weight.grad == 0).all()


@pytest.mark.parametrize("mode", IOU_LOSS_MODES)
def test_inverted_and_huge_predictions_give_finite_losses_and_gradients(mode):
    # XYXY corner deltas can invert a box; detectron2's GIoU (fvcore) asserts on those
    pred = make_predictor(mode, coder=Box2BoxTransformXYXY())
    with torch.no_grad():
        pred.bbox_pred.bias.copy_(torch.tensor([8.0, 8.0, -8.0, -8.0]).repeat(K))  # x1 > x2
    proposals = [proposals_with_gt(seed=4)]
    predictions = pred(torch.randn(12, FEAT) * 0.01)
    boxes = pred.predict_boxes(predictions, proposals)[0].view(-1, 4)
    assert (boxes[:, 2] < boxes[:, 0]).all()
    with pytest.raises(AssertionError):
        fvcore_giou_loss(boxes, boxes.flip(-1))
    with EventStorage():
        loss = pred.losses(predictions, proposals)["loss_box_reg"]
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert torch.isfinite(pred.bbox_pred.weight.grad).all()

    # exploding deltas with detectron2's coder: boxes far outside any image, still finite
    huge = make_predictor(mode)
    with torch.no_grad():
        huge.bbox_pred.bias.fill_(1e30)
    with EventStorage():
        loss = huge.losses(huge(torch.randn(12, FEAT)), proposals)["loss_box_reg"]
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(huge.bbox_pred.bias.grad).all()


@pytest.mark.parametrize("mode", IOU_LOSS_MODES)
def test_training_the_head_alone_lowers_each_loss_from_inverted_start(mode):
    """Each loss type trains the box layer with a high learning rate, starting from inverted
    boxes (corner coder), without a NaN."""
    torch.manual_seed(0)
    pred = make_predictor(mode, coder=Box2BoxTransformXYXY())
    with torch.no_grad():
        pred.bbox_pred.bias.copy_(torch.tensor([7.0, 7.0, -7.0, -7.0]).repeat(K))
    proposals = [proposals_with_gt(seed=5, n=32)]
    x = torch.randn(32, FEAT)
    opt = torch.optim.SGD(pred.parameters(), lr=0.5 if mode != "ln_iou" else 0.05)
    values = []
    with EventStorage():
        for _ in range(40):
            loss = pred.losses(pred(x), proposals)["loss_box_reg"]
            assert torch.isfinite(loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            values.append(loss.item())
    assert values[-1] < 0.5 * values[0], values


def test_bad_predictor_arguments():
    with pytest.raises(ValueError, match="iou_loss_weight"):
        make_predictor("iou", iou_loss_weight=-1.0)
    with pytest.raises(ValueError, match="iou_loss_eps"):
        make_predictor("iou", iou_loss_eps=0.0)
    with pytest.raises(ValueError, match=r"test_nms_type must be one of \('standard', 'diou'\)"):
        make_predictor("diou", test_nms_type="soft")


@pytest.mark.parametrize("nms_type,kept", [("standard", 1), ("diou", 2)])
def test_diou_nms_keeps_the_box_beside_that_nms_suppresses(nms_type, kept):
    """Two boxes of class 0 side by side: IoU 1/3, DIoU 1/3 - 1/13, threshold 0.3."""
    pred = make_predictor(
        "diou", test_nms_type=nms_type, test_nms_thresh=0.3, test_score_thresh=0.05
    )
    boxes = torch.tensor([[20.0, 20.0, 40.0, 40.0], [30.0, 20.0, 50.0, 40.0]])
    p = Instances((100, 120))
    p.proposal_boxes = Boxes(boxes)
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    (r,), (rows,) = pred.inference((logits, torch.zeros(2, 4 * K)), [p])
    assert rows.tolist() == list(range(kept)) and r.pred_classes.tolist() == [0] * kept
    torch.testing.assert_close(r.pred_boxes.tensor, boxes[:kept])
    torch.testing.assert_close(r.scores, torch.softmax(logits, 1)[:kept, 0])


def test_standard_nms_type_is_detectron2_inference():
    """The default path is the parent's; the DIoU path gives the same fields and, at a threshold
    no pair reaches, the same detections."""
    proposals = [proposals_with_gt(seed=s) for s in range(2)]
    pred = make_predictor("diou", test_nms_thresh=1.0)
    g = torch.Generator().manual_seed(0)
    predictions = (torch.randn(24, K + 1, generator=g), torch.randn(24, 4 * K, generator=g) * 0.1)
    ours = pred.inference(predictions, proposals)
    theirs = FastRCNNOutputLayers.inference(pred, predictions, proposals)
    pred.test_nms_type = "diou"
    diou = pred.inference(predictions, proposals)
    for a, b, c in zip(ours[0], theirs[0], diou[0]):
        assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
        assert set(a.get_fields()) == set(c.get_fields())
        torch.testing.assert_close(a.scores, c.scores)
        torch.testing.assert_close(a.pred_boxes.tensor, c.pred_boxes.tensor)


# ---- RPN -------------------------------------------------------------------------------------
def make_rpn(loss_type="giou", rpn_norm="batch", cls=IoULossRPN, **kwargs):
    extra = dict(rpn_norm=rpn_norm) if cls is IoULossRPN else {}
    return cls(
        in_features=["p3"],
        head=StandardRPNHead(in_channels=8, num_anchors=3),
        anchor_generator=DefaultAnchorGenerator(
            sizes=[[32]], aspect_ratios=[0.5, 1.0, 2.0], strides=[8], offset=0.0
        ),
        anchor_matcher=Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        batch_size_per_image=64,
        positive_fraction=0.5,
        pre_nms_topk=(200, 100),
        post_nms_topk=(100, 50),
        box_reg_loss_type=loss_type,
        smooth_l1_beta=1.0 / 9,
        **extra,
        **kwargs,
    )


def rpn_inputs(seed=0):
    """Labels with a different number of sampled anchors per image, so the normalisers differ."""
    g = torch.Generator().manual_seed(seed)
    n_anchors = 50
    xy = torch.rand(n_anchors, 2, generator=g) * 80
    anchors = [Boxes(torch.cat([xy, xy + 16 + torch.rand(n_anchors, 2, generator=g) * 16], 1))]
    labels = [torch.full((n_anchors,), -1), torch.full((n_anchors,), -1)]
    labels[0][:10], labels[0][10:30] = 1, 0  # 30 sampled, 10 positive
    labels[1][:3], labels[1][3:8] = 1, 0  # 8 sampled, 3 positive
    logits = [torch.randn(2, n_anchors, generator=g, requires_grad=True)]
    deltas = [(torch.randn(2, n_anchors, 4, generator=g) * 0.2).requires_grad_()]
    gt = [anchors[0].tensor + torch.randn(n_anchors, 4, generator=g) * 3 for _ in range(2)]
    return anchors, logits, labels, deltas, gt


@pytest.mark.parametrize("mode", IOU_LOSS_MODES)
def test_rpn_loc_loss_with_both_normalisers(mode):
    anchors, logits, labels, deltas, gt = rpn_inputs()
    per_image = []
    for i in range(2):
        pos = labels[i] == 1
        boxes = Box2BoxTransform((1.0, 1.0, 1.0, 1.0)).apply_deltas(
            deltas[0][i][pos], anchors[0].tensor[pos]
        )
        per_image.append(iou_loss(boxes, gt[i][pos], mode, reduction="sum"))
    with EventStorage() as storage:
        batch = make_rpn(mode, "batch").losses(anchors, logits, labels, deltas, gt)
        actual = make_rpn(mode, "actual").losses(anchors, logits, labels, deltas, gt)
        assert 0.0 < storage.latest()["rpn/fg_iou"][0] <= 1.0
    torch.testing.assert_close(batch["loss_rpn_loc"], (per_image[0] + per_image[1]) / (64 * 2))
    torch.testing.assert_close(actual["loss_rpn_loc"], (per_image[0] / 30 + per_image[1] / 8) / 2)
    torch.testing.assert_close(batch["loss_rpn_cls"], actual["loss_rpn_cls"])
    actual["loss_rpn_loc"].backward()
    assert deltas[0].grad.abs().sum() > 0 and torch.isfinite(deltas[0].grad).all()


def test_rpn_matches_detectron2_for_its_types():
    anchors, logits, labels, deltas, gt = rpn_inputs(seed=1)
    for loss_type in ("giou", "smooth_l1"):
        with EventStorage():
            ours = make_rpn(loss_type, "batch").losses(anchors, logits, labels, deltas, gt)
            ref = make_rpn(loss_type, cls=RPN).losses(anchors, logits, labels, deltas, gt)
        for key in ("loss_rpn_cls", "loss_rpn_loc"):
            torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=1e-7)
    # smooth-L1 with the per-image normaliser: the same terms, reweighted per image
    with EventStorage():
        sl1 = make_rpn("smooth_l1", "actual").losses(anchors, logits, labels, deltas, gt)
    assert torch.isfinite(sl1["loss_rpn_loc"]) and sl1["loss_rpn_loc"] > 0


def test_rpn_bad_arguments():
    with pytest.raises(ValueError, match="rpn_norm must be one of"):
        make_rpn("giou", "per_level")
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        make_rpn("l2")


# ---- LazyConfig training, Mask R-CNN ---------------------------------------------------------
def _train(cfg, iters):
    """``iters`` steps on ONE fixed batch (so the loss curve is not batch-to-batch noise)."""
    model = instantiate(cfg.model)
    model.train()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    batch = next(iter(instantiate(cfg.dataloader.train)))
    history = []
    with EventStorage() as storage:
        for i in range(iters):
            storage.iter = i
            losses = model(batch)
            assert all(torch.isfinite(v) for v in losses.values()), losses
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            history.append({k: v.item() for k, v in losses.items()})
    return history


def test_short_training_with_rpn_and_roi_giou_lowers_the_box_losses():
    base = LazyConfig.load(
        os.path.join(ROOT, "configs/GIoU/giou_faster_rcnn_R_50_FPN_1x_rpn_giou.py")
    )
    base = to_synthetic(base, max_iter=8)
    base.dataloader.train.total_batch_size = 2
    base.dataloader.train.num_workers = 0
    # the synthetic switch's learning rate: on one fixed batch the RPN GIoU loss and the total go down
    history = _train(copy.deepcopy(base), 8)
    rpn = [h["loss_rpn_loc"] for h in history]
    assert sum(rpn[-3:]) < sum(rpn[:3]), rpn
    total = [sum(h.values()) for h in history]
    assert total[-1] < total[0], total
    # ten times higher: the losses spike by ~50x (huge, badly placed boxes) but every loss of every
    # iteration stays finite (asserted inside _train)
    base.optimizer.lr = 1e-2
    history = _train(base, 6)
    assert max(sum(h.values()) for h in history) > 5 * sum(history[0].values())


def test_mask_rcnn_giou_config_trains_two_iterations():
    cfg = LazyConfig.load(os.path.join(ROOT, "configs/GIoU/giou_mask_rcnn_R_50_FPN_1x.py"))
    cfg = to_synthetic(cfg, max_iter=2)
    cfg.dataloader.train.total_batch_size = 2
    cfg.dataloader.train.num_workers = 0
    history = _train(cfg, 2)
    assert {"loss_mask", "loss_box_reg", "loss_rpn_loc"} <= set(history[0])
