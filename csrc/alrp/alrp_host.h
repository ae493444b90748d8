// Host-side helpers of the aLRP band kernels, shared by the CPU and CUDA files: argument checks
// (the Python wrapper prepares valid inputs; these guard direct calls of torch.ops.d2_boxunc.*)
// and the dispatch over the (values, labels) dtype pair.
#pragma once

#include <ATen/ATen.h>

namespace d2_boxunc {

inline void check_band_args(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges) {
  TORCH_CHECK(values.dim() == 1 && values.is_contiguous(), "values must be a contiguous 1-D tensor");
  TORCH_CHECK(
      values.scalar_type() == at::kFloat || values.scalar_type() == at::kDouble,
      "values must be float32 or float64, got ", values.scalar_type());
  TORCH_CHECK(
      labels.dim() == 1 && labels.numel() == values.numel() && labels.is_contiguous(),
      "labels must be a contiguous 1-D tensor with one entry per value");
  TORCH_CHECK(
      at::isIntegralType(labels.scalar_type(), /*includeBool=*/false),
      "labels must be an integer tensor, got ", labels.scalar_type());
  TORCH_CHECK(
      edges.dim() == 1 && edges.numel() >= 1 && edges.is_contiguous() &&
          edges.scalar_type() == values.scalar_type(),
      "edges must be a non-empty contiguous 1-D tensor of the values' dtype");
  TORCH_CHECK(edges.numel() < (int64_t(1) << 30), "too many edges: ", edges.numel());
  for (const at::Tensor* t : {&labels, &edges}) {
    TORCH_CHECK(t->device() == values.device(), "all inputs must be on ", values.device());
  }
}

inline void check_coef_args(const at::Tensor& values, const at::Tensor& edges,
                            const at::Tensor& offset, const at::Tensor& slope) {
  for (const at::Tensor* t : {&offset, &slope}) {
    TORCH_CHECK(
        t->dim() == 1 && t->numel() == edges.numel() + 1 && t->is_contiguous() &&
            t->scalar_type() == at::kDouble && t->device() == values.device(),
        "offset and slope must be contiguous float64 tensors of shape (", edges.numel() + 1,
        ",) on ", values.device());
  }
}

// Calls f.template operator()<T, L>() with T the values' floating type and L the labels' integer
// type (f: a C++20 templated lambda).
template <typename F>
void dispatch_band_types(const at::Tensor& values, const at::Tensor& labels, F&& f) {
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "alrp_band_values", [&] {
    using T = scalar_t;
    AT_DISPATCH_INTEGRAL_TYPES(labels.scalar_type(), "alrp_band_labels", [&] {
      f.template operator()<T, scalar_t>();
    });
  });
}

}  // namespace d2_boxunc
