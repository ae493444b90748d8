// Entry point of d2_boxunc._C.  The ops register themselves through TORCH_LIBRARY_FRAGMENT /
// TORCH_LIBRARY_IMPL in their own files; this file only provides the Python module stub (so
// `from d2_boxunc import _C` loads the library) and the `_cuda_version` and `_build_features` ops.
#include <Python.h>
#include <torch/library.h>

#include <string>

#include "common/platform.h"

#ifdef WITH_CUDA
#include <cuda_runtime_api.h>
#endif

extern "C" {
// An empty module: importing it runs the static op registrations of this shared library.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

namespace d2_boxunc {

// CUDA version the library was compiled with (e.g. 13000), or -1 for a CPU-only build.
int64_t cuda_version() {
#ifdef WITH_CUDA
  return CUDART_VERSION;
#else
  return -1;
#endif
}

// The platform-specific parts this library was built with, comma-separated (common/platform.h;
// docs/design.md#portable-build): "portable" alone for a D2_BOXUNC_PORTABLE=1 build, else the
// speed-ups selected on this platform and the compiler flags setup.py added.
std::string build_features() {
  std::string out;
  const auto add = [&](bool on, const char* name) {
    if (on) out += out.empty() ? name : std::string(",") + name;
  };
#if defined(D2B_PORTABLE)
  add(true, "portable");
#endif
  add(D2B_USE_VECTOR_EXT, "vector_ext");
  add(D2B_USE_SSE, "sse");
  add(D2B_USE_LIBMVEC, "libmvec");
  add(D2B_USE_MADVISE, "huge_pages");
  add(D2B_USE_GNU_HINTS, "gnu_hints");
#if defined(_OPENMP)
  add(true, "openmp");
#endif
#if defined(D2B_NO_TRAPPING_MATH)
  add(true, "no_trapping_math");
#endif
  return out;
}

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def("_cuda_version", &cuda_version);
  m.def("_build_features", &build_features);
}

}  // namespace d2_boxunc
