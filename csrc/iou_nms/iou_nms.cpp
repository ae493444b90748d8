// Schema of IoU-guided NMS (Jiang et al., ECCV 2018, Alg. 1; docs/design.md#iou-net-inference).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  // boxes (N, 4) xyxy; cls_scores (N,); keys (N,) ranking key (predicted IoU, or IoU x cls);
  // idxs (N,) int64 class ids or None (one class). Returns keep (K,) int64 in decreasing key order
  // (ties: smaller index first) and, per kept box, the max cls score over itself and the boxes it
  // suppressed (IoU > iou_threshold, strict). Boxes of different classes never interact.
  m.def(
      "iou_guided_nms(Tensor boxes, Tensor cls_scores, Tensor keys, Tensor? idxs, "
      "float iou_threshold) -> (Tensor, Tensor)");
}
