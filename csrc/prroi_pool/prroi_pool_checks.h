// Argument checks shared by the CPU and CUDA entry points of PrRoIPool.
#pragma once

#include <ATen/ATen.h>

namespace d2_boxunc {
namespace prroi {

inline void check_inputs(
    const at::Tensor& input, const at::Tensor& rois, int64_t pooled_height,
    int64_t pooled_width) {
  TORCH_CHECK(input.dim() == 4, "prroi_pool: input must be (N, C, H, W), got ", input.sizes());
  TORCH_CHECK(
      rois.dim() == 2 && rois.size(1) == 5,
      "prroi_pool: rois must be (K, 5) = (batch_index, x1, y1, x2, y2), got ", rois.sizes());
  TORCH_CHECK(
      input.scalar_type() == rois.scalar_type(), "prroi_pool: input and rois must share a dtype, got ",
      input.scalar_type(), " and ", rois.scalar_type());
  TORCH_CHECK(
      input.device() == rois.device(), "prroi_pool: input and rois must be on one device, got ",
      input.device(), " and ", rois.device());
  TORCH_CHECK(
      pooled_height > 0 && pooled_width > 0,
      "prroi_pool: pooled_height and pooled_width must be positive, got ", pooled_height, "x",
      pooled_width);
}

inline void check_grad(const at::Tensor& t, const at::Tensor& input, int64_t num_rois,
                       int64_t pooled_height, int64_t pooled_width, const char* name) {
  TORCH_CHECK(
      t.dim() == 4 && t.size(0) == num_rois && t.size(1) == input.size(1) &&
          t.size(2) == pooled_height && t.size(3) == pooled_width,
      "_prroi_pool_backward: ", name, " must be (K, C, pooled_height, pooled_width) = (", num_rois,
      ", ", input.size(1), ", ", pooled_height, ", ", pooled_width, "), got ", t.sizes());
  TORCH_CHECK(
      t.scalar_type() == input.scalar_type() && t.device() == input.device(),
      "_prroi_pool_backward: ", name, " must match input's dtype and device");
}

}  // namespace prroi
}  // namespace d2_boxunc
