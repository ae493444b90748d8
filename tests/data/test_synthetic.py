"""The synthetic COCO-format dataset: determinism, validity, caching, registration."""

import json
import logging
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from d2_boxunc.data import synthetic
from d2_boxunc.data.synthetic import CLASS_NAMES, SyntheticConfig, ensure_generated

SMALL = SyntheticConfig(num_images=12, seed=7, blur_frac=0.5, low_contrast_frac=0.3)


@pytest.fixture(scope="module")
def small_split(module_mktemp):
    root = str(module_mktemp("synth"))
    return ensure_generated("small", SMALL, root=root), root


def test_deterministic(small_split, tmp_path):
    folder, _ = small_split
    again = ensure_generated("small", SMALL, root=str(tmp_path))
    with (
        open(os.path.join(folder, "annotations.json")) as f1,
        open(os.path.join(again, "annotations.json")) as f2,
    ):
        assert json.load(f1) == json.load(f2)
    for name in sorted(os.listdir(os.path.join(folder, "images")))[:3]:
        a = np.asarray(Image.open(os.path.join(folder, "images", name)))
        b = np.asarray(Image.open(os.path.join(again, "images", name)))
        np.testing.assert_array_equal(a, b)


def test_other_seed_differs(small_split, tmp_path):
    folder, _ = small_split
    other = SyntheticConfig(**{**SMALL.__dict__, "seed": 8})
    assert synthetic.config_hash(other) != synthetic.config_hash(SMALL)
    other_dir = ensure_generated("small", other, root=str(tmp_path))
    assert other_dir != folder
    with (
        open(os.path.join(folder, "annotations.json")) as f1,
        open(os.path.join(other_dir, "annotations.json")) as f2,
    ):
        assert json.load(f1)["annotations"] != json.load(f2)["annotations"]


def test_valid_coco(small_split):
    folder, _ = small_split
    coco = COCO(os.path.join(folder, "annotations.json"))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(CLASS_NAMES)
    assert len(coco.getImgIds()) == SMALL.num_images
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= SMALL.num_images * SMALL.min_objects // 2
    deviations = []
    for img in coco.loadImgs(coco.getImgIds()):
        w, h = Image.open(os.path.join(folder, "images", img["file_name"])).size
        assert (w, h) == (img["width"], img["height"])
        assert SMALL.min_size <= w <= SMALL.max_size and SMALL.min_size <= h <= SMALL.max_size
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            x, y, bw, bh = a["bbox"]
            assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h
            assert bw >= 8 and bh >= 8
            poly = np.asarray(a["segmentation"][0]).reshape(-1, 2)
            extent = np.concatenate([poly.min(0), poly.max(0)])
            box = np.array([x, y, x + bw, y + bh])
            if a["blurred"]:
                # the label's edges scatter around the shape's (annotators disagree on soft edges)
                size = (extent[2:] - extent[:2]).repeat(2)
                assert (np.abs(box - extent) < 0.5 * size).all()
                deviations.append(np.abs(box - extent).max())
            else:
                # the polygon fills part of its box, and the box is the polygon's extent
                assert 0 < a["area"] <= bw * bh + 1e-6
                np.testing.assert_allclose(box, extent, atol=1e-6)
            # pycocotools rasterises it to roughly the same area
            assert abs(coco.annToMask(a).sum() - a["area"]) < 0.15 * a["area"] + 2 * (bw + bh)
    assert deviations and min(deviations) > 0


def test_ambiguous_edges_present(small_split):
    folder, _ = small_split
    with open(os.path.join(folder, "annotations.json")) as f:
        anns = json.load(f)["annotations"]
    blurred = [a["blurred"] for a in anns]
    assert 0 < sum(blurred) < len(blurred)
    assert any(a["low_contrast"] for a in anns)


def test_blurred_edges_are_soft(small_split):
    """Across the true box boundary, blurred objects change intensity more gradually."""
    folder, _ = small_split
    with open(os.path.join(folder, "annotations.json")) as f:
        coco = json.load(f)
    sharp, soft = [], []
    for a in coco["annotations"]:
        if a["low_contrast"]:
            continue
        img = np.asarray(
            Image.open(os.path.join(folder, "images", f"{a['image_id'] - 1:06d}.png")).convert("L"),
            dtype=np.float32,
        )
        gy, gx = np.gradient(img)
        mag = np.hypot(gx, gy)
        poly = np.asarray(a["segmentation"][0]).reshape(-1, 2)
        # mean gradient magnitude at the polygon's vertices' midpoints (on the true edge)
        mids = (poly + np.roll(poly, -1, axis=0)) / 2
        ij = np.clip(np.round(mids[:, ::-1]).astype(int), 0, np.array(img.shape) - 1)
        (soft if a["blurred"] else sharp).append(mag[ij[:, 0], ij[:, 1]].mean())
    assert np.mean(soft) < np.mean(sharp)


def test_cache_reused_and_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("D2_BOXUNC_DATA", str(tmp_path))
    assert synthetic.default_root() == str(tmp_path)
    cfg = SyntheticConfig(num_images=2, seed=3)
    folder = ensure_generated("tiny", cfg)
    assert folder.startswith(str(tmp_path))
    stamp = os.path.getmtime(os.path.join(folder, "annotations.json"))
    assert ensure_generated("tiny", cfg) == folder
    assert os.path.getmtime(os.path.join(folder, "annotations.json")) == stamp
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_registered_with_detectron2():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    for name in ("boxunc_synth_train", "boxunc_synth_val"):
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == CLASS_NAMES
        assert meta.json_file.endswith("annotations.json")
    # detectron2's builtin COCO registrations stay usable
    assert "coco_2017_val" in DatasetCatalog.list()


# -- the manifest: a damaged cache is generated again, once, with one warning ---------------------

DAMAGE_CFG = SyntheticConfig(num_images=3, seed=11)


def _truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


def _flip_a_byte(path):
    with open(path, "r+b") as f:
        f.seek(20)
        b = f.read(1)
        f.seek(20)
        f.write(bytes([b[0] ^ 0x01]))


DAMAGES = {
    "truncated json": (lambda d: _truncate(os.path.join(d, "annotations.json"), 100), "bytes"),
    "edited json, same size": (
        lambda d: _flip_a_byte(os.path.join(d, "annotations.json")),
        "annotations.json differs",
    ),
    "truncated png": (lambda d: _truncate(os.path.join(d, "images", "000001.png"), 10), "bytes"),
    "missing png": (
        lambda d: os.remove(os.path.join(d, "images", "000002.png")),
        "images/000002.png is missing",
    ),
    "deleted images folder": (
        lambda d: shutil.rmtree(os.path.join(d, "images")),
        "images/ is missing",
    ),
    "no manifest (an older cache)": (
        lambda d: os.remove(os.path.join(d, synthetic.MANIFEST)),
        "no manifest",
    ),
}


def _contents(folder):
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                out[os.path.relpath(os.path.join(dirpath, n), folder)] = f.read()
    return out


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_cache_is_generated_again_with_one_warning(damage, tmp_path, caplog):
    folder = ensure_generated("dmg", DAMAGE_CFG, root=str(tmp_path))
    original = _contents(folder)
    assert synthetic.MANIFEST in original and len(original) == 2 + DAMAGE_CFG.num_images
    damage_fn, reason = DAMAGES[damage]
    damage_fn(folder)
    with caplog.at_level(logging.WARNING, logger="d2_boxunc.data.synthetic"):
        assert ensure_generated("dmg", DAMAGE_CFG, root=str(tmp_path)) == folder
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "generating it again" in warnings[0], warnings
    assert reason in warnings[0], warnings
    assert _contents(folder) == original
    # the swap leaves no temporary folder behind
    assert sorted(p for p in os.listdir(tmp_path) if not p.endswith(".lock")) == [
        os.path.basename(folder)
    ]


def test_intact_cache_is_checked_not_regenerated(tmp_path, caplog):
    folder = ensure_generated("ok", DAMAGE_CFG, root=str(tmp_path))
    inode = os.stat(folder).st_ino
    assert synthetic.check_manifest(folder) is None
    with caplog.at_level(logging.INFO, logger="d2_boxunc.data.synthetic"):
        assert ensure_generated("ok", DAMAGE_CFG, root=str(tmp_path)) == folder
    assert not caplog.records
    assert os.stat(folder).st_ino == inode
