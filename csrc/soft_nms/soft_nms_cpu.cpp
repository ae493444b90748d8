// CPU soft-NMS. Only boxes that overlap the selected one change, so the survivors are kept sorted
// by x1: with W the largest width, a box can overlap the selection (x1_m, x2_m) only if its x1 lies
// in (x1_m - W, x2_m), a range found by binary search. Each round is then a scan of the scores for
// the next maximum plus the IoUs of that range, instead of IoUs with every survivor. Dead boxes
// are dropped from the arrays whenever they are half of them. Same arithmetic per box as a plain
// scan, so results do not depend on the order.
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "common/box_utils.h"
#include "common/nms_common.h"
#include "soft_nms/soft_nms.h"

namespace d2_boxunc {

namespace {

template <typename T>
struct Survivors {  // structure of arrays, ascending x1
  std::vector<T> x1, y1, x2, y2, area, s;
  std::vector<int64_t> idx;
  std::vector<uint8_t> alive;

  int64_t size() const { return static_cast<int64_t>(idx.size()); }

  void push(const T* b, T score, int64_t i) {
    x1.push_back(b[0]);
    y1.push_back(b[1]);
    x2.push_back(b[2]);
    y2.push_back(b[3]);
    area.push_back(box_area(b[0], b[1], b[2], b[3]));
    s.push_back(score);
    idx.push_back(i);
    alive.push_back(1);
  }

  void compact() {
    int64_t w = 0;
    for (int64_t j = 0; j < size(); ++j) {
      if (!alive[j]) continue;
      x1[w] = x1[j];
      y1[w] = y1[j];
      x2[w] = x2[j];
      y2[w] = y2[j];
      area[w] = area[j];
      s[w] = s[j];
      idx[w] = idx[j];
      alive[w] = 1;
      ++w;
    }
    for (auto* v : {&x1, &y1, &x2, &y2, &area, &s}) v->resize(w);
    idx.resize(w);
    alive.resize(w);
  }
};

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
  std::vector<int64_t> order;
  order.reserve(members.size());
  for (int64_t i : members) {
    if (scores[i] >= score_threshold) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return boxes[4 * a] < boxes[4 * b];
  });
  Survivors<T> sv;
  T max_width = T(0);
  for (int64_t i : order) {
    sv.push(boxes + 4 * i, scores[i], i);
    max_width = box_max(max_width, boxes[4 * i + 2] - boxes[4 * i]);
  }
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  int64_t remaining = sv.size();
  while (remaining > 0) {
    // the maximum score (dead entries hold -inf), then the smallest input index holding it
    const int64_t n = sv.size();
    const T* sc = sv.s.data();
    T mx[4] = {kNegInf, kNegInf, kNegInf, kNegInf};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      for (int k = 0; k < 4; ++k) mx[k] = sc[j + k] > mx[k] ? sc[j + k] : mx[k];
    }
    for (; j < n; ++j) mx[0] = sc[j] > mx[0] ? sc[j] : mx[0];
    const T best = box_max(box_max(mx[0], mx[1]), box_max(mx[2], mx[3]));
    int64_t m = -1;
    for (j = 0; j < n; ++j) {
      if (sc[j] == best && sv.alive[j] && (m < 0 || sv.idx[j] < sv.idx[m])) m = j;
    }
    keep.push_back(sv.idx[m]);
    kept_scores.push_back(sv.s[m]);
    sv.alive[m] = 0;
    sv.s[m] = kNegInf;
    --remaining;
    const T mx1 = sv.x1[m], my1 = sv.y1[m], mx2 = sv.x2[m], my2 = sv.y2[m], marea = sv.area[m];
    const auto [lo, hi] = x_overlap_range(sv.x1.data(), sv.size(), mx1, mx2, max_width);
    for (int64_t j = lo; j < hi; ++j) {
      if (!sv.alive[j]) continue;
      const T iou = box_iou(mx1, my1, mx2, my2, marea, sv.x1[j], sv.y1[j], sv.x2[j], sv.y2[j],
                            sv.area[j]);
      T sj = sv.s[j];
      if (method == kGaussian) {
        if (iou > T(0)) sj = sj * std::exp(-(iou * iou) / sigma);
      } else if (iou > iou_threshold) {
        sj = method == kLinear ? sj * (T(1) - iou) : sj * T(0);
      }
      sv.s[j] = sj;
      if (!(sj >= score_threshold)) {
        sv.alive[j] = 0;
        sv.s[j] = kNegInf;
        --remaining;
      }
    }
    if (2 * remaining < sv.size()) sv.compact();
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
