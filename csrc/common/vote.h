// Variance voting (KL-Loss, He et al., CVPR 2019, Eq. 11) of one kept box: the one implementation
// of the vote. The var_voting op runs it per kept box over a candidate set (var_voting_grid.h: the
// CPU kernel and the CUDA kernel body), the KL-NMS loop per selected box over its voters
// (kl_nms_cpu.cpp; the CUDA registration of kl_nms runs that loop on the host).
//
// It works with log variances alpha = log sigma^2 (what the KL head predicts and KL-NMS is given);
// var_voting, which is given sigma^2, takes the log once at the boundary (var_voting_grid).
#pragma once

#include "common/box_utils.h"

namespace d2_boxunc {

// Log of the IoU-closeness weight p = exp(-(1 - IoU)^2 / sigma_t) of a voter.
template <typename T>
HOST_DEVICE inline T vote_log_p(T iou, T sigma_t) {
  return -((T(1) - iou) * (T(1) - iou)) / sigma_t;
}

// out[k] = sum_i w_i[k] x_i[k] / sum_i w_i[k] over the voters i, log w_i[k] = log p_i - alpha_i[k].
// The weights are normalised in the log domain (the per-coordinate max of log w is subtracted
// before exp, so the largest weight is 1) and variances from 1e-30 to 1e30 cannot overflow.
//   voters(f): calls f(log_p_i, alpha_i, x_i) (alpha_i, x_i: 4 values each) for every voter, in
//              the same order on both of its calls (one for the max, one for the sums);
//   exp4(in, out): out[k] = exp(in[k]) for k < 4 (box_exp per value in kernel bodies; the CPU
//              KL-NMS loop passes the vector exp of common/vec_exp.h).
// Returns false, leaving out untouched, when there is no voter.
template <typename T, typename Voters, typename Exp4>
HOST_DEVICE inline bool vote_box(const Voters& voters, const Exp4& exp4, T* out) {
  T mx[4] = {0, 0, 0, 0};  // set by the first voter
  bool any = false;
  voters([&](T log_p, const T* alpha, const T*) {
    for (int k = 0; k < 4; ++k) {
      const T lw = log_p - alpha[k];
      mx[k] = any ? box_max(mx[k], lw) : lw;
    }
    any = true;
  });
  if (!any) return false;
  T num[4] = {0, 0, 0, 0};
  T den[4] = {0, 0, 0, 0};
  voters([&](T log_p, const T* alpha, const T* x) {
    T arg[4], w[4];
    for (int k = 0; k < 4; ++k) arg[k] = log_p - alpha[k] - mx[k];
    exp4(arg, w);
    for (int k = 0; k < 4; ++k) {
      num[k] += w[k] * x[k];
      den[k] += w[k];
    }
  });
  for (int k = 0; k < 4; ++k) out[k] = num[k] / den[k];
  return true;
}

}  // namespace d2_boxunc
