"""d2_boxunc's model zoo: the paper configs, shipped inside the package.

The configs live in ``d2_boxunc/model_zoo/configs/`` (``configs/`` at the root of a checkout is a
link to that folder), so an installed wheel has them too.  Find them by name, in the manner of
``detectron2.model_zoo``::

    from d2_boxunc import model_zoo

    cfg = model_zoo.get_config("KLLoss/kl_faster_rcnn_R_50_FPN_2x.py")  # a LazyConfig
    path = model_zoo.get_config_file("sweeps/kl_sigma_t.yaml")  # any file of the zoo

A name is a path relative to the zoo's ``configs/`` folder; a leading ``configs/`` (the name of
the same file in a checkout, as the study plan and the sweep files write it) is accepted too.
No trained weights are published: there is no ``trained=`` argument.
"""

from __future__ import annotations

import os

__all__ = ["CONFIG_DIR", "get_config", "get_config_file", "list_configs"]

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def _relative_name(config_path: str) -> str:
    name = os.path.normpath(str(config_path)).replace(os.sep, "/")
    return name[len("configs/") :] if name.startswith("configs/") else name


def get_config_file(config_path: str) -> str:
    """The path of a file of the zoo.

    Args:
        config_path: its name relative to the zoo's ``configs/`` folder, e.g.
            ``"KLLoss/kl_faster_rcnn_R_50_FPN_2x.py"`` or ``"sweeps/kl_sigma_t.yaml"``.

    Raises:
        RuntimeError: no such file in the zoo.
    """
    name = _relative_name(config_path)
    path = os.path.join(CONFIG_DIR, name)
    if os.path.isabs(name) or name.startswith("../") or not os.path.isfile(path):
        raise RuntimeError(f"{config_path} not available in d2_boxunc's model zoo ({CONFIG_DIR})")
    return path


def get_config(config_path: str):
    """The zoo's LazyConfig ``config_path`` (e.g. ``"KLLoss/kl_faster_rcnn_R_50_FPN_2x.py"``),
    loaded with :meth:`detectron2.config.LazyConfig.load`.

    Raises:
        RuntimeError: no such file in the zoo.
        ValueError: the file is not a ``.py`` LazyConfig (the zoo's ``.yaml`` files are sweep
            definitions: :func:`get_config_file` finds them).
    """
    from detectron2.config import LazyConfig

    path = get_config_file(config_path)
    if not path.endswith(".py"):
        raise ValueError(f"{config_path} is not a LazyConfig (.py) file; use get_config_file")
    return LazyConfig.load(path)


def list_configs() -> list[str]:
    """Names of the zoo's runnable LazyConfigs (``common/`` holds shared pieces, not configs)."""
    names = []
    for folder, _, files in os.walk(CONFIG_DIR):
        rel = os.path.relpath(folder, CONFIG_DIR).replace(os.sep, "/")
        if rel == "common" or rel.startswith("common/"):
            continue
        for f in files:
            if f.endswith(".py") and f != "__init__.py":
                names.append(f if rel == "." else f"{rel}/{f}")
    return sorted(names)
