// Kernel bodies that run on both devices (docs/gpu.md). Each CUDA kernel of csrc/ is written as
// HOST_DEVICE functions of (global index or block/thread ids, a parameter struct); its __global__
// wrapper in the .cu file only maps threads to indices. The `_*_gridcpu` test ops run the same
// bodies on the CPU through the launchers below, so every kernel body is executed by the CPU test
// suite, including its atomics (grid_atomic_add is a plain add on the host, where the launcher
// runs one index at a time).
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace d2_boxunc {

// *p += v: atomicAdd in device code, a plain add in host code (the CPU launchers are serial).
template <typename T>
HOST_DEVICE inline void grid_atomic_add(T* p, T v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, v);
#else
  *p += v;
#endif
}

// The CPU "grid launcher" of an elementwise kernel: body(index) for every index, in order.
template <typename F>
inline void cpu_grid_launch(int64_t total, F&& body) {
  for (int64_t index = 0; index < total; ++index) body(index);
}

}  // namespace d2_boxunc
