// CUDA kernels of PrRoIPool: one thread per output element (RoI, channel, bin). The per-thread
// work and the host code around the launches are in prroi_pool_grid.h, which the CPU test ops
// (`_prroi_pool_*_gridcpu`) run too; this file only maps threads to indices.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "prroi_pool/prroi_pool_grid.h"

namespace d2_boxunc {
namespace prroi {
namespace {

constexpr int kThreads = 256;

inline int64_t num_blocks(int64_t n) {
  return std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20);
}

template <typename T>
__global__ void forward_kernel(int64_t total, PrroiArgs<T> a) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < total;
       index += int64_t(blockDim.x) * gridDim.x) {
    forward_element(index, a);
  }
}

template <typename T>
__global__ void backward_kernel(int64_t total, PrroiArgs<T> a) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < total;
       index += int64_t(blockDim.x) * gridDim.x) {
    backward_element(index, a);
  }
}

at::Tensor prroi_pool_forward_cuda(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, bool aligned) {
  at::cuda::CUDAGuard guard(input.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor out = forward_grid(
      input, rois, spatial_scale, pooled_height, pooled_width, aligned,
      [&]<typename T>(int64_t total, const PrroiArgs<T>& a) {
        forward_kernel<T><<<num_blocks(total), kThreads, 0, stream>>>(total, a);
        AT_CUDA_CHECK(cudaGetLastError());
      });
  return out;
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_backward_cuda(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
    const at::Tensor& output, double spatial_scale, int64_t pooled_height, int64_t pooled_width,
    bool aligned, bool input_grad, bool rois_grad) {
  at::cuda::CUDAGuard guard(input.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  return backward_grid(
      grad, input, rois, output, spatial_scale, pooled_height, pooled_width, aligned, input_grad,
      rois_grad, [&]<typename T>(int64_t total, const PrroiArgs<T>& a) {
        backward_kernel<T><<<num_blocks(total), kThreads, 0, stream>>>(total, a);
        AT_CUDA_CHECK(cudaGetLastError());
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("prroi_pool", &prroi_pool_forward_cuda);
  m.impl("_prroi_pool_backward", &prroi_pool_backward_cuda);
}

}  // namespace prroi
}  // namespace d2_boxunc
