// CUDA registration of KL-Loss NMS. Selection, voting and suppression form one sequential loop
// (each round's voters depend on the previous round's suppression), so the inputs are copied to
// the host, run through the CPU kernel, and the results copied back. For voting alone over a
// fixed candidate set, var_voting has a real CUDA kernel; both run the vote of common/vote.h.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "kl_nms/kl_nms.h"

namespace d2_boxunc {

namespace {

std::optional<at::Tensor> to_host(const std::optional<at::Tensor>& t, const at::Tensor& like) {
  if (!t.has_value()) return std::nullopt;
  TORCH_CHECK(t->device() == like.device(), "all inputs must be on ", like.device());
  return t->cpu();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kl_nms_cuda_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const std::optional<at::Tensor>& log_vars,
    const std::optional<at::Tensor>& idxs,
    double iou_threshold,
    double score_threshold,
    double sigma_t,
    double vote_iou_threshold,
    bool soft,
    double soft_sigma) {
  TORCH_CHECK(boxes.is_cuda(), "boxes must be a CUDA tensor");
  TORCH_CHECK(scores.device() == boxes.device(), "scores must be on ", boxes.device());
  auto [keep, voted, kept_scores] = kl_nms_cpu_kernel(
      boxes.cpu(), scores.cpu(), to_host(log_vars, boxes), to_host(idxs, boxes), iou_threshold,
      score_threshold, sigma_t, vote_iou_threshold, soft, soft_sigma);
  const auto dev = boxes.device();
  return {keep.to(dev), voted.to(dev), kept_scores.to(dev)};
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("kl_nms", &kl_nms_cuda_kernel);
}

}  // namespace d2_boxunc
