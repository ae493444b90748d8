// The CUDA variance-voting kernel's per-thread body (one thread per kept box, vote_one_box of
// var_voting_kernel.h) and the host code around its launch, shared with the CPU grid launcher of
// the `_var_voting_gridcpu` test op (docs/gpu.md).
#pragma once

#include <ATen/ATen.h>

#include "common/grid.h"
#include "common/nms_common.h"
#include "var_voting/var_voting_kernel.h"

namespace d2_boxunc {
namespace voting {

template <typename T>
struct VoteArgs {
  int64_t m;
  const T* kept;  // (m, 4)
  const T* cand;  // (n, 4)
  const T* log_var;  // (n, 4)
  int64_t n;
  T sigma_t, iou_threshold;
  T* out;  // (m, 4)
};

template <typename T>
HOST_DEVICE inline void vote_element(int64_t i, const VoteArgs<T>& a) {
  vote_one_box<T>(
      a.kept + 4 * i, a.cand, a.log_var, a.n, a.sigma_t, a.iou_threshold, a.out + 4 * i);
}

// `launch(args)` runs vote_element for every i < args.m.
template <typename Launch>
at::Tensor var_voting_grid(
    const at::Tensor& kept_boxes, const at::Tensor& candidate_boxes,
    const at::Tensor& candidate_vars, double sigma_t, double iou_threshold, Launch&& launch) {
  check_boxes_arg(kept_boxes, "kept_boxes");
  check_boxes_arg(candidate_boxes, "candidate_boxes");
  const int64_t n = candidate_boxes.size(0);
  check_per_box_arg(candidate_boxes, "candidate_boxes", kept_boxes, n, 4);
  check_per_box_arg(candidate_vars, "candidate_vars", kept_boxes, n, 4);
  TORCH_CHECK(sigma_t > 0, "sigma_t must be > 0, got ", sigma_t);
  const at::Tensor kept = kept_boxes.contiguous();
  const at::Tensor cand = candidate_boxes.contiguous();
  const at::Tensor log_var = candidate_vars.log().contiguous();
  at::Tensor out = at::empty_like(kept);
  if (kept.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(kept.scalar_type(), "var_voting_grid", [&] {
    using T = scalar_t;
    const VoteArgs<T> a{
        kept.size(0),          kept.data_ptr<T>(),
        cand.data_ptr<T>(),    log_var.data_ptr<T>(),
        n,                     static_cast<T>(sigma_t),
        static_cast<T>(iou_threshold), out.data_ptr<T>()};
    launch(a);
  });
  return out;
}

}  // namespace voting
}  // namespace d2_boxunc
