"""Line coverage of the CUDA kernel bodies when the CPU test suite runs them (docs/gpu.md).

Links a copy of d2_boxunc._C in a scratch directory in which the ``*_gridcpu.cpp`` translation
units (the CPU grid launchers of the CUDA kernel bodies) are compiled, as one unit, with gcov
instrumentation (``-O0 --coverage -DD2B_KERNEL_COVERAGE``: ``HOST_DEVICE`` functions then get
internal linkage, so the unit counts its own calls, not those of the CPU kernels that share some
helpers). The other objects come from the regular build in ``build/`` (the script first runs
``setup.py build_ext --inplace``, a no-op when it is up to date). Then runs
``tests/test_kernel_bodies.py`` against that library and reads gcov's JSON for the instrumented
unit. A "kernel-body line" is a line of a function declared ``HOST_DEVICE`` in csrc/ (the
per-thread bodies and every device helper they call): the code the GPU executes. Prints, per
function, executed/total lines and the line numbers never executed.

    python dev/kernel_coverage.py [--keep DIR]
"""

import argparse
import glob
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HD_FUNC = re.compile(r"HOST_DEVICE\s+inline\s+[^(]*?\b(\w+)\s*\(")


def host_device_functions() -> dict[str, set[str]]:
    """{header path relative to csrc: names of its HOST_DEVICE functions}."""
    found = defaultdict(set)
    for dirpath, _, files in os.walk(os.path.join(ROOT, "csrc")):
        for f in files:
            if f.endswith(".h"):
                path = os.path.join(dirpath, f)
                text = open(path).read()
                for m in HD_FUNC.finditer(text.replace("\n", " ")):
                    found[os.path.relpath(path, os.path.join(ROOT, "csrc"))].add(m.group(1))
    return found


def function_name(demangled: str) -> str:
    """The unqualified name of a demangled C++ function ('ns::f<float>(int, ...)' -> 'f')."""
    head = demangled.replace("(anonymous namespace)", "anon").split("(")[0]
    depth, out = 0, []
    for ch in head:  # drop template arguments
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    words = "".join(out).split("::")[-1].split()
    return words[-1] if words else ""


def _flags() -> tuple[list[str], list[str]]:
    """Compiler and linker flags of the extension (as torch.utils.cpp_extension uses them)."""
    import ctypes.util
    import sysconfig

    import torch
    from torch.utils.cpp_extension import include_paths, library_paths

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cflags = ["-std=c++20", "-fPIC", "-fopenmp", "-fno-trapping-math", "-g"]
    cflags += [f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-DTORCH_API_INCLUDE_EXTENSION_H"]
    cflags += ["-DTORCH_EXTENSION_NAME=_C", "-I" + os.path.join(ROOT, "csrc")]
    cflags += ["-I" + p for p in include_paths()] + ["-I" + sysconfig.get_paths()["include"]]
    ldflags = ["-shared", "-fopenmp", "--coverage"] + ["-L" + p for p in library_paths()]
    ldflags += ["-lc10", "-ltorch", "-ltorch_cpu", "-ltorch_python"]
    if ctypes.util.find_library("mvec"):
        cflags.append("-DD2B_HAVE_LIBMVEC")
        ldflags.append("-lmvec")
    return cflags, ldflags


def build(work: str) -> str:
    """Links the coverage build of _C into work/d2_boxunc; returns the directory of the
    instrumented object. The regular build (``setup.py build_ext --inplace``, a no-op when up to
    date) provides every other object; the ``*_gridcpu.cpp`` units are compiled together as one
    instrumented unit (one pass over the ATen headers instead of four)."""
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, MAX_JOBS=os.environ.get("MAX_JOBS", "1")),
    )
    cflags, ldflags = _flags()
    objdir = os.path.join(work, "obj")
    os.makedirs(objdir, exist_ok=True)
    objects, grid_sources = [], []
    temps = glob.glob(os.path.join(ROOT, "build", "temp.*"))  # not build/portable (test-portable)
    for dp, _, fs in (entry for temp in temps for entry in os.walk(temp)):
        for f in sorted(fs):
            if f.endswith(".o") and "csrc" in dp and not f.endswith("_gridcpu.o"):
                objects.append(os.path.join(dp, f))
    for dp, _, fs in os.walk(os.path.join(ROOT, "csrc")):
        grid_sources += [os.path.join(dp, f) for f in sorted(fs) if f.endswith("_gridcpu.cpp")]
    n_cpp = sum(f.endswith(".cpp") for _, _, fs in os.walk(os.path.join(ROOT, "csrc")) for f in fs)
    if len(objects) != n_cpp - len(grid_sources):
        raise SystemExit(f"kernel-coverage: expected {n_cpp - len(grid_sources)} objects in build/")
    unity = os.path.join(objdir, "gridcpu_all.cpp")
    with open(unity, "w") as f:
        f.writelines(f'#include "{src}"\n' for src in grid_sources)
    print(
        f"kernel-coverage: compiling {len(grid_sources)} gridcpu units with --coverage", flush=True
    )
    cmd = ["g++", *cflags, "-O0", "--coverage", "-DD2B_KERNEL_COVERAGE", "-Wno-unused-function"]
    obj = os.path.join(objdir, "gridcpu_all.o")
    subprocess.run([*cmd, "-c", unity, "-o", obj], check=True, cwd=objdir)
    import sysconfig

    target = os.path.join(work, "d2_boxunc", "_C" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["g++", *objects, obj, *ldflags, "-o", target], check=True)
    return objdir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="build in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="d2b-cov-")
    os.makedirs(work, exist_ok=True)
    for item in ("d2_boxunc", "tests", "pyproject.toml", "configs"):
        src, dst = os.path.join(ROOT, item), os.path.join(work, item)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(
                src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("_C*.so", "__pycache__")
            )
        elif os.path.islink(src):
            if not os.path.lexists(dst):
                os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    lib = build(work)
    for f in os.listdir(lib):  # fresh counters
        if f.endswith(".gcda"):
            os.remove(os.path.join(lib, f))
    test_env = dict(os.environ, PYTHONPATH=work, OMP_NUM_THREADS="1")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_kernel_bodies.py",
        ],
        cwd=work,
        env=test_env,
        check=True,
    )
    gcov_out = os.path.join(work, "gcov")
    os.makedirs(gcov_out, exist_ok=True)
    for f in os.listdir(lib):
        if f.endswith(".gcda"):
            subprocess.run(
                ["gcov", "--json-format", "--demangled-names", os.path.join(lib, f[:-5] + ".o")],
                cwd=gcov_out,
                check=True,
                stdout=subprocess.DEVNULL,
            )
    report(gcov_out)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _demangle(names: set[str]) -> dict[str, str]:
    """gcov's JSON gives mangled names; c++filt demangles them (one call for all)."""
    names = sorted(n for n in names if n)
    out = subprocess.run(
        ["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return dict(zip(names, out))


def report(gcov_out: str) -> None:
    """Prints the executed/total lines of every HOST_DEVICE function in gcov's JSON output."""
    hd = host_device_functions()
    csrc = os.path.join(ROOT, "csrc") + os.sep
    lines = defaultdict(lambda: defaultdict(int))  # (header, function) -> line -> count
    data = [
        json.load(gzip.open(os.path.join(gcov_out, f)))
        for f in os.listdir(gcov_out)
        if f.endswith(".gcov.json.gz")
    ]
    plain = _demangle(
        {ln.get("function_name", "") for d in data for e in d["files"] for ln in e["lines"]}
    )
    for d in data:
        for entry in d["files"]:
            path = entry["file"]
            if not path.startswith(csrc):
                continue
            rel = path[len(csrc) :]
            names = hd.get(rel, set())
            for ln in entry["lines"]:
                fn = function_name(plain.get(ln.get("function_name", ""), ""))
                if fn in names:
                    lines[(rel, fn)][ln["line_number"]] += ln["count"]
    total = executed = 0
    print(f"{'kernel-body function':60s} {'lines':>9s}  never executed")
    for (rel, fn), per_line in sorted(lines.items()):
        n, hit = len(per_line), sum(c > 0 for c in per_line.values())
        total, executed = total + n, executed + hit
        missed = sorted(k for k, c in per_line.items() if c == 0)
        print(f"{rel + ' ' + fn:60s} {hit:>4d}/{n:<4d}  {missed if missed else ''}")
    uncalled = sorted(
        f"{rel} {fn}" for rel, fns in hd.items() for fn in fns if (rel, fn) not in lines
    )
    print(
        f"\nkernel-body lines executed: {executed}/{total} ({100.0 * executed / max(total, 1):.1f}%)"
    )
    if uncalled:
        print(
            "HOST_DEVICE functions with no instantiation in the grid-CPU ops (not kernel bodies "
            "there, or unused): " + ", ".join(uncalled)
        )


if __name__ == "__main__":
    sys.exit(main())
