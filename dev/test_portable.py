"""Builds the portable variant of the compiled ops and runs the op tests against it
(``make test-portable``; docs/design.md#portable-build).

The portable build (``D2_BOXUNC_PORTABLE=1``) replaces every platform-specific speed-up of
``csrc/`` by its standard C++ fallback. To test it without touching the checkout's own
``d2_boxunc/_C*.so``, the files git knows (tracked and untracked, not ignored) are copied with
their timestamps into ``build/portable/src``; the extension is built there in place, its objects
kept in ``build/portable/temp`` so that a second run recompiles only what changed; the tests then
run inside the copy, which is first on ``sys.path`` (pytest's rootdir and ``PYTHONPATH``), so
they import the copy's package and its portable ``_C``. ``D2_BOXUNC_EXPECT_BUILD=portable`` makes
``tests/test_extension.py`` assert that the loaded library is the portable one.

    python dev/test_portable.py [pytest args]
"""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "portable")
SRC = os.path.join(WORK, "src")
#: The tests that exercise csrc/.
TESTS = ["tests/layers", "tests/losses", "tests/test_kernel_bodies.py", "tests/test_extension.py"]


def copy_checkout() -> None:
    """A fresh copy of the checkout's files in SRC, modification times kept (ninja's staleness
    test), symlinks kept as links."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    shutil.rmtree(SRC, ignore_errors=True)
    for rel in sorted(set(filter(None, listed.split("\0")))):
        src, dst = os.path.join(ROOT, rel), os.path.join(SRC, rel)
        if not os.path.lexists(src):  # deleted but not yet staged
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def main() -> int:
    copy_checkout()
    env = dict(os.environ, D2_BOXUNC_PORTABLE="1", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    print("test-portable: building the portable extension in build/portable", flush=True)
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "--build-temp", "../temp"],
        cwd=SRC,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    env = dict(os.environ, PYTHONPATH=SRC, D2_BOXUNC_EXPECT_BUILD="portable")
    env.pop("D2_BOXUNC_PORTABLE", None)
    show = (
        "import d2_boxunc, d2_boxunc._C as C; from d2_boxunc import _extension as e; "
        "print('test-portable:', C.__file__, e.build_features())"
    )
    subprocess.run([sys.executable, "-c", show], cwd=SRC, env=env, check=True)
    cmd = [sys.executable, "-m", "pytest", "-q", *TESTS, *sys.argv[1:]]
    return subprocess.run(cmd, cwd=SRC, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
