// HOST_DEVICE marks a function that is compiled for both the host and the GPU: the per-thread
// bodies of the CUDA kernels and every helper they call (docs/gpu.md).
//
// In the gcov build of dev/kernel_coverage.py (D2B_KERNEL_COVERAGE) these functions get internal
// linkage, so every translation unit keeps its own copy and its own line counters: the coverage of
// the CUDA kernel bodies is then read from the `*_gridcpu` units alone, not mixed with the calls
// of the CPU kernels, which share some helpers.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define HOST_DEVICE __host__ __device__
#elif defined(D2B_KERNEL_COVERAGE)
#define HOST_DEVICE static
#else
#define HOST_DEVICE
#endif
