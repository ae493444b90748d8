// The variance-voting kernel's per-thread body (one thread per kept box: vote_box of
// common/vote.h over the candidates) and the host code around its launch, shared by the CUDA op,
// the CPU op (a parallel_for launcher) and the CPU grid launcher of the `_var_voting_gridcpu` test
// op (docs/gpu.md).
#pragma once

#include <ATen/ATen.h>

#include "common/grid.h"
#include "common/nms_common.h"
#include "common/vote.h"

namespace d2_boxunc {
namespace voting {

template <typename T>
struct VoteArgs {
  int64_t m;
  const T* kept;  // (m, 4)
  const T* cand;  // (n, 4)
  const T* log_var;  // (n, 4) log sigma^2 of the candidates
  int64_t n;
  T sigma_t, iou_threshold;
  T* out;  // (m, 4)
};

// Kept box i voted by the candidates with IoU > iou_threshold (strict); unchanged without voters.
template <typename T>
HOST_DEVICE inline void vote_element(int64_t i, const VoteArgs<T>& a) {
  const T* kept = a.kept + 4 * i;
  const T area_k = box_area(kept[0], kept[1], kept[2], kept[3]);
  const auto voters = [&](const auto& f) {
    for (int64_t j = 0; j < a.n; ++j) {
      const T* b = a.cand + 4 * j;
      const T o = box_iou(
          kept[0], kept[1], kept[2], kept[3], area_k, b[0], b[1], b[2], b[3],
          box_area(b[0], b[1], b[2], b[3]));
      if (o > a.iou_threshold) f(vote_log_p(o, a.sigma_t), a.log_var + 4 * j, b);
    }
  };
  const auto exp4 = [](const T* x, T* e) {
    for (int k = 0; k < 4; ++k) e[k] = box_exp(x[k]);
  };
  T* out = a.out + 4 * i;
  if (!vote_box<T>(voters, exp4, out)) {
    for (int k = 0; k < 4; ++k) out[k] = kept[k];
  }
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
  const at::Tensor log_var = candidate_vars.log().contiguous();  // vote_box takes log sigma^2
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
