"""Draw a model's detections with detectron2's Visualizer, with their localisation quality:
dashed +-sigma extents for ``pred_boxes_std`` (KL-Loss) and the predicted IoU in the label for
``pred_ious`` (IoU-Net).

    python -m d2_boxunc.visualize --config-file X.py --checkpoint model_final.pth \\
        --synthetic --num-images 4 --output detections.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.visualizer import Visualizer


def load_model(
    config_file: str,
    checkpoint: str,
    overrides: list[str] | None = None,
    synthetic: bool = True,
    test_coco: tuple[str, str] | None = None,
):
    """Build the config's model in eval mode with weights from ``checkpoint`` (``test_coco``:
    your own COCO json and image folder, whose classes the model predicts)."""
    from detectron2.checkpoint import DetectionCheckpointer

    from d2_boxunc.config.cli import load_config

    cfg = load_config(config_file, list(overrides or []), synthetic=synthetic, test_coco=test_coco)
    cfg.train.init_checkpoint = checkpoint
    model = instantiate(cfg.model).to(cfg.train.device).eval()
    DetectionCheckpointer(model).load(checkpoint)
    return model, cfg


def draw_predictions(model, cfg, dataset_dict: dict, score_thresh: float = 0.3) -> np.ndarray:
    """RGB image (H, W, 3) of ``dataset_dict``'s image with the predictions above the threshold."""
    mapper = instantiate(cfg.dataloader.test.mapper)
    inputs = mapper(dict(dataset_dict))
    with torch.no_grad():
        instances = model([inputs])[0]["instances"].to("cpu")
    instances = instances[instances.scores >= score_thresh]
    image = read_image(dataset_dict["file_name"], format="RGB")
    names = cfg.dataloader.test.dataset.names
    metadata = MetadataCatalog.get(names if isinstance(names, str) else names[0])
    return draw_instances(image, instances, metadata)


def draw_instances(image: np.ndarray, instances, metadata=None) -> np.ndarray:
    """RGB image (H, W, 3) of the RGB ``image`` with ``instances`` (in its pixels) drawn: labels
    with the predicted IoU when present, dashed +-sigma extents when ``pred_boxes_std`` is."""
    vis = Visualizer(image, metadata=metadata)
    draw_detections(vis, instances)
    if instances.has("pred_boxes_std"):
        draw_std_extents(vis, instances)
    return vis.output.get_image()


def quality_labels(instances, class_names: list[str] | None = None) -> list[str]:
    """``"<class> <score>%"`` labels, with ``" IoU <pred_iou>"`` appended when the instances
    carry ``pred_ious`` (IoU-Net's predicted localisation quality)."""
    n = len(instances)
    classes = instances.pred_classes.tolist() if instances.has("pred_classes") else [None] * n
    scores = instances.scores.tolist() if instances.has("scores") else [None] * n
    ious = instances.pred_ious.reshape(-1).tolist() if instances.has("pred_ious") else [None] * n
    labels = []
    for c, s, q in zip(classes, scores, ious):
        parts = []
        if c is not None:
            parts.append(class_names[c] if class_names and c < len(class_names) else str(c))
        if s is not None:
            parts.append(f"{s * 100:.0f}%")
        if q is not None:
            parts.append(f"IoU {q:.2f}")
        labels.append(" ".join(parts))
    return labels


def draw_detections(vis: Visualizer, instances) -> None:
    """``vis.draw_instance_predictions``, but labels show the predicted IoU when present."""
    if not instances.has("pred_ious"):
        vis.draw_instance_predictions(instances)
        return
    masks = None
    if instances.has("pred_masks"):
        masks = np.asarray(instances.pred_masks)
    vis.overlay_instances(
        boxes=instances.pred_boxes if instances.has("pred_boxes") else None,
        masks=masks,
        labels=quality_labels(instances, vis.metadata.get("thing_classes", None)),
        alpha=0.5,
    )


def draw_std_extents(vis: Visualizer, instances, k: float = 1.0) -> None:
    """Dashed boxes at each coordinate -/+ ``k`` predicted std: the outer box moves every edge
    outwards by its sigma, the inner one inwards (KL-Loss's per-coordinate uncertainty)."""
    boxes = instances.pred_boxes.tensor.numpy()
    std = k * instances.pred_boxes_std.numpy()
    sign = np.array([-1.0, -1.0, 1.0, 1.0])
    for box, s in zip(boxes, std):
        for outer in (True, False):
            b = box + (sign if outer else -sign) * s
            if b[2] > b[0] and b[3] > b[1]:
                vis.draw_box(b, alpha=0.9, edge_color="white", line_style="--")


def draw_panels(model, cfg, dataset_dicts: list[dict], score_thresh: float = 0.3) -> np.ndarray:
    """The drawings of several images side by side, as one RGB array."""
    panels = [draw_predictions(model, cfg, d, score_thresh) for d in dataset_dicts]
    h = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, h - p.shape[0]), (0, 4), (0, 0))) for p in panels]
    return np.concatenate(panels, axis=1)


def main(argv: list[str] | None = None) -> None:
    from detectron2.data import DatasetCatalog
    from PIL import Image

    import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets)

    parser = argparse.ArgumentParser(description="Draw detections of a trained model.")
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--synthetic", action="store_true", help="apply the CPU switch")
    parser.add_argument("--num-images", type=int, default=4)
    parser.add_argument("--score-thresh", type=float, default=0.3)
    parser.add_argument("--output", default="detections.png")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="key=value config overrides")
    args = parser.parse_args(argv)
    model, cfg = load_model(args.config_file, args.checkpoint, args.opts, args.synthetic)
    names = cfg.dataloader.test.dataset.names
    dicts = DatasetCatalog.get(names if isinstance(names, str) else names[0])
    panels = draw_panels(model, cfg, dicts[: args.num_images], args.score_thresh)
    Image.fromarray(panels).save(args.output)
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
