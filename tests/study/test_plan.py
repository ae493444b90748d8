"""The study plan: what ``--methods all`` runs, and how long each method trains."""

import os

import pytest

from d2_boxunc.study.plan import CLAIMS, DEFAULT_METHODS, METHODS, row
from d2_boxunc.study.runner import Settings, plan_steps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _settings(max_iter):
    return Settings(
        max_iter=max_iter,
        train_dataset="boxunc_synth_train",
        test_dataset="boxunc_synth_val500",
    )


def test_all_is_every_paper_method_and_no_control():
    assert DEFAULT_METHODS == [
        "baseline",
        "iou",
        "giou",
        "kl",
        "iounet",
        "focal",
        "alrp",
        "aploss",
    ]
    assert all(
        METHODS[n].control or METHODS[n].extension for n in METHODS if n not in DEFAULT_METHODS
    )


def test_retinanet_branch_rows_run_on_request_with_their_variants(tmp_path):
    """docs/retinanet_heads.md: the sigma / IoU branch rows, their eval-only variants (voting off,
    class score only) on the same checkpoints, and the corner-coder controls."""
    extensions = {n for n, m in METHODS.items() if m.extension}
    assert {"retina_kl", "retina_iouaware", "alrp_sigma"} <= extensions
    assert {"retina_kl_ctrl", "alrp_xyxy"} <= {n for n, m in METHODS.items() if m.control}
    names = ["retina_kl", "retina_iouaware", "alrp_sigma", "retina_kl_ctrl", "alrp_xyxy"]
    steps = {
        s.row: s
        for s in plan_steps([METHODS[n] for n in names], [0], str(tmp_path), _settings(100))
    }
    assert set(steps) == {
        *names,
        "retina_kl/novote",
        "retina_kl/varvote_softnms",
        "retina_iouaware/clsonly",
        "alrp_sigma/novote",
    }
    assert "model.test_var_voting=False" in steps["alrp_sigma/novote"].args
    assert any(a.endswith("_clsonly.py") for a in steps["retina_iouaware/clsonly"].args)
    for name in names:  # RetinaNet's longer schedule
        assert "train.max_iter=140" in steps[name].args
    # the controls' coder overrides build KL-Loss's corner coder
    from detectron2.config import LazyConfig, instantiate

    from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY

    ctrl = METHODS["alrp_xyxy"]
    cfg = LazyConfig.load(os.path.join(ROOT, ctrl.config))
    cfg = LazyConfig.apply_overrides(cfg, [o for o in ctrl.overrides if o.startswith("model.")])
    coder = instantiate(cfg.model.box2box_transform)
    assert isinstance(coder, Box2BoxTransformXYXY) and coder.weights == (10.0,) * 4


def test_retinanet_rows_train_longer_and_their_key_says_so(tmp_path):
    methods = [METHODS["baseline"], METHODS["focal"], METHODS["alrp"]]
    steps = {s.row: s for s in plan_steps(methods, [0], str(tmp_path), _settings(1000))}
    for name, iters in (("baseline", 1000), ("focal", 1400), ("alrp", 1400)):
        assert f"train.max_iter={iters}" in steps[name].args
        assert f"train.max_iter={iters}" in steps[name].key["args"]
        assert f"train.checkpointer.period={iters}" in steps[name].args


def test_every_claim_names_planned_rows():
    rows = set(METHODS) | {f"{m.name}/{v.name}" for m in METHODS.values() for v in m.variants}
    for c in CLAIMS:
        assert c.a in rows and (not c.b or c.b in rows), c.name
        assert row(c.a)[0] in METHODS


def test_a_step_that_fails_halfway_is_not_taken_for_its_old_run(tmp_path, monkeypatch):
    """Rerunning a step in a folder that holds an older run removes the old key first, so a
    stopped rerun is never cached as the old run with half its files overwritten."""
    import json

    import pytest

    from d2_boxunc.study import runner

    step = plan_steps([METHODS["baseline"]], [0], str(tmp_path), _settings(10))[0]
    os.makedirs(step.out)
    old_key = dict(step.key, seed=99)
    (tmp_path / "runs" / "baseline" / "s0" / "study_key.json").write_text(json.dumps(old_key))
    (tmp_path / "runs" / "baseline" / "s0" / "eval_results.json").write_text("{}")

    def stopped(args, log_path, threads=1):
        raise RuntimeError("stopped halfway")

    monkeypatch.setattr(runner, "run_train_net", stopped)
    with pytest.raises(RuntimeError, match="stopped halfway"):
        runner.run_steps([step], jobs=1)
    old = runner.Step(step.row, 99, step.out, step.args, old_key)
    assert not old.done()


def test_composed_runs_on_request_with_eval_only_switches(tmp_path):
    """``composed`` (docs/composition.md) is not in ``all``; each variant evaluates the composed
    checkpoint with one inference step switched off."""
    assert "composed" in METHODS and "composed" not in DEFAULT_METHODS
    steps = plan_steps([METHODS["composed"]], [0], str(tmp_path), _settings(100))
    train, *evals = steps
    assert train.row == "composed" and "--eval-only" not in train.args
    switches = {
        "composed/novote": "model.roi_heads.box_predictor.test_var_voting=False",
        "composed/norefine": "model.roi_heads.refine=False",
        "composed/stdnms": "model.roi_heads.test_nms_type=standard",
        "composed/nohead": "model.roi_heads.test_iou_head=False",
    }
    assert {s.row for s in evals} == set(switches)
    checkpoint = f"train.init_checkpoint={os.path.join(train.out, 'model_final.pth')}"
    for s in evals:
        assert s.after is train and "--eval-only" in s.args and checkpoint in s.args
        assert switches[s.row] in s.args
    rows = {c.a for c in CLAIMS} | {c.b for c in CLAIMS}
    assert set(switches) <= rows and {"composed", "baseline"} <= rows


def test_every_row_loads_with_its_model_overrides():
    """Each method's and variant's config loads through the synthetic switch with its model
    overrides, as train_net.py loads it (an override of a key the config lacks is refused)."""
    from d2_boxunc.config.cli import load_config

    for m in METHODS.values():
        for config, overrides in [(m.config, m.overrides)] + [
            (v.config or m.config, (*m.overrides, *v.overrides)) for v in m.variants
        ]:
            opts = [o for o in overrides if o.startswith("model.")]
            cfg = load_config(os.path.join(ROOT, config), opts, synthetic=True)
            assert cfg.model, (m.name, config, opts)


def test_every_roi_align_pooler_samples_two_by_two(tmp_path):
    """Every study row whose R-CNN box pooler is RoIAlign (controls included) pools 2 x 2
    points per bin, evaluation included (its variants' keys carry the method's overrides);
    PrRoIPool rows (IoU-Net, composed) keep theirs."""
    from detectron2.config import instantiate
    from detectron2.modeling.poolers import ROIPooler

    from d2_boxunc.config.cli import load_config

    settings = Settings(1000, "boxunc_synth_train", "boxunc_synth_val")
    steps = plan_steps(list(METHODS.values()), [0], str(tmp_path), settings)
    roi_align = set()
    for m in METHODS.values():
        cfg = load_config(os.path.join(ROOT, m.config), list(m.overrides), synthetic=True)
        pooler = cfg.model.get("roi_heads", {}).get("box_pooler")
        if pooler is None or "ROIAlign" not in pooler.get("pooler_type", ""):
            continue  # RetinaNet, or PrRoIPool
        assert pooler._target_ is ROIPooler and pooler.sampling_ratio == 2, m.name
        assert instantiate(pooler).level_poolers[0].sampling_ratio == 2, m.name
        roi_align.add(m.name)
        for s in steps:
            if row(s.row)[0] == m.name:
                assert "model.roi_heads.box_pooler.sampling_ratio=2" in s.key["args"], s.row
    assert roi_align == {"baseline", "iou", "giou", "kl", "kl_ctrl", "kl_sg"}


def test_every_config_takes_the_study_backbone():
    """The study's default bfloat16 backbone override builds an AutocastFPN in every config it
    trains, with FPN's output shapes; float32 adds no override (the plain FPN)."""
    from detectron2.config import instantiate

    from d2_boxunc.config.cli import load_config
    from d2_boxunc.modeling.backbone import AUTOCAST_DTYPES, AutocastFPN
    from d2_boxunc.study.plan import BACKBONE_DTYPES, DEFAULT_BACKBONE_DTYPE, backbone_overrides

    assert DEFAULT_BACKBONE_DTYPE == "bfloat16" and backbone_overrides("float32") == []
    # the CLI's choices (kept free of torch imports) are exactly what AutocastFPN accepts
    assert set(BACKBONE_DTYPES) == {*AUTOCAST_DTYPES, "float32"}
    with pytest.raises(ValueError, match="backbone dtype"):
        backbone_overrides("int8")
    for config in sorted({m.config for m in METHODS.values()}):
        plain = load_config(os.path.join(ROOT, config), [], synthetic=True)
        cfg = load_config(
            os.path.join(ROOT, config), backbone_overrides("bfloat16"), synthetic=True
        )
        backbone = instantiate(cfg.model.backbone)
        assert isinstance(backbone, AutocastFPN) and backbone.autocast_dtype == "bfloat16", config
        assert backbone.output_shape() == instantiate(plain.model.backbone).output_shape(), config
