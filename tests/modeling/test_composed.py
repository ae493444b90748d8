"""The composed Faster R-CNN (docs/composition.md): KLIoULossFastRCNNOutputLayers (IoU-type box
loss + KL loss on sigma) and KLIoUNetROIHeads (IoU-guided NMS, variance voting, refinement)."""

import os

import pytest
import torch
from detectron2.config import LazyConfig
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import FastRCNNConvFCHead, FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

from d2_boxunc.losses import iou_loss, kl_loss
from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
from d2_boxunc.modeling.meta_arch import BoxUncRCNN
from d2_boxunc.modeling.poolers import PrRoIPooler
from d2_boxunc.modeling.roi_heads import (
    IoUHead,
    IoULossFastRCNNOutputLayers,
    IoURoIGenerator,
    KLFastRCNNOutputLayers,
    KLIoULossFastRCNNOutputLayers,
    KLIoUNetROIHeads,
)
from tests.modeling.test_iou_net import IMAGE, SCALES, STRIDES, C, make_features, make_targets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "configs/Composed/kl_iounet_giou_faster_rcnn_R_50_FPN_1x.py"
K = 3
FEAT = 16


# ---- box predictor -----------------------------------------------------------------------------
def make_predictor(**kwargs):
    return KLIoULossFastRCNNOutputLayers(
        ShapeSpec(channels=FEAT),
        box2box_transform=Box2BoxTransformXYXY(),
        num_classes=K,
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
    p.gt_classes[:2] = torch.tensor([0, 2])  # foreground RoIs of two classes
    return p


def hand_predictions(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, K + 1, generator=g)
    deltas = (torch.randn(n, 4 * K, generator=g) * 0.1).requires_grad_()
    log_vars = (torch.randn(n, 4 * K, generator=g) * 0.5).requires_grad_()
    return scores, deltas, log_vars


def hand_terms(p, deltas, log_vars):
    """(sum of GIoU, sum of KL with the deltas detached), each over the foreground RoIs / N."""
    n = len(p)
    fg = (p.gt_classes < K).nonzero()[:, 0]
    cls = p.gt_classes[fg]
    d, a = deltas.view(n, K, 4)[fg, cls], log_vars.view(n, K, 4)[fg, cls]
    coder = Box2BoxTransformXYXY()
    props, gts = p.proposal_boxes.tensor[fg], p.gt_boxes.tensor[fg]
    giou = iou_loss(coder.apply_deltas(d, props), gts, "giou", reduction="sum") / n
    targets = coder.get_deltas(props, gts)
    return giou, kl_loss(d.detach(), a, targets, reduction="sum") / n, kl_loss(d, a, targets) / n


def test_box_loss_is_the_weighted_sum_of_its_parents_losses():
    pred = make_predictor(sigma_loss_weight=0.5)
    p = proposals_with_gt()
    scores, deltas, log_vars = hand_predictions(len(p))
    iou_parent = IoULossFastRCNNOutputLayers(
        ShapeSpec(channels=FEAT),
        box2box_transform=Box2BoxTransformXYXY(),
        num_classes=K,
        box_reg_loss_type="giou",
    )
    kl_parent = KLFastRCNNOutputLayers(
        ShapeSpec(channels=FEAT), box2box_transform=Box2BoxTransformXYXY(), num_classes=K
    )
    with EventStorage() as storage:
        losses = pred.losses((scores, deltas, log_vars), [p])
        logged = {k: v[0] for k, v in storage.latest().items()}
        # the two parents' own losses on the same predictions
        iou_parent = iou_parent.losses((scores, deltas), [p])
        kl_parent = kl_parent.losses((scores, deltas, log_vars), [p])
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    giou, kl, _ = hand_terms(p, deltas, log_vars)
    torch.testing.assert_close(losses["loss_box_reg"], 10.0 * giou + 0.5 * kl)
    torch.testing.assert_close(
        losses["loss_box_reg"], iou_parent["loss_box_reg"] + 0.5 * kl_parent["loss_box_reg"]
    )
    torch.testing.assert_close(losses["loss_cls"], iou_parent["loss_cls"])
    assert logged["composed/loss_box_iou"] == pytest.approx(10.0 * giou.item(), rel=1e-5)
    assert logged["composed/loss_box_sigma"] == pytest.approx(0.5 * kl.item(), rel=1e-5)


@pytest.mark.parametrize("kl_box_gradient", [False, True])
def test_sigma_learns_from_kl_and_the_box_only_from_giou(kl_box_gradient):
    pred = make_predictor(kl_box_gradient=kl_box_gradient)
    p = proposals_with_gt()
    scores, deltas, log_vars = hand_predictions(len(p))
    with EventStorage():
        loss = pred.losses((scores, deltas, log_vars), [p])["loss_box_reg"]
    g_deltas, g_log_vars = torch.autograd.grad(loss, [deltas, log_vars])
    giou, kl, kl_full = hand_terms(p, deltas, log_vars)
    box_loss = 10.0 * giou + (kl_full.sum() if kl_box_gradient else 0.0)
    (expected_deltas,) = torch.autograd.grad(box_loss, deltas, retain_graph=True)
    (expected_log_vars,) = torch.autograd.grad(kl, log_vars)
    torch.testing.assert_close(g_deltas, expected_deltas)
    torch.testing.assert_close(g_log_vars, expected_log_vars)
    # sigma gets gradient on the foreground RoIs' ground-truth class, nowhere else
    fg = torch.zeros(len(p), K, dtype=torch.bool)
    rows = (p.gt_classes < K).nonzero()[:, 0]
    fg[rows, p.gt_classes[rows]] = True
    per_box = g_log_vars.view(len(p), K, 4).abs().sum(-1)
    assert (per_box[fg] > 0).all() and (per_box[~fg] == 0).all()
    (giou_only,) = torch.autograd.grad(10.0 * giou, deltas)
    assert torch.allclose(g_deltas, giou_only) != kl_box_gradient


def test_no_foreground_gives_zero_loss_attached_to_both_layers():
    pred = make_predictor()
    p = proposals_with_gt()
    p.gt_classes = torch.full_like(p.gt_classes, K)
    with EventStorage():
        loss = pred.losses(pred(torch.randn(len(p), FEAT)), [p])["loss_box_reg"]
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert pred.bbox_pred.weight.grad is not None and pred.bbox_pred_logvar.weight.grad is not None


def test_bad_predictor_arguments():
    with pytest.raises(ValueError, match="Box2BoxTransformXYXY"):
        KLIoULossFastRCNNOutputLayers(
            ShapeSpec(channels=FEAT),
            box2box_transform=Box2BoxTransform((10, 10, 5, 5)),
            num_classes=K,
        )
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        make_predictor(box_reg_loss_type="smooth_l1")
    with pytest.raises(ValueError, match="sigma_loss_weight"):
        make_predictor(sigma_loss_weight=-1.0)


# ---- ROI heads -----------------------------------------------------------------------------------
def make_heads(predictor_kwargs=None, **kwargs):
    torch.manual_seed(0)
    box_head = FastRCNNConvFCHead(
        ShapeSpec(channels=C, height=7, width=7), conv_dims=[], fc_dims=[32]
    )
    predictor = KLIoULossFastRCNNOutputLayers(
        box_head.output_shape,
        box2box_transform=Box2BoxTransformXYXY(),
        num_classes=K,
        test_score_thresh=0.05,
        test_topk_per_image=50,
        **{"test_var_voting": True, **(predictor_kwargs or {})},
    )
    with torch.no_grad():  # spread the untrained outputs so that NMS and voting have work
        predictor.cls_score.weight.normal_(std=0.5)
        predictor.bbox_pred.weight.normal_(std=0.05)
        predictor.bbox_pred_logvar.weight.normal_(std=0.5)
    return KLIoUNetROIHeads(
        num_classes=K,
        batch_size_per_image=32,
        positive_fraction=0.25,
        proposal_matcher=Matcher([0.5], [0, 1], allow_low_quality_matches=False),
        box_in_features=list(STRIDES),
        box_pooler=PrRoIPooler(7, SCALES),
        box_head=box_head,
        box_predictor=predictor,
        iou_pooler=PrRoIPooler(7, SCALES),
        iou_head=IoUHead(ShapeSpec(channels=C, height=7, width=7), num_classes=K, fc_dims=[32, 32]),
        iou_roi_generator=IoURoIGenerator(num_samples=64, seed=0),
        **kwargs,
    )


def clustered_proposals(n_images=2, seed=0, empty=()):
    """Clusters of 6 overlapping proposals around 3 centres per image."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_images):
        boxes = []
        for c in torch.rand(0 if i in empty else 3, 2, generator=g) * 70 + 25:
            for _ in range(6):
                half = 12 + torch.rand(2, generator=g) * 6
                shift = torch.randn(2, generator=g) * 2.5
                boxes.append(torch.cat([c + shift - half, c + shift + half]))
        p = Instances(IMAGE)
        p.proposal_boxes = Boxes(torch.stack(boxes) if boxes else torch.zeros(0, 4))
        p.objectness_logits = torch.zeros(len(boxes))
        out.append(p)
    return out


def infer(heads, n_images=2, seed=0, empty=()):
    with torch.no_grad():
        out, _ = heads.eval()(
            None, make_features(n_images, seed), clustered_proposals(n_images, seed, empty)
        )
    return out


def _get(inst, field):
    value = inst.get(field)
    return value.tensor if isinstance(value, Boxes) else value


def test_training_losses_and_gradients_reach_sigma_and_iou_branch():
    heads = make_heads().train()
    with EventStorage():
        _, losses = heads(None, make_features(), clustered_proposals(), make_targets())
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_iou"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for module in (heads.box_predictor.bbox_pred_logvar, heads.box_predictor.bbox_pred):
        assert module.weight.grad.abs().sum() > 0
    assert heads.iou_head.fc_iou.weight.grad.abs().sum() > 0


def test_inference_outputs_carry_sigma_and_predicted_iou():
    out = infer(make_heads(), n_images=3, empty=(1,))
    assert [len(o) > 0 for o in out] == [True, False, True]
    for inst in out:
        n = len(inst)
        b = inst.pred_boxes.tensor
        assert torch.isfinite(b).all() and (b[:, 2:] >= b[:, :2]).all() and (b >= 0).all()
        assert inst.pred_boxes_std.shape == inst.pred_box_logvar.shape == (n, 4)
        assert (inst.pred_boxes_std > 0).all() and torch.isfinite(inst.pred_boxes_std).all()
        assert ((inst.pred_ious >= 0) & (inst.pred_ious <= 1)).all()
        assert not inst.has("box_extras")
        torch.testing.assert_close(inst.scores, inst.cls_scores * inst.pred_ious)
        assert torch.all(inst.scores[:-1] >= inst.scores[1:]) and n <= 50


def test_sigma_is_klloss_own_for_the_same_boxes():
    """Standard NMS on each class's own boxes, nothing else: the detections and their sigma are
    those of the KL-Loss predictor's own inference (detectron2's NMS)."""
    heads = make_heads(
        {"test_var_voting": False},
        test_nms_type="standard",
        test_nms_class_boxes="per_class",
        refine=False,
        final_score="cls",
    )
    ours = infer(heads)
    heads.test_iou_head = False
    kl = infer(heads)
    for a, b in zip(ours, kl):
        assert len(a) > 0
        for field in ("pred_boxes", "scores", "pred_classes", "pred_boxes_std", "pred_box_logvar"):
            torch.testing.assert_close(_get(a, field), _get(b, field))


def reference_vote(boxes, classes, cand_boxes, cand_classes, cand_log_vars, sigma_t, thresh):
    """Pure-PyTorch variance voting over the same-class candidates, in float64."""
    out = boxes.double().clone()
    for i in range(boxes.shape[0]):
        m = cand_classes == classes[i]
        c = cand_boxes[m].double()
        iou = pairwise_iou(Boxes(boxes[i : i + 1].double()), Boxes(c))[0]
        sel = iou > thresh
        w = (
            torch.exp(-((1 - iou[sel]) ** 2) / sigma_t)[:, None]
            / cand_log_vars[m][sel].double().exp()
        )
        out[i] = (w * c[sel]).sum(0) / w.sum(0)
    return out.to(boxes.dtype)


def test_vote_is_per_class_variance_voting():
    heads = make_heads({"sigma_t": 0.05})
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(40, 2, generator=g) * 30 + 10
    cand = torch.cat([xy, xy + 30 + torch.rand(40, 2, generator=g) * 10], 1)
    cand_classes = torch.randint(0, 2, (40,), generator=g)
    cand_log_vars = torch.randn(40, 4, generator=g) * 2
    keep = torch.tensor([0, 5, 9, 17])
    voted = heads.vote(cand[keep], cand_classes[keep], cand, cand_classes, cand_log_vars)
    expected = reference_vote(
        cand[keep], cand_classes[keep], cand, cand_classes, cand_log_vars, 0.05, 0.0
    )
    torch.testing.assert_close(voted, expected, rtol=1e-5, atol=1e-4)
    # a confident neighbour pulls the box; the same box in another class does not vote
    kept = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    cands = torch.tensor(
        [[10.0, 10.0, 50.0, 50.0], [14.0, 14.0, 54.0, 54.0], [30.0, 30.0, 70.0, 70.0]]
    )
    log_vars = torch.tensor([[4.0] * 4, [-4.0] * 4, [-9.0] * 4])
    heads.box_predictor.sigma_t = 1.0
    voted = heads.vote(kept, torch.tensor([0]), cands, torch.tensor([0, 0, 1]), log_vars)
    assert (voted[0] - torch.tensor([14.0, 14.0, 54.0, 54.0])).abs().max() < 0.1


def _pairs(heads_kwargs, predictor_on, predictor_off):
    on = infer(make_heads(predictor_on, **heads_kwargs))
    off = infer(make_heads(predictor_off, **heads_kwargs))
    return on, off


def test_voting_switch_moves_only_the_boxes_and_rescores_their_iou():
    """Without refinement and with the cls score as final score, voting keeps the detections
    (classes, scores, sigma) and moves boxes; their predicted IoU is that of the voted box."""
    kwargs = dict(refine=False, final_score="cls")
    on, off = _pairs(kwargs, {"test_var_voting": True}, {"test_var_voting": False})
    heads = make_heads(**kwargs).eval()
    feats = list(make_features(2, 0).values())
    moved = 0
    for a, b in zip(on, off):
        for field in ("scores", "pred_classes", "pred_boxes_std", "cls_scores"):
            torch.testing.assert_close(_get(a, field), _get(b, field))
        moved += int((a.pred_boxes.tensor - b.pred_boxes.tensor).abs().amax(1).gt(1e-3).sum())
    assert moved > 0
    with torch.no_grad():
        ious = heads.predict_ious(
            feats, [o.pred_boxes.tensor for o in on], torch.cat([o.pred_classes for o in on])
        )
    torch.testing.assert_close(torch.cat([o.pred_ious for o in on]), ious.clamp(0, 1))


def test_refinement_switch_moves_the_voted_boxes_up_the_predicted_iou():
    kwargs = dict(final_score="cls")
    on = infer(make_heads(refine=True, refine_lambda=2.0, **kwargs))
    off = infer(make_heads(refine=False, **kwargs))
    for a, b in zip(on, off):
        for field in ("scores", "pred_classes", "pred_boxes_std"):
            torch.testing.assert_close(_get(a, field), _get(b, field))
        assert not torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor)
        assert a.pred_ious.mean() > b.pred_ious.mean()


def test_iou_nms_switch_changes_the_kept_boxes_and_their_scores():
    kwargs = dict(refine=False, final_score="cls")
    guided = infer(make_heads(test_nms_type="iou_guided", test_nms_key="iou", **kwargs))
    standard = infer(make_heads(test_nms_type="standard", **kwargs))
    differs = False
    for a, b in zip(guided, standard):
        assert len(a) > 0 and len(b) > 0
        same = len(a) == len(b) and torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor)
        differs |= not same or not torch.equal(a.scores, b.scores)
    assert differs


def test_iou_head_off_is_klloss_inference():
    out = infer(make_heads(test_iou_head=False))
    assert all(len(o) > 0 and o.has("pred_boxes_std") and not o.has("pred_ious") for o in out)


def test_batch_size_invariance():
    heads = make_heads(refine=True, refine_lambda=2.0).eval()
    feats, props = make_features(3, seed=2), clustered_proposals(3, seed=2)
    with torch.no_grad():
        together, _ = heads(None, feats, props)
        for i in range(3):
            alone, _ = heads(None, {k: v[i : i + 1] for k, v in feats.items()}, [props[i]])
            for field in ("pred_boxes", "scores", "pred_classes", "pred_ious", "pred_boxes_std"):
                torch.testing.assert_close(
                    _get(alone[0], field), _get(together[i], field), atol=1e-4, rtol=1e-4
                )


def test_heads_need_a_kl_predictor():
    box_head = FastRCNNConvFCHead(
        ShapeSpec(channels=C, height=7, width=7), conv_dims=[], fc_dims=[32]
    )
    with pytest.raises(ValueError, match="KLFastRCNNOutputLayers"):
        KLIoUNetROIHeads(
            num_classes=K,
            batch_size_per_image=32,
            positive_fraction=0.25,
            proposal_matcher=Matcher([0.5], [0, 1]),
            box_in_features=list(STRIDES),
            box_pooler=PrRoIPooler(7, SCALES),
            box_head=box_head,
            box_predictor=FastRCNNOutputLayers(
                box_head.output_shape,
                box2box_transform=Box2BoxTransform((10, 10, 5, 5)),
                num_classes=K,
            ),
            iou_pooler=PrRoIPooler(7, SCALES),
            iou_head=IoUHead(ShapeSpec(channels=C, height=7, width=7), num_classes=K, fc_dims=[32]),
            iou_roi_generator=IoURoIGenerator(num_samples=64, seed=0),
        )


# ---- config ----------------------------------------------------------------------------------------
def test_config_composes_the_three_methods():
    cfg = LazyConfig.load(os.path.join(ROOT, CONFIG))
    assert cfg.model._target_ is BoxUncRCNN
    assert cfg.model.roi_heads._target_ is KLIoUNetROIHeads
    predictor = cfg.model.roi_heads.box_predictor
    assert predictor._target_ is KLIoULossFastRCNNOutputLayers
    assert predictor.box2box_transform._target_ is Box2BoxTransformXYXY
    assert predictor.test_var_voting is True
    # the composition's own settings come from the class signature, not the config
    assert not {"box_reg_loss_type", "sigma_loss_weight", "kl_box_gradient"} & set(predictor)
    roi = cfg.model.roi_heads
    assert (roi.test_nms_type, roi.test_nms_key, roi.refine) == ("iou_guided", "cls_x_iou", True)
