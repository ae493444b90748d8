// CPU KL-Loss NMS. Like soft-NMS, each round touches only the remaining boxes: one pass for the
// IoUs with the selected box (and the per-coordinate max of the log weights), one for the votes,
// and one that suppresses and compacts the survivors. O(N * K) time, O(N) memory.
#include <torch/library.h>

#include <array>
#include <cmath>
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
  std::array<std::vector<T>, 4> c, a;  // coordinates and log-variances of the remaining boxes
  std::vector<T> area, s, o;
  std::vector<int64_t> idx;
  int64_t best = -1;
  for (int64_t i : members) {
    if (!(scores[i] >= p.score_threshold)) continue;
    const T* b = boxes + 4 * i;
    if (best < 0 || scores[i] > s[best]) best = static_cast<int64_t>(s.size());
    for (int k = 0; k < 4; ++k) {
      c[k].push_back(b[k]);
      if (p.vote) a[k].push_back(log_vars[4 * i + k]);
    }
    area.push_back(box_area(b[0], b[1], b[2], b[3]));
    s.push_back(scores[i]);
    idx.push_back(i);
  }
  o.resize(s.size());
  int64_t remaining = static_cast<int64_t>(s.size());
  while (remaining > 0) {
    const int64_t m = best;
    keep.push_back(idx[m]);
    kept_scores.push_back(s[m]);
    const T mx1 = c[0][m], my1 = c[1][m], mx2 = c[2][m], my2 = c[3][m], marea = area[m];

    // IoUs with the un-voted selected box; max log weight per coordinate (m itself: log p = 0).
    T mx[4];
    for (int k = 0; k < 4; ++k) mx[k] = p.vote ? -a[k][m] : T(0);
    for (int64_t j = 0; j < remaining; ++j) {
      if (j == m) continue;
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
      for (int64_t j = 0; j < remaining; ++j) {
        if (j == m || !(o[j] > p.vote_iou_threshold)) continue;
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

    int64_t w = 0;
    best = -1;
    for (int64_t j = 0; j < remaining; ++j) {
      if (j == m) continue;
      T sj = s[j];
      if (p.soft) {
        if (o[j] > T(0)) sj = sj * box_exp(-(o[j] * o[j]) / p.soft_sigma);
      } else if (o[j] > p.iou_threshold) {
        continue;
      }
      if (!(sj >= p.score_threshold)) continue;
      for (int k = 0; k < 4; ++k) {
        c[k][w] = c[k][j];
        if (p.vote) a[k][w] = a[k][j];
      }
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
