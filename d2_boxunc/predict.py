"""Run a trained model on your own pictures: one drawing per image and one COCO-style json.

    python -m d2_boxunc.predict --config-file X.py --checkpoint model_final.pth \\
        --input photo.jpg photos/ 'more/*.png' --output predictions/ [--synthetic] \\
        [--score-thresh 0.5] [--device cpu|cuda] [key=value ...]

In the manner of detectron2's ``demo/demo.py``, for every method's model:

- ``--input`` takes files, directories (every image inside, sorted, not recursive) and glob
  patterns (quote them); directories and patterns keep ``.jpg .jpeg .png .bmp .webp`` files (any
  case), a file named explicitly is always tried.  A file listed twice is predicted once.
  ``key=value`` overrides may follow ``--input``: a dotted ``key=value`` that is not an existing
  path is taken as an override.  ``--device`` defaults to cuda when a GPU is visible, else cpu.
- ``OUT/<image stem>.png``: the image with the detections scored ``>= --score-thresh`` drawn,
  with their class and score, dashed +-sigma extents for KL-Loss models (``pred_boxes_std``) and
  the predicted IoU in the label for IoU-Net models (``pred_ious``).  Images with the same stem
  (``a/x.png`` and ``b/x.jpg``) become ``x.png``, ``x_1.png``, ... in input order.
- ``OUT/predictions.json``: a list in COCO results format with EVERY detection the model returns
  (the model's own test score threshold applies, ``--score-thresh`` does not): ``file_name`` (the
  path as found), ``image_id`` (1, 2, ... over the images read), ``category_id``, ``bbox``
  (x, y, width, height in pixels of the image as read, EXIF orientation applied) and ``score``;
  plus ``bbox_std`` (sigma of x1, y1, x2, y2 in the same pixels) for models that output
  ``pred_boxes_std`` and ``pred_iou`` for models that output ``pred_ious``.  ``category_id`` is
  the test dataset's own id when its metadata has ``thing_dataset_id_to_contiguous_id`` (COCO:
  1..90), else the class index + 1.

Class names come from the config's test dataset (``--synthetic``: the synthetic classes).
Unreadable images are skipped with one warning each and listed at the end (exit code 0, or 1 when
no image could be read).  Mistakes (missing config or checkpoint, an input that matches nothing,
``--output`` a file, ``--device cuda`` without a GPU, a ``.pth`` checkpoint whose tensors do not
fit the config's model, e.g. trained with ``--synthetic`` but loaded without) are reported in one
line, ``predict: error: ...``, with exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
import re
import sys

import numpy as np

PROG = "predict"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_GLOB_MAGIC = re.compile(r"[*?[]")
# ``model.x=1`` after ``--input a.jpg`` lands in --input: a dotted key=value that is no path
_OVERRIDE = re.compile(r"^\+?[A-Za-z_]\w*(\.\w+)+=")


class PredictError(ValueError):
    """A mistake on the command line, reported as one line."""


def is_image_name(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def collect_inputs(inputs: list[str]) -> list[str]:
    """The image paths named by ``inputs`` (files, directories, glob patterns), in order, each
    once.  Raises :class:`PredictError` for an input that matches no image."""
    paths: list[str] = []
    for item in inputs:
        if os.path.isfile(item):
            found = [item]
        elif os.path.isdir(item):
            names = sorted(os.listdir(item))
            found = [os.path.join(item, n) for n in names if is_image_name(n)]
            found = [p for p in found if os.path.isfile(p)]
            if not found:
                raise PredictError(f"no images ({' '.join(IMAGE_EXTENSIONS)}) in directory {item}")
        elif _GLOB_MAGIC.search(item):
            found = sorted(
                p for p in glob.glob(item, recursive=True) if os.path.isfile(p) and is_image_name(p)
            )
            if not found:
                raise PredictError(f"pattern '{item}' matches no image")
        else:
            raise PredictError(f"input not found: {item}")
        paths.extend(found)
    seen: set[str] = set()
    unique = []
    for p in paths:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def output_names(paths: list[str]) -> list[str]:
    """``<stem>.png`` for each path; a stem already taken (case-insensitively) gets ``_1``,
    ``_2``, ... so that no picture overwrites another."""
    used: set[str] = set()
    names = []
    for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0]
        name, i = stem, 0
        while name.lower() in used:
            i += 1
            name = f"{stem}_{i}"
        used.add(name.lower())
        names.append(name + ".png")
    return names


def dataset_metadata(cfg):
    """The metadata of the config's (first) test dataset."""
    from detectron2.data import MetadataCatalog

    names = cfg.dataloader.test.dataset.names
    return MetadataCatalog.get(names if isinstance(names, str) else names[0])


def input_format(cfg) -> str:
    """The channel order the model expects: ``model.input_format``, else the test mapper's
    ``image_format``, else BGR (detectron2's default)."""
    fmt = cfg.model.get("input_format", None)
    if not fmt:
        fmt = cfg.dataloader.test.get("mapper", {}).get("image_format", None)
    return fmt or "BGR"


class Predictor:
    """``DefaultPredictor`` for a LazyConfig: the test augmentation of
    ``cfg.dataloader.test.mapper.augmentations``, one image per call, no gradients."""

    def __init__(self, model, cfg):
        import detectron2.data.transforms as T
        from detectron2.config import instantiate

        self.model = model.eval()
        self.input_format = input_format(cfg)
        augs = instantiate(cfg.dataloader.test.mapper.augmentations)
        self.aug = T.AugmentationList([augs] if isinstance(augs, T.Augmentation) else list(augs))

    def __call__(self, image: np.ndarray):
        """``Instances`` (on the CPU, in the pixels of ``image``) for an (H, W, C) image in
        :attr:`input_format`."""
        import detectron2.data.transforms as T
        import torch

        height, width = image.shape[:2]
        aug_input = T.AugInput(image)
        self.aug(aug_input)
        tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        with torch.no_grad():
            outputs = self.model([{"image": tensor, "height": height, "width": width}])
        return outputs[0]["instances"].to("cpu")


def coco_results(instances, file_name: str, image_id: int, dataset_ids: dict | None) -> list:
    """COCO results entries for one image; ``dataset_ids`` maps class index -> category id."""
    n = len(instances)
    if n == 0:
        return []
    boxes = instances.pred_boxes.tensor.numpy().astype(float)
    boxes[:, 2:] -= boxes[:, :2]
    scores = instances.scores.tolist()
    classes = instances.pred_classes.tolist()
    std = instances.pred_boxes_std.tolist() if instances.has("pred_boxes_std") else None
    ious = instances.pred_ious.reshape(-1).tolist() if instances.has("pred_ious") else None
    results = []
    for i in range(n):
        c = classes[i]
        r = {
            "file_name": file_name,
            "image_id": image_id,
            "category_id": dataset_ids.get(c, c + 1) if dataset_ids else c + 1,
            "bbox": boxes[i].tolist(),
            "score": scores[i],
        }
        if std is not None:
            r["bbox_std"] = std[i]
        if ious is not None:
            r["pred_iou"] = ious[i]
        results.append(r)
    return results


def checkpoint_mismatch(model, checkpoint: str) -> str | None:
    """How a ``.pth`` checkpoint does not fit ``model`` (tensors it lacks or holds in another
    shape: trained with other flags or overrides), in a few words; None when it fits or is in
    another format (left to detectron2's checkpointer)."""
    import torch

    if "://" in checkpoint or not checkpoint.endswith(".pth"):
        return None
    state = None
    for mmap in (True, False):  # mmap reads only the headers; older formats cannot
        try:
            state = torch.load(checkpoint, map_location="cpu", mmap=mmap)
            break
        except Exception:
            continue
    state = state.get("model", state) if isinstance(state, dict) else {}
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not missing and not wrong:
        return None
    if wrong:
        k = wrong[0]
        example = f"'{k}' is {tuple(state[k].shape)} there, {tuple(own[k].shape)} here"
    else:
        example = f"'{missing[0]}' is missing"
    return (
        f"{len(wrong)} tensor(s) of another shape and {len(missing)} missing of {len(own)} "
        f"(e.g. {example})"
    )


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m d2_boxunc.predict",
        description="Predict with a trained model on image files, folders or glob patterns; "
        "writes OUT/<stem>.png drawings and OUT/predictions.json (COCO results, all detections).",
    )
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="e.g. model_final.pth")
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        help="image files, directories (non-recursive) and quoted glob patterns",
    )
    p.add_argument("--output", required=True, metavar="OUT", help="folder for the results")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="apply the CPU switch (for checkpoints trained with train_net.py --synthetic)",
    )
    from d2_boxunc.config.cli import add_own_data_arguments

    add_own_data_arguments(p, train=False)  # --test-coco: the classes of your own data
    p.add_argument(
        "--score-thresh",
        type=float,
        default=0.5,
        help="draw detections scored at least this (default 0.5); predictions.json has all",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default: cuda when a GPU is visible, else cpu",
    )
    p.add_argument("opts", nargs="*", metavar="key=value", help="config overrides")
    return p


def _split_overrides(inputs: list[str]) -> tuple[list[str], list[str]]:
    keep, opts = [], []
    for item in inputs:
        is_opt = _OVERRIDE.match(item) and not _GLOB_MAGIC.search(item)
        (opts if is_opt and not os.path.exists(item) else keep).append(item)
    return keep, opts


def check_model_files(args) -> None:
    """Resolve ``args.config_file`` (a path or a model-zoo name) and check that
    ``args.checkpoint`` exists; :class:`PredictError` otherwise."""
    from d2_boxunc.config.cli import ConfigError, resolve_config_file

    try:
        args.config_file = resolve_config_file(args.config_file)
    except ConfigError as e:
        raise PredictError(str(e)) from None
    if "://" not in args.checkpoint and not os.path.isfile(args.checkpoint):
        raise PredictError(f"checkpoint not found: {args.checkpoint}")


def load_checked_model(args, device: str, opts: list[str]):
    """``(model, cfg)``: the model of ``args.config_file`` (eval mode, on ``device``) with the
    weights of ``args.checkpoint``; a checkpoint that does not load or does not fit the config is
    a :class:`PredictError` in one line. Shared by ``predict`` and ``export``."""
    from d2_boxunc.config.cli import ConfigError
    from d2_boxunc.visualize import load_model

    try:
        # the config's own init_checkpoint is not used (and need not exist); --device goes
        # first, so that an explicit train.device=... override still wins
        first = ["train.init_checkpoint=", f"train.device={device}"]
        # a checkpoint that does not fit is reported below in one line, not per tensor
        with _quiet("fvcore.common.checkpoint", args.checkpoint.endswith(".pth")):
            model, cfg = load_model(
                args.config_file,
                args.checkpoint,
                first + opts,
                args.synthetic,
                test_coco=getattr(args, "test_coco", None),
            )
    except ConfigError as e:
        raise PredictError(str(e)) from None
    except Exception as e:  # a corrupt or foreign checkpoint, a config that does not build
        raise PredictError(
            f"cannot load the model from {args.checkpoint}: {_first_line(e)}"
        ) from None
    mismatch = checkpoint_mismatch(model, args.checkpoint)
    if mismatch:
        raise PredictError(
            f"checkpoint {args.checkpoint} does not fit the model of {args.config_file}: "
            f"{mismatch}; was it trained with this config, with the same --synthetic flag "
            "and key=value overrides?"
        )
    return model, cfg


def _check_arguments(args) -> tuple[list[str], str]:
    """Everything that can be checked before the model is built: (image paths, device)."""
    import torch

    check_model_files(args)
    if not 0.0 <= args.score_thresh <= 1.0:
        raise PredictError(f"--score-thresh must be in [0, 1], got {args.score_thresh}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PredictError("--device cuda, but no CUDA GPU is visible; use --device cpu")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise PredictError(f"--output {args.output} is a file, not a folder")
    return collect_inputs(args.input), device


@contextlib.contextmanager
def _quiet(logger_name: str, enabled: bool = True):
    """Hide the warnings of one logger inside the block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    if enabled:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    from detectron2.data.catalog import Metadata
    from detectron2.data.detection_utils import convert_image_to_rgb, read_image
    from PIL import Image
    from tqdm import tqdm

    import d2_boxunc.data  # noqa: F401  (compiled ops, datasets)
    from d2_boxunc.visualize import draw_instances

    args = get_parser().parse_intermixed_args(argv)
    args.input, extra = _split_overrides(args.input)
    opts = [o for o in args.opts if o != "--"] + extra
    try:
        if not args.input:
            raise PredictError("no --input given")
        paths, device = _check_arguments(args)
        model, cfg = load_checked_model(args, device, opts)
        try:
            os.makedirs(args.output, exist_ok=True)
        except OSError as e:
            raise PredictError(f"cannot create --output {args.output}: {e.strerror}") from None
    except PredictError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    predictor = Predictor(model, cfg)
    meta = dataset_metadata(cfg)
    class_names = list(meta.get("thing_classes", None) or [])
    draw_meta = Metadata(name="d2_boxunc.predict", thing_classes=class_names)
    id_map = meta.get("thing_dataset_id_to_contiguous_id", None)
    dataset_ids = {v: k for k, v in id_map.items()} if id_map else None

    results: list[dict] = []
    skipped: list[str] = []
    image_id = 0
    for path, name in tqdm(
        list(zip(paths, output_names(paths))), desc=PROG, unit="img", file=sys.stderr
    ):
        try:
            image = read_image(path, format=predictor.input_format)
        except Exception as e:  # not an image, truncated, unsupported: skip it, go on
            tqdm.write(f"{PROG}: warning: skipping {path}: {_first_line(e)}", file=sys.stderr)
            skipped.append(path)
            continue
        instances = predictor(image)
        image_id += 1
        results.extend(coco_results(instances, path, image_id, dataset_ids))
        shown = instances[instances.scores >= args.score_thresh]
        if len(shown) and shown.has("pred_classes"):  # unnamed classes are drawn as numbers
            top = int(shown.pred_classes.max())
            class_names.extend(str(c) for c in range(len(class_names), top + 1))
        rgb = convert_image_to_rgb(image, predictor.input_format)
        drawing = draw_instances(np.asarray(rgb, dtype=np.uint8), shown, draw_meta)
        Image.fromarray(drawing).save(os.path.join(args.output, name))

    json_path = os.path.join(args.output, "predictions.json")
    with open(json_path, "w") as f:
        json.dump(results, f)
    print(f"{image_id} image(s), {len(results)} detection(s): pictures and {json_path}")
    if skipped:
        print(f"{PROG}: skipped {len(skipped)} unreadable image(s):", file=sys.stderr)
        for path in skipped:
            print(f"  {path}", file=sys.stderr)
    return 0 if image_id else 1


if __name__ == "__main__":
    sys.exit(main())
