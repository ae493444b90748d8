#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace d2_boxunc {

// CPU KL-Loss NMS; also called by the CUDA registration on host copies (the loop is sequential).
std::tuple<at::Tensor, at::Tensor, at::Tensor> kl_nms_cpu_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const std::optional<at::Tensor>& log_vars,
    const std::optional<at::Tensor>& idxs,
    double iou_threshold,
    double score_threshold,
    double sigma_t,
    double vote_iou_threshold,
    bool soft,
    double soft_sigma);

}  // namespace d2_boxunc
