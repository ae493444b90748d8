// Entry point of d2_boxunc._C.  The ops register themselves through TORCH_LIBRARY_FRAGMENT /
// TORCH_LIBRARY_IMPL in their own files; this file only provides the Python module stub (so
// `from d2_boxunc import _C` loads the library) and the `_cuda_version` op.
#include <Python.h>
#include <torch/library.h>

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

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def("_cuda_version", &cuda_version);
}

}  // namespace d2_boxunc
