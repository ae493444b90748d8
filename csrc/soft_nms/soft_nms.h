#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace d2_boxunc {

// method codes of the soft_nms schema
enum SoftNmsMethod : int64_t { kLinear = 0, kGaussian = 1, kHard = 2 };

// CPU soft-NMS; also called by the CUDA registration on host copies (the selection is sequential).
std::tuple<at::Tensor, at::Tensor> soft_nms_cpu_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const std::optional<at::Tensor>& idxs,
    double sigma,
    double iou_threshold,
    double score_threshold,
    int64_t method);

}  // namespace d2_boxunc
