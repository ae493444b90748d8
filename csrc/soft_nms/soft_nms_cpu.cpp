// CPU soft-NMS on a BoxGrid: only boxes that overlap the selected one change, so each round tests
// the grid's cells against the selection and rescans the boxes of the cells that pass; the next
// pick is a scan of the per-cell maxima. Same arithmetic per box as a plain scan, so results do
// not depend on the visiting order.
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "common/box_grid.h"
#include "common/box_utils.h"
#include "common/nms_common.h"
#include "soft_nms/soft_nms.h"

namespace d2_boxunc {

namespace {

template <typename T>
void soft_nms_one_class(
    const T* boxes,
    const T* scores,
    const std::vector<int64_t>& members,  // indices of this class, ascending
    T sigma,
    T iou_threshold,
    T score_threshold,
    int64_t method,
    std::vector<int64_t>& keep,
    std::vector<T>& kept_scores) {
  std::vector<int64_t> ids;
  ids.reserve(members.size());
  for (int64_t i : members) {
    if (scores[i] >= score_threshold) ids.push_back(i);
  }
  BoxGrid<T> g(boxes, scores, ids);
  const int64_t n = g.num_slots();
  // boxes with IoU > t change; a negative threshold reaches boxes disjoint from the selection
  const T t = method == kGaussian ? T(0) : iou_threshold;
  std::vector<T> o(n);
  std::vector<int64_t> cells, hits(n);
  for (int64_t remaining = n; remaining > 0;) {
    const int64_t m = g.argmax();
    keep.push_back(g.id[m]);
    kept_scores.push_back(g.s[m]);
    g.take(m);
    --remaining;
    const int64_t k = g.overlaps_of(m, t, cells, o.data(), hits.data());
    for (int64_t h = 0; h < k; ++h) {
      const int64_t j = hits[h];
      const T iou = o[j];
      T sj = g.s[j];
      if (method == kGaussian) {
        sj = sj * std::exp(-(iou * iou) / sigma);
      } else {
        sj = method == kLinear ? sj * (T(1) - iou) : sj * T(0);
      }
      if (sj >= score_threshold) {
        g.s[j] = sj;
      } else {
        g.kill(j);
        --remaining;
      }
    }
    g.refresh_cells_of(hits.data(), k);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> soft_nms_cpu_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const std::optional<at::Tensor>& idxs,
    double sigma,
    double iou_threshold,
    double score_threshold,
    int64_t method) {
  check_boxes_arg(boxes, "boxes");
  const int64_t n = boxes.size(0);
  check_per_box_arg(scores, "scores", boxes, n);
  check_idxs_arg(idxs, boxes);
  TORCH_CHECK(method >= kLinear && method <= kHard, "method must be 0, 1 or 2, got ", method);
  TORCH_CHECK(method != kGaussian || sigma > 0, "sigma must be > 0, got ", sigma);

  const at::Tensor b = boxes.contiguous();
  const at::Tensor sc = scores.contiguous();
  std::vector<int64_t> all(n);
  for (int64_t i = 0; i < n; ++i) all[i] = i;
  const auto groups = group_by_class(idxs, std::move(all));

  at::Tensor keep_t, scores_t;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "soft_nms_cpu", [&] {
    std::vector<int64_t> keep;
    std::vector<scalar_t> kept_scores;
    for (const auto& members : groups) {
      soft_nms_one_class<scalar_t>(
          b.data_ptr<scalar_t>(), sc.data_ptr<scalar_t>(), members,
          static_cast<scalar_t>(sigma), static_cast<scalar_t>(iou_threshold),
          static_cast<scalar_t>(score_threshold), method, keep, kept_scores);
    }
    const int64_t k = static_cast<int64_t>(keep.size());
    keep_t = at::empty({k}, b.options().dtype(at::kLong));
    scores_t = at::empty({k}, b.options());
    std::copy(keep.begin(), keep.end(), keep_t.data_ptr<int64_t>());
    std::copy(kept_scores.begin(), kept_scores.end(), scores_t.data_ptr<scalar_t>());
  });
  return {keep_t, scores_t};
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("soft_nms", &soft_nms_cpu_kernel);
}

}  // namespace d2_boxunc
