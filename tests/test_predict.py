"""``python -m d2_boxunc.predict``: inputs, output names, the COCO results and the one-line
errors without a model; end to end on 2-iteration KL-Loss and IoU-Net checkpoints (slow)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances
from PIL import Image

from d2_boxunc.predict import coco_results, collect_inputs, main, output_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KL = os.path.join(ROOT, "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x.py")
IOUNET = os.path.join(ROOT, "configs/IoUNet/iounet_faster_rcnn_R_50_FPN_1x.py")
TINY = "boxunc_synth_val_tiny"


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def test_inputs_from_files_directories_and_patterns(tmp_path):
    b = _touch(tmp_path / "d" / "b.PNG")
    a = _touch(tmp_path / "d" / "a.jpeg")
    _touch(tmp_path / "d" / "notes.txt")
    (tmp_path / "d" / "folder.jpg").mkdir()
    c = _touch(tmp_path / "e" / "c.webp")
    d = _touch(tmp_path / "e" / "d.bmp")
    named = _touch(tmp_path / "named.dat")  # a file named explicitly is always tried
    got = collect_inputs([named, str(tmp_path / "d"), str(tmp_path / "e" / "*"), a])
    assert got == [named, a, b, c, d]  # directory sorted, non-images skipped, `a` once


@pytest.mark.parametrize(
    "item, message",
    [
        ("missing.jpg", "input not found"),
        ("empty", "no images"),
        ("empty/*.png", "matches no image"),
    ],
)
def test_input_that_matches_nothing_is_an_error(tmp_path, item, message):
    from d2_boxunc.predict import PredictError

    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictError, match=message):
        collect_inputs([str(tmp_path / item)])


def test_same_stems_get_distinct_pictures():
    paths = ["a/x.png", "b/x.jpg", "c/X.bmp", "x_1.png", "y.jpg"]
    assert output_names(paths) == ["x.png", "x_1.png", "X_2.png", "x_1_1.png", "y.png"]


def test_coco_results_fields_and_category_ids():
    inst = Instances((100, 200))
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 5.0, 5.0]]))
    inst.scores = torch.tensor([0.9, 0.2])
    inst.pred_classes = torch.tensor([0, 2])
    inst.pred_boxes_std = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]])
    inst.pred_ious = torch.tensor([[0.8], [0.3]])
    results = coco_results(inst, "dir/im.jpg", 7, None)
    assert results[0] == {
        "file_name": "dir/im.jpg",
        "image_id": 7,
        "category_id": 1,
        "bbox": [10.0, 20.0, 40.0, 60.0],
        "score": pytest.approx(0.9),
        "bbox_std": [1.0, 2.0, 3.0, 4.0],
        "pred_iou": pytest.approx(0.8),
    }
    assert results[1]["category_id"] == 3
    # a dataset with its own ids (COCO: 1..90) maps the class index back to them
    assert [r["category_id"] for r in coco_results(inst, "x", 1, {0: 1, 2: 5})] == [1, 5]
    inst.remove("pred_boxes_std")
    inst.remove("pred_ious")
    assert set(coco_results(inst, "x", 1, None)[0]) == {
        "file_name",
        "image_id",
        "category_id",
        "bbox",
        "score",
    }
    assert coco_results(inst[:0], "x", 1, None) == []


def test_coco_config_uses_coco_category_ids():
    from d2_boxunc.config.cli import load_config
    from d2_boxunc.predict import dataset_metadata

    meta = dataset_metadata(load_config(KL))
    assert len(meta.thing_classes) == 80
    assert meta.thing_dataset_id_to_contiguous_id[90] == 79


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("predict: error: "), err
    return lines[0]


@pytest.fixture
def files(tmp_path):
    image = tmp_path / "im.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(image)
    return {"ckpt": _touch(tmp_path / "model.pth"), "image": str(image), "out": tmp_path / "out"}


def test_command_line_mistakes_exit_2_in_one_line(files, tmp_path, capsys):
    base = ["--config-file", KL, "--checkpoint", files["ckpt"], "--input", files["image"]]
    out = ["--output", str(files["out"])]
    missing = str(tmp_path / "nope.pth")
    argv = ["--config-file", KL, "--checkpoint", missing, "--input", files["image"], *out]
    assert main(argv) == 2
    assert _one_error_line(capsys) == f"predict: error: checkpoint not found: {missing}"
    argv = ["--config-file", str(tmp_path / "nope.py"), *base[2:], *out]
    assert main(argv) == 2
    assert "config file not found" in _one_error_line(capsys)
    assert main([*base[:-1], str(tmp_path / "*.jpg"), *out]) == 2
    assert "matches no image" in _one_error_line(capsys)
    assert main([*base, "--output", files["ckpt"]]) == 2
    assert "is a file" in _one_error_line(capsys)
    assert main([*base, *out, "--score-thresh", "2"]) == 2
    assert "--score-thresh" in _one_error_line(capsys)
    assert not files["out"].exists()  # nothing written on an error


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_gpu_is_an_error(files, capsys):
    argv = ["--config-file", KL, "--checkpoint", files["ckpt"], "--input", files["image"]]
    assert main([*argv, "--output", str(files["out"]), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in _one_error_line(capsys)


# ---- end to end on trained checkpoints ----------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(module_mktemp):
    """config -> model_final.pth of a 2-iteration ``train_net.py --synthetic`` run (trained on
    first use)."""
    cache = {}

    def get(config):
        if config not in cache:
            out = module_mktemp("train")
            proc = subprocess.run(
                [
                    sys.executable,
                    os.path.join(ROOT, "train_net.py"),
                    "--config-file",
                    config,
                    "--synthetic",
                    "train.max_iter=2",
                    f"train.output_dir={out}",
                    "dataloader.train.total_batch_size=2",
                    f"dataloader.test.dataset.names={TINY}",
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
                timeout=600,
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            cache[config] = str(out / "model_final.pth")
        return cache[config]

    return get


@pytest.fixture(scope="module")
def photos(module_mktemp):
    """A folder with a PNG, a JPEG, an unreadable .jpg and a text file; a subfolder with a PNG
    of the same stem as the first."""
    from detectron2.data import DatasetCatalog

    dicts = DatasetCatalog.get(TINY)
    folder = module_mktemp("photos")
    (folder / "sub").mkdir()
    paths = {
        "png": folder / "shapes.png",
        "jpeg": folder / "photo.JPEG",
        "dup": folder / "sub" / "shapes.png",
    }
    for d, (kind, path) in zip(dicts, paths.items()):
        Image.open(d["file_name"]).convert("RGB").save(
            path, format="JPEG" if kind == "jpeg" else None
        )
    paths["bad"] = folder / "broken.jpg"
    paths["bad"].write_bytes(os.urandom(300))
    (folder / "notes.txt").write_text("not an image")
    return folder, {k: str(v) for k, v in paths.items()}


def _predict(config, checkpoint, photos, out, capsys, *extra):
    folder, paths = photos
    argv = [
        "--config-file",
        config,
        "--checkpoint",
        checkpoint,
        "--synthetic",
        "--input",
        str(folder),
        str(folder / "sub" / "*.png"),
        "--output",
        str(out),
        "--score-thresh",
        "0.0",
        *extra,
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    with open(out / "predictions.json") as f:
        results = json.load(f)
    return results, captured


def _check_run(results, captured, photos, out):
    _, paths = photos
    readable = [paths["png"], paths["jpeg"], paths["dup"]]
    # every readable image is drawn, the duplicate stem under its own name
    assert sorted(os.listdir(out)) == [
        "photo.png",
        "predictions.json",
        "shapes.png",
        "shapes_1.png",
    ]
    for name, src in [("photo.png", paths["jpeg"]), ("shapes_1.png", paths["dup"])]:
        drawn = np.asarray(Image.open(out / name).convert("RGB"))
        original = np.asarray(Image.open(src).convert("RGB"))
        assert drawn.shape == original.shape
        assert (drawn != original).any()  # detections were drawn (--score-thresh 0)
    # the unreadable file: one warning, then listed at the end
    warnings = [line for line in captured.err.splitlines() if "warning: skipping" in line]
    assert len(warnings) == 1 and paths["bad"] in warnings[0], captured.err
    assert "skipped 1 unreadable image(s):" in captured.err
    assert captured.err.rstrip().splitlines()[-1].strip() == paths["bad"]
    # COCO results, in the pixels of the original images
    assert results, "a 2-iteration model still returns detections"
    assert {r["file_name"] for r in results} <= set(readable)
    assert {r["image_id"] for r in results} <= {1, 2, 3}
    sizes = {p: Image.open(p).size for p in readable}
    for r in results:
        x, y, w, h = r["bbox"]
        width, height = sizes[r["file_name"]]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0
        assert x + w <= width + 1e-3 and y + h <= height + 1e-3
        assert 1 <= r["category_id"] <= 4 and 0.0 <= r["score"] <= 1.0


@pytest.mark.slow
def test_predict_kl_model_writes_pictures_and_sigmas(checkpoints, photos, tmp_path, capsys):
    out = tmp_path / "out"
    results, captured = _predict(KL, checkpoints(KL), photos, out, capsys)
    _check_run(results, captured, photos, out)
    for r in results:
        assert len(r["bbox_std"]) == 4 and min(r["bbox_std"]) > 0
        assert "pred_iou" not in r


@pytest.mark.slow
def test_predict_iounet_model_writes_predicted_ious(checkpoints, photos, tmp_path, capsys):
    out = tmp_path / "out"
    results, captured = _predict(IOUNET, checkpoints(IOUNET), photos, out, capsys)
    _check_run(results, captured, photos, out)
    for r in results:
        assert isinstance(r["pred_iou"], float)
        assert "bbox_std" not in r


@pytest.mark.slow
def test_checkpoint_of_another_model_is_an_error(checkpoints, photos, tmp_path, capsys):
    _, paths = photos
    argv = ["--checkpoint", checkpoints(KL), "--input", paths["png"], "--output", str(tmp_path)]
    # without --synthetic every width differs; the IoU-Net config lacks nothing but the IoU head
    assert main(["--config-file", KL, *argv]) == 2
    assert "does not fit the model" in _one_error_line(capsys)
    assert main(["--config-file", IOUNET, "--synthetic", *argv]) == 2
    assert "'roi_heads.iou_head." in _one_error_line(capsys)
