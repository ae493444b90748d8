// Host-side helpers shared by the NMS-family ops: argument checks and per-class grouping.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace d2_boxunc {

inline void check_boxes_arg(const at::Tensor& boxes, const char* name) {
  TORCH_CHECK(
      boxes.dim() == 2 && boxes.size(1) == 4, name, " must have shape (N, 4), got ",
      boxes.sizes());
  TORCH_CHECK(
      boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble, name,
      " must be float32 or float64, got ", boxes.scalar_type());
}

// A per-box tensor of shape (n,) or (n, cols) with the dtype and device of `like`.
inline void check_per_box_arg(
    const at::Tensor& t, const char* name, const at::Tensor& like, int64_t n, int64_t cols = 0) {
  if (cols == 0) {
    TORCH_CHECK(t.dim() == 1 && t.size(0) == n, name, " must have shape (", n, ",), got ", t.sizes());
  } else {
    TORCH_CHECK(
        t.dim() == 2 && t.size(0) == n && t.size(1) == cols, name, " must have shape (", n, ", ",
        cols, "), got ", t.sizes());
  }
  TORCH_CHECK(
      t.scalar_type() == like.scalar_type(), name, " must have dtype ", like.scalar_type(),
      ", got ", t.scalar_type());
  TORCH_CHECK(
      t.device() == like.device(), name, " must be on ", like.device(), ", got ", t.device());
}

inline void check_idxs_arg(const std::optional<at::Tensor>& idxs, const at::Tensor& boxes) {
  if (!idxs.has_value()) return;
  TORCH_CHECK(
      idxs->dim() == 1 && idxs->size(0) == boxes.size(0), "idxs must have shape (",
      boxes.size(0), ",), got ", idxs->sizes());
  TORCH_CHECK(idxs->scalar_type() == at::kLong, "idxs must be int64, got ", idxs->scalar_type());
  TORCH_CHECK(
      idxs->device() == boxes.device(), "idxs must be on ", boxes.device(), ", got ",
      idxs->device());
}

// Splits `order` (indices into the input) into one list per class id, classes in ascending order,
// each list keeping the relative order of `order`. Without idxs every box is in one class.
inline std::vector<std::vector<int64_t>> group_by_class(
    const std::optional<at::Tensor>& idxs, std::vector<int64_t> order) {
  if (!idxs.has_value()) return {std::move(order)};
  const at::Tensor cls = idxs->cpu().contiguous();
  const int64_t* c = cls.data_ptr<int64_t>();
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t i : order) groups[c[i]].push_back(i);
  std::vector<std::vector<int64_t>> out;
  out.reserve(groups.size());
  for (auto& kv : groups) out.push_back(std::move(kv.second));
  return out;
}

}  // namespace d2_boxunc
