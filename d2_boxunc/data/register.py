"""Registers the synthetic splits with detectron2's DatasetCatalog and MetadataCatalog.

Registration is lazy: nothing is generated until a split is first loaded (or
:func:`prepare_dataset` is called).  The metadata's ``json_file`` points at the deterministic
cache location, so ``COCOEvaluator`` finds the ground truth once the split exists.
"""

import os
import re

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from d2_boxunc.data.synthetic import (
    CLASS_NAMES,
    SPLITS,
    SyntheticConfig,
    dataset_dir,
    ensure_generated,
)


def _loader(name: str, cfg: SyntheticConfig):
    def load():
        folder = ensure_generated(name, cfg)
        return load_coco_json(
            os.path.join(folder, "annotations.json"),
            os.path.join(folder, "images"),
            name,
            extra_annotation_keys=["blurred", "low_contrast"],
        )

    return load


def register_synthetic_datasets() -> None:
    """Register every split in :data:`SPLITS` (idempotent)."""
    for name, cfg in SPLITS.items():
        if name in DatasetCatalog.list():
            continue
        DatasetCatalog.register(name, _loader(name, cfg))
        folder = dataset_dir(name, cfg)
        MetadataCatalog.get(name).set(
            thing_classes=list(CLASS_NAMES),
            json_file=os.path.join(folder, "annotations.json"),
            image_root=os.path.join(folder, "images"),
            evaluator_type="coco",
        )


SIZED_VAL = re.compile(r"boxunc_synth_val(\d+)")
SIZED_VAL_SEED = 3  # none of the fixed splits' seeds


def sized_validation_split(num_images: int) -> str:
    """Name of a synthetic validation split of ``num_images`` images, registered on use (the
    study's larger validation sets: ``boxunc_synth_val500`` ...).  Every process that names it
    (``prepare_dataset``) registers the same deterministic split."""
    if num_images <= 0:
        raise ValueError(f"a validation split needs at least one image, got {num_images}")
    name = f"boxunc_synth_val{num_images}"
    SPLITS.setdefault(name, SyntheticConfig(num_images=num_images, seed=SIZED_VAL_SEED))
    register_synthetic_datasets()
    return name


def prepare_dataset(name: str) -> None:
    """Make sure a registered dataset can be loaded; generate it if it is a synthetic split.

    ``boxunc_synth_val<N>`` names a synthetic validation split of N images, registered here.
    Raises a one-line ``KeyError`` naming the close matches when ``name`` is not registered.
    """
    sized = SIZED_VAL.fullmatch(name)
    if sized and name not in SPLITS:
        sized_validation_split(int(sized.group(1)))
    if name in SPLITS:
        ensure_generated(name, SPLITS[name])
        return
    if name not in DatasetCatalog.list():
        import difflib

        close = difflib.get_close_matches(name, DatasetCatalog.list(), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"Dataset '{name}' is not registered.{hint}")
