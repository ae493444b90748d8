// CPU variance voting: kept boxes are independent, so they are split across threads.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "common/nms_common.h"
#include "var_voting/var_voting_kernel.h"

namespace d2_boxunc {

namespace {

at::Tensor var_voting_cpu_kernel(
    const at::Tensor& kept_boxes,
    const at::Tensor& candidate_boxes,
    const at::Tensor& candidate_vars,
    double sigma_t,
    double iou_threshold) {
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
  AT_DISPATCH_FLOATING_TYPES(kept.scalar_type(), "var_voting_cpu", [&] {
    const scalar_t* kp = kept.data_ptr<scalar_t>();
    const scalar_t* cp = cand.data_ptr<scalar_t>();
    const scalar_t* lv = log_var.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const auto st = static_cast<scalar_t>(sigma_t);
    const auto thr = static_cast<scalar_t>(iou_threshold);
    at::parallel_for(0, kept.size(0), 16, [&](int64_t begin, int64_t end) {
      for (int64_t m = begin; m < end; ++m) {
        vote_one_box<scalar_t>(kp + 4 * m, cp, lv, n, st, thr, op + 4 * m);
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("var_voting", &var_voting_cpu_kernel);
}

}  // namespace d2_boxunc
