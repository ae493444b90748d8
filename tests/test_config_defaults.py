"""One source for defaults: the classes' signatures.

The shared config pieces (``configs/common/models/``) write their arguments out so that a config
shows what it runs; every value they give for an argument with a default in the class's own
signature must be that default (a different row setting belongs in the row's config).
"""

import inspect
import os

import pytest
from detectron2.config import LazyConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from d2_boxunc.modeling.roi_heads import IoUNetROIHeads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIECES = ["configs/common/models/kl_box_predictor.py", "configs/common/models/iounet_heads.py"]


def _own_defaults(target) -> dict:
    """Arguments with a default in ``target``'s own signature (not those it passes to a parent
    through ``**kwargs``)."""
    init = target.__init__ if inspect.isclass(target) else target
    return {
        name: p.default
        for name, p in inspect.signature(init).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _plain(value):
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _stated_vs_default(node: DictConfig, where: str, target=None, found=None):
    """(where, stated, default) for every argument of every LazyCall below ``node``."""
    found = [] if found is None else found
    target = node.get("_target_", None) if target is None else target
    defaults = _own_defaults(target) if target is not None else {}
    for key in node:
        if key == "_target_":
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and "_target_" in child:
            _stated_vs_default(child, f"{where}.{key}", found=found)
        elif key in defaults and not OmegaConf.is_interpolation(node, key):
            found.append((f"{where}.{key}", _plain(node[key]), _plain(defaults[key])))
    return found


@pytest.mark.parametrize("piece", PIECES)
def test_shared_pieces_restate_the_class_defaults(piece):
    cfg = LazyConfig.load(os.path.join(ROOT, piece))
    found = []
    for name in cfg:
        node = cfg[name]
        if isinstance(node, DictConfig) and "_target_" in node:
            _stated_vs_default(node, name, found=found)
        elif name == "test_settings":  # IoUNetROIHeads' test-time keyword arguments
            _stated_vs_default(node, name, target=IoUNetROIHeads, found=found)
    assert len(found) >= 10, found  # the pieces do state their settings
    drifted = [f"{w}: config {s!r} != default {d!r}" for w, s, d in found if s != d]
    assert not drifted, drifted
