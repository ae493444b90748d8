// Test-only op: the CUDA variance-voting kernel body (var_voting_grid.h) run on the CPU by the
// grid launcher, one kept box at a time, with the CUDA op's host code (docs/gpu.md).
#include <torch/library.h>

#include "var_voting/var_voting_grid.h"

namespace d2_boxunc {
namespace voting {
namespace {

at::Tensor var_voting_gridcpu(
    const at::Tensor& kept_boxes, const at::Tensor& candidate_boxes,
    const at::Tensor& candidate_vars, double sigma_t, double iou_threshold) {
  return var_voting_grid(
      kept_boxes, candidate_boxes, candidate_vars, sigma_t, iou_threshold,
      []<typename T>(const VoteArgs<T>& a) {
        cpu_grid_launch(a.m, [&](int64_t i) { vote_element(i, a); });
      });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def(
      "_var_voting_gridcpu(Tensor kept_boxes, Tensor candidate_boxes, Tensor candidate_vars, "
      "float sigma_t, float iou_threshold) -> Tensor");
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("_var_voting_gridcpu", &var_voting_gridcpu);
}

}  // namespace voting
}  // namespace d2_boxunc
