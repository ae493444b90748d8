// CUDA variance voting: one thread per kept box, candidates read from global memory (they are
// shared by all threads and stay in L1/L2 at detection sizes). The body and the host code are in
// var_voting_grid.h, which the CPU test op `_var_voting_gridcpu` runs too.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "var_voting/var_voting_grid.h"

namespace d2_boxunc {
namespace voting {
namespace {

template <typename T>
__global__ void var_voting_kernel(VoteArgs<T> a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < a.m) vote_element(i, a);
}

at::Tensor var_voting_cuda_kernel(
    const at::Tensor& kept_boxes, const at::Tensor& candidate_boxes,
    const at::Tensor& candidate_vars, double sigma_t, double iou_threshold) {
  TORCH_CHECK(kept_boxes.is_cuda(), "kept_boxes must be a CUDA tensor");
  c10::cuda::CUDAGuard guard(kept_boxes.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  return var_voting_grid(
      kept_boxes, candidate_boxes, candidate_vars, sigma_t, iou_threshold,
      [&]<typename T>(const VoteArgs<T>& a) {
        constexpr int threads = 128;
        const int64_t blocks = (a.m + threads - 1) / threads;
        var_voting_kernel<T><<<blocks, threads, 0, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("var_voting", &var_voting_cuda_kernel);
}

}  // namespace voting
}  // namespace d2_boxunc
