"""Shared pytest set-up: CUDA marks, RNG isolation and clean-up of module-wide folders."""

import random
import shutil

import numpy as np
import pytest
import torch

import d2_boxunc.data  # noqa: F401  (loads the compiled ops, registers datasets)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "needs_cuda" in item.keywords:
            item.add_marker(skip)


def cpu_and_cuda():
    """Parametrize helper: ("cpu", "cuda"), the latter marked needs_cuda."""
    return ("cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda))


@pytest.fixture(autouse=True)
def _isolate_rng():
    """Seed every test and restore the global RNG state afterwards (tests must not leak RNG)."""
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    random.setstate(py_state)


@pytest.fixture(scope="module")
def module_mktemp(tmp_path_factory, request):
    """``tmp_path_factory.mktemp`` for a module's shared fixtures, whose folders are removed
    when the module's tests end, unless one of them failed (the same policy as ``tmp_path``'s,
    pyproject.toml): trained checkpoints add up to gigabytes over the suite."""
    made = []
    failed_before = request.session.testsfailed

    def mktemp(name):
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
