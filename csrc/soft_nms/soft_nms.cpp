// Schema of soft-NMS (Bodla et al., ICCV 2017) with the exact procedure of
// docs/design.md#nms-family-rules.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  // boxes (N, 4) xyxy; scores (N,); idxs (N,) int64 class ids or None (one class).
  // method: 0 linear, 1 gaussian, 2 hard. Returns keep (K,) int64 and the score of each kept box
  // at its selection. With idxs the classes never interact and the output lists the classes in
  // ascending id order, each in selection order.
  m.def(
      "soft_nms(Tensor boxes, Tensor scores, Tensor? idxs, float sigma, float iou_threshold, "
      "float score_threshold, int method) -> (Tensor, Tensor)");
}
