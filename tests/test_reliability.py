"""Reliability under mistakes and faults (docs/reliability.md): bit-exact resume, atomic
checkpoints and a resume that survives a bad newest one, no silently wrong weights or metrics, and
one-line errors for user mistakes."""

import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from d2_boxunc.config.cli import ConfigError, check_output_dir, load_config
from d2_boxunc.engine import (
    ResumableTrainingSampler,
    ResumableTrainLoader,
    SafeCheckpointer,
    preserved_rng_states,
)
from d2_boxunc.engine.resume import capture_rng_states, restore_rng_states

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs/Baselines/faster_rcnn_R_50_FPN_1x.py")
KL_CONFIG = os.path.join(ROOT, "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x.py")
ALRP_CONFIG = os.path.join(ROOT, "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py")
# evaluate on 8 images: these tests are about what happens around the evaluation
TINY_TEST = ["dataloader.test.dataset.names=boxunc_synth_val_tiny"]  # the evaluators follow it
RUN = [
    "--synthetic",
    "train.max_iter=40",
    "+train.seed=0",
    "dataloader.train.total_batch_size=2",
    "train.log_period=5",
    "train.checkpointer.period=20",
    *TINY_TEST,
]


def run_train_net(*args):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "train_net.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )


def last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def assert_one_line_error(proc, pattern, code=2):
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    line = last_line(proc)
    assert line.startswith("train_net.py: error:") and re.search(pattern, line), proc.stderr[-3000:]


def logged_losses(output_dir) -> dict[int, dict]:
    out = {}
    with open(os.path.join(output_dir, "metrics.json")) as f:
        for line in f:
            record = json.loads(line)
            if "total_loss" in record:
                out[record["iteration"]] = {k: v for k, v in record.items() if "loss" in k}
    return out


def copy_run(src, dst, files, tag):
    os.makedirs(dst)
    for i, name in enumerate(files):
        shutil.copy(os.path.join(src, name), os.path.join(dst, name))
        os.utime(os.path.join(dst, name), (1_000_000 + i, 1_000_000 + i))  # listed order = age
    with open(os.path.join(dst, "last_checkpoint"), "w") as f:
        f.write(tag)


# ----------------------------------------------------------------------------------------------
# 1. Resume is bit-exact; a changed schedule is refused
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run40(module_mktemp):
    """40 uninterrupted iterations, checkpoints after 20 and 40."""
    out = str(module_mktemp("run40"))
    proc = run_train_net("--config-file", CONFIG, *RUN, f"train.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_resume_is_bit_exact(run40, tmp_path):
    """20 iterations + --resume to 40 == 40 uninterrupted: weights and logged (smoothed) losses."""
    resumed = str(tmp_path / "resumed")
    copy_run(run40, resumed, ["model_0000019.pth"], "model_0000019.pth")
    proc = run_train_net("--config-file", CONFIG, "--resume", *RUN, f"train.output_dir={resumed}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting training from iteration 20" in proc.stdout + proc.stderr

    a = torch.load(os.path.join(run40, "model_final.pth"), weights_only=True)
    b = torch.load(os.path.join(resumed, "model_final.pth"), weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    differ = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not differ, differ
    uninterrupted, continued = logged_losses(run40), logged_losses(resumed)
    assert sorted(continued) == [24, 29, 34, 39]
    for it, losses in continued.items():
        assert losses == uninterrupted[it], it


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, change",
    [
        ("train.max_iter=60", r"train\.max_iter 40 -> 60"),
        ("lr_multiplier.warmup_factor=0.01", "lr_multiplier differs"),
    ],
)
def test_resume_refuses_another_schedule(run40, tmp_path, override, change):
    resumed = str(tmp_path / "resumed")
    copy_run(run40, resumed, ["model_final.pth"], "model_final.pth")
    proc = run_train_net(
        "--config-file", CONFIG, "--resume", *RUN, override, f"train.output_dir={resumed}"
    )
    assert_one_line_error(
        proc, rf"model_final\.pth was trained with another .*{change}.*--resume-new-schedule"
    )
    assert "Starting training" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_resume_new_schedule_continues(run40, tmp_path):
    resumed = str(tmp_path / "resumed")
    copy_run(run40, resumed, ["model_final.pth"], "model_final.pth")
    proc = run_train_net(
        "--config-file",
        CONFIG,
        "--resume",
        "--resume-new-schedule",
        *RUN,
        "train.max_iter=41",
        f"train.output_dir={resumed}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting training from iteration 40" in proc.stdout + proc.stderr
    assert (
        torch.load(os.path.join(resumed, "model_final.pth"), weights_only=True)["iteration"] == 40
    )


# The data stream and the RNG states, in process ------------------------------------------------


def test_sampler_is_a_shuffle_per_epoch_reachable_at_any_position():
    sampler = ResumableTrainingSampler(7, seed=3)
    stream = [i for _, i in zip(range(21), iter(sampler))]
    for epoch in range(3):
        assert sorted(stream[7 * epoch : 7 * epoch + 7]) == list(range(7))
    assert stream[:7] != stream[7:14]
    late = ResumableTrainingSampler(7, seed=3, start=12)
    assert [i for _, i in zip(range(9), iter(late))] == stream[12:]
    assert [ResumableTrainingSampler(7, seed=4).index_at(p) for p in range(7)] != stream[:7]


def _toy_dicts(n):
    # alternate orientations, so both aspect-ratio buckets hold items between batches
    return [{"id": i, "width": 40 + 30 * (i % 3 == 0), "height": 50} for i in range(n)]


def _random_mapper(d):
    """Uses every global RNG, like augmentations do (numpy for detectron2's transforms)."""
    if d["id"] == 5:
        return None  # skipped, like a mapper that drops an image
    return {**d, "draw": (random.random(), float(np.random.rand()), float(torch.rand(())))}


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_state_continues_the_stream_exactly(num_workers):
    def make():
        return ResumableTrainLoader(
            _toy_dicts(11),
            mapper=_random_mapper,
            total_batch_size=3,
            num_workers=num_workers,
            seed=5,
        )

    loader = make()
    it = iter(loader)
    before = torch.get_rng_state()
    first = _take(it, 6)
    if num_workers == 0:  # mapping in this process leaves its RNGs alone
        assert torch.equal(torch.get_rng_state(), before)
    state = loader.state_dict()
    assert state["waiting"], "the test needs items waiting in a bucket"
    rest = _take(it, 5)

    again = make()
    again.load_state_dict(json.loads(json.dumps(state)))
    assert _take(iter(again), 5) == rest
    for batch in first + rest:
        assert len({d["width"] > d["height"] for d in batch}) == 1  # grouped by aspect ratio


def test_loader_finds_missing_image_files_before_training(tmp_path):
    present = tmp_path / "a.png"
    present.write_bytes(b"x")
    dicts = [
        {"file_name": str(present), "width": 1, "height": 1},
        {"file_name": str(tmp_path / "gone.png"), "width": 1, "height": 1},
    ]
    with pytest.raises(
        ConfigError, match=r"1 of 2 training image file\(s\) not found; first: .*gone\.png"
    ):
        ResumableTrainLoader(dicts, total_batch_size=1, seed=0)


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # a cached gaussian is part of numpy's state
    path = tmp_path / "rng.pth"
    torch.save(capture_rng_states(), path)
    expected = (torch.rand(3), np.random.randn(3), random.random())
    restore_rng_states(torch.load(path, weights_only=True))
    got = (torch.rand(3), np.random.randn(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]
    with preserved_rng_states():
        torch.rand(5)
    assert not torch.equal(torch.rand(3), got[0])


# ----------------------------------------------------------------------------------------------
# 2. Atomic checkpoints; resume falls back past a bad newest checkpoint
# ----------------------------------------------------------------------------------------------


class _Counter:
    """A checkpointable that tells which checkpoint was loaded."""

    def __init__(self, n=0):
        self.n = n

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def _checkpointer(folder):
    counter = _Counter()
    return SafeCheckpointer(nn.Linear(2, 2), str(folder), counter=counter), counter


def _save_three(folder):
    ckpt, counter = _checkpointer(folder)
    for i, name in enumerate(["model_0000009", "model_0000019", "model_final"]):
        counter.n = int(name[-2:]) if name[-1].isdigit() else 29
        ckpt.save(name)
        os.utime(os.path.join(folder, f"{name}.pth"), (1_000_000 + i, 1_000_000 + i))
    return folder


def _truncate(path, fraction=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * fraction))


FAULTS = {
    "empty last_checkpoint": (
        lambda d: open(os.path.join(d, "last_checkpoint"), "w").close(),
        29,
        r"last_checkpoint \(empty\)",
    ),
    "last_checkpoint names a missing file": (
        lambda d: open(os.path.join(d, "last_checkpoint"), "w").write("model_0000039.pth"),
        29,
        r"model_0000039\.pth \(named by last_checkpoint; not found\)",
    ),
    "last_checkpoint is missing": (
        lambda d: os.remove(os.path.join(d, "last_checkpoint")),
        29,
        r"last_checkpoint \(missing\)",
    ),
    "newest checkpoint truncated": (
        lambda d: _truncate(os.path.join(d, "model_final.pth")),
        19,
        r"model_final\.pth \(.*Error",
    ),
    "newest checkpoint empty": (
        lambda d: _truncate(os.path.join(d, "model_final.pth"), 0),
        19,
        r"model_final\.pth \(.*Error",
    ),
    "newest two corrupt": (
        lambda d: [
            _truncate(os.path.join(d, "model_final.pth")),
            _truncate(os.path.join(d, "model_0000019.pth"), 0.9),
        ],
        9,
        r"model_final\.pth \(.*model_0000019\.pth \(",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_resume_falls_back_to_the_newest_loadable_checkpoint(fault, tmp_path, caplog):
    folder = _save_three(tmp_path)
    inject, expected_n, skipped = FAULTS[fault]
    inject(str(folder))
    ckpt, counter = _checkpointer(folder)
    with caplog.at_level(logging.WARNING, logger="d2_boxunc"):
        ckpt.resume_or_load("", resume=True)
    assert counter.n == expected_n
    assert ckpt.resumed_from.endswith(
        "model_final.pth" if expected_n == 29 else f"{expected_n:07d}.pth"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and re.search(skipped, warnings[0]), warnings
    assert "resuming from" in warnings[0]


def test_resume_with_only_unreadable_checkpoints_is_an_error(tmp_path):
    folder = _save_three(tmp_path)
    for name in ("model_0000009.pth", "model_0000019.pth", "model_final.pth"):
        _truncate(os.path.join(folder, name))
    ckpt, _ = _checkpointer(folder)
    with pytest.raises(ConfigError, match="no loadable checkpoint in"):
        ckpt.resume_or_load("", resume=True)


def test_resume_with_nothing_saved_starts_anew(tmp_path):
    ckpt, counter = _checkpointer(tmp_path)
    ckpt.resume_or_load("", resume=True)
    assert ckpt.resumed_from is None and counter.n == 0


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt, counter = _checkpointer(tmp_path)
    counter.n = 1
    ckpt.save("model_final")

    def full_disk(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    counter.n = 2
    with pytest.raises(OSError, match="No space left"):
        ckpt.save("model_final")
    with pytest.raises(OSError, match="No space left"):
        ckpt.save("model_0000039")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]  # no temp files
    with open(tmp_path / "last_checkpoint") as f:
        assert f.read() == "model_final.pth"
    again, loaded = _checkpointer(tmp_path)
    again.resume_or_load("", resume=True)
    assert loaded.n == 1


@pytest.mark.slow
def test_train_net_resumes_past_a_truncated_newest_checkpoint(run40, tmp_path):
    resumed = str(tmp_path / "resumed")
    copy_run(
        run40,
        resumed,
        ["model_0000019.pth", "model_0000039.pth", "model_final.pth"],
        "model_final.pth",
    )
    _truncate(os.path.join(resumed, "model_final.pth"))
    proc = run_train_net("--config-file", CONFIG, "--resume", *RUN, f"train.output_dir={resumed}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    warnings = [line for line in out.splitlines() if "resume: skipped" in line]
    assert len(warnings) == 1, out[-3000:]
    assert "model_final.pth (" in warnings[0] and warnings[0].endswith(
        "resuming from model_0000039.pth"
    )
    assert "Traceback" not in out


# ----------------------------------------------------------------------------------------------
# 3. No silently wrong weights or metrics
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline_weights(module_mktemp):
    """An (untrained) synthetic Faster R-CNN checkpoint, and one whose weights are all NaN."""
    from detectron2.config import instantiate

    folder = module_mktemp("weights")
    model = instantiate(load_config(CONFIG, synthetic=True).model)
    state = model.state_dict()
    torch.save({"model": state}, folder / "baseline.pth")
    nan = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in state.items()
    }
    torch.save({"model": nan}, folder / "nan.pth")
    return folder


def test_eval_only_without_weights_is_an_error(tmp_path):
    proc = run_train_net(
        "--config-file", CONFIG, "--synthetic", "--eval-only", f"train.output_dir={tmp_path}"
    )
    assert_one_line_error(
        proc, r"--eval-only needs the weights to evaluate: train\.init_checkpoint"
    )


@pytest.mark.parametrize(
    "config, missing",
    [
        (KL_CONFIG, r"missing \(.*bbox_pred_logvar"),
        (ALRP_CONFIG, r"missing \(backbone\.top_block\.p6.*unexpected \(proposal_generator"),
    ],
)
def test_eval_only_with_another_models_checkpoint_is_an_error(
    config, missing, baseline_weights, tmp_path
):
    proc = run_train_net(
        "--config-file",
        config,
        "--synthetic",
        "--eval-only",
        f"train.init_checkpoint={baseline_weights / 'baseline.pth'}",
        f"train.output_dir={tmp_path}",
        *TINY_TEST,
    )
    assert_one_line_error(
        proc, rf"baseline\.pth' does not match the model: keys .*{missing}.*--allow-partial-load"
    )
    assert not os.path.exists(tmp_path / "eval_results.json")


def test_allow_partial_load_evaluates_anyway(baseline_weights, tmp_path):
    proc = run_train_net(
        "--config-file",
        KL_CONFIG,
        "--synthetic",
        "--eval-only",
        "--allow-partial-load",
        f"train.init_checkpoint={baseline_weights / 'baseline.pth'}",
        f"train.output_dir={tmp_path}",
        *TINY_TEST,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loading what matches (--allow-partial-load)" in proc.stdout + proc.stderr
    assert os.path.isfile(tmp_path / "eval_results.json")


def test_nan_headline_metric_is_an_error_not_a_result(baseline_weights, tmp_path):
    proc = run_train_net(
        "--config-file",
        CONFIG,
        "--synthetic",
        "--eval-only",
        f"train.init_checkpoint={baseline_weights / 'nan.pth'}",
        f"train.output_dir={tmp_path}",
        *TINY_TEST,
    )
    assert_one_line_error(proc, r"the evaluation gave bbox/AP = nan", code=1)
    assert not os.path.exists(tmp_path / "eval_results.json")


def test_only_headline_metrics_must_be_finite():
    from d2_boxunc.engine import evaluation

    nan = float("nan")
    fine = {
        "bbox": {"AP": 12.5, "AP-star": nan},  # a class without ground truth
        "lrp": {"oLRP": 80.0, "oLRP-star": nan},
        "box_uncertainty": {"LaECE": nan, "D-ECE": nan},  # undefined without detections
    }
    evaluation.check_headline_metrics(fine)
    for task, name in evaluation.HEADLINE_METRICS:
        bad = {**fine, task: {**fine[task], name: nan}}
        with pytest.raises(evaluation.NonFiniteMetricError, match=f"{task}/{name} = nan"):
            evaluation.check_headline_metrics(bad)


# ----------------------------------------------------------------------------------------------
# 4. One-line errors for user mistakes
# ----------------------------------------------------------------------------------------------


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "make_args, pattern",
    [
        (
            lambda t: ["--config-file", _write(t / "cfg.py", "x = 1\ndef broken(:\n    pass\n")],
            r"cfg\.py:2: SyntaxError: ",
        ),
        (
            lambda t: [
                "--config-file",
                _write(
                    t / "cfg.py", "from omegaconf import DictConfig\n\nmodel = undefined_name\n"
                ),
            ],
            r"cfg\.py:3: NameError: name 'undefined_name' is not defined",
        ),
        (
            lambda t: [
                "--config-file",
                CONFIG,
                "--synthetic",
                "dataloader.train.total_batch_size=abc",
            ],
            r"dataloader\.train\.total_batch_size must be an integer \(it is 4\), got 'abc'",
        ),
        (
            lambda t: ["--config-file", CONFIG, "--synthetic", "optimizer.lr=abc"],
            r"optimizer\.lr must be a number \(it is 0\.001\), got 'abc'",
        ),
        (
            lambda t: ["--config-file", CONFIG, "--synthetic", "train.checkpointer.period=abc"],
            r"train\.checkpointer\.period must be an integer",
        ),
        (
            lambda t: ["--config-file", CONFIG, "train.max_iter=abc"],
            r"train\.max_iter must be an integer \(it is 90000\), got 'abc'",
        ),
        (
            lambda t: [
                "--config-file",
                CONFIG,
                "--synthetic",
                f"train.output_dir={_write(t / 'a_file', '')}/out",
            ],
            r"train\.output_dir=.*a_file/out' is below a file",
        ),
        pytest.param(
            lambda t: ["--config-file", CONFIG, "--synthetic", "train.device=cuda"],
            r"train\.device='cuda' but no CUDA GPU is available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
        (
            lambda t: ["--config-file", CONFIG, "--synthetic", "train.device=gpu0"],
            r"train\.device='gpu0' is not a device",
        ),
        (
            lambda t: [
                "--config-file",
                CONFIG,
                "--synthetic",
                f"train.init_checkpoint={_write(t / 'corrupt.pth', 'not a checkpoint')}",
                f"train.output_dir={t / 'out'}",
            ],
            r"cannot load checkpoint '.*corrupt\.pth': ",
        ),
    ],
    ids=[
        "syntax-error",
        "name-error",
        "batch-size-abc",
        "lr-abc",
        "period-abc",
        "max-iter-abc",
        "output-dir-below-file",
        "no-cuda",
        "bad-device",
        "corrupt-pth-for-training",
    ],
)
def test_user_mistakes_give_one_line_errors(make_args, pattern, tmp_path):
    assert_one_line_error(run_train_net(*make_args(tmp_path)), pattern)


def test_unwritable_output_dir_is_an_error(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(
        ConfigError, match=r"train\.output_dir='.*' is not writable: Permission denied"
    ):
        check_output_dir(str(tmp_path / "out"))


def test_override_types_follow_the_replaced_value():
    cfg = load_config(
        CONFIG,
        ["optimizer.lr=1", "train.amp.enabled=true", "train.checkpointer.max_to_keep=null"],
        synthetic=True,
    )
    assert cfg.optimizer.lr == 1 and cfg.train.amp.enabled is True
    for bad, message in [
        ("train.amp.enabled=3", "true or false"),
        ("train.max_iter=1.5", "an integer"),
        ("dataloader.train.mapper.augmentations=5", "a list"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(CONFIG, [bad], synthetic=False)


def test_missing_image_of_a_dataset_registered_elsewhere_fails_before_training(tmp_path):
    """Own data registered by the config itself (not --train-coco, which checks at
    registration): a missing image is found before training starts, not when first sampled."""
    from d2_boxunc.data.synthetic import SPLITS, ensure_generated

    tiny = ensure_generated("boxunc_synth_val_tiny", SPLITS["boxunc_synth_val_tiny"])
    with open(os.path.join(tiny, "annotations.json")) as f:
        coco = json.load(f)
    coco["images"] = coco["images"][:3]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] <= 3]
    images = tmp_path / "images"
    images.mkdir()
    for im in coco["images"][:2]:  # the third image is missing
        shutil.copy(os.path.join(tiny, "images", im["file_name"]), images / im["file_name"])
    json_file = _write(tmp_path / "train.json", json.dumps(coco))
    config = _write(
        tmp_path / "cfg.py",
        f"""from detectron2.config import LazyConfig
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances

_base = LazyConfig.load({CONFIG!r})
model, dataloader, optimizer, lr_multiplier, train = (
    _base.model, _base.dataloader, _base.optimizer, _base.lr_multiplier, _base.train
)
if "reliability_missing_image" not in DatasetCatalog.list():
    register_coco_instances("reliability_missing_image", {{}}, {json_file!r}, {str(images)!r})
""",
    )
    proc = run_train_net(
        "--config-file",
        config,
        "--synthetic",
        "dataloader.train.dataset.names=reliability_missing_image",
        "dataloader.train.total_batch_size=2",
        "train.max_iter=5",
        f"train.output_dir={tmp_path / 'out'}",
        *TINY_TEST,
    )
    assert_one_line_error(
        proc, r"1 of 3 training image file\(s\) not found; first: .*images/000002\.png"
    )
    assert "Starting training" not in proc.stdout + proc.stderr
