"""End-to-end: train_net.py trains, checkpoints, evaluates, resumes, runs 2 gloo workers, and
reports bad input in one line."""

import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs/Baselines/faster_rcnn_R_50_FPN_1x.py")
FAST = [
    "dataloader.train.total_batch_size=2",
    "train.log_period=5",
    "train.checkpointer.period=15",
]


def run_train_net(*args, env=None):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train_net.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=900,
    )
    return proc


def read_metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def trained(module_mktemp):
    out = str(module_mktemp("train"))
    proc = run_train_net(
        "--config-file",
        CONFIG,
        "--synthetic",
        "train.max_iter=30",
        f"train.output_dir={out}",
        "+train.seed=0",
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_training_lowers_loss_and_checkpoints(trained):
    out, _ = trained
    metrics = [m for m in read_metrics(out) if "total_loss" in m]
    assert len(metrics) >= 5
    # Over 30 iterations the total loss need not fall: the ROI box loss starts near 0 and grows
    # as the RPN learns to propose foreground. Both classification losses must fall.
    rpn = [m["loss_rpn_cls"] for m in metrics]
    roi = [m["loss_cls"] for m in metrics]
    assert rpn[-1] < 0.5 * rpn[0], rpn
    assert roi[-1] < 0.9 * roi[0], roi
    assert metrics[-1]["loss_box_reg"] > 0  # foreground proposals reached the box head
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    assert os.path.isfile(os.path.join(out, "model_0000014.pth"))  # periodic checkpoint
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_final.pth"


def test_final_evaluation_prints_ap_table(trained):
    out, proc = trained
    with open(os.path.join(out, "eval_results.json")) as f:
        results = json.load(f)
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    # BoxCOCOEvaluator prints AP60/AP70/AP80/AP90 beside the COCO columns
    assert "copypaste: AP,AP50,AP60,AP70,AP75,AP80,AP90,APs,APm,APl" in proc.stdout + proc.stderr


def test_eval_only_from_checkpoint(trained, tmp_path):
    out, _ = trained
    proc = run_train_net(
        "--config-file",
        CONFIG,
        "--synthetic",
        "--eval-only",
        f"train.init_checkpoint={os.path.join(out, 'model_final.pth')}",
        f"train.output_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(tmp_path, "eval_results.json")) as f:
        again = json.load(f)
    with open(os.path.join(out, "eval_results.json")) as f:
        first = json.load(f)
    # same weights, same data: the same AP as the evaluation at the end of training
    assert again["bbox"]["AP"] == pytest.approx(first["bbox"]["AP"], abs=1e-6)


def test_resume_continues_from_last_checkpoint(trained, tmp_path):
    out, _ = trained
    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    for name in ("model_final.pth", "last_checkpoint"):
        with (
            open(os.path.join(out, name), "rb") as src,
            open(os.path.join(resumed, name), "wb") as dst,
        ):
            dst.write(src.read())
    # 30 -> 40 iterations changes the schedule (it derives from train.max_iter): on purpose
    proc = run_train_net(
        "--config-file",
        CONFIG,
        "--synthetic",
        "--resume",
        "--resume-new-schedule",
        "train.max_iter=40",
        f"train.output_dir={resumed}",
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    iters = [m["iteration"] for m in read_metrics(resumed) if "total_loss" in m]
    assert iters and min(iters) >= 30 and max(iters) == 39, iters
    ckpt = torch.load(os.path.join(resumed, "model_final.pth"), weights_only=False)
    assert ckpt["iteration"] == 39


def test_two_cpu_workers_with_gloo(tmp_path):
    proc = run_train_net(
        "--config-file",
        CONFIG,
        "--synthetic",
        "--num-gpus",
        "2",
        "train.max_iter=4",
        f"train.output_dir={tmp_path}",
        "dataloader.train.total_batch_size=2",
        "dataloader.test.dataset.names=boxunc_synth_val",
        "train.log_period=1",
        "+train.seed=0",
        # 4 iterations may leave no score above 0.05 (AP NaN, which train_net rejects): keep all
        "model.roi_heads.box_predictor.test_score_thresh=0.0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.isfile(os.path.join(tmp_path, "model_final.pth"))
    assert "eval_results.json" in os.listdir(tmp_path)


def test_config_file_may_be_a_model_zoo_name(tmp_path):
    """From outside the checkout, --config-file takes the zoo's name of a config."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "train_net.py"),
            "--config-file",
            "Baselines/faster_rcnn_R_50_FPN_1x.py",
            "--synthetic",
            "train.max_iter=1",
            f"train.output_dir={out}",
            "dataloader.train.total_batch_size=2",
            "dataloader.test.dataset.names=boxunc_synth_val_tiny",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "eval_results.json") as f:
        assert {"bbox", "lrp", "box_uncertainty"} <= set(json.load(f))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config-file", "configs/nope.py"], "config file not found: configs/nope.py"),
        (
            ["--config-file", CONFIG, "--synthetic", "train.max_iters=5"],
            "unknown config key 'train.max_iters'.* Did you mean: train.max_iter",
        ),
        (
            ["--config-file", CONFIG, "--synthetic", "dataloader.train.dataset.names=not_a_set"],
            "Dataset 'not_a_set' is not registered",
        ),
        (
            [
                "--config-file",
                CONFIG,
                "--synthetic",
                "--eval-only",
                "train.init_checkpoint=/nonexistent/model.pth",
            ],
            "checkpoint not found: train.init_checkpoint='/nonexistent/model.pth'",
        ),
    ],
)
def test_bad_input_gives_one_line_error(args, message):
    import re

    proc = run_train_net(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("train_net.py: error:") and re.search(message, last), proc.stderr


def test_corrupt_checkpoint_and_missing_dataset_files(tmp_path):
    import re

    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"this is not a checkpoint")
    proc = run_train_net(
        "--config-file",
        CONFIG,
        "--synthetic",
        "--eval-only",
        f"train.init_checkpoint={bad}",
        f"train.output_dir={tmp_path}",
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.search(
        r"error: cannot load checkpoint '.*corrupt.pth'", proc.stderr.strip().splitlines()[-1]
    )

    proc = run_train_net(
        "--config-file",
        CONFIG,
        "dataloader.test.dataset.names=coco_2017_val",
        env={"DETECTRON2_DATASETS": str(tmp_path / "no_coco_here")},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "coco_2017_train" in proc.stderr and "does not exist" in proc.stderr
