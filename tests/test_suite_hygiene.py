"""The suite's own disk use: a passed test's folders are removed as it ends, a failed one's stay
(tests/conftest.py, pyproject.toml). Kept, the checkpoints of the training tests fill a CI disk."""

import os

import pytest

pytest_plugins = ["pytester"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TESTS = """
import pytest

@pytest.fixture(scope="module")
def shared(module_mktemp):
    path = module_mktemp("shared")
    (path / "shared.bin").write_bytes(bytes(1000))
    return path

def test_one(shared, tmp_path):
    (tmp_path / "own.bin").write_bytes(bytes(1000))
    assert {FAIL}

def test_two(shared):
    assert shared.is_dir()
"""


@pytest.mark.parametrize("fail", [False, True])
def test_folders_are_removed_unless_a_test_failed(pytester, fail):
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        pytester.makepyprojecttoml(f.read())  # the project's own retention settings
    with open(os.path.join(ROOT, "tests", "conftest.py")) as f:
        pytester.makeconftest(f.read())
    pytester.makepyfile(test_inner=TESTS.replace("{FAIL}", str(not fail)))
    base = pytester.path / "base"
    result = pytester.runpytest("test_inner.py", f"--basetemp={base}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2 - fail, failed=int(fail))
    left = sorted(p.name for p in base.rglob("*.bin"))
    assert left == (["own.bin", "shared.bin"] if fail else [])
