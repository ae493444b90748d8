// Per-value math of the bucketed aLRP / AP Loss (docs/design.md#fast-exact-ranking), shared by the
// CPU and CUDA kernels. The band edges of the positives (s_i - delta, s_i + delta), sorted, cut the
// logit axis into buckets (bucket b holds edges[b-1] < v <= edges[b]); inside a bucket every
// smoothed step H(v - s_i) is 0, 1 or one affine function of v, so per-bucket counts and sums give
// the ranks and per-bucket (offset, slope) give the negatives' gradients.
//
// A value finds its bucket in O(1): [edges[0], edges[n-1]] is cut into `cells` equal grid cells,
// and band_cell() is monotone in v (a subtraction, a multiplication by a positive constant and a
// truncation each are, in any IEEE rounding). The table built from the edges with the same
// function therefore gives, for a value in cell c, the edges of earlier cells (all < v) and those
// of cell c itself (compared one by one; usually none or one); edges of later cells are > v.
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace d2_boxunc {

// Where the edges of one grid cell start in the sorted edges, and how many there are.
struct BandCell {
  int32_t first;
  int32_t num;
};

template <typename T>
HOST_DEVICE inline int64_t band_cell(T v, T lo, T scale, int64_t cells) {
  const T t = (v - lo) * scale;
  return t < T(1) ? 0 : (t >= static_cast<T>(cells) ? cells : static_cast<int64_t>(t));
}

// Number of edges < v (v finite). `edges` holds n + 1 values: the sorted edges and +inf.
template <typename T>
HOST_DEVICE inline int64_t band_bucket(
    T v, const T* edges, const BandCell* cells_info, T lo, T scale, int64_t cells) {
  const BandCell info = cells_info[band_cell(v, lo, scale, cells)];
  int64_t k = info.first;
  int64_t end = k + info.num;
  if (info.num > 8) {  // a crowded cell (tied positives): binary search
    while (k < end) {
      const int64_t mid = k + (end - k) / 2;
      if (edges[mid] < v) {
        k = mid + 1;
      } else {
        end = mid;
      }
    }
    return k;
  }
  while (k < end && edges[k] < v) ++k;
  return k;
}

// False for NaN and +-inf (without a library call, identical on host and device).
template <typename T>
HOST_DEVICE inline bool band_is_finite(T v) {
  return (v - v) == T(0);
}

// Gradient of one negative: sum_i coef_i H(v - s_i) = offset[b] + v * slope[b].
template <typename T>
HOST_DEVICE inline T band_negative_grad(T v, int64_t b, const double* offset, const double* slope) {
  return static_cast<T>(offset[b] + static_cast<double>(v) * slope[b]);
}

}  // namespace d2_boxunc
