"""Config helpers: the synthetic CPU switch and LazyConfig utilities."""

from d2_boxunc.config.synthetic import to_synthetic

__all__ = ["to_synthetic"]
