// Schema and CPU kernel of DIoU-NMS (Zheng et al., "Distance-IoU Loss", AAAI 2020, Eq. 10;
// docs/design.md#diou-nms): greedy NMS by score whose overlap is IoU - rho^2 / c^2
// (common/box_utils.h: box_diou_penalty). It is the greedy loop of IoU-guided NMS with key = score
// and that overlap, so both devices run the iou_nms code with `diou` set.
#include <torch/library.h>

#include "iou_nms/iou_nms.h"

namespace d2_boxunc {

namespace {

at::Tensor diou_nms_cpu_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const std::optional<at::Tensor>& idxs,
    double iou_threshold) {
  return std::get<0>(iou_nms_cpu(boxes, scores, scores, idxs, iou_threshold, /*diou=*/true));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  // boxes (N, 4) xyxy; scores (N,); idxs (N,) int64 class ids or None (one class). A box is
  // suppressed by the first kept box, in decreasing score order, of its class with
  // IoU - rho^2 / c^2 > iou_threshold (strict). Returns keep (K,) int64 in decreasing score order
  // (ties: smaller index first). Boxes of different classes never interact.
  m.def("diou_nms(Tensor boxes, Tensor scores, Tensor? idxs, float iou_threshold) -> Tensor");
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("diou_nms", &diou_nms_cpu_kernel);
}

}  // namespace d2_boxunc
