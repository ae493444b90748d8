// CUDA kernels of the bucketed aLRP / AP Loss. The grid table is built on the host from the (few)
// edges with the same band_cell() the device applies to the values. Statistics: one thread per
// value, accumulated in a per-block shared-memory histogram when the buckets fit (else straight
// into global memory), then added to the global one with atomics (float64 sums: the order of
// additions may vary between runs). Gradients: one thread per value. The bodies and the host code
// are in alrp_grid.h, which the CPU test ops `_alrp_band_*_gridcpu` run too.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "alrp/alrp_grid.h"

namespace d2_boxunc {
namespace alrp {
namespace {

template <typename T, typename L, bool kShared>
__global__ void band_stats_kernel(BandArgs<T, L> a) {
  extern __shared__ double smem[];
  if (kShared) {
    stats_zero(threadIdx.x, blockDim.x, a, smem);
    __syncthreads();
    stats_values(blockIdx.x, threadIdx.x, blockDim.x, gridDim.x, a, smem, smem + a.n + 2);
    __syncthreads();
    stats_flush(threadIdx.x, blockDim.x, a, smem);
  } else {
    stats_values(blockIdx.x, threadIdx.x, blockDim.x, gridDim.x, a, a.count, a.sum);
  }
}

template <typename T, typename L>
__global__ void band_grad_kernel(BandArgs<T, L> a) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < a.m;
       j += stride) {
    grad_element(j, a);
  }
}

std::tuple<at::Tensor, at::Tensor> alrp_band_stats_cuda(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges) {
  c10::cuda::CUDAGuard guard(values.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  return band_stats_grid(
      values, labels, edges, kSharedBuckets,
      [&]<typename T, typename L>(const BandArgs<T, L>& a, bool shared, int64_t blocks) {
        const size_t smem = shared ? 2 * (a.n + 2) * sizeof(double) : 0;
        auto kernel = shared ? band_stats_kernel<T, L, true> : band_stats_kernel<T, L, false>;
        kernel<<<blocks, kThreads, smem, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

at::Tensor alrp_band_grad_cuda(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges,
    const at::Tensor& offset, const at::Tensor& slope) {
  c10::cuda::CUDAGuard guard(values.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  return band_grad_grid(
      values, labels, edges, offset, slope,
      [&]<typename T, typename L>(const BandArgs<T, L>& a, int64_t blocks) {
        band_grad_kernel<T, L><<<blocks, kThreads, 0, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("alrp_band_stats", &alrp_band_stats_cuda);
  m.impl("alrp_band_grad", &alrp_band_grad_cuda);
}

}  // namespace alrp
}  // namespace d2_boxunc
