// Test-only op: the CUDA IoU-guided NMS mask kernel (iou_nms_grid.h) run on the CPU, block by
// block and phase by phase, with the CUDA op's host code (docs/gpu.md).
#include <torch/library.h>

#include "iou_nms/iou_nms_grid.h"

namespace d2_boxunc {
namespace iou_nms {
namespace {

std::tuple<at::Tensor, at::Tensor> iou_guided_nms_gridcpu(
    const at::Tensor& boxes, const at::Tensor& cls_scores, const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs, double iou_threshold) {
  return iou_guided_nms_grid(
      boxes, cls_scores, keys, idxs, iou_threshold, /*diou=*/false,
      []<typename T>(const MaskArgs<T>& a) { mask_gridcpu(a); });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def(
      "_iou_guided_nms_gridcpu(Tensor boxes, Tensor cls_scores, Tensor keys, Tensor? idxs, "
      "float iou_threshold) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("_iou_guided_nms_gridcpu", &iou_guided_nms_gridcpu);
}

}  // namespace iou_nms
}  // namespace d2_boxunc
