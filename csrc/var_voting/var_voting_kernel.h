// Variance voting of one kept box over a candidate set, shared by the CPU and CUDA kernels.
#pragma once

#include "common/box_utils.h"

namespace d2_boxunc {

// out[k] = sum_i w_i[k] * cand_i[k] / sum_i w_i[k] over candidates with IoU(kept, cand_i) > thr,
// with log w_i[k] = -(1 - IoU)^2 / sigma_t - log_var_i[k], normalised in the log domain (the max
// is subtracted before exp) so that extreme variances cannot overflow. No voter: out = kept.
template <typename T>
HOST_DEVICE inline void vote_one_box(
    const T* kept,  // (4,)
    const T* cand,  // (n, 4)
    const T* log_var,  // (n, 4)
    int64_t n,
    T sigma_t,
    T iou_threshold,
    T* out) {  // (4,)
  const T area_k = box_area(kept[0], kept[1], kept[2], kept[3]);
  T mx[4];
  bool any = false;
  for (int64_t i = 0; i < n; ++i) {
    const T* b = cand + 4 * i;
    const T o = box_iou(
        kept[0], kept[1], kept[2], kept[3], area_k, b[0], b[1], b[2], b[3],
        box_area(b[0], b[1], b[2], b[3]));
    if (!(o > iou_threshold)) continue;
    const T lp = vote_log_p(o, sigma_t);
    for (int k = 0; k < 4; ++k) {
      const T lw = lp - log_var[4 * i + k];
      mx[k] = any ? box_max(mx[k], lw) : lw;
    }
    any = true;
  }
  if (!any) {
    for (int k = 0; k < 4; ++k) out[k] = kept[k];
    return;
  }
  T num[4] = {0, 0, 0, 0};
  T den[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    const T* b = cand + 4 * i;
    const T o = box_iou(
        kept[0], kept[1], kept[2], kept[3], area_k, b[0], b[1], b[2], b[3],
        box_area(b[0], b[1], b[2], b[3]));
    if (!(o > iou_threshold)) continue;
    const T lp = vote_log_p(o, sigma_t);
    for (int k = 0; k < 4; ++k) {
      const T e = box_exp(lp - log_var[4 * i + k] - mx[k]);
      num[k] += e * b[k];
      den[k] += e;
    }
  }
  for (int k = 0; k < 4; ++k) out[k] = num[k] / den[k];
}

}  // namespace d2_boxunc
