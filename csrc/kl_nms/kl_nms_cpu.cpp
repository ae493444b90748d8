// CPU KL-Loss NMS on a BoxGrid (see common/box_grid.h): a round visits the boxes of the cells
// that can overlap the selection, in one pass for the IoUs, then lets the selection and the
// overlapping boxes vote (vote_box of common/vote.h, the vote the var_voting op runs too), then
// decays or suppresses them. A vote or suppression threshold below 0 involves every box, and then
// every live cell is visited.
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "common/box_grid.h"
#include "common/box_utils.h"
#include "common/nms_common.h"
#include "common/vec_exp.h"
#include "common/vote.h"
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
  std::vector<int64_t> ids;
  for (int64_t i : members) {
    if (scores[i] >= p.score_threshold) ids.push_back(i);
  }
  BoxGrid<T> g(boxes, scores, ids);
  const int64_t n = g.num_slots();
  std::vector<T> a;  // log-variances per slot, 4 consecutive values
  if (p.vote) {
    a.resize(4 * n);
    for (int64_t q = 0; q < n; ++q) std::copy_n(log_vars + 4 * g.id[q], 4, a.begin() + 4 * q);
  }
  std::vector<T> o(n);  // IoU of each visited slot with the selection
  std::vector<int64_t> cells, hits(n), voters(p.vote ? n : 0);
  std::vector<T> log_p(p.vote ? n : 0);  // per voter
  // Voters have IoU > vote threshold; soft decay changes boxes with IoU > 0, hard suppression
  // those with IoU > iou_threshold. A negative threshold reaches boxes disjoint from the selection.
  const T decay_t = p.soft ? T(0) : p.iou_threshold;
  const T t = p.vote ? box_min(p.vote_iou_threshold, decay_t) : decay_t;
  for (int64_t remaining = n; remaining > 0;) {
    const int64_t m = g.argmax();
    keep.push_back(g.id[m]);
    kept_scores.push_back(g.s[m]);
    g.take(m);
    --remaining;
    const int64_t k = g.overlaps_of(m, t, cells, o.data(), hits.data());

    const T mc[4] = {g.x1[m], g.y1[m], g.x2[m], g.y2[m]};
    if (p.vote) {
      // Voters (vote_box of common/vote.h): the selected box itself, with log p = 0 even when its
      // area is 0, and the live boxes with IoU above the vote threshold.
      int64_t nv = 0;
      for (int64_t h = 0; h < k; ++h) {  // branch-free compaction
        voters[nv] = hits[h];
        nv += o[hits[h]] > p.vote_iou_threshold;
      }
      for (int64_t v = 0; v < nv; ++v) log_p[v] = vote_log_p(o[voters[v]], p.sigma_t);
      const auto each_voter = [&](const auto& f) {
        f(T(0), &a[4 * m], mc);
        for (int64_t v = 0; v < nv; ++v) {
          const int64_t j = voters[v];
          const T coord[4] = {g.x1[j], g.y1[j], g.x2[j], g.y2[j]};
          f(log_p[v], &a[4 * j], coord);
        }
      };
      T out[4];
      vote_box<T>(each_voter, [](const T* x, T* e) { exp4(x, e); }, out);
      voted.insert(voted.end(), out, out + 4);
    } else {
      voted.insert(voted.end(), mc, mc + 4);
    }

    for (int64_t h = 0; h < k; ++h) {
      const int64_t j = hits[h];
      bool survives;
      if (p.soft) {
        const T sj = g.s[j] * box_exp(-(o[j] * o[j]) / p.soft_sigma);  // o == 0: exp(-0) = 1
        survives = sj >= p.score_threshold;
        if (survives) g.s[j] = sj;
      } else {
        survives = !(o[j] > p.iou_threshold);
      }
      if (!survives) {
        g.kill(j);
        --remaining;
      }
    }
    g.refresh_cells_of(hits.data(), k);
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
