"""Reliability under mistakes and faults: one-line errors for user mistakes."""

import os
import re
import subprocess
import sys

import pytest
import torch

from d2_boxunc.config.cli import ConfigError, check_output_dir, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs/Baselines/faster_rcnn_R_50_FPN_1x.py")


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
