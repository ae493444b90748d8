// Test-only op: the CUDA DIoU-NMS mask kernel (iou_nms/iou_nms_grid.h with MaskArgs::diou) run on
// the CPU, block by block and phase by phase, with the CUDA op's host code (docs/gpu.md).
#include <torch/library.h>

#include "iou_nms/iou_nms_grid.h"

namespace d2_boxunc {
namespace iou_nms {
namespace {

at::Tensor diou_nms_gridcpu(
    const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& idxs,
    double iou_threshold) {
  return std::get<0>(iou_guided_nms_grid(
      boxes, scores, scores, idxs, iou_threshold, /*diou=*/true,
      []<typename T>(const MaskArgs<T>& a) { mask_gridcpu(a); }));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def(
      "_diou_nms_gridcpu(Tensor boxes, Tensor scores, Tensor? idxs, float iou_threshold) -> "
      "Tensor");
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("_diou_nms_gridcpu", &diou_nms_gridcpu);
}

}  // namespace iou_nms
}  // namespace d2_boxunc
