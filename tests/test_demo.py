"""`make demo` end to end, shortened: trains, evaluates, prints the table, saves the picture."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_one_method(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "d2_boxunc.demo", "--method", "baseline", "--max-iter", "4",
         "--output", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| Faster R-CNN (baseline)" in proc.stdout
    assert "AP50" in proc.stdout
    assert os.path.getsize(tmp_path / "baseline" / "detections.png") > 10_000
    with open(tmp_path / "results.md") as f:
        assert "Faster R-CNN (baseline)" in f.read()


def test_demo_rejects_unknown_method():
    proc = subprocess.run(
        [sys.executable, "-m", "d2_boxunc.demo", "--method", "nope"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2 and "unknown method 'nope'" in proc.stderr
