// CPU variance voting: the host code of var_voting_grid.h (checks, layout, dispatch) with the
// kept boxes, which are independent, split across threads.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "var_voting/var_voting_grid.h"

namespace d2_boxunc {

namespace {

at::Tensor var_voting_cpu_kernel(
    const at::Tensor& kept_boxes,
    const at::Tensor& candidate_boxes,
    const at::Tensor& candidate_vars,
    double sigma_t,
    double iou_threshold) {
  return voting::var_voting_grid(
      kept_boxes, candidate_boxes, candidate_vars, sigma_t, iou_threshold, [](const auto& a) {
        at::parallel_for(0, a.m, 16, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) voting::vote_element(i, a);
        });
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("var_voting", &var_voting_cpu_kernel);
}

}  // namespace d2_boxunc
