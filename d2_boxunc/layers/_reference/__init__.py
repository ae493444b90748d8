"""Pure-PyTorch reference implementations of the compiled ops (oracles for tests, slow fallbacks)."""

from .prroi_pool import prroi_pool  # noqa: F401
