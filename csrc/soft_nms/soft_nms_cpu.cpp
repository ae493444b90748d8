// CPU soft-NMS. Each round selects the best remaining box, decays the others and compacts the
// survivors in one pass, tracking the next argmax on the way: O(N * K) time, O(N) memory.
#include <torch/library.h>

#include <cmath>
#include <vector>

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
  // Survivors in structure-of-arrays form, ascending input index so that the first maximum found
  // is the one with the smaller index.
  std::vector<T> x1, y1, x2, y2, area, s;
  std::vector<int64_t> idx;
  for (auto* v : {&x1, &y1, &x2, &y2, &area, &s}) v->reserve(members.size());
  idx.reserve(members.size());
  int64_t best = -1;
  for (int64_t i : members) {
    if (!(scores[i] >= score_threshold)) continue;
    const T* b = boxes + 4 * i;
    if (best < 0 || scores[i] > s[best]) best = static_cast<int64_t>(s.size());
    x1.push_back(b[0]);
    y1.push_back(b[1]);
    x2.push_back(b[2]);
    y2.push_back(b[3]);
    area.push_back(box_area(b[0], b[1], b[2], b[3]));
    s.push_back(scores[i]);
    idx.push_back(i);
  }
  int64_t remaining = static_cast<int64_t>(s.size());
  while (remaining > 0) {
    const int64_t m = best;
    keep.push_back(idx[m]);
    kept_scores.push_back(s[m]);
    const T mx1 = x1[m], my1 = y1[m], mx2 = x2[m], my2 = y2[m], marea = area[m];
    int64_t w = 0;
    best = -1;
    for (int64_t j = 0; j < remaining; ++j) {
      if (j == m) continue;
      const T iou = box_iou(mx1, my1, mx2, my2, marea, x1[j], y1[j], x2[j], y2[j], area[j]);
      T sj = s[j];
      if (method == kGaussian) {
        if (iou > T(0)) sj = sj * std::exp(-(iou * iou) / sigma);
      } else if (iou > iou_threshold) {
        sj = method == kLinear ? sj * (T(1) - iou) : sj * T(0);
      }
      if (!(sj >= score_threshold)) continue;
      x1[w] = x1[j];
      y1[w] = y1[j];
      x2[w] = x2[j];
      y2[w] = y2[j];
      area[w] = area[j];
      idx[w] = idx[j];
      s[w] = sj;
      if (best < 0 || sj > s[best]) best = w;
      ++w;
    }
    remaining = w;
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
