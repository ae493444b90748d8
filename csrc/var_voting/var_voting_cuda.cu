// CUDA variance voting: one thread per kept box, candidates read from global memory (they are
// shared by all threads and stay in L1/L2 at detection sizes).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/nms_common.h"
#include "var_voting/var_voting_kernel.h"

namespace d2_boxunc {

namespace {

template <typename T>
__global__ void var_voting_kernel(
    int64_t m,
    const T* __restrict__ kept,
    const T* __restrict__ cand,
    const T* __restrict__ log_var,
    int64_t n,
    T sigma_t,
    T iou_threshold,
    T* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= m) return;
  vote_one_box<T>(kept + 4 * i, cand, log_var, n, sigma_t, iou_threshold, out + 4 * i);
}

at::Tensor var_voting_cuda_kernel(
    const at::Tensor& kept_boxes,
    const at::Tensor& candidate_boxes,
    const at::Tensor& candidate_vars,
    double sigma_t,
    double iou_threshold) {
  TORCH_CHECK(kept_boxes.is_cuda(), "kept_boxes must be a CUDA tensor");
  check_boxes_arg(kept_boxes, "kept_boxes");
  check_boxes_arg(candidate_boxes, "candidate_boxes");
  const int64_t n = candidate_boxes.size(0);
  check_per_box_arg(candidate_boxes, "candidate_boxes", kept_boxes, n, 4);
  check_per_box_arg(candidate_vars, "candidate_vars", kept_boxes, n, 4);
  TORCH_CHECK(sigma_t > 0, "sigma_t must be > 0, got ", sigma_t);

  c10::cuda::CUDAGuard guard(kept_boxes.device());
  const at::Tensor kept = kept_boxes.contiguous();
  const at::Tensor cand = candidate_boxes.contiguous();
  const at::Tensor log_var = candidate_vars.log().contiguous();
  at::Tensor out = at::empty_like(kept);
  const int64_t m = kept.size(0);
  if (m == 0) return out;
  constexpr int threads = 128;
  const int64_t blocks = (m + threads - 1) / threads;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(kept.scalar_type(), "var_voting_cuda", [&] {
    var_voting_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        m, kept.data_ptr<scalar_t>(), cand.data_ptr<scalar_t>(), log_var.data_ptr<scalar_t>(), n,
        static_cast<scalar_t>(sigma_t), static_cast<scalar_t>(iou_threshold),
        out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("var_voting", &var_voting_cuda_kernel);
}

}  // namespace d2_boxunc
