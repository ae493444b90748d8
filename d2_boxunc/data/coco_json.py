"""Your own COCO-format dataset: validated once, registered lazily with detectron2's catalogs.

    from d2_boxunc.data import register_coco

    meta = register_coco("my_train", "annotations/train.json", "images/train")
    dataloader.train.dataset.names = "my_train"

:func:`register_coco` reads the json once, checks it, and registers a loader (detectron2's
``load_coco_json``) that runs only when the dataset is first used.  Bad input is reported as one
line (:class:`CocoJsonError`, a :class:`~d2_boxunc.config.cli.ConfigError`, which
``train_net.py`` prints as ``train_net.py: error: ...``):

- the json file or the image folder does not exist;
- the file is not valid JSON (with its line and column) or not a JSON object;
- the ``images``, ``annotations`` or ``categories`` list is missing, or ``categories`` is empty;
- a category, image or annotation lacks a field the loader or COCO evaluation needs (``id``,
  ``name``; ``id``, ``file_name``, ``height``, ``width``; ``id``, ``image_id``, ``category_id``,
  ``bbox`` of 4 numbers, ``area``, ``iscrowd``), or two categories share an id;
- annotations name a ``category_id`` that is not in ``categories`` (count and first example);
- image files do not exist under the image folder (count and first example).

Boxes whose width or height is not positive are **skipped**, not rejected: exported datasets
often hold a few degenerate boxes and one cannot learn or match them anyway.  Registration logs
one warning with their count and the loader never yields them.  The evaluator still reads the
ground truth from the json itself, where such boxes remain (as unmatchable ground truth).
"""

from __future__ import annotations

import json
import logging
import numbers
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.data.datasets import load_coco_json

from d2_boxunc.config.cli import ConfigError

__all__ = ["CocoJsonError", "CocoSummary", "check_coco_json", "register_coco", "registered_files"]

logger = logging.getLogger(__name__)

_REQUIRED = {
    "categories": ("id", "name"),
    "images": ("id", "file_name", "height", "width"),
    "annotations": ("id", "image_id", "category_id", "bbox", "area", "iscrowd"),
}
# name -> (json_file, image_dir), both absolute, of the datasets registered here
_REGISTERED: dict[str, tuple[str, str]] = {}


class CocoJsonError(ConfigError):
    """A COCO json that cannot be used, reported as one line."""


class CocoSummary:
    """What :func:`check_coco_json` found: classes (sorted by id), counts, skipped boxes."""

    def __init__(self, json_file, image_dir, categories, num_images, num_annotations, skipped):
        self.json_file = json_file
        self.image_dir = image_dir
        self.thing_classes = [c["name"] for c in categories]
        self.category_ids = [c["id"] for c in categories]
        self.num_images = num_images
        self.num_annotations = num_annotations
        self.skipped_annotation_ids = skipped

    @property
    def id_map(self) -> dict[int, int]:
        """Dataset category id -> contiguous id, exactly as ``load_coco_json`` builds it."""
        return {v: i for i, v in enumerate(self.category_ids)}


def _describe(kind: str, entry) -> str:
    if isinstance(entry, dict) and "id" in entry:
        return f"{kind} id {entry['id']!r}"
    return f"{kind} {json.dumps(entry)[:80]}"


def _count_and_first(bad: list, what: str, json_file: str) -> str:
    return f"{json_file}: {len(bad)} {what}; first: {bad[0]}"


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _bad_box(bbox) -> bool:
    return not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox))


def check_coco_json(json_file: str, image_dir: str) -> CocoSummary:
    """Read and check a COCO json and its image folder (see the module docstring).

    Raises:
        CocoJsonError: the first problem found, as one line.
    """
    if not os.path.isfile(json_file):
        raise CocoJsonError(f"COCO json not found: {json_file}")
    if not os.path.isdir(image_dir):
        raise CocoJsonError(f"image folder not found: {image_dir} (for {json_file})")
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoJsonError(
            f"{json_file}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except UnicodeDecodeError as e:
        raise CocoJsonError(f"{json_file}: not UTF-8 text ({e.reason})") from None
    if not isinstance(data, dict):
        raise CocoJsonError(f"{json_file}: not a COCO json (the top level is not an object)")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CocoJsonError(
            f"{json_file}: not a COCO json, it has no {', '.join(repr(k) for k in missing)} "
            f"(top-level keys: {', '.join(sorted(map(str, data))) or 'none'})"
        )
    for key, fields in _REQUIRED.items():
        if not isinstance(data[key], list):
            raise CocoJsonError(f"{json_file}: '{key}' must be a list")
        kind = key[:-1] if key != "categories" else "category"
        lacking = [
            f"{_describe(kind, e)} has no '{next(f for f in fields if f not in e)}'"
            if isinstance(e, dict)
            else f"{kind} {json.dumps(e)[:80]} is not an object"
            for e in data[key]
            if not isinstance(e, dict) or any(f not in e for f in fields)
        ]
        if lacking:
            raise CocoJsonError(
                _count_and_first(lacking, f"{key} lack a required field", json_file)
            )

    if not data["categories"]:
        raise CocoJsonError(f"{json_file}: 'categories' is empty (a detector needs classes)")
    not_int = [c["id"] for c in data["categories"] if not _is_int(c["id"])]
    if not_int:
        raise CocoJsonError(
            _count_and_first(
                [repr(i) for i in not_int], "category id(s) are not integers", json_file
            )
        )
    categories = sorted(data["categories"], key=lambda c: c["id"])
    ids = [c["id"] for c in categories]
    if len(set(ids)) != len(ids):
        dup = next(i for i, j in zip(ids, ids[1:]) if i == j)
        raise CocoJsonError(f"{json_file}: two categories have id {dup!r}")

    anns = data["annotations"]
    known = set(ids)
    unknown = [
        f"annotation id {a['id']!r} has category_id {a['category_id']!r}"
        for a in anns
        if not _is_int(a["category_id"]) or a["category_id"] not in known
    ]
    if unknown:
        shown = ", ".join(str(i) for i in ids[:10]) + (" ..." if len(ids) > 10 else "")
        raise CocoJsonError(
            _count_and_first(
                unknown, "annotation(s) name a category_id not in 'categories'", json_file
            )
            + f" (category ids: {shown})"
        )
    bad_boxes = [
        f"annotation id {a['id']!r} has bbox {a['bbox']!r}" for a in anns if _bad_box(a["bbox"])
    ]
    if bad_boxes:
        raise CocoJsonError(
            _count_and_first(bad_boxes, "annotation(s) have no [x, y, w, h] bbox", json_file)
        )
    ann_ids = [a["id"] for a in anns]
    if len(set(ann_ids)) != len(ann_ids):
        seen = set()
        dup = next(i for i in ann_ids if i in seen or seen.add(i))
        raise CocoJsonError(f"{json_file}: annotation ids are not unique (id {dup!r} repeats)")

    absent = [
        repr(im["file_name"])
        for im in data["images"]
        if not isinstance(im["file_name"], str)
        or not os.path.isfile(os.path.join(image_dir, im["file_name"]))
    ]
    if absent:
        raise CocoJsonError(
            _count_and_first(absent, f"image file(s) not found under {image_dir}", json_file)
        )
    skipped = [a["id"] for a in anns if not (a["bbox"][2] > 0 and a["bbox"][3] > 0)]
    return CocoSummary(json_file, image_dir, categories, len(data["images"]), len(anns), skipped)


def _loader(name: str, json_file: str, image_dir: str):
    def load() -> list[dict]:
        dicts = load_coco_json(json_file, image_dir, name)
        for d in dicts:
            d["annotations"] = [
                a for a in d["annotations"] if a["bbox"][2] > 0 and a["bbox"][3] > 0
            ]
        return dicts

    return load


def registered_files(name: str) -> tuple[str, str] | None:
    """``(json_file, image_dir)`` (absolute) of a dataset :func:`register_coco` registered, or
    None."""
    return _REGISTERED.get(name)


def register_coco(name: str, json_file: str, image_dir: str) -> Metadata:
    """Register a COCO-format dataset as ``name`` and return its metadata.

    The json is checked now (:func:`check_coco_json`) and loaded only when the dataset is used.
    Metadata: ``thing_classes`` (category names sorted by id),
    ``thing_dataset_id_to_contiguous_id``, ``json_file``, ``image_root`` (both absolute) and
    ``evaluator_type="coco"``.  Annotations with
    a non-positive box width or height are skipped, with one warning giving their count.

    Registering ``name`` again with the same files does nothing; with other files, or a name
    that some other code registered, it is an error.

    Raises:
        CocoJsonError: bad input, as one line.
    """
    given = (os.fspath(json_file), os.fspath(image_dir))
    json_file, image_dir = os.path.abspath(json_file), os.path.abspath(image_dir)
    if name in _REGISTERED and name in DatasetCatalog.list():
        if _REGISTERED[name] == (json_file, image_dir):
            return MetadataCatalog.get(name)
        old_json, old_dir = _REGISTERED[name]
        raise CocoJsonError(
            f"dataset '{name}' is already registered with {old_json} and {old_dir}; "
            "register the other files under another name"
        )
    if name in DatasetCatalog.list():
        raise CocoJsonError(f"dataset name '{name}' is already taken; choose another name")
    summary = check_coco_json(*given)  # errors name the paths as given
    if summary.skipped_annotation_ids:
        n = len(summary.skipped_annotation_ids)
        logger.warning(
            f"{given[0]}: skipping {n} of {summary.num_annotations} annotation(s) whose box has "
            f"a non-positive width or height (first: annotation id "
            f"{summary.skipped_annotation_ids[0]!r})"
        )
    DatasetCatalog.register(name, _loader(name, json_file, image_dir))
    meta = MetadataCatalog.get(name)
    try:
        meta.set(
            thing_classes=summary.thing_classes,
            thing_dataset_id_to_contiguous_id=summary.id_map,
            json_file=json_file,
            image_root=image_dir,
            evaluator_type="coco",
        )
    except AssertionError:  # metadata of this name was set elsewhere, to other values
        DatasetCatalog.remove(name)
        raise CocoJsonError(
            f"dataset name '{name}' already has other metadata; choose another name"
        ) from None
    _REGISTERED[name] = (json_file, image_dir)
    return meta
