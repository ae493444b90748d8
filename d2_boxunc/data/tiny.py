"""``boxunc_synth_val_tiny``: 8 synthetic validation-style images, for evaluations that must take
seconds (sweep tests, smoke runs).  Select it with ``dataloader.test.dataset.names=`` (the
shipped configs' evaluators follow it; or ``python -m d2_boxunc.sweep --test-dataset``)."""

from d2_boxunc.data.register import register_synthetic_datasets
from d2_boxunc.data.synthetic import SPLITS, SyntheticConfig

TINY_VAL = "boxunc_synth_val_tiny"

SPLITS.setdefault(TINY_VAL, SyntheticConfig(num_images=8, seed=2))
register_synthetic_datasets()
