// Test-only ops: the CUDA PrRoIPool kernel bodies (prroi_pool_grid.h) run on the CPU by the grid
// launcher, one output element at a time, with the CUDA op's host code (docs/gpu.md).
#include <torch/library.h>

#include "prroi_pool/prroi_pool_grid.h"

namespace d2_boxunc {
namespace prroi {
namespace {

at::Tensor prroi_pool_forward_gridcpu(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, bool aligned) {
  return forward_grid(
      input, rois, spatial_scale, pooled_height, pooled_width, aligned,
      []<typename T>(int64_t total, const PrroiArgs<T>& a) {
        cpu_grid_launch(total, [&](int64_t index) { forward_element(index, a); });
      });
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_backward_gridcpu(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
    const at::Tensor& output, double spatial_scale, int64_t pooled_height, int64_t pooled_width,
    bool aligned, bool input_grad, bool rois_grad) {
  return backward_grid(
      grad, input, rois, output, spatial_scale, pooled_height, pooled_width, aligned, input_grad,
      rois_grad, []<typename T>(int64_t total, const PrroiArgs<T>& a) {
        cpu_grid_launch(total, [&](int64_t index) { backward_element(index, a); });
      });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def(
      "_prroi_pool_forward_gridcpu(Tensor input, Tensor rois, float spatial_scale, "
      "int pooled_height, int pooled_width, bool aligned) -> Tensor");
  m.def(
      "_prroi_pool_backward_gridcpu(Tensor grad, Tensor input, Tensor rois, Tensor output, "
      "float spatial_scale, int pooled_height, int pooled_width, bool aligned, "
      "bool input_grad=True, bool rois_grad=True) -> (Tensor grad_input, Tensor grad_rois)");
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("_prroi_pool_forward_gridcpu", &prroi_pool_forward_gridcpu);
  m.impl("_prroi_pool_backward_gridcpu", &prroi_pool_backward_gridcpu);
}

}  // namespace prroi
}  // namespace d2_boxunc
