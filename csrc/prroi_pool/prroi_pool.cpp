// Schemas of the PrRoIPool ops; the device files register the kernels, Python registers autograd,
// fake kernels and autocast (d2_boxunc/layers/prroi_pool.py). With input_grad=False the backward
// skips d/d input (grad_input is then an empty tensor): IoU-Net's refinement only needs d/d rois.
// Likewise rois_grad=False skips d/d rois, for training on RoIs that need no gradient.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def(
      "prroi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, bool aligned) -> Tensor");
  m.def(
      "_prroi_pool_backward(Tensor grad, Tensor input, Tensor rois, Tensor output, "
      "float spatial_scale, SymInt pooled_height, SymInt pooled_width, bool aligned, "
      "bool input_grad=True, bool rois_grad=True) -> (Tensor grad_input, Tensor grad_rois)");
}
