"""Eval-only variants of one checkpoint in one pass: the shared backbone and proposals give
exactly each variant's own outputs, only configs that differ in the ROI heads share, and the study
runs a checkpoint's variants as one process."""

import json
import os

import pytest
import torch
from detectron2.config import instantiate

from d2_boxunc.config.cli import load_config
from d2_boxunc.engine.evaluation import FanOutEvaluator, SharedTrunkRCNN, shares_trunk

KL = "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x"
IOUNET = "configs/IoUNet/iounet_faster_rcnn_R_50_FPN_1x"


def _models(variants: list[tuple[str, list[str]]]):
    cfgs = [load_config(f"{c}.py", o, synthetic=True) for c, o in variants]
    torch.manual_seed(0)
    models = [instantiate(c.model).eval() for c in cfgs]
    for m in models[1:]:
        m.load_state_dict(models[0].state_dict())
    return cfgs, models


def _inputs():
    g = torch.Generator().manual_seed(1)
    return [
        {
            "image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
            "height": h2,
            "width": w2,
        }  # fmt: skip
        for h, w, h2, w2 in ((256, 288, 300, 337), (256, 320, 256, 320))
    ]


VARIANTS = {
    "kl": [
        (KL, []),
        (f"{KL}_varvote", []),
        (f"{KL}_softnms", []),
        (f"{KL}_varvote_softnms", []),
    ],
    "iounet": [
        (IOUNET, []),
        (f"{IOUNET}_nohead", []),
        (f"{IOUNET}_iounms", []),
        (IOUNET, ["model.roi_heads.refine_lambda=2.0"]),
        (IOUNET, ["model.roi_heads.test_nms_key=cls_x_iou"]),
    ],
}


@pytest.mark.parametrize("method", sorted(VARIANTS))
def test_shared_trunk_gives_each_variant_its_own_outputs(method):
    cfgs, models = _models(VARIANTS[method])
    assert shares_trunk(cfgs, models)
    inputs = _inputs()
    with torch.no_grad():
        shared = SharedTrunkRCNN(models)(inputs)
        alone = [m(inputs) for m in models]
    assert len(shared) == len(models)
    distinct = set()
    for got, want in zip(shared, alone, strict=True):
        for g, w in zip(got, want, strict=True):
            g, w = g["instances"], w["instances"]
            assert len(w) > 0 and g.image_size == w.image_size
            assert set(g.get_fields()) == set(w.get_fields())
            for name, value in w.get_fields().items():
                value = value.tensor if hasattr(value, "tensor") else value
                other = g.get(name)
                assert torch.equal(other.tensor if hasattr(other, "tensor") else other, value), name
        distinct.add(
            tuple(len(o["instances"]) for o in want) + (float(want[0]["instances"].scores.sum()),)
        )
    assert len(distinct) > 1, "the variants should not all give the same detections"


def test_only_roi_head_changes_share_the_trunk():
    cfgs, models = _models([(KL, []), (f"{KL}_varvote", [])])
    assert shares_trunk(cfgs, models)
    cfgs[1].model.proposal_generator.nms_thresh = 0.6  # a change outside the ROI heads
    assert not shares_trunk(cfgs, models)
    cfgs, models = _models([(KL, []), (KL, [])])
    cfgs[1].train.init_checkpoint = "other.pth"
    assert not shares_trunk(cfgs, models), "other weights"
    cfgs, models = _models([(KL, [])])
    assert not shares_trunk(cfgs, models), "one variant: nothing to share"
    retina = "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512"
    cfgs, models = _models([(retina, []), (retina, ["model.focal_loss_gamma=1.0"])])
    assert not shares_trunk(cfgs, models), "not an R-CNN"


def test_fan_out_hands_each_output_to_its_evaluator():
    class Recorder:
        def __init__(self):
            self.seen = []

        def reset(self):
            self.seen = []

        def process(self, inputs, outputs):
            self.seen.append(outputs)

        def evaluate(self):
            return {"n": len(self.seen), "first": self.seen[0]}

    a, b = Recorder(), Recorder()
    fan = FanOutEvaluator([a, b])
    fan.reset()
    fan.process(["x"], ["to a", "to b"])
    assert fan.evaluate() == [{"n": 1, "first": "to a"}, {"n": 1, "first": "to b"}]
    with pytest.raises(ValueError):
        fan.process(["x"], ["only one"])


def test_the_study_evaluates_a_checkpoints_variants_in_one_process(tmp_path, monkeypatch):
    from d2_boxunc.study import runner
    from d2_boxunc.study.plan import METHODS

    settings = runner.Settings(max_iter=10, train_dataset="t", test_dataset="v")
    steps = runner.plan_steps([METHODS["kl"]], [0], str(tmp_path), settings)
    train, variants = steps[0], steps[1:]
    assert len(variants) == 3 and all(v.after is train for v in variants)
    calls = []

    def fake(name, cmd, log_path, threads):
        calls.append((name, cmd))
        if name == "train_net.py":
            os.makedirs(train.out, exist_ok=True)
            return
        with open(cmd[-1]) as f:
            for args in json.load(f):
                out = next(a.split("=", 1)[1] for a in args if a.startswith("train.output_dir="))
                with open(os.path.join(out, "eval_results.json"), "w") as g:
                    g.write("{}")

    monkeypatch.setattr(runner, "_run_logged", fake)
    runner.run_steps(steps, jobs=2)
    assert [c[0] for c in calls] == ["train_net.py", "eval_variants"]
    with open(calls[1][1][-1]) as f:
        assert json.load(f) == [v.args for v in variants]
    assert all(v.done() for v in variants)
    calls.clear()
    runner.run_steps(steps, jobs=2)
    assert [c[0] for c in calls] == ["train_net.py"], "cached variants do not run again"
