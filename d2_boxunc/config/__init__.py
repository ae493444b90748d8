"""Config helpers: the synthetic CPU switch and LazyConfig utilities.

d2_boxunc is configured with LazyConfigs only (``configs/``); its components take keyword
arguments and have no yacs (``get_cfg()``) keys.
"""

from d2_boxunc.config.synthetic import to_synthetic

__all__ = ["to_synthetic"]
