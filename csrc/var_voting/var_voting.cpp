// Schema of KL-Loss variance voting (He et al., CVPR 2019, Eq. 11;
// docs/design.md#variance-voting-and-soft-nms).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  // kept_boxes (M, 4) xyxy; candidate_boxes (N, 4); candidate_vars (N, 4) positive variances
  // sigma^2 of each candidate coordinate. Returns the voted boxes (M, 4): each coordinate the
  // weighted mean over candidates with IoU > iou_threshold (strict), weights
  // exp(-(1 - IoU)^2 / sigma_t) / var. A kept box without voters is returned unchanged.
  m.def(
      "var_voting(Tensor kept_boxes, Tensor candidate_boxes, Tensor candidate_vars, "
      "float sigma_t, float iou_threshold) -> Tensor");
}
