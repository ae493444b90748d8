// CPU IoU-guided NMS: sort by key, then the greedy suppression loop of hard NMS (suppressed boxes
// are skipped early), taking the max cls score of each cluster on the way. Per class, on
// contiguous copies of the boxes in key order; each kept box only visits the boxes of the grid
// cells (common/box_grid.h) that can overlap it. With `diou` the overlap is IoU - rho^2 / c^2
// (DIoU-NMS, csrc/diou_nms).
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/box_grid.h"
#include "common/box_utils.h"
#include "common/nms_common.h"
#include "iou_nms/iou_nms.h"

namespace d2_boxunc {

namespace {

template <typename T>
void iou_nms_one_class(
    const T* boxes,
    const T* cls,
    const std::vector<int64_t>& members,  // indices of this class in decreasing key order
    T iou_threshold,
    bool diou,
    std::vector<char>& kept,
    std::vector<T>& out_score) {
  const int64_t g = static_cast<int64_t>(members.size());
  if (iou_threshold < T(0) && !diou) {  // the first box suppresses every later box
    if (g == 0) return;
    T best = cls[members[0]];
    for (int64_t a = 1; a < g; ++a) best = box_max(best, cls[members[a]]);
    kept[members[0]] = 1;
    out_score[members[0]] = best;
    return;
  }
  // Only boxes that overlap can be suppressed (IoU >= IoU - R > threshold >= 0): a kept box visits
  // the boxes of the grid cells that can overlap it (every cell for a negative threshold, which
  // DIoU can pass with disjoint boxes). Boxes are processed in key order (members[a] sits in slot
  // grid.slot[a]); a processed box leaves the grid, so every live box comes later.
  BoxGrid<T> grid(boxes, nullptr, members);
  std::vector<T> o(g);
  std::vector<int64_t> cells, hits(g);
  for (int64_t a = 0; a < g; ++a) {
    const int64_t q = grid.slot[a];
    if (!grid.alive(q)) continue;  // suppressed by an earlier box
    grid.take(q);
    T best = cls[members[a]];
    const T ax1 = grid.x1[q], ay1 = grid.y1[q], ax2 = grid.x2[q], ay2 = grid.y2[q];
    grid.cells_near(ax1, ay1, ax2, ay2, iou_threshold < T(0), cells);
    int64_t k = grid.overlaps(
        ax1, ay1, ax2, ay2, grid.area[q], cells, iou_threshold, o.data(), hits.data());
    if (diou) {  // of the boxes with IoU > threshold, those with IoU - R > threshold (in order)
      int64_t kd = 0;
      for (int64_t h = 0; h < k; ++h) {
        const int64_t j = hits[h];
        const T r = box_diou_penalty(
            ax1, ay1, ax2, ay2, grid.x1[j], grid.y1[j], grid.x2[j], grid.y2[j]);
        hits[kd] = j;
        kd += o[j] - r > iou_threshold;
      }
      k = kd;
    }
    for (int64_t h = 0; h < k; ++h) {
      grid.kill(hits[h]);
      best = box_max(best, cls[grid.id[hits[h]]]);
    }
    grid.refresh_cells_of(hits.data(), k);
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
  return iou_nms_cpu(boxes, cls_scores, keys, idxs, iou_threshold, /*diou=*/false);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> iou_nms_cpu(
    const at::Tensor& boxes,
    const at::Tensor& cls_scores,
    const at::Tensor& keys,
    const std::optional<at::Tensor>& idxs,
    double iou_threshold,
    bool diou) {
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
          static_cast<scalar_t>(iou_threshold), diou, kept, out_score);
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

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("iou_guided_nms", &iou_guided_nms_cpu_kernel);
}

}  // namespace d2_boxunc
