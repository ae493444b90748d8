// CPU KL-Loss NMS. As in soft_nms, the remaining boxes are kept sorted by x1 so that a round only
// visits the boxes whose x1 lies within the widest box of the selection (the only ones that can
// overlap it): one pass over that range for the IoUs (and the per-coordinate max of the log
// weights), one for the votes and one that decays or suppresses. A vote or suppression threshold
// below 0 involves every box, and then the range is all of them. Dead boxes are dropped from the
// arrays whenever they are half of them.
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "common/box_utils.h"
#include "common/nms_common.h"
#include "kl_nms/kl_nms.h"

namespace d2_boxunc {

namespace {

template <typename T>
struct KlParams {
  T iou_threshold, score_threshold, sigma_t, vote_iou_threshold, soft_sigma;
  bool soft, vote;
};

template <typename T>
void kl_nms_one_class(
    const T* boxes,
    const T* scores,
    const T* log_vars,  // (N, 4) or nullptr
    const std::vector<int64_t>& members,  // indices of this class, ascending
    const KlParams<T>& p,
    std::vector<int64_t>& keep,
    std::vector<T>& voted,
    std::vector<T>& kept_scores) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  std::vector<int64_t> order;
  for (int64_t i : members) {
    if (scores[i] >= p.score_threshold) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t u, int64_t v) {
    return boxes[4 * u] < boxes[4 * v];
  });
  std::array<std::vector<T>, 4> c, a;  // coordinates and log-variances, ascending x1
  std::vector<T> area, s, o;
  std::vector<int64_t> idx;
  std::vector<uint8_t> alive;
  T max_width = T(0);
  for (int64_t i : order) {
    const T* b = boxes + 4 * i;
    for (int k = 0; k < 4; ++k) {
      c[k].push_back(b[k]);
      if (p.vote) a[k].push_back(log_vars[4 * i + k]);
    }
    area.push_back(box_area(b[0], b[1], b[2], b[3]));
    s.push_back(scores[i]);
    idx.push_back(i);
    alive.push_back(1);
    max_width = box_max(max_width, b[2] - b[0]);
  }
  const bool everyone = (p.vote && p.vote_iou_threshold < T(0)) || (!p.soft && p.iou_threshold < T(0));
  int64_t n = static_cast<int64_t>(s.size());
  o.resize(n);
  int64_t remaining = n;
  while (remaining > 0) {
    // the maximum score (dead entries hold -inf), then the smallest input index holding it
    T best = kNegInf;
    for (int64_t j = 0; j < n; ++j) best = s[j] > best ? s[j] : best;
    int64_t m = -1;
    for (int64_t j = 0; j < n; ++j) {
      if (s[j] == best && alive[j] && (m < 0 || idx[j] < idx[m])) m = j;
    }
    keep.push_back(idx[m]);
    kept_scores.push_back(s[m]);
    alive[m] = 0;
    s[m] = kNegInf;
    --remaining;
    const T mx1 = c[0][m], my1 = c[1][m], mx2 = c[2][m], my2 = c[3][m], marea = area[m];
    int64_t lo = 0, hi = n;
    if (!everyone) std::tie(lo, hi) = x_overlap_range(c[0].data(), n, mx1, mx2, max_width);

    // IoUs with the un-voted selected box; max log weight per coordinate (m itself: log p = 0).
    T mx[4];
    for (int k = 0; k < 4; ++k) mx[k] = p.vote ? -a[k][m] : T(0);
    for (int64_t j = lo; j < hi; ++j) {
      if (!alive[j]) continue;
      o[j] = box_iou(mx1, my1, mx2, my2, marea, c[0][j], c[1][j], c[2][j], c[3][j], area[j]);
      if (p.vote && o[j] > p.vote_iou_threshold) {
        const T lp = vote_log_p(o[j], p.sigma_t);
        for (int k = 0; k < 4; ++k) mx[k] = box_max(mx[k], lp - a[k][j]);
      }
    }
    if (p.vote) {
      T num[4], den[4];
      for (int k = 0; k < 4; ++k) {
        const T e = box_exp(-a[k][m] - mx[k]);
        num[k] = e * c[k][m];
        den[k] = e;
      }
      for (int64_t j = lo; j < hi; ++j) {
        if (!alive[j] || !(o[j] > p.vote_iou_threshold)) continue;
        const T lp = vote_log_p(o[j], p.sigma_t);
        for (int k = 0; k < 4; ++k) {
          const T e = box_exp(lp - a[k][j] - mx[k]);
          num[k] += e * c[k][j];
          den[k] += e;
        }
      }
      for (int k = 0; k < 4; ++k) voted.push_back(num[k] / den[k]);
    } else {
      for (int k = 0; k < 4; ++k) voted.push_back(c[k][m]);
    }

    for (int64_t j = lo; j < hi; ++j) {
      if (!alive[j]) continue;
      T sj = s[j];
      bool dies = false;
      if (p.soft) {
        if (o[j] > T(0)) sj = sj * box_exp(-(o[j] * o[j]) / p.soft_sigma);
      } else {
        dies = o[j] > p.iou_threshold;
      }
      s[j] = sj;
      if (dies || !(sj >= p.score_threshold)) {
        alive[j] = 0;
        s[j] = kNegInf;
        --remaining;
      }
    }

    if (2 * remaining < n) {  // drop the dead, keeping the x1 order
      int64_t w = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (!alive[j]) continue;
        for (int k = 0; k < 4; ++k) {
          c[k][w] = c[k][j];
          if (p.vote) a[k][w] = a[k][j];
        }
        area[w] = area[j];
        s[w] = s[j];
        idx[w] = idx[j];
        alive[w] = 1;
        ++w;
      }
      n = w;
      for (int k = 0; k < 4; ++k) c[k].resize(n);  // the binary searches use c[0]'s end
    }
  }
}

}  // namespace

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
    double soft_sigma) {
  check_boxes_arg(boxes, "boxes");
  const int64_t n = boxes.size(0);
  check_per_box_arg(scores, "scores", boxes, n);
  if (log_vars.has_value()) check_per_box_arg(*log_vars, "log_vars", boxes, n, 4);
  check_idxs_arg(idxs, boxes);
  TORCH_CHECK(sigma_t > 0, "sigma_t must be > 0, got ", sigma_t);
  TORCH_CHECK(!soft || soft_sigma > 0, "soft_sigma must be > 0, got ", soft_sigma);

  const at::Tensor b = boxes.contiguous();
  const at::Tensor sc = scores.contiguous();
  const at::Tensor lv = log_vars.has_value() ? log_vars->contiguous() : at::Tensor();
  std::vector<int64_t> all(n);
  for (int64_t i = 0; i < n; ++i) all[i] = i;
  const auto groups = group_by_class(idxs, std::move(all));

  at::Tensor keep_t, voted_t, scores_t;
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "kl_nms_cpu", [&] {
    using T = scalar_t;
    const KlParams<T> p{
        static_cast<T>(iou_threshold), static_cast<T>(score_threshold), static_cast<T>(sigma_t),
        static_cast<T>(vote_iou_threshold), static_cast<T>(soft_sigma), soft, lv.defined()};
    std::vector<int64_t> keep;
    std::vector<T> voted, kept_scores;
    for (const auto& members : groups) {
      kl_nms_one_class<T>(
          b.data_ptr<T>(), sc.data_ptr<T>(), lv.defined() ? lv.data_ptr<T>() : nullptr, members,
          p, keep, voted, kept_scores);
    }
    const int64_t k = static_cast<int64_t>(keep.size());
    keep_t = at::empty({k}, b.options().dtype(at::kLong));
    voted_t = at::empty({k, 4}, b.options());
    scores_t = at::empty({k}, b.options());
    std::copy(keep.begin(), keep.end(), keep_t.data_ptr<int64_t>());
    std::copy(voted.begin(), voted.end(), voted_t.data_ptr<T>());
    std::copy(kept_scores.begin(), kept_scores.end(), scores_t.data_ptr<T>());
  });
  return {keep_t, voted_t, scores_t};
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("kl_nms", &kl_nms_cpu_kernel);
}

}  // namespace d2_boxunc
