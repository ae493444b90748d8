"""IoU-Net: jitter generator, IoU head losses, IoU-branch training, refinement (fixed head and
oracle head), inference with every stage on/off, empty images, batching."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.poolers import assign_boxes_to_levels
from detectron2.modeling.roi_heads import FastRCNNConvFCHead, FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage
from torch import nn

from d2_boxunc.modeling.poolers import PrRoIPooler
from d2_boxunc.modeling.roi_heads import IoUHead, IoUNetROIHeads, IoURoIGenerator, iou_net_roi_heads
from d2_boxunc.modeling.roi_heads.iou_roi_generator import build_jitter_lattice

K = 3
C = 8
STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
SCALES = tuple(1.0 / s for s in STRIDES.values())
IMAGE = (128, 128)


# ---- generator -------------------------------------------------------------------------------
def test_lattice_bins_match_spec():
    transforms, ious = build_jitter_lattice(16)
    assert transforms.shape == (31 * 31 * 16 * 16, 4)
    counts = torch.bincount(torch.floor(ious * 10).long(), minlength=11)
    assert counts[5:10].tolist() == [19170, 7010, 2372, 670, 79]
    assert counts[10] == 0  # IoU exactly 1 falls in no bin
    sw = transforms[:, 2].unique()
    assert sw.min() == pytest.approx(3**-0.5) and sw.max() == pytest.approx(3**0.5)
    assert IoURoIGenerator().bin_counts == [4000, 4000, 2372, 670, 79]


def _gen_one(gen, boxes, classes, size=(1000, 1000)):
    return gen([torch.tensor(boxes, dtype=torch.float32)], [torch.tensor(classes)], [size])[0]


def test_per_image_sampler_iou_distribution_and_targets():
    gen = IoURoIGenerator(num_samples=1000, seed=3)
    gts = [[100.0, 100.0, 260.0, 220.0], [600.0, 500.0, 700.0, 800.0]]  # disjoint
    rois, ious, classes = _gen_one(gen, gts, [2, 0])
    assert 900 <= len(rois) <= 1000
    true = pairwise_iou(Boxes(rois), Boxes(torch.tensor(gts)))
    best, arg = true.max(dim=1)
    torch.testing.assert_close(ious, best)
    assert (ious >= 0.5).all() and (ious <= 1.0).all()
    assert torch.equal(classes, torch.tensor([2, 0])[arg])
    frac = torch.bincount(torch.floor(ious * 10).long().clamp(max=9), minlength=10)[5:] / len(ious)
    # 201 draws from each of the bins 0.5-0.9 and the 79 of [0.9, 1): 22.8% / 8.9%
    # (docs/design.md#jittered-training-rois)
    for f in frac[:4]:
        assert 0.19 < f < 0.27
    assert 0.05 < frac[4] < 0.13


def test_generator_clips_assigns_max_iou_and_handles_empty():
    gen = IoURoIGenerator(num_samples=400, seed=0)
    gts = [[0.0, 0.0, 50.0, 40.0], [20.0, 10.0, 70.0, 45.0]]  # overlapping, at the border
    rois, ious, classes = _gen_one(gen, gts, [1, 2], size=(48, 72))
    assert len(rois) > 0
    assert (rois[:, 0] >= 0).all() and (rois[:, 2] <= 72).all() and (rois[:, 3] <= 48).all()
    true = pairwise_iou(Boxes(rois), Boxes(torch.tensor(gts)))
    torch.testing.assert_close(ious, true.max(dim=1).values)
    assert (ious >= 0.5).all()
    assert torch.equal(classes, torch.tensor([1, 2])[true.argmax(dim=1)])
    rois, ious, classes = _gen_one(gen, torch.zeros(0, 4).tolist(), [])
    assert rois.shape == (0, 4) and ious.shape == (0,) and classes.shape == (0,)


def test_per_iou_sampler_and_seeding():
    gen = IoURoIGenerator(sampler="per_iou", per_iou=10, num_samples=1000)
    rois, ious, _ = _gen_one(gen, [[100.0, 100.0, 200.0, 300.0]] * 1, [0])
    assert len(rois) == 50  # 10 per bin, 5 bins, nothing clipped
    counts = torch.bincount(torch.floor(ious * 10 + 1e-4).long().clamp(max=9), minlength=10)[5:]
    assert counts.sum() == 50 and (counts >= 8).all()
    a = _gen_one(IoURoIGenerator(seed=5), [[10.0, 10.0, 90.0, 90.0]], [0])[0]
    b = _gen_one(IoURoIGenerator(seed=5), [[10.0, 10.0, 90.0, 90.0]], [0])[0]
    c = _gen_one(IoURoIGenerator(seed=6), [[10.0, 10.0, 90.0, 90.0]], [0])[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="sampler"):
        IoURoIGenerator(sampler="uniform")


# ---- head ------------------------------------------------------------------------------------
def test_iou_head_losses_and_gradients():
    head = IoUHead(ShapeSpec(channels=2, height=2, width=2), num_classes=K, fc_dims=[4])
    assert head.fc_iou.weight.std() < 0.05 and head.fc_iou.bias.abs().max() == 0
    raw = torch.tensor([[0.2, -0.4, 0.9], [0.1, 0.3, -0.5]], requires_grad=True)
    classes, target = torch.tensor([2, 1]), torch.tensor([0.8, 0.5])
    loss = head.losses(raw, classes, target)
    err = torch.tensor([0.9 - 0.6, 0.3 - 0.0])  # targets mapped to [-1, 1]
    assert loss.item() == pytest.approx(5.0 * (0.5 * err**2).sum().item() / 2, rel=1e-5)
    (g,) = torch.autograd.grad(loss, raw)
    expected = torch.zeros(2, 3)
    expected[0, 2], expected[1, 1] = 5.0 * err[0] / 2, 5.0 * err[1] / 2
    torch.testing.assert_close(g, expected)
    torch.testing.assert_close(head.predict_iou(raw.detach()), raw.detach() * 0.5 + 0.5)

    bce = IoUHead(
        ShapeSpec(channels=2, height=2, width=2),
        num_classes=K,
        fc_dims=[4],
        loss_type="bce",
        loss_weight=2.0,
    )
    loss = bce.losses(raw, classes, target)
    (g,) = torch.autograd.grad(loss, raw)
    sel = torch.tensor([0.9, 0.3])
    torch.testing.assert_close(g[[0, 1], [2, 1]], 2.0 * (sel.sigmoid() - target) / 2)
    assert g[0, :2].abs().sum() == 0
    torch.testing.assert_close(bce.predict_iou(raw.detach()), raw.detach().sigmoid())

    empty = head.losses(
        torch.zeros(0, K, requires_grad=True), torch.zeros(0, dtype=torch.long), torch.zeros(0)
    )
    assert empty.item() == 0 and empty.requires_grad
    with pytest.raises(ValueError, match="loss_type"):
        IoUHead(ShapeSpec(channels=2, height=2, width=2), num_classes=K, loss_type="l2")


# ---- ROI heads -------------------------------------------------------------------------------
def make_heads(iou_head=None, iou_pooler=None, **kwargs):
    torch.manual_seed(0)
    box_head = FastRCNNConvFCHead(
        ShapeSpec(channels=C, height=7, width=7), conv_dims=[], fc_dims=[32]
    )
    return IoUNetROIHeads(
        num_classes=K,
        batch_size_per_image=32,
        positive_fraction=0.25,
        proposal_matcher=Matcher([0.5], [0, 1], allow_low_quality_matches=False),
        box_in_features=list(STRIDES),
        box_pooler=PrRoIPooler(7, SCALES),
        box_head=box_head,
        box_predictor=FastRCNNOutputLayers(
            box_head.output_shape,
            box2box_transform=Box2BoxTransform((10, 10, 5, 5)),
            num_classes=K,
            test_score_thresh=0.05,
            test_topk_per_image=50,
        ),
        iou_pooler=iou_pooler or PrRoIPooler(7, SCALES),
        iou_head=iou_head
        or IoUHead(ShapeSpec(channels=C, height=7, width=7), num_classes=K, fc_dims=[32, 32]),
        iou_roi_generator=IoURoIGenerator(num_samples=64, seed=0),
        **kwargs,
    )


def make_features(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(n, C, IMAGE[0] // s, IMAGE[1] // s, generator=g) for k, s in STRIDES.items()
    }


def make_proposals(n_images=2, n=20, seed=0, empty=()):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_images):
        m = 0 if i in empty else n
        xy = torch.rand(m, 2, generator=g) * 70
        p = Instances(IMAGE)
        p.proposal_boxes = Boxes(torch.cat([xy, xy + 12 + torch.rand(m, 2, generator=g) * 40], 1))
        p.objectness_logits = torch.zeros(m)
        out.append(p)
    return out


def make_targets(n_images=2, empty=(1,)):
    out = []
    for i in range(n_images):
        t = Instances(IMAGE)
        boxes = [] if i in empty else [[10.0, 12.0, 60.0, 70.0], [50.0, 40.0, 110.0, 100.0]]
        t.gt_boxes = Boxes(torch.tensor(boxes).reshape(-1, 4))
        t.gt_classes = torch.tensor([0, 2][: len(boxes)], dtype=torch.long)
        out.append(t)
    return out


def test_training_losses_and_iou_branch_learns():
    heads = make_heads().train()
    feats = make_features()
    feats = {k: v.requires_grad_(True) for k, v in feats.items()}
    with EventStorage():
        _, losses = heads(None, feats, make_proposals(), make_targets())
        assert set(losses) == {"loss_cls", "loss_box_reg", "loss_iou"}
        assert all(torch.isfinite(v) for v in losses.values())
        losses["loss_iou"].backward()
        assert feats["p2"].grad.abs().sum() > 0  # joint training: reaches the FPN features
        # no GT anywhere: the IoU loss is 0 and still attached to the head's parameters
        _, losses = heads(None, make_features(), make_proposals(), make_targets(empty=(0, 1)))
        assert losses["loss_iou"].item() == 0 and losses["loss_iou"].requires_grad

    # a few Adam steps on the IoU branch alone lower its loss
    feats = make_features(seed=1)
    opt = torch.optim.Adam(heads.iou_head.parameters(), lr=3e-3)
    history = []
    with EventStorage():
        for _ in range(25):
            loss = heads._forward_iou_train(feats, make_targets(empty=()))["loss_iou"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
    assert sum(history[-5:]) / 5 < 0.5 * sum(history[:5]) / 5


def _check_instances(inst, with_ious=True):
    assert inst.image_size == IMAGE
    b = inst.pred_boxes.tensor
    assert torch.isfinite(b).all() and (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
    assert (b >= 0).all() and (b[:, 2] <= IMAGE[1]).all() and (b[:, 3] <= IMAGE[0]).all()
    assert ((inst.scores >= 0) & (inst.scores <= 1)).all()
    assert ((inst.pred_classes >= 0) & (inst.pred_classes < K)).all()
    assert torch.all(inst.scores[:-1] >= inst.scores[1:])
    assert len(inst) <= 50
    if with_ious:
        assert ((inst.pred_ious >= 0) & (inst.pred_ious <= 1)).all()
        if len(inst):
            assert inst.get("cls_scores").shape == inst.scores.shape


STAGES = [
    dict(test_iou_head=False),
    dict(test_nms_type="standard", refine=False, final_score="cls"),
    dict(test_nms_type="iou_guided", test_nms_key="iou", refine=False, final_score="cls"),
    dict(test_nms_type="iou_guided", test_nms_key="cls_x_iou", refine=False),
    dict(test_nms_type="iou_guided", refine=True, refine_lambda=0.5),
    dict(test_nms_type="standard", refine=True, refine_lambda=2.0, final_score="cls"),
    dict(test_nms_type="diou", refine=True),
    dict(test_nms_class_boxes="per_class", refine=True),
]


@pytest.mark.parametrize("stages", STAGES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_inference_every_stage_gives_valid_instances(stages):
    heads = make_heads(**stages).eval()
    for p in heads.parameters():
        p.grad = None
    with torch.no_grad():
        out, _ = heads(None, make_features(3), make_proposals(3, empty=(1,)))
    assert len(out) == 3 and len(out[1]) == 0 and len(out[0]) > 0
    for inst in out:
        _check_instances(inst, with_ious=stages.get("test_iou_head", True))
    assert all(p.grad is None for p in heads.parameters())  # refinement leaves .grad alone
    if stages.get("final_score", "cls_x_iou") == "cls_x_iou" and stages.get("test_iou_head", 1):
        torch.testing.assert_close(out[0].scores, out[0].cls_scores * out[0].pred_ious)


@pytest.mark.parametrize("nms_type,kept", [("standard", 1), ("diou", 2)])
def test_diou_nms_keeps_the_box_beside_that_nms_suppresses(nms_type, kept):
    """Two candidates of class 0 side by side, IoU 1/3 and DIoU 1/3 - 1/13, threshold 0.3."""
    heads = make_heads(test_nms_type=nms_type, refine=False, final_score="cls").eval()
    heads.box_predictor.test_nms_thresh = 0.3
    boxes = torch.tensor([[20.0, 20.0, 40.0, 40.0], [30.0, 20.0, 50.0, 40.0]]).repeat(1, K)
    scores = torch.tensor([[0.8, 0.0, 0.0, 0.2], [0.7, 0.0, 0.0, 0.3]])
    features = [make_features(1)[f] for f in heads.iou_in_features]
    with torch.no_grad():
        out = heads.iou_net_inference(features, [boxes], [scores], [IMAGE])[0]
    torch.testing.assert_close(out.pred_boxes.tensor, boxes[:kept, :4])
    assert out.scores.tolist() == pytest.approx([0.8, 0.7][:kept])


def test_bad_nms_type_lists_the_choices():
    with pytest.raises(
        ValueError, match=r"test_nms_type must be one of \('standard', 'iou_guided', 'diou'\)"
    ):
        make_heads(test_nms_type="soft")


def test_inference_no_candidates_and_inference_mode():
    heads = make_heads().eval()
    heads.box_predictor.test_score_thresh = 1.01  # every image empty after the score threshold
    with torch.no_grad():
        out, _ = heads(None, make_features(), make_proposals())
    assert [len(o) for o in out] == [0, 0] and out[0].has("pred_ious")
    heads.box_predictor.test_score_thresh = 0.05
    with torch.inference_mode():
        out, _ = heads(None, make_features(), make_proposals())
    assert len(out[0]) > 0
    _check_instances(out[0])


def test_batch_size_invariance():
    heads = make_heads(refine=True, refine_lambda=2.0).eval()
    feats, props = make_features(3, seed=2), make_proposals(3, seed=2)
    with torch.no_grad():
        together, _ = heads(None, feats, props)
        for i in range(3):
            alone, _ = heads(None, {k: v[i : i + 1] for k, v in feats.items()}, [props[i]])
            for field in ("pred_boxes", "scores", "pred_classes", "pred_ious"):
                a, b = alone[0].get(field), together[i].get(field)
                a, b = (a.tensor, b.tensor) if field == "pred_boxes" else (a, b)
                torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_refinement_raises_predicted_iou_for_fixed_head():
    heads = make_heads(refine_lambda=0.5, refine_steps=5).eval()
    feats = [v for v in make_features(2, seed=4).values()]
    props = make_proposals(2, n=30, seed=4)
    boxes = [p.proposal_boxes.tensor for p in props]
    classes = [torch.randint(0, K, (30,)) for _ in props]
    with torch.no_grad():
        before = heads.predict_ious(feats, boxes, torch.cat(classes))
        refined, after = heads.refine_boxes(feats, boxes, classes, [IMAGE] * 2)
    after = torch.cat(after)
    torch.testing.assert_close(after, heads.predict_ious(feats, refined, torch.cat(classes)))
    assert not torch.equal(torch.cat(refined), torch.cat(boxes))
    assert after.mean() > before.mean()
    assert (after > before).float().mean() > 0.8
    r = torch.cat(refined)
    assert (r[:, 2] > r[:, 0]).all() and (r[:, 3] > r[:, 1]).all() and (r >= 0).all()
    assert (r[:, 2:] <= torch.tensor([IMAGE[1], IMAGE[0]])).all()


def _refine_one_box(heads, feats, box, cls, image, hw):
    """Alg. 2 for one box, the plain way: its level from its starting size, that level's own
    PrRoIPool on that level's map, autograd, a Python loop that stops. Returns (box, IoU, steps)."""
    p = heads.iou_pooler
    level = int(
        assign_boxes_to_levels(
            [Boxes(box[None])], p.min_level, p.max_level, p.canonical_box_size, p.canonical_level
        )[0]
    )

    def iou_of(b, with_grad):
        b = b.detach().requires_grad_(with_grad)
        roi = torch.cat([b.new_tensor([image]), b])[None]
        raw = heads.iou_head(p.level_poolers[level](feats[level], roi))
        iou = heads.iou_head.predict_iou(heads.iou_head.select(raw, cls[None]))[0]
        return iou.detach(), torch.autograd.grad(iou, b)[0] if with_grad else None

    b = box.float()
    prev, grad = iou_of(b, True)
    iou, steps = prev, 0
    for t in range(heads.refine_steps):
        wh = (b[2:] - b[:2]).clamp(min=0.0)
        b = heads._sanitize((b + heads.refine_lambda * grad * torch.cat([wh, wh]))[None], hw)[0]
        iou, grad = iou_of(b, t < heads.refine_steps - 1)
        steps += 1
        delta = iou - prev
        if abs(delta) < heads.refine_omega1 or delta < heads.refine_omega2:
            break
        prev = iou
    return b, iou, steps


@pytest.mark.parametrize("compact", [True, False], ids=["cpu-active-boxes", "fixed-shapes"])
def test_batched_refinement_equals_box_by_box_refinement(compact, monkeypatch):
    """The batched refinement (one pooling call over the padded stack of levels, stopped boxes
    masked) gives each box what Alg. 2 run on it alone gives: on the CPU, which evaluates only the
    active boxes, and with the fixed shapes of a device (every box at every step)."""
    monkeypatch.setattr(iou_net_roi_heads, "_host_reads_are_free", lambda t: compact)
    # canonical size 32: the 4-128 px boxes spread over all four levels (224 puts them on p2)
    pooler = PrRoIPooler(7, SCALES, canonical_box_size=32)
    heads = make_heads(iou_pooler=pooler, refine_lambda=20.0, refine_steps=5).eval()
    feats = [v for v in make_features(2, seed=5).values()]
    props = make_proposals(2, n=12, seed=5)
    props[1].proposal_boxes.tensor[:2] = torch.tensor([[0.0, 0, 128, 128], [5, 5, 9, 9]])
    boxes = [p.proposal_boxes.tensor for p in props]
    classes = [
        torch.randint(0, K, (12,), generator=torch.Generator().manual_seed(i)) for i in (0, 1)
    ]
    with torch.no_grad():
        refined, ious = heads.refine_boxes(feats, boxes, classes, [IMAGE] * 2)
    hw = torch.tensor([IMAGE], dtype=torch.float32)
    steps = []
    for i in range(2):
        for j in range(12):
            box, iou, n = _refine_one_box(heads, feats, boxes[i][j], classes[i][j], i, hw)
            torch.testing.assert_close(refined[i][j], box, atol=1e-4, rtol=0)
            torch.testing.assert_close(ious[i][j], iou, atol=1e-5, rtol=0)
            steps.append(n)
    # the case covers early stops, boxes refined all T steps, and more than one FPN level
    assert min(steps) < 5 and max(steps) == 5, steps
    levels = heads._fixed_levels(torch.cat(boxes))
    assert levels.unique().tolist() == [0, 1, 2, 3]


class OracleIoUHead(nn.Module):
    """Reads the RoI back from PrRoIPool'd x/y ramps (bin centres) and returns its true IoU
    with ``gt``: a perfect IoU predictor whose coordinate gradient flows through PrRoIPool."""

    def __init__(self, gt):
        super().__init__()
        self.gt = gt

    def forward(self, x):
        cx, cy = x[:, 0, 0, :], x[:, 1, :, 0]  # bin centres along x and y
        bw = (cx[:, -1] - cx[:, 0]) / (cx.shape[1] - 1)
        bh = (cy[:, -1] - cy[:, 0]) / (cy.shape[1] - 1)
        x1, y1 = cx[:, 0] - bw / 2, cy[:, 0] - bh / 2
        x2, y2 = x1 + bw * cx.shape[1], y1 + bh * cy.shape[1]
        g = self.gt
        iw = (torch.minimum(x2, g[2]) - torch.maximum(x1, g[0])).clamp(min=0)
        ih = (torch.minimum(y2, g[3]) - torch.maximum(y1, g[1])).clamp(min=0)
        inter = iw * ih
        union = (x2 - x1) * (y2 - y1) + (g[2] - g[0]) * (g[3] - g[1]) - inter
        return (2 * inter / union - 1)[:, None]

    def select(self, raw, classes):
        return raw[:, 0]

    def predict_iou(self, raw):
        return raw * 0.5 + 0.5


def test_refinement_with_oracle_head_raises_true_iou():
    gt = torch.tensor([30.0, 26.0, 80.0, 90.0])
    ramp = torch.stack(torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="xy"))
    heads = make_heads(
        iou_head=OracleIoUHead(gt),
        iou_pooler=PrRoIPooler(7, (1.0,), aligned=False),
        refine_lambda=0.5,
        refine_steps=5,
    )
    jitter = torch.tensor(
        [
            [6.0, -5.0, 8.0, 4.0],
            [-7.0, 4.0, -6.0, -8.0],
            [5.0, 6.0, 3.0, 9.0],
            [-4.0, -6.0, 9.0, -3.0],
        ]
    )
    boxes = gt + jitter
    with torch.no_grad():
        start = pairwise_iou(Boxes(boxes), Boxes(gt[None]))[:, 0]
        torch.testing.assert_close(heads.predict_ious([ramp[None]], [boxes], torch.zeros(4)), start)
        refined, pred = heads.refine_boxes(
            [ramp[None]], [boxes], [torch.zeros(4, dtype=torch.long)], [(128, 128)]
        )
    end = pairwise_iou(Boxes(refined[0]), Boxes(gt[None]))[:, 0]
    torch.testing.assert_close(pred[0], end, atol=1e-4, rtol=1e-4)
    assert (end > start + 0.02).all(), (start, end)


def test_class_agnostic_iou_head_inference():
    head = IoUHead(
        ShapeSpec(channels=C, height=7, width=7), num_classes=K, fc_dims=[16], class_agnostic=True
    )
    assert head.fc_iou.out_features == 1
    heads = make_heads(iou_head=head).eval()
    with torch.no_grad():
        out, _ = heads(None, make_features(), make_proposals())
    for inst in out:
        _check_instances(inst)


def test_true_iou_is_the_best_same_class_iou():
    from d2_boxunc.evaluation.matching import true_ious

    gt = torch.tensor([[10.0, 10.0, 60.0, 50.0], [0.0, 0.0, 20.0, 20.0]])
    shifts = torch.linspace(0.0, 12.0, 8)
    boxes = gt[:1] + torch.stack([shifts, shifts * 0, shifts, shifts * 0], 1)
    inst = Instances((100, 100))
    inst.pred_boxes = Boxes(boxes)
    inst.pred_classes = torch.ones(8, dtype=torch.long)
    classes = torch.tensor([1, 2])
    torch.testing.assert_close(
        true_ious(inst, gt, classes), pairwise_iou(Boxes(boxes), Boxes(gt[:1]))[:, 0]
    )
    inst.pred_classes = torch.zeros(8, dtype=torch.long)  # no GT of this class: 0
    assert true_ious(inst, gt, classes).tolist() == [0.0] * 8
    assert true_ious(inst, gt[:0], classes[:0]).tolist() == [0.0] * 8
