"""Sweeps: grid parsing, sweep files, and a real 2-point eval-only sweep that resumes."""

import csv
import glob
import os

import pytest
import yaml

from d2_boxunc.config.cli import check_overrides
from d2_boxunc.sweep import ROOT, SweepError, expand_grid, main, parse_grid

KL_VARVOTE = os.path.join(ROOT, "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote.py")
SIGMA_T = "model.roi_heads.box_predictor.sigma_t"


def test_parse_grid_and_expand():
    assert parse_grid(f"{SIGMA_T}=[0.005, 0.01]") == (SIGMA_T, [0.005, 0.01])
    assert parse_grid("a.method=[hard,soft]") == ("a.method", ["hard", "soft"])
    assert parse_grid("a.b=3") == ("a.b", [3])
    points = expand_grid({"a.x": [1, 2], "b.y": ["p", "q", "r"]})
    assert [p.params for p in points][:2] == [{"a.x": 1, "b.y": "p"}, {"a.x": 1, "b.y": "q"}]
    assert len(points) == 6
    assert points[0].overrides == ["a.x=1", "b.y=p"]
    assert points[0].name({"a.x": "x", "b.y": "y"}) == "x_1__y_p"
    for bad in ("a.b", "a.b=", "=[1]", "a.b=[]", "a.b=[1,1]"):
        with pytest.raises(SweepError):
            parse_grid(bad)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs/sweeps/*.yaml"))))
def test_sweep_files_name_existing_keys(path):
    from detectron2.config import LazyConfig

    with open(path) as f:
        spec = yaml.safe_load(f)
    assert spec["grid"] and all(len(v) >= 2 for v in spec["grid"].values())
    config = os.path.join(ROOT, spec["config_file"])
    assert os.path.isfile(config), f"{path}: config_file {spec['config_file']} does not exist"
    cfg = LazyConfig.load(config)
    check_overrides(cfg, [f"{k}={v[0]}" for k, v in spec["grid"].items()])  # raises if unknown


def test_bad_command_lines_exit_2(tmp_path, capsys):
    assert main(["--grid", f"{SIGMA_T}=[1,2]", "--output", str(tmp_path)]) == 2
    assert "no --config-file" in capsys.readouterr().err
    assert main(["--config-file", KL_VARVOTE, "--output", str(tmp_path)]) == 2
    assert "no grid" in capsys.readouterr().err


def _random_checkpoint(config: str, path) -> str:
    """An untrained model of ``config`` (synthetic switch) saved as a checkpoint: evaluation
    needs ``train.init_checkpoint``, and this test is about the sweep, not the model."""
    import torch
    from detectron2.config import instantiate

    from d2_boxunc.config.cli import load_config

    torch.manual_seed(0)
    model = instantiate(load_config(config, synthetic=True).model)
    torch.save({"model": model.state_dict()}, path)
    return str(path)


def test_two_point_sweep_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    checkpoint = _random_checkpoint(KL_VARVOTE, tmp_path / "random.pth")
    argv = [
        "--config-file",
        KL_VARVOTE,
        "--eval-only",
        "--synthetic",
        "--test-dataset",
        "boxunc_synth_val_tiny",
        "--grid",
        f"{SIGMA_T}=[0.005,0.04]",
        "--output",
        str(out),
        "model.proposal_generator.post_nms_topk=[500,50]",  # a random model: keep NMS work small
        f"train.init_checkpoint={checkpoint}",
    ]
    assert main(argv) == 0, capsys.readouterr()
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r[SIGMA_T]) for r in rows] == [0.005, 0.04]
    for r in rows:
        assert r["status"] == "done"
        assert 0.0 <= float(r["bbox/AP"]) <= 100.0
        assert 0.0 <= float(r["lrp/oLRP"]) <= 100.0  # a random model: near 100
        assert "lrp/oLRP_FN" in r
    assert "| status" in (out / "results.md").read_text().splitlines()[0]
    assert (out / "results.png").stat().st_size > 1000
    logs = sorted(glob.glob(str(out / "points" / "*" / "stdout.txt")))
    assert [os.path.basename(os.path.dirname(p)) for p in logs] == ["sigma_t_0.005", "sigma_t_0.04"]
    mtimes = [os.path.getmtime(p) for p in logs]
    capsys.readouterr()
    # resume: both points have their eval_results.json, nothing runs again
    assert main(argv) == 0
    assert capsys.readouterr().out.count("skipped") == 2
    assert [os.path.getmtime(p) for p in logs] == mtimes
