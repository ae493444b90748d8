// CPU IoU-guided NMS: sort by key, then the greedy suppression loop of hard NMS (suppressed boxes
// are skipped early), taking the max cls score of each cluster on the way. Per class, on
// contiguous copies of the boxes in key order; each kept box only visits the boxes whose x1 can
// put them in overlap with it.
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/box_utils.h"
#include "common/nms_common.h"

namespace d2_boxunc {

namespace {

template <typename T>
void iou_nms_one_class(
    const T* boxes,
    const T* cls,
    const std::vector<int64_t>& members,  // indices of this class in decreasing key order
    T iou_threshold,
    std::vector<char>& kept,
    std::vector<T>& out_score) {
  const int64_t g = static_cast<int64_t>(members.size());
  std::vector<T> x1(g), y1(g), x2(g), y2(g), area(g), c(g);
  for (int64_t a = 0; a < g; ++a) {
    const T* b = boxes + 4 * members[a];
    x1[a] = b[0];
    y1[a] = b[1];
    x2[a] = b[2];
    y2[a] = b[3];
    area[a] = box_area(b[0], b[1], b[2], b[3]);
    c[a] = cls[members[a]];
  }
  std::vector<char> suppressed(g, 0);
  if (iou_threshold < T(0)) {  // every later box is suppressed, overlapping or not
    for (int64_t a = 0; a < g; ++a) {
      if (suppressed[a]) continue;
      T best = c[a];
      for (int64_t b = a + 1; b < g; ++b) {
        if (!suppressed[b]) best = box_max(best, c[b]);
        suppressed[b] = 1;
      }
      kept[members[a]] = 1;
      out_score[members[a]] = best;
    }
    return;
  }
  // Only boxes that overlap can be suppressed (IoU > threshold >= 0): as in soft_nms, a kept box
  // visits the boxes whose x1 lies within the widest box of it (positions sorted by x1).
  std::vector<int64_t> by_x(g);
  std::iota(by_x.begin(), by_x.end(), 0);
  std::stable_sort(by_x.begin(), by_x.end(), [&](int64_t u, int64_t v) { return x1[u] < x1[v]; });
  std::vector<T> xs(g);
  T max_width = T(0);
  for (int64_t q = 0; q < g; ++q) {
    xs[q] = x1[by_x[q]];
    max_width = box_max(max_width, x2[q] - x1[q]);
  }
  for (int64_t a = 0; a < g; ++a) {
    if (suppressed[a]) continue;
    T best = c[a];
    const T ax1 = x1[a], ay1 = y1[a], ax2 = x2[a], ay2 = y2[a], aarea = area[a];
    const auto [lo, hi] = x_overlap_range(xs.data(), g, ax1, ax2, max_width);
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t b = by_x[q];
      if (b <= a || suppressed[b]) continue;
      if (box_iou(ax1, ay1, ax2, ay2, aarea, x1[b], y1[b], x2[b], y2[b], area[b]) >
          iou_threshold) {
        suppressed[b] = 1;
        best = box_max(best, c[b]);
      }
    }
    kept[members[a]] = 1;
    out_score[members[a]] = best;
  }
}

std::tuple<at::Tensor, at::Tensor> iou_guided_nms_cpu_kernel(
    const at::Tensor& boxes,
    const at::Tensor& cls_scores,
    const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs,
    double iou_threshold) {
  check_boxes_arg(boxes, "boxes");
  const int64_t n = boxes.size(0);
  check_per_box_arg(cls_scores, "cls_scores", boxes, n);
  check_per_box_arg(keys, "keys", boxes, n);
  check_idxs_arg(idxs, boxes);

  const at::Tensor b = boxes.contiguous();
  const at::Tensor cs = cls_scores.contiguous();
  const at::Tensor ks = keys.contiguous();
  at::Tensor keep_t, scores_t;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "iou_guided_nms_cpu", [&] {
    const scalar_t* key = ks.data_ptr<scalar_t>();
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(
        order.begin(), order.end(), [key](int64_t i, int64_t j) { return key[i] > key[j]; });
    std::vector<char> kept(n, 0);
    std::vector<scalar_t> out_score(n);
    for (const auto& members : group_by_class(idxs, order)) {
      iou_nms_one_class<scalar_t>(
          b.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(), members,
          static_cast<scalar_t>(iou_threshold), kept, out_score);
    }
    std::vector<int64_t> keep;
    for (int64_t i : order) {
      if (kept[i]) keep.push_back(i);
    }
    const int64_t k = static_cast<int64_t>(keep.size());
    keep_t = at::empty({k}, b.options().dtype(at::kLong));
    scores_t = at::empty({k}, b.options());
    int64_t* kp = keep_t.data_ptr<int64_t>();
    scalar_t* sp = scores_t.data_ptr<scalar_t>();
    for (int64_t a = 0; a < k; ++a) {
      kp[a] = keep[a];
      sp[a] = out_score[keep[a]];
    }
  });
  return {keep_t, scores_t};
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("iou_guided_nms", &iou_guided_nms_cpu_kernel);
}

}  // namespace d2_boxunc
