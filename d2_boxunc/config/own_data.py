"""Point any LazyConfig at your own COCO-format data (``train_net.py --train-coco/--test-coco``).

:func:`use_own_data` registers the json files with :func:`d2_boxunc.data.register_coco`, makes
``dataloader.train`` / ``dataloader.test`` and the evaluator use them, and sets every
``num_classes`` in ``cfg.model`` to the number of categories in the json.

Dataset names come from the json file name: ``train.json`` becomes ``own_train``.  When that name
already stands for other files in this process (two ``annotations.json`` in different folders,
say), a short hash of the two paths is appended (``own_annotations_1a2b3c4d``).  The names depend
only on the files and on what was registered before, so every worker process derives the same.
"""

from __future__ import annotations

import hashlib
import os
import re

from detectron2.data import DatasetCatalog, MetadataCatalog

from d2_boxunc.config.cli import ConfigError
from d2_boxunc.config.synthetic import set_evaluator_dataset, set_num_classes

__all__ = ["dataset_name", "use_own_data"]


def dataset_name(json_file: str, image_dir: str) -> str:
    """The name :func:`use_own_data` registers ``json_file`` (with ``image_dir``) under."""
    from d2_boxunc.data.coco_json import registered_files

    json_file, image_dir = os.path.abspath(json_file), os.path.abspath(image_dir)
    stem = os.path.splitext(os.path.basename(json_file))[0]
    name = "own_" + (re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "data")
    if name not in DatasetCatalog.list() or registered_files(name) == (json_file, image_dir):
        return name
    digest = hashlib.sha1(f"{json_file}\0{image_dir}".encode()).hexdigest()[:8]
    return f"{name}_{digest}"


def _categories(name: str) -> list[tuple[int, str]]:
    meta = MetadataCatalog.get(name)
    ids = sorted(
        meta.thing_dataset_id_to_contiguous_id, key=meta.thing_dataset_id_to_contiguous_id.get
    )
    return list(zip(ids, meta.thing_classes))


def _check_same_categories(train: tuple[str, str], test: tuple[str, str]) -> None:
    (train_json, train_name), (test_json, test_name) = train, test
    a, b = _categories(train_name), _categories(test_name)
    if a == b:
        return
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    def show(cats):
        return f"id {cats[i][0]} '{cats[i][1]}'" if i < len(cats) else "nothing"

    raise ConfigError(
        f"the train and test json have different categories: {train_json} has {len(a)}, "
        f"{test_json} has {len(b)}; category {i + 1} (sorted by id) is {show(a)} vs {show(b)}"
    )


def use_own_data(cfg, train: tuple[str, str] | None = None, test: tuple[str, str] | None = None):
    """Train on ``train`` and evaluate on ``test``, each a ``(json_file, image_dir)`` pair.

    ``test`` alone (evaluation of a checkpoint) keeps the config's training set; ``train`` needs
    ``test`` too, since the model's classes come from the json and the config's own test set has
    other classes.  Both must list the same categories.  Returns ``cfg``, changed in place.

    Raises:
        ConfigError: bad input (see :mod:`d2_boxunc.data.coco_json`), ``train`` without ``test``,
            different categories, or a config without the dataloader node to change.
    """
    from d2_boxunc.data.coco_json import register_coco

    if train is None and test is None:
        return cfg
    if test is None:
        raise ConfigError(
            "--train-coco needs --test-coco JSON IMAGE_DIR too: the model's classes come from "
            "the json, and the config's own test set has other classes"
        )
    registered = {}
    for part, files in (("train", train), ("test", test)):
        if files is None:
            continue
        if len(files) != 2:
            raise ConfigError(f"{part}: expected (json_file, image_dir), got {files!r}")
        json_file, image_dir = (os.fspath(f) for f in files)
        name = dataset_name(json_file, image_dir)
        register_coco(name, json_file, image_dir)
        registered[part] = (json_file, name)
    if "train" in registered:
        _check_same_categories(registered["train"], registered["test"])

    dl = cfg.dataloader
    for part, (_, name) in registered.items():
        node = dl.get(part, None)
        if node is None or "dataset" not in node or "names" not in node.dataset:
            raise ConfigError(
                f"the config has no dataloader.{part}.dataset.names to point at {name}"
            )
        node.dataset.names = name
    evaluator = dl.get("evaluator", None)
    if evaluator is not None:
        set_evaluator_dataset(evaluator, registered["test"][1])
    set_num_classes(cfg.model, len(MetadataCatalog.get(registered["test"][1]).thing_classes))
    return cfg
