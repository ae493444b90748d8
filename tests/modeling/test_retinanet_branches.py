"""BoxUncRetinaNet's sigma and IoU branches (docs/retinanet_heads.md): the loss values on
hand-built anchors (the KL formula, the IoU target of the decoded box, the gradient routing of
aLRP + sigma), inference (voted boxes and their pixel std, the IoU-aware ranking, equality with
RetinaNet's own inference with the branches unused), batch invariance and the checks."""

import copy
import math
import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling import RetinaNet
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

from d2_boxunc.config import to_synthetic
from d2_boxunc.modeling.meta_arch import BoxUncRetinaNetHead

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = {
    "sigma": "configs/KLLoss/kl_retinanet_R_50_FPN_100ep_512.py",
    "iou": "configs/aLRPLoss/iouaware_retinanet_R_50_FPN_100ep_512.py",
    "alrp_sigma": "configs/Composed/alrp_sigma_retinanet_R_50_FPN_100ep_512.py",
}


@pytest.fixture(scope="module")
def cfgs():
    out = {}
    for name, path in CONFIGS.items():
        cfg = to_synthetic(LazyConfig.load(os.path.join(ROOT, path)), max_iter=10)
        cfg.model.sb_period = 1000
        cfg.model.head.conv_dims = [32]  # one conv per tower: a small, fast test model
        out[name] = cfg.model
    return out


def _build(model_cfg, **overrides):
    cfg = copy.deepcopy(model_cfg)
    for k, v in overrides.items():
        if k.startswith("head."):
            setattr(cfg.head, k[5:], v)
        else:
            setattr(cfg, k, v)
    torch.manual_seed(0)
    return instantiate(cfg)


def _logit(p):
    return math.log(p / (1 - p))


def _sl1(d, beta=1.0):
    d = d.abs()
    return torch.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


# three anchors on one level: positive (class 1), background, ignored
ANCHORS = [[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0], [50.0, 50.0, 60.0, 60.0]]


def _hand_built(m, deltas, gt, alpha=None, iou_logit=None):
    """``m.losses`` inputs for one image with ANCHORS: (args, kwargs, leaf tensors)."""
    k = m.num_classes
    logits = torch.full((1, 3, k), -2.0, requires_grad=True)
    deltas = torch.tensor([[deltas, [0.0] * 4, [0.0] * 4]], requires_grad=True)
    gt_boxes = torch.tensor([gt, ANCHORS[1], ANCHORS[2]])
    args = ([Boxes(torch.tensor(ANCHORS))], [logits], [torch.tensor([1, k, -1])], [deltas])
    kwargs = {}
    leaves = {"logits": logits, "deltas": deltas}
    if alpha is not None:
        logvars = torch.tensor([[alpha, [0.0] * 4, [0.0] * 4]], requires_grad=True)
        kwargs["pred_logvars"] = [logvars]
        leaves["logvars"] = logvars
    if iou_logit is not None:
        ious = torch.tensor([[[iou_logit], [0.0], [0.0]]], requires_grad=True)
        kwargs["pred_ious"] = [ious]
        leaves["ious"] = ious
    return (*args, [gt_boxes]), kwargs, leaves


def test_sigma_branch_loss_is_the_kl_formula_on_corner_deltas(cfgs):
    m = _build(cfgs["sigma"])
    # corner deltas x10 of the positive anchor [0, 0, 10, 10] to its object
    gt = [1.0, 2.0, 12.0, 9.0]
    target = 10 * (torch.tensor(gt) - torch.tensor(ANCHORS[0])) / 10
    pred = torch.tensor([0.5, 2.5, 2.0, 0.5])  # errors -0.5, 0.5, 0, 1.5: both smooth-L1 regimes
    alpha = torch.tensor([0.0, math.log(2.0), 1.0, -1.0])
    args, kwargs, leaves = _hand_built(m, pred.tolist(), gt, alpha=alpha.tolist())
    with EventStorage():
        out = m.losses(*args, **kwargs)
        plain = RetinaNet.losses(_build(cfgs["sigma"]), *args)  # focal + smooth-L1, same inputs
    assert set(out) == {"loss_cls", "loss_box_reg"}
    # detectron2 divides by an EMA of the positive count: 0.9 * 100 + 0.1 * 1 on a fresh model
    normalizer = 90.1
    kl = (torch.exp(-alpha) * _sl1(pred - target) + alpha / 2).sum()
    assert out["loss_box_reg"].item() == pytest.approx(kl.item() / normalizer, rel=1e-6)
    assert torch.equal(out["loss_cls"], plain["loss_cls"])  # the focal term is untouched
    # alpha = 0 everywhere: the KL loss is the smooth-L1 box loss it replaces
    args, kwargs, _ = _hand_built(_build(cfgs["sigma"]), pred.tolist(), gt, alpha=[0.0] * 4)
    with EventStorage():
        zero = _build(cfgs["sigma"]).losses(*args, **kwargs)
    assert zero["loss_box_reg"].item() == pytest.approx(plain["loss_box_reg"].item(), rel=1e-6)
    # the gradient reaches the deltas (exp(-alpha) SL1') and alpha (1/2 - exp(-alpha) SL1)
    g_d, g_a = torch.autograd.grad(out["loss_box_reg"], [leaves["deltas"], leaves["logvars"]])
    d = pred - target
    slope = torch.where(d.abs() < 1, d, d.sign())
    assert torch.allclose(g_d[0, 0], torch.exp(-alpha) * slope / normalizer, atol=1e-7)
    expected_ga = (0.5 - torch.exp(-alpha) * _sl1(d)) / normalizer
    assert torch.allclose(g_a[0, 0], expected_ga, atol=1e-7)
    assert not g_d[0, 1:].any() and not g_a[0, 1:].any()  # only the positive anchor
    # AP Loss: the KL loss replaces its smooth-L1, averaged over the 4 |P| coordinates
    ap = _build(cfgs["sigma"], cls_loss_type="ap")
    args, kwargs, _ = _hand_built(ap, pred.tolist(), gt, alpha=alpha.tolist())
    with EventStorage():
        out = ap.losses(*args, **kwargs)
    assert set(out) == {"loss_cls", "loss_box_reg"}
    assert out["loss_box_reg"].item() == pytest.approx(kl.item() / 4, rel=1e-6)


def test_alrp_sigma_kl_trains_sigma_only_and_leaves_alrp_unchanged(cfgs):
    m = _build(cfgs["alrp_sigma"]).eval()  # eval: the self-balance weight does not step
    gt = [1.0, 2.0, 12.0, 9.0]
    pred = [0.5, 2.5, 2.0, -1.0]
    alpha = torch.tensor([0.3, -0.2, 0.1, 0.0])
    args, kwargs, leaves = _hand_built(m, pred, gt, alpha=alpha.tolist())
    with EventStorage():
        out = m.losses(*args, **kwargs)
        alone = m.losses(*args)
    assert set(out) == {"loss_cls", "loss_box_reg", "loss_box_var"}
    assert torch.equal(out["loss_cls"], alone["loss_cls"])
    assert torch.equal(out["loss_box_reg"], alone["loss_box_reg"])
    target = torch.tensor(gt) - torch.tensor(ANCHORS[0])  # x10 / size 10
    kl = (torch.exp(-alpha) * _sl1(torch.tensor(pred) - target) + alpha / 2).sum()
    assert out["loss_box_var"].item() == pytest.approx(kl.item(), rel=1e-6)  # / 1 positive
    grads = torch.autograd.grad(
        out["loss_box_var"],
        [leaves["deltas"], leaves["logits"], leaves["logvars"]],
        allow_unused=True,
    )
    assert grads[0] is None and grads[1] is None  # no gradient into the boxes or the ranking
    assert grads[2][0, 0].abs().min() > 0


def test_alrp_sigma_gradient_routing_in_the_head(cfgs, train_batch):
    """``loss_box_var`` reaches the sigma conv and the regression tower, never ``bbox_pred`` or
    the classifier; with ``logvar_stop_gradient`` only the sigma conv."""
    for stop, tower_grad in ((False, True), (True, False)):
        m = _build(cfgs["alrp_sigma"], **{"head.logvar_stop_gradient": stop}).train()
        with EventStorage():
            losses = m(train_batch)
        params = dict(m.head.named_parameters())
        names = ["bbox_logvar.weight", "bbox_pred.weight", "cls_score.weight"]
        names.append(next(n for n in params if n.startswith("bbox_subnet") and "weight" in n))
        grads = torch.autograd.grad(
            losses["loss_box_var"], [params[n] for n in names], allow_unused=True
        )
        got = {n: g is not None and bool(g.abs().sum() > 0) for n, g in zip(names, grads)}
        assert got[names[0]] and not got["bbox_pred.weight"] and not got["cls_score.weight"]
        assert got[names[3]] == tower_grad, (stop, got)


def test_iou_branch_target_is_the_decoded_box_iou_without_gradient(cfgs):
    m = _build(cfgs["iou"])
    # coder (10, 10, 5, 5): dh = 5 log 2 doubles the height about the centre -> [0, -5, 10, 15];
    # with the object [0, 0, 10, 20]: intersection 150, union 250, IoU 0.6
    gt = [0.0, 0.0, 10.0, 20.0]
    args, kwargs, leaves = _hand_built(m, [0.0, 0.0, 0.0, 5 * math.log(2)], gt, iou_logit=1.0)
    with EventStorage():
        out = m.losses(*args, **kwargs)
    assert set(out) == {"loss_cls", "loss_box_reg", "loss_iou"}
    p = torch.sigmoid(torch.tensor(1.0)).item()
    bce = -(0.6 * math.log(p) + 0.4 * math.log(1 - p))
    assert out["loss_iou"].item() == pytest.approx(bce / 90.1, rel=1e-5)
    g_deltas, g_iou = torch.autograd.grad(
        out["loss_iou"], [leaves["deltas"], leaves["ious"]], allow_unused=True
    )
    assert g_deltas is None  # the target is detached: no gradient into the boxes
    assert g_iou[0, 0, 0].item() == pytest.approx((p - 0.6) / 90.1, rel=1e-5)
    assert not g_iou[0, 1:].any()


def _pred(m, logits, deltas=None, logvars=None, ious=None):
    """One image's per-level predictions for ``m.inference_single_image_with_branches``."""
    n = len(logits)
    k = m.num_classes
    full = torch.full((n, k), -10.0)
    full[:, 0] = torch.tensor(logits)
    pred = {"logits": [full], "deltas": [torch.zeros(n, 4) if deltas is None else deltas]}
    if logvars is not None:
        pred["logvars"] = [logvars]
    if ious is not None:
        pred["ious"] = [torch.tensor(ious)[:, None]]
    return pred


def test_sigma_inference_votes_and_reports_pixel_std(cfgs):
    m = _build(cfgs["sigma"]).eval()
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 20.0, 20.0], [2.0, 0.0, 22.0, 20.0]]))]
    logvars = torch.zeros(2, 4)
    logvars[1] = -math.log(4.0)  # the second box is 4x as confident
    pred = _pred(m, [2.0, 1.0], logvars=logvars)
    out = m.inference_single_image_with_branches(anchors, pred, (64, 80))
    assert len(out) == 1  # IoU 0.82 > 0.5: the second box is suppressed after voting
    iou = (18 * 20) / (2 * 400 - 18 * 20)
    w1 = math.exp(-((1 - iou) ** 2) / m.sigma_t) * 4.0
    x1 = (0.0 * 1.0 + 2.0 * w1) / (1.0 + w1)
    x2 = (20.0 * 1.0 + 22.0 * w1) / (1.0 + w1)
    assert out.pred_boxes.tensor[0].tolist() == pytest.approx([x1, 0.0, x2, 20.0], rel=1e-5)
    assert out.scores.tolist() == pytest.approx([torch.sigmoid(torch.tensor(2.0)).item()])
    # sigma of the selected box in pixels: exp(alpha / 2) * anchor size / 10
    assert out.pred_boxes_std[0].tolist() == pytest.approx([2.0, 2.0, 2.0, 2.0])
    assert out.pred_box_logvar.tolist() == [[0.0] * 4]
    m.test_var_voting = False
    plain = m.inference_single_image_with_branches(anchors, pred, (64, 80))
    assert plain.pred_boxes.tensor.tolist() == [[0.0, 0.0, 20.0, 20.0]]
    m.test_nms_method = "soft"  # soft-NMS keeps the second box, decayed
    soft = m.inference_single_image_with_branches(anchors, pred, (64, 80))
    assert len(soft) == 2 and soft.scores[1] < torch.sigmoid(torch.tensor(1.0))
    assert soft.pred_boxes_std[1].tolist() == pytest.approx([1.0] * 4)  # exp(-log 4 / 2) * 2


def test_iou_branch_ranks_by_cls_and_iou(cfgs):
    m = _build(cfgs["iou"]).eval()
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [40.0, 40.0, 50.0, 50.0]]))]
    pred = _pred(m, [_logit(0.9), _logit(0.6)], ious=[_logit(0.3), _logit(0.9)])
    out = m.inference_single_image_with_branches(anchors, pred, (64, 80))
    assert m.iou_score_alpha == 0.5
    assert out.scores.tolist() == pytest.approx([math.sqrt(0.6 * 0.9), math.sqrt(0.9 * 0.3)])
    assert out.pred_boxes.tensor[:, 0].tolist() == [40.0, 0.0]  # the better-localised box first
    assert out.pred_ious.tolist() == pytest.approx([0.9, 0.3])
    m.iou_score_alpha = 0.0  # class score only: the order of the class scores
    cls_only = m.inference_single_image_with_branches(anchors, pred, (64, 80))
    assert cls_only.scores.tolist() == pytest.approx([0.9, 0.6])
    assert cls_only.pred_boxes.tensor[:, 0].tolist() == [0.0, 40.0]
    m.iou_score_alpha = 0.3
    got = m.inference_single_image_with_branches(anchors, pred, (64, 80)).scores
    want = sorted([0.9**0.7 * 0.3**0.3, 0.6**0.7 * 0.9**0.3], reverse=True)
    assert got.tolist() == pytest.approx(want)


@pytest.fixture(scope="module")
def train_batch():
    """Two 64x80 images with one bright object each (two: GroupNorm needs more than one value
    per group at the 1x1 P7 level in training)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for (x1, y1, x2, y2), c in (((6, 8, 34, 40), 1), ((30, 14, 70, 50), 2)):
        img = (torch.rand(3, 64, 80, generator=g) * 60).to(torch.uint8)
        img[c, y1:y2, x1:x2] += 150
        inst = Instances((64, 80))
        inst.gt_boxes = Boxes(torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32))
        inst.gt_classes = torch.tensor([c])
        out.append({"image": img, "instances": inst, "height": 64, "width": 80})
    return out


def _two_images():
    """Two 160x192 images: large enough for one image alone (GroupNorm needs more than one value
    per group at P7)."""
    g = torch.Generator().manual_seed(2)
    return [
        {"image": (torch.rand(3, 160, 192, generator=g) * 255).to(torch.uint8)} for _ in range(2)
    ]


def _head_outputs(m, batch):
    images = m.preprocess_image(batch)
    features = m.backbone(images.tensor)
    features = [features[f] for f in m.head_in_features]
    return images, features, m.head(features)


def _clone(predictions):
    return tuple([x.clone() for x in level] for level in predictions)


def _same(a: Instances, b: Instances, fields=("pred_boxes", "scores", "pred_classes")):
    assert len(a) == len(b)
    for f in fields:
        x, y = a.get(f), b.get(f)
        x, y = (x.tensor, y.tensor) if f == "pred_boxes" else (x, y)
        assert torch.allclose(x.double(), y.double(), rtol=1e-6, atol=1e-6), f


@pytest.mark.parametrize(
    "name, overrides",
    [("sigma", {"test_var_voting": False}), ("iou", {"iou_score_alpha": 0.0})],
)
def test_unused_branches_give_retinanet_detections(cfgs, name, overrides):
    """sigma without voting, or IoU with alpha 0: the detections of RetinaNet's own inference."""
    m = _build(cfgs[name], test_score_thresh=0.0, **overrides).eval()
    with torch.no_grad():
        images, features, predictions = _head_outputs(m, _two_images())
        ours = m.forward_inference(images, features, _clone(predictions))
        theirs = RetinaNet.forward_inference(m, images, features, _clone(predictions)[:2])
    for a, b in zip(ours, theirs):
        assert len(a) > 50
        _same(a, b)


@pytest.mark.parametrize("name", ["alrp_sigma", "iou"])
def test_batch_invariance(cfgs, name):
    """Two images batched give what each gives alone: the post-processing on the same head
    outputs (exactly), and the whole model in float64."""
    m = _build(cfgs[name], test_score_thresh=0.0).eval()
    fields = ["pred_boxes", "scores", "pred_classes"]
    fields += ["pred_boxes_std", "pred_box_logvar"] if m.sigma_branch else ["pred_ious"]
    batch = _two_images()
    with torch.no_grad():
        images, features, predictions = _head_outputs(m, batch)
        both = m.forward_inference(images, features, predictions)
        for i in range(2):
            train_batchs = type(images)(images.tensor[i : i + 1], images.image_sizes[i : i + 1])
            one = m.forward_inference(
                train_batchs,
                [f[i : i + 1] for f in features],
                _clone(tuple([x[i : i + 1] for x in level] for level in predictions)),
            )
            assert len(both[i]) > 50
            _same(both[i], one[0], fields)
        m = m.double()
        both = m(batch)
        for i in range(2):
            _same(both[i]["instances"], m([batch[i]])[0]["instances"], fields)


def test_pred_boxes_std_follows_the_output_size(cfgs):
    m = _build(cfgs["alrp_sigma"], test_score_thresh=0.0).eval()
    img = _two_images()[0]["image"]
    with torch.no_grad():
        small = m([{"image": img}])[0]["instances"]
        large = m([{"image": img, "height": 320, "width": 576}])[0]["instances"]
    assert len(small) == len(large) > 0
    scale = torch.tensor([3.0, 2.0, 3.0, 2.0])  # 576 / 192, 320 / 160
    assert torch.allclose(large.pred_boxes_std, small.pred_boxes_std * scale, rtol=1e-5)
    assert torch.allclose(large.pred_boxes.tensor, small.pred_boxes.tensor * scale, rtol=1e-5)


def test_branches_train_and_their_losses_fall(cfgs, train_batch):
    m = _build(cfgs["alrp_sigma"], **{"head.iou_branch": True}).train()
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    history = []
    with EventStorage():
        for _ in range(5):
            losses = m(train_batch)
            assert set(losses) == {"loss_cls", "loss_box_reg", "loss_box_var", "loss_iou"}
            assert all(torch.isfinite(v) for v in losses.values())
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
            history.append({k: float(v.detach()) for k, v in losses.items()})
    for key in ("loss_box_var", "loss_iou"):
        assert history[-1][key] < history[0][key], (key, history)


def test_checks(cfgs):
    with pytest.raises(ValueError, match="Box2BoxTransformXYXY"):
        _build(cfgs["iou"], **{"head.sigma_branch": True})  # XYWH coder
    with pytest.raises(ValueError, match="sigma branch"):
        _build(cfgs["iou"], test_var_voting=True)
    with pytest.raises(ValueError, match="sigma branch"):
        _build(cfgs["iou"], test_nms_method="soft")
    with pytest.raises(ValueError, match="iou_score_alpha"):
        _build(cfgs["iou"], iou_score_alpha=1.5)
    with pytest.raises(ValueError, match="test_nms_method"):
        _build(cfgs["sigma"], test_nms_method="linear")


def test_head_without_branches_is_retinanet_head(cfgs):
    from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

    cfg = copy.deepcopy(cfgs["iou"].head)
    cfg.num_classes = 3  # the model's, which the detached node cannot interpolate
    cfg.iou_branch = False
    torch.manual_seed(0)
    ours = instantiate(cfg)
    cfg._target_ = RetinaNetHead
    del cfg.iou_branch
    torch.manual_seed(0)
    theirs = instantiate(cfg)
    assert isinstance(ours, BoxUncRetinaNetHead)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = [torch.randn(2, 32, s, s) for s in (8, 4, 2, 1, 1)]
    for a, b in zip(ours(x), theirs(x)):
        assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_diou_nms_is_selectable_with_or_without_branches(cfgs):
    """``test_nms_method="diou"``: two boxes of IoU 0.54 whose centres lie apart (DIoU 0.54 -
    144 / 3104 = 0.49): NMS at 0.5 suppresses the second, DIoU-NMS keeps it; the same with the
    sigma branch, the IoU branch, and no branch at all (RetinaNet's own NMS otherwise)."""
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 40.0, 20.0], [12.0, 0.0, 52.0, 20.0]]))]
    assert float(pairwise_iou(anchors[0][:1], anchors[0][1:])) == pytest.approx(560 / 1040)
    for name, overrides in (
        ("sigma", {"test_var_voting": False}),
        ("iou", {"iou_score_alpha": 0.0}),
        ("iou", {"head.iou_branch": False}),
    ):
        m = _build(cfgs[name], **overrides).eval()
        pred = _pred(m, [2.0, 1.0], logvars=torch.zeros(2, 4), ious=[3.0, 3.0])
        assert len(m.inference_single_image_with_branches(anchors, pred, (64, 80))) == 1
        m.test_nms_method = "diou"
        out = m.inference_single_image_with_branches(anchors, pred, (64, 80))
        assert out.pred_boxes.tensor.tolist() == anchors[0].tensor.tolist()
    with pytest.raises(ValueError, match="diou"):
        _build(cfgs["sigma"], test_nms_method="diou", test_var_voting=True)


def _diou_matrix(b):
    """IoU minus the DIoU centre-distance penalty of every pair of ``b`` (n, 4)."""
    iou = pairwise_iou(Boxes(b), Boxes(b))
    c = (b[:, :2] + b[:, 2:]) / 2
    d2 = ((c[:, None] - c[None]) ** 2).sum(-1)
    lo, hi = (
        torch.minimum(b[:, None, :2], b[None, :, :2]),
        torch.maximum(b[:, None, 2:], b[None, :, 2:]),
    )
    return iou - d2 / ((hi - lo) ** 2).sum(-1).clamp(min=1e-12)


def test_diou_nms_routes_retinanet_without_branches_through_its_own_inference(cfgs):
    """Without branches, "diou" leaves detectron2's inference for ours: every kept pair of one
    class has DIoU <= the threshold (the defining property), and the output differs from NMS."""
    m = _build(cfgs["iou"], **{"head.iou_branch": False}, test_score_thresh=0.0).eval()
    with torch.no_grad():
        images, features, predictions = _head_outputs(m, _two_images())
        hard = m.forward_inference(images, features, _clone(predictions))
        m.test_nms_method = "diou"
        diou = m.forward_inference(images, features, _clone(predictions))
    differs = False
    for h, d in zip(hard, diou):
        assert len(d) > 10
        for c in d.pred_classes.unique():
            k = d.pred_boxes.tensor[d.pred_classes == c].double()
            off = ~torch.eye(len(k), dtype=torch.bool)
            assert (_diou_matrix(k)[off] <= m.test_nms_thresh + 1e-6).all()
        differs |= len(h) != len(d) or not torch.equal(h.pred_boxes.tensor, d.pred_boxes.tensor)
    assert differs
