"""Own COCO-format data: register_coco's checks and metadata, use_own_data through load_config on
two paper configs, and train_net.py --train-coco/--test-coco end to end (5 classes, not the
synthetic set's 4)."""

import copy
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from omegaconf import DictConfig, ListConfig
from PIL import Image, ImageDraw

from d2_boxunc.config.cli import ConfigError, load_config
from d2_boxunc.config.own_data import dataset_name, use_own_data
from d2_boxunc.data import CocoJsonError, register_coco

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASTER_RCNN = os.path.join(ROOT, "configs/Baselines/faster_rcnn_R_50_FPN_1x.py")
ALRP = os.path.join(ROOT, "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py")
# non-contiguous ids, listed out of order: thing_classes follow the ids
CATEGORIES = [
    {"id": 7, "name": "green"},
    {"id": 2, "name": "red"},
    {"id": 11, "name": "blue"},
    {"id": 12, "name": "yellow"},
    {"id": 30, "name": "magenta"},
]
CLASSES = ["red", "green", "blue", "yellow", "magenta"]
COLOURS = {2: "red", 7: "green", 11: "blue", 12: "yellow", 30: "magenta"}
SIZE = 160


def _draw_images(folder, num_images: int) -> tuple[list, list]:
    """Each image holds one rectangle of every class, in a 3 x 2 grid of cells."""
    os.makedirs(folder, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img = Image.new("RGB", (SIZE, SIZE), (90, 90, 90))
        draw = ImageDraw.Draw(img)
        cells = [(c % 3, c // 3) for c in range(6)]
        cells = cells[i % 6 :] + cells[: i % 6]
        for k, cat in enumerate(sorted(COLOURS)):
            cx, cy = cells[k]
            w, h = 24 + 4 * ((i + k) % 4), 20 + 5 * ((i * k) % 4)
            x, y = cx * 53 + 4 + (i % 3) * 3, cy * 80 + 6 + (k % 2) * 4
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=COLOURS[cat])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        name = f"img_{i:02d}.png"
        img.save(os.path.join(folder, name))
        images.append({"id": i + 1, "file_name": name, "height": SIZE, "width": SIZE})
    return images, annotations


def _write(path, data) -> str:
    with open(path, "w") as f:
        json.dump(data, f)
    return str(path)


@pytest.fixture(scope="module")
def coco(module_mktemp):
    """``train.json`` (4 images) and ``val.json`` (2 images) over one image folder."""
    root = module_mktemp("own_coco")
    images, anns = _draw_images(root / "images", 6)
    split = {"train": {1, 2, 3, 4}, "val": {5, 6}}
    out = {"root": root, "images": str(root / "images")}
    for part, ids in split.items():
        data = {
            "images": [im for im in images if im["id"] in ids],
            "annotations": [a for a in anns if a["image_id"] in ids],
            "categories": CATEGORIES,
        }
        out[part] = _write(root / f"{part}.json", data)
        out[part + "_data"] = data
    return out


def _variant(coco, tmp_path, change) -> str:
    data = copy.deepcopy(coco["train_data"])
    change(data)
    return _write(tmp_path / "variant.json", data)


def _one_line_error(excinfo, pattern: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert re.search(pattern, msg), msg
    return msg


def test_register_coco_metadata_and_idempotence(coco, tmp_path):
    meta = register_coco("test_own_meta", coco["train"], coco["images"])
    assert meta.thing_classes == CLASSES
    assert meta.thing_dataset_id_to_contiguous_id == {2: 0, 7: 1, 11: 2, 12: 3, 30: 4}
    assert meta.json_file == os.path.abspath(coco["train"])
    assert meta.image_root == os.path.abspath(coco["images"])
    assert meta.evaluator_type == "coco"
    # lazy: loading sets the same metadata (detectron2 refuses to change a set value)
    dicts = DatasetCatalog.get("test_own_meta")
    assert len(dicts) == 4 and all(len(d["annotations"]) == 5 for d in dicts)
    assert {a["category_id"] for d in dicts for a in d["annotations"]} == set(range(5))
    assert MetadataCatalog.get("test_own_meta").thing_classes == CLASSES
    # same files again: a no-op; other files under the same name: an error
    assert register_coco("test_own_meta", coco["train"], coco["images"]) is meta
    with pytest.raises(CocoJsonError) as e:
        register_coco("test_own_meta", coco["val"], coco["images"])
    _one_line_error(e, "already registered with .*train.json")
    with pytest.raises(CocoJsonError) as e:
        register_coco("boxunc_synth_train", coco["train"], coco["images"])
    _one_line_error(e, "'boxunc_synth_train' is already taken")


def _drop(key):
    return lambda d: d.pop(key)


def _unknown_category(d):
    d["annotations"][3]["category_id"] = 99
    d["annotations"][8]["category_id"] = 98


def _missing_image(d):
    d["images"][1]["file_name"] = "nope.png"


def _no_area(d):
    del d["annotations"][0]["area"]


def _no_categories(d):
    d["categories"] = []


@pytest.mark.parametrize(
    "change, pattern",
    [
        (_drop("images"), r"not a COCO json, it has no 'images' \(top-level keys: annotations"),
        (_drop("annotations"), r"has no 'annotations'"),
        (_drop("categories"), r"has no 'categories'"),
        (_no_categories, r"'categories' is empty"),
        (
            _unknown_category,
            r"2 annotation\(s\) name a category_id not in 'categories'; first: annotation id 4 "
            r"has category_id 99 \(category ids: 2, 7, 11, 12, 30\)",
        ),
        (_missing_image, r"1 image file\(s\) not found under .*images; first: 'nope.png'"),
        (_no_area, r"1 annotations lack a required field; first: annotation id 1 has no 'area'"),
    ],
)
def test_bad_json_gives_one_line_error(coco, tmp_path, change, pattern):
    path = _variant(coco, tmp_path, change)
    with pytest.raises(CocoJsonError) as e:
        register_coco(f"test_own_bad_{tmp_path.name}", path, coco["images"])
    _one_line_error(e, pattern)
    assert isinstance(e.value, ConfigError) and isinstance(e.value, ValueError)
    assert f"test_own_bad_{tmp_path.name}" not in DatasetCatalog.list()


def test_missing_and_invalid_json(coco, tmp_path):
    with pytest.raises(CocoJsonError) as e:
        register_coco("test_own_missing", tmp_path / "absent.json", coco["images"])
    _one_line_error(e, r"^COCO json not found: .*absent.json$")
    with pytest.raises(CocoJsonError) as e:
        register_coco("test_own_missing", coco["train"], tmp_path / "no_images")
    _one_line_error(e, r"^image folder not found: .*no_images")
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [\n  {"id": 1,}\n]}\n')
    with pytest.raises(CocoJsonError) as e:
        register_coco("test_own_broken", broken, coco["images"])
    _one_line_error(e, r"broken.json: invalid JSON at line 2, column 12: ")


def test_non_positive_boxes_are_skipped_with_a_count(coco, tmp_path, caplog, monkeypatch):
    def degenerate(d):
        d["annotations"][0]["bbox"][2] = 0
        d["annotations"][6]["bbox"][3] = -3.5
        d["annotations"][7]["bbox"][2:] = [0, 0]

    path = _variant(coco, tmp_path, degenerate)
    # setup_logger("d2_boxunc") (run by an earlier test, say) stops propagation to caplog's root
    monkeypatch.setattr(logging.getLogger("d2_boxunc"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="d2_boxunc.data.coco_json"):
        register_coco("test_own_degenerate", path, coco["images"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert re.search(
        r"skipping 3 of 20 annotation\(s\) .* non-positive width or height", warnings[0]
    )
    dicts = DatasetCatalog.get("test_own_degenerate")
    boxes = [a["bbox"] for d in dicts for a in d["annotations"]]
    assert len(boxes) == 17 and all(b[2] > 0 and b[3] > 0 for b in boxes)


def _num_classes(node, path="model") -> dict:
    found = {}
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            if key == "num_classes":
                found[f"{path}.{key}"] = node[key]
            elif isinstance(child, (DictConfig, ListConfig)):
                found.update(_num_classes(child, f"{path}.{key}"))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            found.update(_num_classes(node[i], f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("config", [FASTER_RCNN, ALRP], ids=["faster_rcnn", "alrp_retinanet"])
def test_load_config_points_the_config_at_own_data(coco, config):
    train, test = (coco["train"], coco["images"]), (coco["val"], coco["images"])
    cfg = load_config(
        config, ["train.max_iter=7"], synthetic=True, train_coco=train, test_coco=test
    )
    train_name, test_name = dataset_name(*train), dataset_name(*test)
    assert train_name.startswith("own_train") and test_name.startswith("own_val")
    assert cfg.dataloader.train.dataset.names == train_name
    assert cfg.dataloader.test.dataset.names == test_name
    evaluators = cfg.dataloader.evaluator.evaluators
    assert len(evaluators) == 3 and {e.dataset_name for e in evaluators} == {test_name}
    found = _num_classes(cfg.model)
    assert found and set(found.values()) == {5}, found
    # the synthetic switch still sized the model and schedule; the override won
    assert cfg.train.device == "cpu" and cfg.train.max_iter == 7
    assert MetadataCatalog.get(test_name).thing_classes == CLASSES


def test_own_data_needs_test_and_matching_categories(coco, tmp_path):
    train, test = (coco["train"], coco["images"]), (coco["val"], coco["images"])
    with pytest.raises(ConfigError) as e:
        load_config(FASTER_RCNN, synthetic=True, train_coco=train)
    _one_line_error(e, "--train-coco needs --test-coco")
    # --test-coco alone (evaluation): the training set stays the config's
    cfg = load_config(FASTER_RCNN, synthetic=True, test_coco=test)
    assert cfg.dataloader.train.dataset.names == "boxunc_synth_train"
    assert set(_num_classes(cfg.model).values()) == {5}

    def rename(d):
        d["categories"] = copy.deepcopy(d["categories"])
        d["categories"][0]["name"] = "lime"

    other = tmp_path / "other"
    other.mkdir()
    path = _variant(coco, other, rename)
    with pytest.raises(ConfigError) as e:
        use_own_data(load_config(FASTER_RCNN), train=(path, coco["images"]), test=test)
    _one_line_error(
        e,
        r"different categories: .*variant.json has 5, .*val.json has 5; category 2 .* "
        r"is id 7 'lime' vs id 7 'green'",
    )


def run_train_net(*args, timeout=900):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "train_net.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=timeout,
    )


def test_train_net_missing_json_one_line(coco, tmp_path):
    proc = run_train_net(
        "--config-file",
        FASTER_RCNN,
        "--synthetic",
        "--train-coco",
        str(tmp_path / "missing.json"),
        coco["images"],
        "--test-coco",
        coco["val"],
        coco["images"],
        f"train.output_dir={tmp_path}",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("train_net.py: error:")]
    assert len(errors) == 1, proc.stderr
    assert errors[0] == f"train_net.py: error: COCO json not found: {tmp_path / 'missing.json'}"


@pytest.mark.slow
def test_train_net_trains_and_evaluates_on_own_data(coco, tmp_path):
    out = tmp_path / "out"
    proc = run_train_net(
        "--config-file",
        FASTER_RCNN,
        "--synthetic",
        "--train-coco",
        coco["train"],
        coco["images"],
        "--test-coco",
        coco["val"],
        coco["images"],
        "train.max_iter=2",
        f"train.output_dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "eval_results.json") as f:
        results = json.load(f)
    assert "bbox" in results, results.keys()
    for name in CLASSES:
        assert f"AP-{name}" in results["bbox"], results["bbox"].keys()


def test_predict_with_test_coco_uses_the_json_classes(coco, tmp_path, capsys):
    """predict --test-coco builds the 5-class model and writes its category ids."""
    import json

    import torch
    from detectron2.config import instantiate

    from d2_boxunc.config.cli import load_config
    from d2_boxunc.predict import main as predict

    config = "configs/Baselines/faster_rcnn_R_50_FPN_1x.py"
    val = (coco["val"], coco["images"])
    torch.manual_seed(0)
    model = instantiate(load_config(config, synthetic=True, test_coco=val).model)
    checkpoint = tmp_path / "m.pth"
    torch.save({"model": model.state_dict()}, checkpoint)
    image = sorted(os.listdir(coco["images"]))[0]
    argv = ["--config-file", config, "--checkpoint", str(checkpoint), "--synthetic"]
    argv += ["--input", os.path.join(coco["images"], image), "--output", str(tmp_path / "out")]
    argv += ["--device", "cpu", "model.roi_heads.box_predictor.test_score_thresh=0.0"]
    assert predict([*argv[:-1], "--test-coco", *val, argv[-1]]) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert results and {r["category_id"] for r in results} <= {c["id"] for c in CATEGORIES}
    # without --test-coco the 4-class synthetic model does not fit the 5-class checkpoint
    capsys.readouterr()
    assert predict(argv) == 2
    assert "does not fit the model" in capsys.readouterr().err
