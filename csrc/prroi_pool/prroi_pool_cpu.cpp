// CPU kernels of PrRoIPool. Per RoI, the tent weights of every bin along x and y are computed once
// (AxisWeights); each RoI then costs two small separable passes over channel vectors:
//   rows[i][q] = sum_j F[i, j] Kx[q][j],   out[p][q] = sum_i Ky[p][i] rows[i][q] / area,
// i.e. O((H_roi + 2 PH) (W_roi + 2 PW)) per channel instead of a sum per bin over its cells.
// Work is split by (image, 16-channel group), see kGroup.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/huge_pages.h"
#include "common/platform.h"
#include "common/simd.h"
#include "prroi_pool/prroi_pool_checks.h"
#include "prroi_pool/prroi_pool_kernel.h"

namespace d2_boxunc {
namespace prroi {
namespace {

// Tent weights of all bins of all RoIs along one axis. Bin (m, q) has weights w[off + k] for the
// samples lo + k, k < n; the bins of one RoI cover the sample range [first, last].
template <typename T>
struct AxisWeights {
  int64_t bins = 0;
  std::vector<int64_t> lo, n, off, first, last;
  std::vector<T> w;

  const T* weights(int64_t m, int64_t q) const { return w.data() + off[m * bins + q]; }
};

template <typename T>
AxisWeights<T> axis_weights(
    const std::vector<RoiGeometry<T>>& geo, bool along_x, int64_t bins, int64_t size) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  AxisWeights<T> a;
  a.bins = bins;
  a.lo.assign(num_rois * bins, 0);
  a.n.assign(num_rois * bins, 0);
  a.off.assign(num_rois * bins, 0);
  a.first.assign(num_rois, 0);
  a.last.assign(num_rois, -1);
  int64_t total = 0;
  for (int64_t m = 0; m < num_rois; ++m) {
    const RoiGeometry<T>& g = geo[m];
    if (!g.valid) continue;
    const T start = along_x ? g.x1 : g.y1;
    const T step = along_x ? g.bw : g.bh;
    int64_t first = size, last = -1;
    for (int64_t q = 0; q < bins; ++q) {
      int64_t lo, hi;
      support(bin_edge(start, step, q), bin_edge(start, step, q + 1), size, &lo, &hi);
      const int64_t k = m * bins + q;
      a.lo[k] = lo;
      a.n[k] = std::max<int64_t>(hi - lo + 1, 0);
      a.off[k] = total;
      total += a.n[k];
      if (a.n[k] > 0) {
        first = std::min(first, lo);
        last = std::max(last, hi);
      }
    }
    a.first[m] = first;
    a.last[m] = last;
  }
  a.w.assign(total, T(0));
  at::parallel_for(0, num_rois, 16, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const RoiGeometry<T>& g = geo[m];
      if (!g.valid) continue;
      const T start = along_x ? g.x1 : g.y1;
      const T step = along_x ? g.bw : g.bh;
      for (int64_t q = 0; q < bins; ++q) {
        const int64_t k = m * bins + q;
        const T a0 = bin_edge(start, step, q), b0 = bin_edge(start, step, q + 1);
        for (int64_t t = 0; t < a.n[k]; ++t) a.w[a.off[k] + t] = tent_weight(a0, b0, a.lo[k] + t);
      }
    }
  });
  return a;
}

template <typename T>
std::vector<RoiGeometry<T>> geometries(
    const T* rois, int64_t num_rois, int64_t batch_size, T scale, int64_t ph, int64_t pw,
    bool aligned) {
  std::vector<RoiGeometry<T>> geo(num_rois);
  for (int64_t m = 0; m < num_rois; ++m) {
    geo[m] = roi_geometry(rois + 5 * m, scale, ph, pw, aligned);
    const T b = rois[5 * m];
    // Out-of-range batch indices are rejected by the Python wrapper; here they pool nothing.
    if (!(b >= T(0) && b < T(batch_size))) geo[m].valid = false;
  }
  return geo;
}

// dst[j * dst_ld + i] = src[i * src_ld + j] for i < rows, j < cols, in 16 x 16 tiles (whose source
// and destination lines stay in L1) of 4 x 4 SIMD transposes.
template <typename T>
inline void transpose(
    const T* src, int64_t rows, int64_t cols, int64_t src_ld, T* dst, int64_t dst_ld) {
  constexpr int64_t kTile = 16;
  for (int64_t i0 = 0; i0 < rows; i0 += kTile) {
    const int64_t i1 = std::min(rows, i0 + kTile), i4 = i0 + (i1 - i0) / 4 * 4;
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t j1 = std::min(cols, j0 + kTile), j4 = j0 + (j1 - j0) / 4 * 4;
      for (int64_t i = i0; i < i4; i += 4) {
        for (int64_t j = j0; j < j4; j += 4) {
          simd::transpose4x4(src + i * src_ld + j, src_ld, dst + j * dst_ld + i, dst_ld);
        }
      }
      for (int64_t i = i0; i < i1; ++i) {  // the ragged right and bottom edges
        for (int64_t j = (i < i4 ? j4 : j0); j < j1; ++j) dst[j * dst_ld + i] = src[i * src_ld + j];
      }
    }
  }
}

// A (channels, bins) block, e.g. one RoI's of a (K, C, PH, PW) tensor -> (bins, channels).
template <typename T>
inline void block_to_channels_last(const T* src, int64_t nc, int64_t bins, T* dst) {
  transpose(src, nc, bins, bins, dst, nc);
}

// The inverse, (bins, channels) -> (channels, bins).
template <typename T>
inline void block_to_channels_first(const T* src, int64_t nc, int64_t bins, T* dst) {
  transpose(src, bins, nc, nc, dst, bins);
}

// y[k] = (Accumulate ? y[k] : 0) + sum_t (w[t] * scale) * x[t * stride + k] for k < len, in
// blocks of SIMD vectors held in registers across the taps: one load and store of y per block
// instead of one per tap. The sum runs in the order of t, like a chain of axpys.
template <bool Accumulate, int64_t kRegs = 8, typename T>
inline void weighted_sum(
    T* D2B_RESTRICT y, const T* D2B_RESTRICT x, int64_t stride, const T* D2B_RESTRICT w, int64_t n,
    int64_t len, T scale = T(1)) {
  using simd::Vec;
  constexpr int64_t kLanes = simd::kLanes<T>, kBlock = kLanes * kRegs;
  int64_t k = 0;
  for (; k + kBlock <= len; k += kBlock) {
    Vec<T> acc[kRegs];
    D2B_UNROLL(8)
    for (int64_t r = 0; r < kRegs; ++r) {
      acc[r] = Accumulate ? simd::load(y + k + r * kLanes) : Vec<T>{};
    }
    for (int64_t t = 0; t < n; ++t) {
      const T wt = w[t] * scale;
      const T* xt = x + t * stride + k;
      D2B_UNROLL(8)
      for (int64_t r = 0; r < kRegs; ++r) acc[r] += wt * simd::load(xt + r * kLanes);
    }
    D2B_UNROLL(8)
    for (int64_t r = 0; r < kRegs; ++r) simd::store(y + k + r * kLanes, acc[r]);
  }
  for (; k + kLanes <= len; k += kLanes) {
    Vec<T> acc = Accumulate ? simd::load(y + k) : Vec<T>{};
    for (int64_t t = 0; t < n; ++t) acc += (w[t] * scale) * simd::load(x + t * stride + k);
    simd::store(y + k, acc);
  }
  for (; k < len; ++k) {
    T acc = Accumulate ? y[k] : T(0);
    for (int64_t t = 0; t < n; ++t) acc += (w[t] * scale) * x[t * stride + k];
    y[k] = acc;
  }
}

// y = a * x0 + b * x1 over len values: the map interpolated between two taps.
template <typename T>
inline void two_taps(T* D2B_RESTRICT y, const T* x0, T a, const T* x1, T b, int64_t len) {
  for (int64_t k = 0; k < len; ++k) y[k] = a * x0[k] + b * x1[k];
}

// The gather form of the tent weights along one axis, for all RoIs: sample `first[m] + s` of RoI m
// is covered by the bins [begin[i], begin[i] + count[i]) with weights dense[i * bins + q], where
// i = off[m] + s. Bins are ordered along the axis and their supports are intervals, so the bins
// covering a sample are contiguous.
template <typename T>
struct AxisSamples {
  std::vector<int64_t> off, begin, count;
  std::vector<T> dense;
};

template <typename T>
AxisSamples<T> axis_samples(const AxisWeights<T>& a, int64_t num_rois) {
  const int64_t bins = a.bins;
  AxisSamples<T> s;
  s.off.assign(num_rois + 1, 0);
  for (int64_t m = 0; m < num_rois; ++m) {
    s.off[m + 1] = s.off[m] + std::max<int64_t>(a.last[m] - a.first[m] + 1, 0);
  }
  const int64_t total = s.off[num_rois];
  std::vector<int64_t> end(total, 0);
  s.begin.assign(total, bins);
  s.count.assign(total, 0);
  s.dense.assign(total * bins, T(0));
  for (int64_t m = 0; m < num_rois; ++m) {
    for (int64_t q = 0; q < bins; ++q) {
      const int64_t k = m * bins + q;
      const T* w = a.weights(m, q);
      for (int64_t t = 0; t < a.n[k]; ++t) {
        const int64_t i = s.off[m] + a.lo[k] + t - a.first[m];
        s.dense[i * bins + q] = w[t];
        s.begin[i] = std::min(s.begin[i], q);
        end[i] = std::max(end[i], q + 1);
      }
    }
  }
  for (int64_t i = 0; i < total; ++i) {
    s.count[i] = std::max<int64_t>(end[i] - s.begin[i], 0);
    if (s.count[i] == 0) s.begin[i] = 0;
  }
  return s;
}

// Offset of bin k's first sample from `first`, or 0 for a bin that covers no sample.
template <typename T>
inline int64_t first_tap(const AxisWeights<T>& a, int64_t k, int64_t first) {
  return a.n[k] > 0 ? a.lo[k] - first : 0;
}

// Dot products of g with four vectors over n values, one SIMD accumulator each (the summation
// order differs from a plain loop only by rounding).
template <typename T>
inline void dot4(
    const T* D2B_RESTRICT g, const T* D2B_RESTRICT a, const T* D2B_RESTRICT b,
    const T* D2B_RESTRICT c, const T* D2B_RESTRICT d, int64_t n, T* out) {
  using simd::Vec;
  constexpr int64_t kLanes = simd::kLanes<T>;
  Vec<T> sa{}, sb{}, sc{}, sd{};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    const Vec<T> gk = simd::load(g + k);
    sa += gk * simd::load(a + k);
    sb += gk * simd::load(b + k);
    sc += gk * simd::load(c + k);
    sd += gk * simd::load(d + k);
  }
  T ra = simd::sum<T>(sa), rb = simd::sum<T>(sb), rc = simd::sum<T>(sc), rd = simd::sum<T>(sd);
  for (; k < n; ++k) {
    ra += g[k] * a[k];
    rb += g[k] * b[k];
    rc += g[k] * c[k];
    rd += g[k] * d[k];
  }
  out[0] = ra;
  out[1] = rb;
  out[2] = rc;
  out[3] = rd;
}

// Whether RoI m pools anything: a valid bin geometry that meets the map along both axes.
template <typename T>
inline bool pools_something(
    const std::vector<RoiGeometry<T>>& geo, const AxisWeights<T>& wx, const AxisWeights<T>& wy,
    int64_t m) {
  return geo[m].valid && wy.last[m] >= wy.first[m] && wx.last[m] >= wx.first[m];
}

// The RoIs of each image that pool something, in input order.
template <typename T>
std::vector<std::vector<int64_t>> rois_by_image(
    const std::vector<RoiGeometry<T>>& geo, const AxisWeights<T>& wx, const AxisWeights<T>& wy,
    int64_t batch) {
  std::vector<std::vector<int64_t>> rois_of(batch);
  for (int64_t m = 0; m < static_cast<int64_t>(geo.size()); ++m) {
    if (pools_something(geo, wx, wy, m)) rois_of[geo[m].batch].push_back(m);
  }
  return rois_of;
}

// All three kernels work on one image and 16 channels at a time (a work item, kGroup), on a
// channels-last (H, W, 16) slice of the map that stays in L2 (850 KB for a 100 x 136 map): every
// sample read or written is then a short contiguous channel vector, and the RoIs of the image,
// which overlap, reuse the slice from cache instead of reading the whole (H, W, C) map.
constexpr int64_t kGroup = 16;

// SIMD registers that hold one sample's kGroup channels (weighted_sum's block for them).
template <typename T>
constexpr int64_t kGroupRegs = kGroup / simd::kLanes<T>;

// The map samples of one work item: sample (i, j), channel c0 + c is at data[(i * W + j) * step + c].
// A channels-last input is read in place (step C); an NCHW one is first transposed into `slice`.
template <typename T>
struct GroupMap {
  const T* data;
  int64_t step;
};

template <typename T>
GroupMap<T> group_map(
    const T* input, bool channels_last, int64_t n, int64_t c0, int64_t nc, int64_t channels,
    int64_t hw, std::vector<T>* slice) {
  if (channels_last) return {input + n * hw * channels + c0, channels};
  slice->resize(hw * kGroup);
  block_to_channels_last(input + (n * channels + c0) * hw, nc, hw, slice->data());
  return {slice->data(), nc};
}

// Forward. Per RoI and group, the pooled (PH, PW, 16) block is written out as (16, PH, PW).
template <typename T>
void forward_impl(
    const T* input, bool channels_last, const std::vector<RoiGeometry<T>>& geo,
    const AxisWeights<T>& wx, const AxisWeights<T>& wy, T* output, int64_t batch,
    int64_t channels, int64_t height, int64_t width, int64_t ph, int64_t pw) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  const int64_t C = channels, bins = ph * pw, hw = height * width;
  const int64_t groups = (C + kGroup - 1) / kGroup;
  const auto rois_of = rois_by_image(geo, wx, wy, batch);
  for (int64_t m = 0; m < num_rois; ++m) {
    if (!pools_something(geo, wx, wy, m)) {
      std::fill(output + m * C * bins, output + (m + 1) * C * bins, T(0));
    }
  }
  at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> slice, rows, acc(bins * kGroup);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / groups, c0 = (item % groups) * kGroup;
      const int64_t nc = std::min(kGroup, C - c0);
      if (rois_of[n].empty()) continue;
      const GroupMap<T> map = group_map(input, channels_last, n, c0, nc, C, hw, &slice);
      for (const int64_t m : rois_of[n]) {
        const RoiGeometry<T>& g = geo[m];
        const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
        // rows[r][q][c] = sum_j F[i0 + r, j, c] Kx[q][j]
        rows.resize(nrows * pw * nc);
        for (int64_t r = 0; r < nrows; ++r) {
          const T* f = map.data + (i0 + r) * width * map.step;
          for (int64_t q = 0; q < pw; ++q) {
            const int64_t k = m * pw + q;
            weighted_sum<false, kGroupRegs<T>>(
                rows.data() + (r * pw + q) * nc, f + first_tap(wx, k, 0) * map.step, map.step,
                wx.weights(m, q), wx.n[k], nc);
          }
        }
        // acc[p][q][c] = sum_i Ky[p][i] rows[i][q][c] / area
        for (int64_t p = 0; p < ph; ++p) {
          const int64_t k = m * ph + p;
          weighted_sum<false>(
              acc.data() + p * pw * nc, rows.data() + first_tap(wy, k, i0) * pw * nc, pw * nc,
              wy.weights(m, p), wy.n[k], pw * nc, g.inv_area);
        }
        block_to_channels_first(acc.data(), nc, bins, output + (m * C + c0) * bins);
      }
    }
  });
}

// Adds RoI m's share of d loss / d input for one group into `dmap`, the group's (H, W, nc)
// gradient. `gl` is the RoI's grad block as (PH, PW, nc). Gather form: each output row sums the
// bin rows that cover it, then each map sample the bin columns that cover it, so every value is
// written once per RoI.
template <typename T>
void add_input_grad(
    const T* gl, int64_t m, const RoiGeometry<T>& g, const AxisWeights<T>& wx,
    const AxisWeights<T>& wy, const AxisSamples<T>& sx, const AxisSamples<T>& sy, int64_t nc,
    int64_t width, int64_t ph, int64_t pw, T* dmap, std::vector<T>* rows) {
  const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
  const int64_t j0 = wx.first[m], ncols = wx.last[m] - j0 + 1;
  // rows[r][q][c] = sum_p Ky[p][i0 + r] g[p][q][c] / area
  rows->resize(nrows * pw * nc);
  for (int64_t r = 0; r < nrows; ++r) {
    const int64_t i = sy.off[m] + r, p0 = sy.begin[i];
    weighted_sum<false>(
        rows->data() + r * pw * nc, gl + p0 * pw * nc, pw * nc, sy.dense.data() + i * ph + p0,
        sy.count[i], pw * nc, g.inv_area);
  }
  // dF[i0 + r][j0 + s][c] += sum_q rows[r][q][c] Kx[q][j0 + s]
  for (int64_t r = 0; r < nrows; ++r) {
    T* d = dmap + ((i0 + r) * width + j0) * nc;
    const T* u = rows->data() + r * pw * nc;
    for (int64_t s = 0; s < ncols; ++s) {
      const int64_t i = sx.off[m] + s, q0 = sx.begin[i];
      weighted_sum<true, kGroupRegs<T>>(
          d + s * nc, u + q0 * nc, nc, sx.dense.data() + i * pw + q0, sx.count[i], nc);
    }
  }
}

// Buffers of add_box_grad, reused across the RoIs of a work item.
template <typename T>
struct BoxGradScratch {
  std::vector<T> colv, rowv, vert, horz, gout, dax, dbx, day, dby;
  std::vector<Taps<T>> xt, yt;
};

// Adds RoI m's corner gradients (x1, y1, x2, y2; docs/design.md#prroipool-gradients) from one
// group's channels to pr[0..3].
// `gl` is the grad block as (PH, PW, nc); `gm` and `om` are the grad and output blocks as
// (nc, PH, PW), in which sum_c grad * output is taken. The line integrals along the PW+1 vertical
// and PH+1 horizontal bin edges are shared by adjacent bins. bin_edge_grads is linear in (out,
// left, right, top, bottom), so it is applied once per bin to their dot products with the bin's
// grad over the channels.
template <typename T>
void add_box_grad(
    const T* gl, const T* gm, const T* om, int64_t m, const RoiGeometry<T>& g,
    const AxisWeights<T>& wx, const AxisWeights<T>& wy, const GroupMap<T>& map, int64_t nc,
    int64_t height, int64_t width, int64_t ph, int64_t pw, T* pr, BoxGradScratch<T>* s) {
  const int64_t bins = ph * pw, ss = map.step;
  s->gout.assign(bins, T(0));
  for (int64_t c = 0; c < nc; ++c) {
    for (int64_t b = 0; b < bins; ++b) s->gout[b] += gm[c * bins + b] * om[c * bins + b];
  }
  const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
  const int64_t j0 = wx.first[m], ncols = wx.last[m] - j0 + 1;
  s->xt.resize(pw + 1);
  s->yt.resize(ph + 1);
  for (int64_t e = 0; e <= pw; ++e) s->xt[e] = point_taps(bin_edge(g.x1, g.bw, e), width);
  for (int64_t e = 0; e <= ph; ++e) s->yt[e] = point_taps(bin_edge(g.y1, g.bh, e), height);
  // colv[r][e][c] = f(x_e, i0 + r): the map interpolated at the vertical edges, per row.
  s->colv.resize(nrows * (pw + 1) * nc);
  for (int64_t r = 0; r < nrows; ++r) {
    const T* f = map.data + (i0 + r) * width * ss;
    for (int64_t e = 0; e <= pw; ++e) {
      const Taps<T>& t = s->xt[e];
      two_taps(s->colv.data() + (r * (pw + 1) + e) * nc, f + t.j0 * ss, t.w0, f + t.j1 * ss, t.w1,
               nc);
    }
  }
  // vert[p][e][c] = integral of f(x_e, y) over bin row p.
  s->vert.resize(ph * (pw + 1) * nc);
  for (int64_t p = 0; p < ph; ++p) {
    const int64_t k = m * ph + p;
    weighted_sum<false>(
        s->vert.data() + p * (pw + 1) * nc, s->colv.data() + first_tap(wy, k, i0) * (pw + 1) * nc,
        (pw + 1) * nc, wy.weights(m, p), wy.n[k], (pw + 1) * nc);
  }
  // rowv[j][c] = f(j0 + j, y_e), then horz[e][q][c] = integral of f(x, y_e) over bin q.
  s->rowv.resize(ncols * nc);
  s->horz.resize((ph + 1) * pw * nc);
  for (int64_t e = 0; e <= ph; ++e) {
    const Taps<T>& t = s->yt[e];
    const T* r0 = map.data + (t.j0 * width + j0) * ss;
    const T* r1 = map.data + (t.j1 * width + j0) * ss;
    for (int64_t j = 0; j < ncols; ++j) {
      two_taps(s->rowv.data() + j * nc, r0 + j * ss, t.w0, r1 + j * ss, t.w1, nc);
    }
    for (int64_t q = 0; q < pw; ++q) {
      const int64_t k = m * pw + q;
      weighted_sum<false, kGroupRegs<T>>(
          s->horz.data() + (e * pw + q) * nc, s->rowv.data() + first_tap(wx, k, j0) * nc, nc,
          wx.weights(m, q), wx.n[k], nc);
    }
  }
  s->dax.assign(pw, T(0));
  s->dbx.assign(pw, T(0));
  s->day.assign(ph, T(0));
  s->dby.assign(ph, T(0));
  for (int64_t p = 0; p < ph; ++p) {
    for (int64_t q = 0; q < pw; ++q) {
      const T* left = s->vert.data() + (p * (pw + 1) + q) * nc;
      T line[4];  // sum_c grad * (left, right, top, bottom)
      dot4(gl + (p * pw + q) * nc, left, left + nc, s->horz.data() + (p * pw + q) * nc,
           s->horz.data() + ((p + 1) * pw + q) * nc, nc, line);
      const EdgeGrads<T> d = bin_edge_grads(
          s->gout[p * pw + q], line[0], line[1], line[2], line[3], g.bw, g.bh, g.inv_area);
      s->dax[q] += d.ax;
      s->dbx[q] += d.bx;
      s->day[p] += d.ay;
      s->dby[p] += d.by;
    }
  }
  for (int64_t q = 0; q < pw; ++q) edges_to_corners(s->dax[q], s->dbx[q], q, pw, &pr[0], &pr[2]);
  for (int64_t p = 0; p < ph; ++p) edges_to_corners(s->day[p], s->dby[p], p, ph, &pr[1], &pr[3]);
}

// Backward: d loss / d input into the (N, C, H, W) `grad_input` and d loss / d rois into
// `grad_rois` (K, 5), each skipped when null. Per work item, each RoI's grad block is transposed
// once for both. The input gradient of an item is summed in a zeroed (H, W, 16) slice, then
// written out as 16 planes. The box gradient of each (RoI, group) goes to
// part[(m * groups + group) * 4 + k], and the groups are summed in order afterwards, so no result
// depends on the thread count.
template <typename T>
void backward_impl(
    const T* grad, const T* input, bool channels_last, const T* output,
    const std::vector<RoiGeometry<T>>& geo, const AxisWeights<T>& wx, const AxisWeights<T>& wy,
    T* grad_input, T* grad_rois, int64_t batch, int64_t channels, int64_t height, int64_t width,
    T scale, int64_t ph, int64_t pw) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  const int64_t C = channels, bins = ph * pw, hw = height * width;
  const int64_t groups = (C + kGroup - 1) / kGroup;
  const auto rois_of = rois_by_image(geo, wx, wy, batch);
  AxisSamples<T> sx, sy;
  if (grad_input) {
    sx = axis_samples(wx, num_rois);
    sy = axis_samples(wy, num_rois);
  }
  std::vector<T> part(grad_rois ? num_rois * groups * 4 : 0, T(0));
  at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> map_slice, dmap(grad_input ? hw * kGroup : 0), gl(bins * kGroup), rows;
    BoxGradScratch<T> scratch;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / groups, group = item % groups, c0 = group * kGroup;
      const int64_t nc = std::min(kGroup, C - c0);
      if (grad_input) std::fill(dmap.begin(), dmap.begin() + hw * nc, T(0));
      if (!rois_of[n].empty()) {
        GroupMap<T> map{nullptr, 0};
        if (grad_rois) map = group_map(input, channels_last, n, c0, nc, C, hw, &map_slice);
        for (const int64_t m : rois_of[n]) {
          const T* gm = grad + (m * C + c0) * bins;
          block_to_channels_last(gm, nc, bins, gl.data());
          if (grad_input) {
            add_input_grad(
                gl.data(), m, geo[m], wx, wy, sx, sy, nc, width, ph, pw, dmap.data(), &rows);
          }
          if (grad_rois) {
            add_box_grad(
                gl.data(), gm, output + (m * C + c0) * bins, m, geo[m], wx, wy, map, nc, height,
                width, ph, pw, part.data() + (m * groups + group) * 4, &scratch);
          }
        }
      }
      if (grad_input) block_to_channels_first(dmap.data(), nc, hw, grad_input + (n * C + c0) * hw);
    }
  });
  if (!grad_rois) return;
  for (int64_t m = 0; m < num_rois; ++m) {
    T d[4] = {T(0), T(0), T(0), T(0)};
    for (int64_t group = 0; group < groups; ++group) {
      for (int64_t k = 0; k < 4; ++k) d[k] += part[(m * groups + group) * 4 + k];
    }
    for (int64_t k = 0; k < 4; ++k) grad_rois[5 * m + 1 + k] = d[k] * scale;
  }
}

// True for a dense channels-last (N, H, W, C) layout, which the kernels read in place.
bool is_channels_last(const at::Tensor& t) {
  return t.permute({0, 2, 3, 1}).is_contiguous();
}

at::Tensor prroi_pool_forward_cpu(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, bool aligned) {
  check_inputs(input, rois, pooled_height, pooled_width);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  if (num_rois == 0 || input.numel() == 0) {
    return at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  }
  const bool nhwc = is_channels_last(input);
  const at::Tensor in = nhwc ? input : input.contiguous(), r = rois.contiguous();
  at::Tensor out = empty_large({num_rois, channels, pooled_height, pooled_width}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_forward_cpu", [&] {
    using T = scalar_t;
    const auto geo = geometries(
        r.data_ptr<T>(), num_rois, input.size(0), static_cast<T>(spatial_scale), pooled_height,
        pooled_width, aligned);
    const auto wx = axis_weights(geo, true, pooled_width, input.size(3));
    const auto wy = axis_weights(geo, false, pooled_height, input.size(2));
    forward_impl<T>(
        in.data_ptr<T>(), nhwc, geo, wx, wy, out.data_ptr<T>(), input.size(0), channels,
        input.size(2), input.size(3), pooled_height, pooled_width);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_backward_cpu(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
    const at::Tensor& output, double spatial_scale, int64_t pooled_height, int64_t pooled_width,
    bool aligned, bool input_grad, bool rois_grad) {
  check_inputs(input, rois, pooled_height, pooled_width);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  check_grad(grad, input, num_rois, pooled_height, pooled_width, "grad");
  check_grad(output, input, num_rois, pooled_height, pooled_width, "output");
  at::Tensor grad_rois = rois_grad ? at::zeros_like(rois, at::MemoryFormat::Contiguous)
                                   : at::empty({0}, rois.options());
  const at::Tensor no_input_grad = at::empty({0}, input.options());
  if (num_rois == 0 || input.numel() == 0) {
    return {input_grad ? at::zeros_like(input, at::MemoryFormat::Contiguous) : no_input_grad,
            grad_rois};
  }
  if (!input_grad && !rois_grad) return {no_input_grad, grad_rois};
  // The map itself and the output are read only by the box gradient.
  const bool nhwc = is_channels_last(input);
  const at::Tensor in = rois_grad && !nhwc ? input.contiguous() : input, r = rois.contiguous();
  const at::Tensor g = grad.contiguous(), out = rois_grad ? output.contiguous() : output;
  // Every value of grad_in is written by backward_impl.
  at::Tensor grad_in = input_grad ? empty_large(input.sizes(), input.options()) : no_input_grad;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_backward_cpu", [&] {
    using T = scalar_t;
    const T scale = static_cast<T>(spatial_scale);
    const auto geo = geometries(
        r.data_ptr<T>(), num_rois, input.size(0), scale, pooled_height, pooled_width, aligned);
    const auto wx = axis_weights(geo, true, pooled_width, input.size(3));
    const auto wy = axis_weights(geo, false, pooled_height, input.size(2));
    backward_impl<T>(
        g.data_ptr<T>(), in.data_ptr<T>(), nhwc, out.data_ptr<T>(), geo, wx, wy,
        input_grad ? grad_in.data_ptr<T>() : nullptr,
        rois_grad ? grad_rois.data_ptr<T>() : nullptr, input.size(0), channels, input.size(2),
        input.size(3), scale, pooled_height, pooled_width);
  });
  return {grad_in, grad_rois};
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("prroi_pool", &prroi_pool_forward_cpu);
  m.impl("_prroi_pool_backward", &prroi_pool_backward_cpu);
}

}  // namespace prroi
}  // namespace d2_boxunc
