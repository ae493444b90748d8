"""``python -m d2_boxunc.export``: the exported program, loaded in a fresh process with torch and
``d2_boxunc.ops`` only (no detectron2), gives the eager model's detections on synthetic
validation images; mistakes are one-line errors."""

import os
import subprocess
import sys

import pytest
import torch
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog

from d2_boxunc.config.cli import load_config
from d2_boxunc.export import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KL = os.path.join(ROOT, "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote_softnms.py")
IOUNET = os.path.join(ROOT, "configs/IoUNet/iounet_faster_rcnn_R_50_FPN_1x.py")
TINY = "boxunc_synth_val_tiny"

# Runs in a fresh interpreter: only torch and d2_boxunc.ops may be imported.
LOAD_AND_RUN = """
import sys, torch
import d2_boxunc.ops
program, meta = d2_boxunc.ops.load_exported(sys.argv[1])
images = torch.load(sys.argv[2])
outputs = [[t.clone() for t in program(image)] for image in images]
assert "detectron2" not in sys.modules, sorted(m for m in sys.modules if "detectron2" in m)
torch.save({"outputs": outputs, "meta": meta}, sys.argv[3])
"""


def _random_checkpoint(config, path):
    """A checkpoint of the synthetic-size model with random weights (seeded)."""
    cfg = load_config(config, ["train.device=cpu"], synthetic=True)
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    torch.save({"model": model.state_dict()}, path)
    return model, cfg


def _validation_images(cfg, n=2):
    """The first ``n`` tiny validation images as the model sees them (test resize, float)."""
    mapper = instantiate(cfg.dataloader.test.mapper)
    return [mapper(dict(d))["image"].float() for d in DatasetCatalog.get(TINY)[:n]]


@pytest.mark.parametrize(
    "config, extra", [(KL, "bbox_std"), (IOUNET, "pred_iou")], ids=["kl", "iounet"]
)
def test_exported_program_in_fresh_process_equals_eager(config, extra, tmp_path, capsys):
    model, cfg = _random_checkpoint(config, tmp_path / "model.pth")
    out = tmp_path / "model.pt2"
    argv = ["--config-file", config, "--checkpoint", str(tmp_path / "model.pth")]
    assert main([*argv, "--output", str(out), "--synthetic"]) == 0
    assert extra in capsys.readouterr().out

    images = _validation_images(cfg)
    torch.save(images, tmp_path / "images.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_RUN,
            str(out),
            str(tmp_path / "images.pt"),
            str(tmp_path / "out.pt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,  # a busy machine: the load and two images take seconds when idle
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = torch.load(tmp_path / "out.pt")
    meta = result["meta"]
    assert meta["outputs"] == ["boxes", "scores", "classes", extra]
    assert meta["input_format"] == "BGR" and meta["classes"]

    for image, (boxes, scores, classes, values) in zip(images, result["outputs"]):
        with torch.no_grad():
            ref = model([{"image": image}])[0]["instances"]
        assert len(ref) > 0 and boxes.shape == (len(ref), 4)  # same count
        assert torch.equal(classes, ref.pred_classes)
        torch.testing.assert_close(boxes, ref.pred_boxes.tensor, atol=1e-4, rtol=0)
        torch.testing.assert_close(scores, ref.scores, atol=1e-5, rtol=0)
        own = ref.pred_boxes_std if extra == "bbox_std" else ref.pred_ious.reshape(-1)
        torch.testing.assert_close(values, own, atol=1e-5, rtol=1e-5)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_checkpoint_or_config_is_one_line(tmp_path, capsys):
    out = ["--output", str(tmp_path / "m.pt2")]
    missing = str(tmp_path / "missing.pth")
    assert main(["--config-file", KL, "--checkpoint", missing, *out]) == 2
    assert _one_error_line(capsys) == f"export: error: checkpoint not found: {missing}"
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"x")
    assert main(["--config-file", str(tmp_path / "nope.py"), "--checkpoint", str(ckpt), *out]) == 2
    assert _one_error_line(capsys).startswith("export: error: ")
    assert not (tmp_path / "m.pt2").exists()


def test_checkpoint_of_another_model_is_one_line(tmp_path, capsys):
    _random_checkpoint(KL, tmp_path / "kl.pth")
    argv = ["--config-file", IOUNET, "--checkpoint", str(tmp_path / "kl.pth"), "--synthetic"]
    assert main([*argv, "--output", str(tmp_path / "m.pt2")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("export: error: checkpoint") and "does not fit" in line, line
