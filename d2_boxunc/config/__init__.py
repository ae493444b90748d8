"""Config helpers: the synthetic CPU switch, yacs keys and LazyConfig utilities."""

from d2_boxunc.config.defaults import add_boxunc_config
from d2_boxunc.config.synthetic import to_synthetic

__all__ = ["add_boxunc_config", "to_synthetic"]
