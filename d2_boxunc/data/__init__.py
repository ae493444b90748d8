"""Datasets: the synthetic COCO-format set registered as ``boxunc_synth_train`` / ``_val``, and
:func:`register_coco` for your own COCO-format json."""

from d2_boxunc.data.coco_json import CocoJsonError, register_coco
from d2_boxunc.data.register import register_synthetic_datasets
from d2_boxunc.data.synthetic import CLASS_NAMES, SPLITS, SyntheticConfig, ensure_generated

register_synthetic_datasets()

__all__ = [
    "CLASS_NAMES",
    "SPLITS",
    "CocoJsonError",
    "SyntheticConfig",
    "ensure_generated",
    "register_coco",
    "register_synthetic_datasets",
]
from d2_boxunc.data import tiny  # noqa: E402,F401  (registers boxunc_synth_val_tiny)
from d2_boxunc.data.ssd_augmentation import (  # noqa: E402, F401
    BoxAugDatasetMapper,
    Expand,
    MinIoURandomCrop,
    PhotometricDistort,
    ssd_augmentations,
)
