"""Compiled ops and their Python wrappers."""

from d2_boxunc.layers.prroi_pool import PrRoIPool, prroi_pool  # noqa: F401
