"""Every config under configs/ loads, and its model instantiates and trains one step on CPU
through the synthetic switch; its evaluators build and evaluate the model's outputs."""

import glob
import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluators
from detectron2.utils.events import EventStorage

from d2_boxunc.config import to_synthetic
from d2_boxunc.config.synthetic import FEATURE_CHANNELS
from d2_boxunc.data.register import prepare_dataset
from d2_boxunc.data.tiny import TINY_VAL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)
    if "/common/" not in p and os.path.basename(p) != "__init__.py"
)


def _images(n=2, size=64):
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": (torch.rand(3, size, size + 8, generator=g) * 255).to(torch.uint8),
            "height": size,
            "width": size + 8,
        }
        for _ in range(n)
    ]


def _targets(batch):
    from detectron2.structures import Boxes, Instances, PolygonMasks

    for i, b in enumerate(batch):
        h, w = b["image"].shape[1:]
        inst = Instances((h, w))
        # one image with two objects, one without any
        boxes = [[5.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]] if i == 0 else []
        inst.gt_boxes = Boxes(torch.tensor(boxes).reshape(-1, 4))
        inst.gt_classes = torch.tensor([1, 3][: len(boxes)], dtype=torch.long)
        inst.gt_masks = PolygonMasks(
            [[[x1, y1, x2, y1, x2, y2, x1, y2]] for x1, y1, x2, y2 in boxes]
        )
        b["instances"] = inst
    return batch


def test_configs_found():
    assert "configs/Baselines/faster_rcnn_R_50_FPN_1x.py" in CONFIGS


def _check_evaluates(small, outputs, output_dir):
    """The config's evaluators, on the tiny validation set, score ``outputs`` as two of its
    images (untrained: the numbers are not checked, only that every evaluator reports)."""
    prepare_dataset(TINY_VAL)
    small.dataloader.test.dataset.names = TINY_VAL  # the evaluators follow the test set
    small.train.output_dir = str(output_dir)
    evaluator = instantiate(small.dataloader.evaluator)
    evaluator.reset()
    for d, out in zip(DatasetCatalog.get(TINY_VAL), outputs):
        evaluator.process([{"image_id": d["image_id"]}], [out])
    results = evaluator.evaluate()
    assert "bbox" in results
    if isinstance(evaluator, DatasetEvaluators):  # d2_boxunc's configs; detectron2's: COCO only
        assert {"lrp", "box_uncertainty"} <= set(results), list(results)


def _check_trains_on_cpu(cfg, path, output_dir):
    for key in ("model", "dataloader", "optimizer", "lr_multiplier", "train"):
        assert key in cfg, f"{path} lacks top-level '{key}'"
    instantiate(cfg.lr_multiplier)  # the paper schedule is well formed

    small = to_synthetic(cfg, max_iter=10)
    assert small.train.device == "cpu" and small.train.init_checkpoint == ""
    assert small.dataloader.train.dataset.names == "boxunc_synth_train"
    model = instantiate(small.model)
    widths = {m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert max(widths) <= 256 and FEATURE_CHANNELS in widths

    model.train()
    with EventStorage():
        losses = model(_targets(_images()))
        assert losses and all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(_images())
    assert len(out) == 2 and all("instances" in o for o in out)
    _check_evaluates(small, out, output_dir)


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads_and_trains_on_cpu(path, tmp_path):
    cfg = LazyConfig.load(os.path.join(ROOT, path))
    # train_net saves the resolved config to the output dir: every interpolation must resolve
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    _check_trains_on_cpu(cfg, path, tmp_path)


@pytest.mark.parametrize(
    "zoo_path",
    [
        "COCO-Detection/retinanet_R_50_FPN_1x.py",
        "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.py",
    ],
)
def test_switch_handles_other_architectures(zoo_path, tmp_path):
    """The switch is generic: detectron2's own RetinaNet and Mask R-CNN configs shrink too."""
    from detectron2.model_zoo import get_config

    _check_trains_on_cpu(get_config(zoo_path), zoo_path, tmp_path)


def test_synthetic_switch_keeps_overridable_schedule():
    cfg = LazyConfig.load(os.path.join(ROOT, "configs/Baselines/faster_rcnn_R_50_FPN_1x.py"))
    small = to_synthetic(cfg, max_iter=200)
    assert small.train.max_iter == 200
    assert list(small.lr_multiplier.scheduler.milestones) == [150, 180, 200]
    # the original is untouched
    assert cfg.train.max_iter == 90000 and cfg.model.roi_heads.num_classes == 80
