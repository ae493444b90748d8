// CPU kernels of PrRoIPool. Per RoI, the tent weights of every bin along x and y are computed once
// (AxisWeights); each RoI then costs two small separable passes over channel vectors:
//   rows[i][q] = sum_j F[i, j] Kx[q][j],   out[p][q] = sum_i Ky[p][i] rows[i][q] / area,
// i.e. O((H_roi + 2 PH) (W_roi + 2 PW)) per channel instead of a sum per bin over its cells.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

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

// dst[b * ld + c] = src[c * bins + b] for c < nc, b < bins: one RoI's (channels, bins) block of a
// (K, C, PH, PW) tensor to (bins, channels) in a small buffer. By blocks of 16 channels, so that
// each destination cache line is written whole before the next: with C a power of two the rows
// of dst are 2^k bytes apart and would otherwise fight over a few L1 sets.
template <typename T>
inline void block_to_channels_last(const T* src, int64_t nc, int64_t bins, T* dst, int64_t ld) {
  constexpr int64_t kLine = 64 / sizeof(T);
  for (int64_t c0 = 0; c0 < nc; c0 += kLine) {
    const int64_t c1 = std::min(nc, c0 + kLine);
    for (int64_t b = 0; b < bins; ++b) {
      for (int64_t c = c0; c < c1; ++c) dst[b * ld + c] = src[c * bins + b];
    }
  }
}

// y += a * x over n contiguous values (the channel vector); the compiler vectorises it.
template <typename T>
inline void axpy(T* __restrict__ y, const T* __restrict__ x, T a, int64_t n) {
  for (int64_t k = 0; k < n; ++k) y[k] += a * x[k];
}

// All kernels work on channels-last copies (N, H, W, C) of the map: every sample read or written
// is then a contiguous channel vector, instead of one scattered cache line per channel. The
// forward accumulates each RoI in a small channels-last buffer and writes it out as (C, PH, PW);
// the backward reads grad and output as (K, C, PH, PW) and transposes one RoI's block at a time
// in cache (two whole-tensor transposes of 25 MB each cost more, mostly in fresh pages).
template <typename T>
void forward_impl(
    const T* input, const std::vector<RoiGeometry<T>>& geo, const AxisWeights<T>& wx,
    const AxisWeights<T>& wy, T* output, int64_t channels, int64_t height, int64_t width,
    int64_t ph, int64_t pw) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  const int64_t C = channels, bins = ph * pw;
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> rows, acc(bins * C);
    for (int64_t m = begin; m < end; ++m) {
      const RoiGeometry<T>& g = geo[m];
      T* out = output + m * C * bins;  // (C, PH, PW)
      if (!g.valid || wy.last[m] < wy.first[m] || wx.last[m] < wx.first[m]) {
        std::fill(out, out + C * bins, T(0));
        continue;
      }
      const T* image = input + g.batch * height * width * C;
      const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
      // rows[r][q][c] = sum_j F[i0 + r, j, c] Kx[q][j]
      rows.assign(nrows * pw * C, T(0));
      for (int64_t r = 0; r < nrows; ++r) {
        const T* f = image + (i0 + r) * width * C;
        for (int64_t q = 0; q < pw; ++q) {
          const int64_t k = m * pw + q;
          const T* w = wx.weights(m, q);
          T* a = rows.data() + (r * pw + q) * C;
          for (int64_t t = 0; t < wx.n[k]; ++t) axpy(a, f + (wx.lo[k] + t) * C, w[t], C);
        }
      }
      // acc[p][q][c] = sum_i Ky[p][i] rows[i][q][c] / area
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t p = 0; p < ph; ++p) {
        const int64_t k = m * ph + p;
        const T* w = wy.weights(m, p);
        for (int64_t t = 0; t < wy.n[k]; ++t) {
          const T* row = rows.data() + (wy.lo[k] + t - i0) * pw * C;
          axpy(acc.data() + p * pw * C, row, w[t] * g.inv_area, pw * C);
        }
      }
      for (int64_t b = 0; b < bins; ++b) {
        for (int64_t c = 0; c < C; ++c) out[c * bins + b] = acc[b * C + c];
      }
    }
  });
}

// d loss / d input. Parallel over channel ranges, so no two threads write one value. `grad` is
// (K, C, PH, PW) as autograd hands it over; each RoI's block for the thread's channels is
// transposed in cache to (PH, PW, channels) first.
template <typename T>
void input_grad_impl(
    const T* grad, const std::vector<RoiGeometry<T>>& geo, const AxisWeights<T>& wx,
    const AxisWeights<T>& wy, T* grad_input, int64_t channels, int64_t height, int64_t width,
    int64_t ph, int64_t pw) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  const int64_t C = channels;
  at::parallel_for(0, C, 16, [&](int64_t c0, int64_t c1) {
    const int64_t nc = c1 - c0, bins = ph * pw;
    std::vector<T> rows, gl(bins * nc);
    for (int64_t m = 0; m < num_rois; ++m) {
      const RoiGeometry<T>& g = geo[m];
      if (!g.valid || wy.last[m] < wy.first[m] || wx.last[m] < wx.first[m]) continue;
      block_to_channels_last(grad + (m * C + c0) * bins, nc, bins, gl.data(), nc);
      const T* gm = gl.data();
      T* dimage = grad_input + g.batch * height * width * C + c0;
      const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
      // rows[r][q][c] = sum_p Ky[p][i0 + r] g[p][q][c] / area
      rows.assign(nrows * pw * nc, T(0));
      for (int64_t p = 0; p < ph; ++p) {
        const int64_t k = m * ph + p;
        const T* w = wy.weights(m, p);
        for (int64_t t = 0; t < wy.n[k]; ++t) {
          T* row = rows.data() + (wy.lo[k] + t - i0) * pw * nc;
          const T wt = w[t] * g.inv_area;
          for (int64_t q = 0; q < pw; ++q) axpy(row + q * nc, gm + (p * pw + q) * nc, wt, nc);
        }
      }
      // dF[i0 + r][j][c] += sum_q rows[r][q][c] Kx[q][j]
      for (int64_t r = 0; r < nrows; ++r) {
        T* d = dimage + (i0 + r) * width * C;
        for (int64_t q = 0; q < pw; ++q) {
          const int64_t k = m * pw + q;
          const T* u = rows.data() + (r * pw + q) * nc;
          const T* w = wx.weights(m, q);
          for (int64_t t = 0; t < wx.n[k]; ++t) axpy(d + (wx.lo[k] + t) * C, u, w[t], nc);
        }
      }
    }
  });
}

// d loss / d rois. Parallel over RoIs; each RoI sums over its channels (spec §2.3). The line
// integrals along the PW+1 vertical and PH+1 horizontal bin edges are shared by adjacent bins.
// `grad` and `output` are (K, C, PH, PW); each RoI's blocks are transposed in cache first.
template <typename T>
void rois_grad_impl(
    const T* grad, const T* input, const T* output, const std::vector<RoiGeometry<T>>& geo,
    const AxisWeights<T>& wx, const AxisWeights<T>& wy, T* grad_rois, int64_t channels,
    int64_t height, int64_t width, T scale, int64_t ph, int64_t pw) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  const int64_t C = channels;
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> colv, rowv, vert, horz;
    std::vector<T> dax(pw), dbx(pw), day(ph), dby(ph);
    std::vector<Taps<T>> xt(pw + 1), yt(ph + 1);
    const int64_t bins = ph * pw;
    std::vector<T> gl(bins * C), ol(bins * C);  // this RoI's grad and output, (PH, PW, C)
    for (int64_t m = begin; m < end; ++m) {
      T* dr = grad_rois + 5 * m;
      const RoiGeometry<T>& g = geo[m];
      if (!g.valid || wy.last[m] < wy.first[m] || wx.last[m] < wx.first[m]) continue;
      block_to_channels_last(grad + m * C * bins, C, bins, gl.data(), C);
      block_to_channels_last(output + m * C * bins, C, bins, ol.data(), C);
      const T* image = input + g.batch * height * width * C;
      const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
      const int64_t j0 = wx.first[m], ncols = wx.last[m] - j0 + 1;
      for (int64_t e = 0; e <= pw; ++e) xt[e] = point_taps(bin_edge(g.x1, g.bw, e), width);
      for (int64_t e = 0; e <= ph; ++e) yt[e] = point_taps(bin_edge(g.y1, g.bh, e), height);
      // colv[r][e][c] = f(x_e, i0 + r): the map interpolated at the vertical edges, per row.
      colv.assign(nrows * (pw + 1) * C, T(0));
      for (int64_t r = 0; r < nrows; ++r) {
        const T* f = image + (i0 + r) * width * C;
        for (int64_t e = 0; e <= pw; ++e) {
          T* cv = colv.data() + (r * (pw + 1) + e) * C;
          axpy(cv, f + xt[e].j0 * C, xt[e].w0, C);
          axpy(cv, f + xt[e].j1 * C, xt[e].w1, C);
        }
      }
      // vert[p][e][c] = integral of f(x_e, y) over bin row p.
      vert.assign(ph * (pw + 1) * C, T(0));
      for (int64_t p = 0; p < ph; ++p) {
        const int64_t k = m * ph + p;
        const T* w = wy.weights(m, p);
        for (int64_t t = 0; t < wy.n[k]; ++t) {
          axpy(vert.data() + p * (pw + 1) * C, colv.data() + (wy.lo[k] + t - i0) * (pw + 1) * C,
               w[t], (pw + 1) * C);
        }
      }
      // rowv[e][j][c] = f(j0 + j, y_e), then horz[e][q][c] = integral of f(x, y_e) over bin q.
      rowv.assign((ph + 1) * ncols * C, T(0));
      horz.assign((ph + 1) * pw * C, T(0));
      for (int64_t e = 0; e <= ph; ++e) {
        T* rv = rowv.data() + e * ncols * C;
        axpy(rv, image + (yt[e].j0 * width + j0) * C, yt[e].w0, ncols * C);
        axpy(rv, image + (yt[e].j1 * width + j0) * C, yt[e].w1, ncols * C);
        for (int64_t q = 0; q < pw; ++q) {
          const int64_t k = m * pw + q;
          const T* w = wx.weights(m, q);
          T* h = horz.data() + (e * pw + q) * C;
          for (int64_t t = 0; t < wx.n[k]; ++t) axpy(h, rv + (wx.lo[k] + t - j0) * C, w[t], C);
        }
      }
      std::fill(dax.begin(), dax.end(), T(0));
      std::fill(dbx.begin(), dbx.end(), T(0));
      std::fill(day.begin(), day.end(), T(0));
      std::fill(dby.begin(), dby.end(), T(0));
      for (int64_t p = 0; p < ph; ++p) {
        for (int64_t q = 0; q < pw; ++q) {
          const T* go = gl.data() + (p * pw + q) * C;
          const T* out = ol.data() + (p * pw + q) * C;
          const T* left = vert.data() + (p * (pw + 1) + q) * C;
          const T* right = left + C;
          const T* top = horz.data() + (p * pw + q) * C;
          const T* bottom = horz.data() + ((p + 1) * pw + q) * C;
          T sax = T(0), sbx = T(0), say = T(0), sby = T(0);
          for (int64_t c = 0; c < C; ++c) {
            const EdgeGrads<T> d = bin_edge_grads(
                out[c], left[c], right[c], top[c], bottom[c], g.bw, g.bh, g.inv_area);
            sax += go[c] * d.ax;
            sbx += go[c] * d.bx;
            say += go[c] * d.ay;
            sby += go[c] * d.by;
          }
          dax[q] += sax;
          dbx[q] += sbx;
          day[p] += say;
          dby[p] += sby;
        }
      }
      T d1 = T(0), d2 = T(0), d3 = T(0), d4 = T(0);
      for (int64_t q = 0; q < pw; ++q) edges_to_corners(dax[q], dbx[q], q, pw, &d1, &d3);
      for (int64_t p = 0; p < ph; ++p) edges_to_corners(day[p], dby[p], p, ph, &d2, &d4);
      dr[1] = d1 * scale;
      dr[2] = d2 * scale;
      dr[3] = d3 * scale;
      dr[4] = d4 * scale;
    }
  });
}

// dst[b][j][i] = src[b][i][j] for `batch` row-major (rows x cols) matrices, in 32 x 32 tiles
// (both sides then touch whole cache lines; a plain strided copy misses on every element).
template <typename T>
void transpose_batched(const T* src, T* dst, int64_t batch, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t col_tiles = (cols + kTile - 1) / kTile;
  at::parallel_for(0, batch * row_tiles * col_tiles, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      // destination-major order: each thread writes (and first touches) one contiguous range
      const int64_t b = t / (row_tiles * col_tiles);
      const int64_t j0 = (t / row_tiles % col_tiles) * kTile;
      const int64_t i0 = (t % row_tiles) * kTile;
      const int64_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
      const T* s = src + b * rows * cols;
      T* d = dst + b * rows * cols;
      for (int64_t j = j0; j < j1; ++j) {
        for (int64_t i = i0; i < i1; ++i) d[j * rows + i] = s[i * cols + j];
      }
    }
  });
}

// at::empty for the map-sized workspaces (a feature map and its gradient in the other layout,
// tens of MB each). Fresh allocations of that size are new pages, and faulting them in 4 KiB at a
// time cost as much as the transpose that fills them; on Linux the 2 MiB-aligned interior is
// marked for transparent huge pages before first touch (what torch's THP_MEM_ALLOC_ENABLE does
// for every allocation). Elsewhere, or when THP is off, this is plain at::empty.
at::Tensor empty_large(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + t.nbytes();
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (last > first + kHuge) {
    madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // a hint: errors ignored
  }
#endif
  return t;
}

// (K, C, PH, PW) or (N, C, H, W) -> a contiguous channels-last (K, PH, PW, C) / (N, H, W, C)
// tensor: free if the input already is channels-last, else a tiled transpose.
at::Tensor channels_last(const at::Tensor& t) {
  at::Tensor nhwc = t.permute({0, 2, 3, 1});
  if (nhwc.is_contiguous()) return nhwc;
  const at::Tensor src = t.contiguous();
  at::Tensor out = empty_large(nhwc.sizes(), t.options());
  const int64_t n = t.size(0), c = t.size(1), hw = t.size(2) * t.size(3);
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "prroi_channels_last", [&] {
    transpose_batched<scalar_t>(src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, c, hw);
  });
  return out;
}

// The inverse: a contiguous (N, H, W, C) tensor -> a contiguous (N, C, H, W) one.
at::Tensor channels_first(const at::Tensor& nhwc) {
  const int64_t n = nhwc.size(0), h = nhwc.size(1), w = nhwc.size(2), c = nhwc.size(3);
  at::Tensor out = empty_large({n, c, h, w}, nhwc.options());
  AT_DISPATCH_FLOATING_TYPES(nhwc.scalar_type(), "prroi_channels_first", [&] {
    transpose_batched<scalar_t>(nhwc.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, h * w, c);
  });
  return out;
}

at::Tensor prroi_pool_forward_cpu(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, bool aligned) {
  check_inputs(input, rois, pooled_height, pooled_width);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  if (num_rois == 0 || input.numel() == 0) {
    return at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  }
  const at::Tensor in = channels_last(input), r = rois.contiguous();
  at::Tensor out = empty_large({num_rois, channels, pooled_height, pooled_width}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_forward_cpu", [&] {
    using T = scalar_t;
    const auto geo = geometries(
        r.data_ptr<T>(), num_rois, input.size(0), static_cast<T>(spatial_scale), pooled_height,
        pooled_width, aligned);
    const auto wx = axis_weights(geo, true, pooled_width, input.size(3));
    const auto wy = axis_weights(geo, false, pooled_height, input.size(2));
    forward_impl<T>(
        in.data_ptr<T>(), geo, wx, wy, out.data_ptr<T>(), channels, input.size(2), input.size(3),
        pooled_height, pooled_width);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_backward_cpu(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
    const at::Tensor& output, double spatial_scale, int64_t pooled_height, int64_t pooled_width,
    bool aligned, bool input_grad) {
  check_inputs(input, rois, pooled_height, pooled_width);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  check_grad(grad, input, num_rois, pooled_height, pooled_width, "grad");
  check_grad(output, input, num_rois, pooled_height, pooled_width, "output");
  at::Tensor grad_rois = at::zeros_like(rois, at::MemoryFormat::Contiguous);
  const at::Tensor no_input_grad = at::empty({0}, input.options());
  if (num_rois == 0 || input.numel() == 0) {
    return {input_grad ? at::zeros_like(input, at::MemoryFormat::Contiguous) : no_input_grad,
            grad_rois};
  }
  const at::Tensor in = channels_last(input), r = rois.contiguous();
  const at::Tensor g = grad.contiguous(), out = output.contiguous();
  at::Tensor grad_in = no_input_grad;  // (N, H, W, C)
  if (input_grad) grad_in = empty_large(in.sizes(), in.options()).zero_();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_backward_cpu", [&] {
    using T = scalar_t;
    const T scale = static_cast<T>(spatial_scale);
    const auto geo = geometries(
        r.data_ptr<T>(), num_rois, input.size(0), scale, pooled_height, pooled_width, aligned);
    const auto wx = axis_weights(geo, true, pooled_width, input.size(3));
    const auto wy = axis_weights(geo, false, pooled_height, input.size(2));
    if (input_grad) {
      input_grad_impl<T>(
          g.data_ptr<T>(), geo, wx, wy, grad_in.data_ptr<T>(), channels, input.size(2),
          input.size(3), pooled_height, pooled_width);
    }
    rois_grad_impl<T>(
        g.data_ptr<T>(), in.data_ptr<T>(), out.data_ptr<T>(), geo, wx, wy,
        grad_rois.data_ptr<T>(), channels, input.size(2), input.size(3), scale, pooled_height,
        pooled_width);
  });
  if (!input_grad) return {no_input_grad, grad_rois};
  return {channels_first(grad_in), grad_rois};
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("prroi_pool", &prroi_pool_forward_cpu);
  m.impl("_prroi_pool_backward", &prroi_pool_backward_cpu);
}

}  // namespace prroi
}  // namespace d2_boxunc
