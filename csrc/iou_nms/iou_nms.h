#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace d2_boxunc {

// CPU greedy NMS by a ranking key (iou_nms_cpu.cpp): the iou_guided_nms op, and with `diou` the
// DIoU overlap IoU - rho^2 / c^2 instead of the IoU (the diou_nms op calls it with
// keys = cls_scores = scores). Returns (keep, max cls score of each kept box's cluster).
std::tuple<at::Tensor, at::Tensor> iou_nms_cpu(
    const at::Tensor& boxes,
    const at::Tensor& cls_scores,
    const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs,
    double iou_threshold,
    bool diou);

}  // namespace d2_boxunc
