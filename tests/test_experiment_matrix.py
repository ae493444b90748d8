"""docs/design.md#experiment-matrix indexes every config under configs/ (a config without a row
there is a gap in the documented experiments)."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _matrix() -> str:
    with open(os.path.join(ROOT, "docs", "design.md"), encoding="utf-8") as f:
        text = f.read()
    return text[text.index("## Experiment matrix") : text.index("## Sources")]


def _named(path: str, matrix: str) -> bool:
    """Whether ``path`` (relative to configs/) is named in the matrix: in full, or, for an official
    twin ``X_official.py``, on the line of row ``X.py`` as ``…<end of X>_official.py`` (the
    abbreviated twin column)."""
    name = os.path.basename(path)
    if f"`{name}`" in matrix or f"`configs/{path}`" in matrix:
        return True
    if not name.endswith("_official.py"):
        return False
    stem = name[: -len("_official.py")]
    for line in matrix.splitlines():
        if f"`{stem}.py`" in line:
            ends = re.findall(r"`…(\w*)_official\.py`", line)
            if any(stem.endswith(end) for end in ends):
                return True
    return False


def test_every_config_has_a_row():
    matrix = _matrix()
    configs = os.path.join(ROOT, "configs")
    paths = sorted(
        os.path.relpath(p, configs)
        for pattern in ("**/*.py", "sweeps/*.yaml")
        for p in glob.glob(os.path.join(configs, pattern), recursive=True)
        if not p.endswith("__init__.py")
    )
    assert len(paths) > 100
    missing = [p for p in paths if not _named(p, matrix)]
    assert not missing, f"configs without a row in docs/design.md#experiment-matrix: {missing}"


def test_a_config_left_out_is_reported():
    matrix = _matrix()
    assert _named("KLLoss/kl_faster_rcnn_R_50_FPN_2x_official.py", matrix)
    assert not _named("KLLoss/kl_faster_rcnn_R_50_FPN_3x.py", matrix)
    assert not _named("KLLoss/kl_faster_rcnn_R_50_FPN_3x_official.py", matrix)
    # K0x's line names no twin: an abbreviation elsewhere does not count for it
    assert not _named("KLLoss/kl_faster_rcnn_R_50_FPN_2x_xyxy_official.py", matrix)
