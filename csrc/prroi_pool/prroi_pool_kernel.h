// Per-bin math of Precise RoI Pooling, shared by the CPU and CUDA kernels (docs/design.md#prroipool
// and its definition and gradient sections).
//
// The feature map is the zero-padded bilinear interpolant of its samples: sample (i, j) sits at
// the continuous point (x=j, y=i) and contributes the tent k(x-j) k(y-i). Integrating a tent over
// [a, b] gives K(j; a, b) = Phi(b - j) - Phi(a - j), so a bin integral is separable:
//   out = sum_i sum_j F[i, j] K(i; ay, by) K(j; ax, bx) / (bw * bh).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace d2_boxunc {
namespace prroi {

// Integral of the tent k(t) = max(0, 1 - |t|) from -inf to u.
template <typename T>
HOST_DEVICE inline T tent_cdf(T u) {
  if (u <= T(-1)) return T(0);
  if (u >= T(1)) return T(1);
  if (u <= T(0)) {
    const T v = T(1) + u;
    return T(0.5) * v * v;
  }
  const T v = T(1) - u;
  return T(1) - T(0.5) * v * v;
}

// K(j; a, b): integral over [a, b] of the tent centred on sample j.
template <typename T>
HOST_DEVICE inline T tent_weight(T a, T b, int64_t j) {
  return tent_cdf(b - T(j)) - tent_cdf(a - T(j));
}

// The tent itself, k(t).
template <typename T>
HOST_DEVICE inline T tent(T t) {
  const T v = T(1) - (t < T(0) ? -t : t);
  return v > T(0) ? v : T(0);
}

// Clamp to [lo, hi]; NaN maps to lo, so loop bounds derived from it stay finite.
template <typename T>
HOST_DEVICE inline T clamp_finite(T v, T lo, T hi) {
  return v > lo ? (v < hi ? v : hi) : lo;
}

// Samples j in [0, size) with K(j; a, b) != 0 are lo <= j <= hi (empty when hi < lo).
// K is nonzero iff (a, b) meets (j-1, j+1), i.e. floor(a) <= j <= ceil(b).
template <typename T>
HOST_DEVICE inline void support(T a, T b, int64_t size, int64_t* lo, int64_t* hi) {
  const T a_c = clamp_finite(a, T(-2), T(size + 1));
  const T b_c = clamp_finite(b, T(-2), T(size + 1));
  const int64_t l = static_cast<int64_t>(floor(a_c));
  const int64_t h = static_cast<int64_t>(ceil(b_c));
  *lo = l > 0 ? l : 0;
  *hi = h < size - 1 ? h : size - 1;
}

// The two samples j0, j0+1 whose tents cover the point x, and their weights (zero-padded:
// a tap outside [0, size) gets weight 0 and index 0, so it can be read safely).
template <typename T>
struct Taps {
  int64_t j0, j1;
  T w0, w1;
};

template <typename T>
HOST_DEVICE inline Taps<T> point_taps(T x, int64_t size) {
  Taps<T> t;
  const T x_c = clamp_finite(x, T(-2), T(size + 1));
  const int64_t j = static_cast<int64_t>(floor(x_c));
  const T frac = x_c - T(j);
  const bool in0 = j >= 0 && j < size;
  const bool in1 = j + 1 >= 0 && j + 1 < size;
  t.j0 = in0 ? j : 0;
  t.j1 = in1 ? j + 1 : 0;
  t.w0 = in0 ? T(1) - frac : T(0);
  t.w1 = in1 ? frac : T(0);
  return t;
}

// Geometry of one RoI in feature-map coordinates: start corner and bin size.
// `valid` is false for a bin of zero area (zero-width, inverted) or non-finite coordinates.
template <typename T>
struct RoiGeometry {
  int64_t batch;
  T x1, y1, bw, bh, inv_area;
  bool valid;
};

template <typename T>
HOST_DEVICE inline RoiGeometry<T> roi_geometry(
    const T* roi, T spatial_scale, int64_t pooled_height, int64_t pooled_width, bool aligned) {
  RoiGeometry<T> g;
  const T offset = aligned ? T(0.5) : T(0);
  g.batch = static_cast<int64_t>(roi[0]);
  g.x1 = roi[1] * spatial_scale - offset;
  g.y1 = roi[2] * spatial_scale - offset;
  const T x2 = roi[3] * spatial_scale - offset;
  const T y2 = roi[4] * spatial_scale - offset;
  const T w = x2 - g.x1;
  const T h = y2 - g.y1;
  // `w > 0` is false for NaN; the range check rejects inf (inf - inf is NaN, x - inf is -inf).
  const T big = T(1e30);
  const bool finite = (w < big) && (h < big) && (g.x1 > -big) && (big > g.x1) &&
      (g.y1 > -big) && (big > g.y1);
  g.valid = (w > T(0)) && (h > T(0)) && finite;
  g.bw = g.valid ? w / T(pooled_width) : T(0);
  g.bh = g.valid ? h / T(pooled_height) : T(0);
  g.inv_area = g.valid ? T(1) / (g.bw * g.bh) : T(0);
  return g;
}

// Bin edges: bin q spans [x1 + q*bw, x1 + (q+1)*bw].
template <typename T>
HOST_DEVICE inline T bin_edge(T start, T bin_size, int64_t q) {
  return start + T(q) * bin_size;
}

// Exact integral of the interpolant over [ax, bx] x [ay, by] on one H x W plane (no 1/area).
// Sample (i, j) of the plane is plane[i * sh + j * sw]: any memory layout (NCHW: sh = W, sw = 1;
// channels-last: sh = W * C, sw = C). The sum is the separable one of the CPU kernel:
// sum_i Ky(i) (sum_j F[i, j] Kx(j)).
template <typename T>
HOST_DEVICE inline T bin_integral(
    const T* plane, int64_t height, int64_t width, int64_t sh, int64_t sw, T ax, T bx, T ay,
    T by) {
  int64_t i_lo, i_hi, j_lo, j_hi;
  support(ay, by, height, &i_lo, &i_hi);
  support(ax, bx, width, &j_lo, &j_hi);
  T sum = T(0);
  for (int64_t i = i_lo; i <= i_hi; ++i) {
    const T wy = tent_weight(ay, by, i);
    T row = T(0);
    for (int64_t j = j_lo; j <= j_hi; ++j) {
      row += plane[i * sh + j * sw] * tent_weight(ax, bx, j);
    }
    sum += wy * row;
  }
  return sum;
}

// Integral of the interpolant along the vertical segment x = x0, y in [ay, by].
template <typename T>
HOST_DEVICE inline T vertical_line_integral(
    const T* plane, int64_t height, int64_t width, int64_t sh, int64_t sw, T x0, T ay, T by) {
  const Taps<T> tx = point_taps(x0, width);
  int64_t i_lo, i_hi;
  support(ay, by, height, &i_lo, &i_hi);
  T sum = T(0);
  for (int64_t i = i_lo; i <= i_hi; ++i) {
    const T* row = plane + i * sh;
    sum += tent_weight(ay, by, i) * (tx.w0 * row[tx.j0 * sw] + tx.w1 * row[tx.j1 * sw]);
  }
  return sum;
}

// Integral of the interpolant along the horizontal segment y = y0, x in [ax, bx].
template <typename T>
HOST_DEVICE inline T horizontal_line_integral(
    const T* plane, int64_t height, int64_t width, int64_t sh, int64_t sw, T y0, T ax, T bx) {
  const Taps<T> ty = point_taps(y0, height);
  int64_t j_lo, j_hi;
  support(ax, bx, width, &j_lo, &j_hi);
  const T* r0 = plane + ty.j0 * sh;
  const T* r1 = plane + ty.j1 * sh;
  T sum = T(0);
  for (int64_t j = j_lo; j <= j_hi; ++j) {
    sum += tent_weight(ax, bx, j) * (ty.w0 * r0[j * sw] + ty.w1 * r1[j * sw]);
  }
  return sum;
}

// d out / d (ax, bx, ay, by) of one bin, from its output value and the four edge integrals
// (docs/design.md#prroipool-gradients): moving an edge outwards adds the edge's line integral and
// grows the area.
template <typename T>
struct EdgeGrads {
  T ax, bx, ay, by;
};

template <typename T>
HOST_DEVICE inline EdgeGrads<T> bin_edge_grads(
    T out, T left, T right, T top, T bottom, T bw, T bh, T inv_area) {
  EdgeGrads<T> d;
  d.ax = (bh * out - left) * inv_area;
  d.bx = (right - bh * out) * inv_area;
  d.ay = (bw * out - top) * inv_area;
  d.by = (bottom - bw * out) * inv_area;
  return d;
}

// Chain rule from bin edges to RoI corners for bin index q of n bins along one axis:
// a = X1 (1 - q/n) + X2 q/n, b = X1 (1 - (q+1)/n) + X2 (q+1)/n. Adds to *d1, *d2.
template <typename T>
HOST_DEVICE inline void edges_to_corners(T d_a, T d_b, int64_t q, int64_t n, T* d1, T* d2) {
  const T ta = T(q) / T(n);
  const T tb = T(q + 1) / T(n);
  *d1 += d_a * (T(1) - ta) + d_b * (T(1) - tb);
  *d2 += d_a * ta + d_b * tb;
}

}  // namespace prroi
}  // namespace d2_boxunc
