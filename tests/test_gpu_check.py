"""``make gpu-check`` (dev/gpu_check.py) without a GPU: it skips cleanly, and its CUDA-vs-CPU
comparison code runs (CPU against CPU), so a GPU machine does not meet a broken script."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
import torch

from d2_boxunc import _extension

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "dev", "gpu_check.py")


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_check_skips_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [SCRIPT])
    assert _load().main() == 0
    assert capsys.readouterr().out.strip() == "skipped: no GPU"


@pytest.mark.skipif(
    torch.cuda.is_available() or shutil.which("make") is None, reason="a GPU is present, or no make"
)
def test_make_gpu_check_skips_without_a_gpu():
    proc = subprocess.run(
        ["make", "--no-print-directory", "gpu-check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "skipped: no GPU"


@pytest.mark.skipif(not _extension.has_ops(), reason="needs d2_boxunc._C")
def test_gpu_check_comparisons_run_cpu_against_cpu():
    rows = _load().compare("cpu")
    assert len(rows) >= 20
    failed = [r for r in rows if not r[1]]
    assert not failed, failed


@pytest.mark.skipif(not _extension.has_ops(), reason="needs d2_boxunc._C")
def test_gpu_check_benchmark_code_runs_small_on_cpu():
    rows = _load().bench("cpu", scale=16)
    assert [r[0] for r in rows][:3] == [
        "PrRoIPool fwd vs roi_align",
        "PrRoIPool fwd+bwd vs roi_align",
        "IoU-guided NMS vs nms, 312 boxes",
    ]
    assert all(r[1] and " ms" in r[2] for r in rows)
