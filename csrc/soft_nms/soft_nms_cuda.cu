// CUDA registration of soft-NMS. Every round depends on the scores decayed by the previous one, so
// there is no parallel formulation worth a kernel at detection sizes (a few thousand boxes per
// image): the inputs are copied to the host, run through the CPU kernel, and the results copied
// back to the input's device.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "soft_nms/soft_nms.h"

namespace d2_boxunc {

namespace {

std::tuple<at::Tensor, at::Tensor> soft_nms_cuda_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const std::optional<at::Tensor>& idxs,
    double sigma,
    double iou_threshold,
    double score_threshold,
    int64_t method) {
  TORCH_CHECK(boxes.is_cuda(), "boxes must be a CUDA tensor");
  TORCH_CHECK(scores.device() == boxes.device(), "scores must be on ", boxes.device());
  std::optional<at::Tensor> idxs_cpu;
  if (idxs.has_value()) {
    TORCH_CHECK(idxs->device() == boxes.device(), "idxs must be on ", boxes.device());
    idxs_cpu = idxs->cpu();
  }
  auto [keep, kept_scores] = soft_nms_cpu_kernel(
      boxes.cpu(), scores.cpu(), idxs_cpu, sigma, iou_threshold, score_threshold, method);
  return {keep.to(boxes.device()), kept_scores.to(boxes.device())};
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("soft_nms", &soft_nms_cuda_kernel);
}

}  // namespace d2_boxunc
