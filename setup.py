"""Build and install d2_boxunc.

The compiled ops live in ``csrc/`` and are built into ``d2_boxunc._C`` with
``torch.utils.cpp_extension`` (ninja).  Every ``*.cpp`` file is always compiled; ``*.cu`` files
are compiled when a CUDA toolkit is present and either a GPU is visible or ``FORCE_CUDA=1``.

Environment variables:
    FORCE_CUDA=1             build the CUDA kernels even when no GPU is visible
    TORCH_CUDA_ARCH_LIST     CUDA architectures (default "8.0;9.0" when no GPU is visible)
    MAX_JOBS=N               cap ninja's parallel compile jobs
    DEBUG=1                  build with -O0 -g
    NVCC_FLAGS="..."         extra nvcc flags
    D2_BOXUNC_NO_EXT=1       build no compiled ops: a pure-Python package whose ops raise an
                             actionable error (packaging checks, docs builds)
    D2_BOXUNC_PORTABLE=1     portable build: every platform-specific speed-up replaced by its
                             standard C++ fallback (csrc/common/platform.h), no OpenMP, libmvec or
                             other platform flags; slower CPU ops, same results within float
                             rounding (`make test-portable` builds and tests one)

The paper configs are package data of ``d2_boxunc.model_zoo`` (``d2_boxunc/model_zoo/configs/``;
``configs/`` at the repository root links there), so a non-editable install ships them.
"""

import ctypes.util
import glob
import os
import platform

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
STUB = "d2_boxunc.cpp"  # the empty PyInit__C module; it alone is not an extension worth building


def _version() -> str:
    with open(os.path.join(ROOT, "d2_boxunc", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip('"')
    raise RuntimeError("__version__ not found in d2_boxunc/__init__.py")


def _sources(pattern: str) -> list[str]:
    found = glob.glob(os.path.join(ROOT, "csrc", "**", pattern), recursive=True)
    return sorted(os.path.relpath(p, ROOT) for p in found)


def get_extensions() -> list:
    if os.getenv("D2_BOXUNC_NO_EXT", "0") == "1":
        print("d2_boxunc: D2_BOXUNC_NO_EXT=1, building no extension")
        return []
    cpp = _sources("*.cpp")
    cu = _sources("*.cu")
    if not [s for s in cpp if os.path.basename(s) != STUB]:
        print("d2_boxunc: no compiled ops in csrc/, building no extension")
        return []

    debug = os.getenv("DEBUG", "0") == "1"
    force_cuda = os.getenv("FORCE_CUDA", "0") == "1"
    with_cuda = bool(cu) and CUDA_HOME is not None and (torch.cuda.is_available() or force_cuda)
    if with_cuda and not torch.cuda.is_available() and not os.getenv("TORCH_CUDA_ARCH_LIST"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"

    opt = ["-O0", "-g"] if debug else ["-O3"]
    portable = os.getenv("D2_BOXUNC_PORTABLE", "0") == "1"
    extra = {"cxx": opt + ["-std=c++20"]}
    define_macros, libraries, link_args = [], [], []
    if portable:
        define_macros.append(("D2B_PORTABLE", None))
    else:
        # -fopenmp: at::parallel_for is an inline header that runs serially unless the extension
        # itself is compiled with OpenMP (it then shares torch's libgomp). -fno-trapping-math lets
        # GCC turn selects around a divide into vector code (nothing here reads FP exception
        # flags); it changes no computed value. D2B_NO_TRAPPING_MATH only reports it
        # (_build_features).
        extra["cxx"] += ["-fopenmp", "-fno-trapping-math"]
        define_macros.append(("D2B_NO_TRAPPING_MATH", None))
        link_args.append("-fopenmp")
        # glibc's vector math library (4 expf per call) for the KL-NMS vote weights
        if platform.machine() == "x86_64" and ctypes.util.find_library("mvec"):
            define_macros.append(("D2B_HAVE_LIBMVEC", None))
            libraries.append("mvec")
    sources = cpp
    ext_class = CppExtension
    if with_cuda:
        ext_class = CUDAExtension
        sources = cpp + cu
        define_macros.append(("WITH_CUDA", None))
        nvcc = ["-O0", "-g", "-lineinfo"] if debug else ["-O3"]
        nvcc += ["--expt-relaxed-constexpr", "-std=c++20"]
        nvcc += os.getenv("NVCC_FLAGS", "").split()
        extra["nvcc"] = nvcc

    print(
        "d2_boxunc build: "
        f"torch {torch.__version__}, cuda={'yes' if with_cuda else 'no'}"
        f" (CUDA_HOME={CUDA_HOME}, FORCE_CUDA={int(force_cuda)},"
        f" arch={os.getenv('TORCH_CUDA_ARCH_LIST', '-')}), debug={int(debug)},"
        f" portable={int(portable)},"
        f" {len(sources)} sources"
    )
    return [
        ext_class(
            "d2_boxunc._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=define_macros,
            extra_compile_args=extra,
            libraries=libraries,
            extra_link_args=link_args,
        )
    ]


setup(
    name="d2_boxunc",
    version=_version(),
    description="Quality-aware box localization for detectron2: KL-Loss, IoU-Net, GIoU, aLRP",
    packages=find_packages(exclude=("tests", "tests.*", "configs", "configs.*", "benchmarks")),
    # LazyConfig files are data, not modules: they are loaded by path (relative imports between
    # them resolve by path), so their folders have no __init__.py and are shipped as package data.
    package_data={"d2_boxunc.model_zoo": ["configs/**/*.py", "configs/**/*.yaml"]},
    python_requires=">=3.10",
    ext_modules=get_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
