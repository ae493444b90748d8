"""`make demo` end to end, shortened, on the KL-Loss method (the richest entry: a training run,
two eval-only variants of its checkpoint, a picture and a statistics report). The same run checks
KL-Loss's own claims on the synthetic set: training lowers the loss, alpha is learnt, and the
predicted sigma ranks the actual localisation error (Spearman rho > 0)."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERS = 80


@pytest.fixture(scope="module")
def kl_demo(module_mktemp):
    out = module_mktemp("demo")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "d2_boxunc.demo",
            "--method",
            "kl",
            "--max-iter",
            str(ITERS),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out, proc.stdout


def test_demo_prints_the_ablation_table_and_saves_outputs(kl_demo):
    out, stdout = kl_demo
    for label in (
        "| + KL-Loss ",
        "| + KL-Loss + var voting ",
        "| + KL-Loss + var voting + soft-NMS",
    ):
        assert label in stdout, stdout[-3000:]
    assert "AP50" in stdout and "oLRP" in stdout and "KL-Loss: sigma vs |error|" in stdout
    assert "with the true box as RoI" in stdout
    # eval-only rows carry their paired AP difference with a 95% interval
    assert "ΔAP vs ckpt row [95% CI]" in stdout
    voting = next(line for line in stdout.splitlines() if "| + KL-Loss + var voting " in line)
    diff, low, high = (float(v) for v in re.findall(r"([+-]\d+\.\d)", voting.split("|")[-2]))
    assert low <= diff <= high
    assert os.path.getsize(out / "kl" / "detections.png") > 10_000
    with open(out / "results.md") as f:
        assert "+ KL-Loss + var voting + soft-NMS" in f.read()
    for sub in ("eval_0", "eval_1"):
        with open(out / "kl" / sub / "eval_results.json") as f:
            assert 0.0 <= json.load(f)["bbox"]["AP"] <= 100.0


def test_kl_training_lowers_the_loss_and_learns_a_variance(kl_demo):
    out, _ = kl_demo
    with open(out / "kl" / "metrics.json") as f:
        metrics = [json.loads(line) for line in f if "loss_box_reg" in line]
    assert len(metrics) >= 3
    first, last = metrics[0], metrics[-1]
    # total loss: the box term alone first rises, as the RPN starts to deliver foreground proposals
    assert last["total_loss"] < first["total_loss"], [m["total_loss"] for m in metrics]
    assert abs(last["kl/alpha_mean"]) > 0.1  # alpha left its ~0 initialisation


def test_predicted_sigma_tracks_the_error(kl_demo):
    out, _ = kl_demo
    with open(out / "kl" / "sigma_report.json") as f:
        report = json.load(f)
    assert report["num_matched"] >= 30, report
    assert report["sigma_err_spearman"] > 0.1, report
    assert report["sigma_blur_gap"] == report["sigma_blur_gap"], report  # blurred and sharp matched
    assert report["num_blurred"] > 0 and report["num_sharp"] > 0, report
    assert 0.0 < report["rel_sigma_at_gt_blurred"] < 1.0, report


def test_demo_rejects_unknown_method():
    proc = subprocess.run(
        [sys.executable, "-m", "d2_boxunc.demo", "--method", "nope"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown method 'nope'" in proc.stderr
