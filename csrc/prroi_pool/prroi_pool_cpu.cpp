// CPU kernels of PrRoIPool. Per RoI, the tent weights of every bin along x and y are computed once
// (AxisWeights); each (RoI, channel) pair then costs two small separable passes:
//   rows[i][q] = sum_j F[i, j] Kx[q][j],   out[p][q] = sum_i Ky[p][i] rows[i][q] / area.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

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

template <typename T>
void forward_impl(
    const T* input, const T* rois, T* output, int64_t num_rois, int64_t batch_size,
    int64_t channels, int64_t height, int64_t width, T scale, int64_t ph, int64_t pw,
    bool aligned) {
  const auto geo = geometries(rois, num_rois, batch_size, scale, ph, pw, aligned);
  const auto wx = axis_weights(geo, true, pw, width);
  const auto wy = axis_weights(geo, false, ph, height);
  const int64_t bins = ph * pw;
  at::parallel_for(0, num_rois * channels, 8, [&](int64_t begin, int64_t end) {
    std::vector<T> rows;
    for (int64_t mc = begin; mc < end; ++mc) {
      const int64_t m = mc / channels, c = mc % channels;
      T* out = output + mc * bins;
      const RoiGeometry<T>& g = geo[m];
      std::fill(out, out + bins, T(0));
      if (!g.valid || wy.last[m] < wy.first[m] || wx.last[m] < wx.first[m]) continue;
      const T* plane = input + (g.batch * channels + c) * height * width;
      const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
      rows.assign(nrows * pw, T(0));
      for (int64_t r = 0; r < nrows; ++r) {
        const T* f = plane + (i0 + r) * width;
        for (int64_t q = 0; q < pw; ++q) {
          const int64_t k = m * pw + q;
          const T* w = wx.weights(m, q);
          const T* fq = f + wx.lo[k];
          T acc = T(0);
          for (int64_t t = 0; t < wx.n[k]; ++t) acc += fq[t] * w[t];
          rows[r * pw + q] = acc;
        }
      }
      for (int64_t p = 0; p < ph; ++p) {
        const int64_t k = m * ph + p;
        const T* w = wy.weights(m, p);
        T* o = out + p * pw;
        for (int64_t t = 0; t < wy.n[k]; ++t) {
          const T* row = rows.data() + (wy.lo[k] + t - i0) * pw;
          const T wt = w[t] * g.inv_area;
          for (int64_t q = 0; q < pw; ++q) o[q] += wt * row[q];
        }
      }
    }
  });
}

// d loss / d input. Parallel over (batch, channel) planes, so no two threads write one plane.
template <typename T>
void input_grad_impl(
    const T* grad, const std::vector<RoiGeometry<T>>& geo, const AxisWeights<T>& wx,
    const AxisWeights<T>& wy, T* grad_input, int64_t batch_size, int64_t channels,
    int64_t height, int64_t width, int64_t ph, int64_t pw) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  const int64_t bins = ph * pw;
  at::parallel_for(0, batch_size * channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> rows;
    for (int64_t bc = begin; bc < end; ++bc) {
      const int64_t b = bc / channels, c = bc % channels;
      T* dplane = grad_input + bc * height * width;
      for (int64_t m = 0; m < num_rois; ++m) {
        const RoiGeometry<T>& g = geo[m];
        if (!g.valid || g.batch != b || wy.last[m] < wy.first[m] || wx.last[m] < wx.first[m])
          continue;
        const T* go = grad + (m * channels + c) * bins;
        const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
        rows.assign(nrows * pw, T(0));
        for (int64_t p = 0; p < ph; ++p) {
          const int64_t k = m * ph + p;
          const T* w = wy.weights(m, p);
          const T* gp = go + p * pw;
          for (int64_t t = 0; t < wy.n[k]; ++t) {
            T* row = rows.data() + (wy.lo[k] + t - i0) * pw;
            const T wt = w[t] * g.inv_area;
            for (int64_t q = 0; q < pw; ++q) row[q] += wt * gp[q];
          }
        }
        for (int64_t r = 0; r < nrows; ++r) {
          T* d = dplane + (i0 + r) * width;
          for (int64_t q = 0; q < pw; ++q) {
            const int64_t k = m * pw + q;
            const T u = rows[r * pw + q];
            const T* w = wx.weights(m, q);
            T* dq = d + wx.lo[k];
            for (int64_t t = 0; t < wx.n[k]; ++t) dq[t] += u * w[t];
          }
        }
      }
    }
  });
}

// d loss / d rois. Parallel over RoIs; each RoI sums over its channels (spec §2.3). The line
// integrals along the PW+1 vertical and PH+1 horizontal bin edges are shared by adjacent bins.
template <typename T>
void rois_grad_impl(
    const T* grad, const T* input, const T* output, const std::vector<RoiGeometry<T>>& geo,
    const AxisWeights<T>& wx, const AxisWeights<T>& wy, T* grad_rois, int64_t channels,
    int64_t height, int64_t width, T scale, int64_t ph, int64_t pw) {
  const int64_t num_rois = static_cast<int64_t>(geo.size());
  const int64_t bins = ph * pw;
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> colv, rowv, vert((pw + 1) * ph), horz((ph + 1) * pw);
    std::vector<T> dax(pw), dbx(pw), day(ph), dby(ph);
    std::vector<Taps<T>> xt(pw + 1), yt(ph + 1);
    for (int64_t m = begin; m < end; ++m) {
      T* dr = grad_rois + 5 * m;
      std::fill(dr, dr + 5, T(0));
      const RoiGeometry<T>& g = geo[m];
      if (!g.valid || wy.last[m] < wy.first[m] || wx.last[m] < wx.first[m]) continue;
      const int64_t i0 = wy.first[m], nrows = wy.last[m] - i0 + 1;
      const int64_t j0 = wx.first[m], ncols = wx.last[m] - j0 + 1;
      for (int64_t e = 0; e <= pw; ++e) xt[e] = point_taps(bin_edge(g.x1, g.bw, e), width);
      for (int64_t e = 0; e <= ph; ++e) yt[e] = point_taps(bin_edge(g.y1, g.bh, e), height);
      std::fill(dax.begin(), dax.end(), T(0));
      std::fill(dbx.begin(), dbx.end(), T(0));
      std::fill(day.begin(), day.end(), T(0));
      std::fill(dby.begin(), dby.end(), T(0));
      colv.resize(nrows * (pw + 1));
      rowv.resize((ph + 1) * ncols);
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = input + (g.batch * channels + c) * height * width;
        const T* go = grad + (m * channels + c) * bins;
        const T* out = output + (m * channels + c) * bins;
        // f(edge_x, i) for every row i of the RoI, then integrate along y per bin row.
        for (int64_t r = 0; r < nrows; ++r) {
          const T* f = plane + (i0 + r) * width;
          for (int64_t e = 0; e <= pw; ++e)
            colv[r * (pw + 1) + e] = xt[e].w0 * f[xt[e].j0] + xt[e].w1 * f[xt[e].j1];
        }
        std::fill(vert.begin(), vert.end(), T(0));
        for (int64_t p = 0; p < ph; ++p) {
          const int64_t k = m * ph + p;
          const T* w = wy.weights(m, p);
          T* v = vert.data() + p * (pw + 1);
          for (int64_t t = 0; t < wy.n[k]; ++t) {
            const T* cv = colv.data() + (wy.lo[k] + t - i0) * (pw + 1);
            for (int64_t e = 0; e <= pw; ++e) v[e] += w[t] * cv[e];
          }
        }
        // f(j, edge_y) for every column j of the RoI, then integrate along x per bin column.
        for (int64_t e = 0; e <= ph; ++e) {
          const T* r0 = plane + yt[e].j0 * width + j0;
          const T* r1 = plane + yt[e].j1 * width + j0;
          T* rv = rowv.data() + e * ncols;
          for (int64_t j = 0; j < ncols; ++j) rv[j] = yt[e].w0 * r0[j] + yt[e].w1 * r1[j];
        }
        for (int64_t e = 0; e <= ph; ++e) {
          const T* rv = rowv.data() + e * ncols;
          for (int64_t q = 0; q < pw; ++q) {
            const int64_t k = m * pw + q;
            const T* w = wx.weights(m, q);
            const T* rq = rv + (wx.lo[k] - j0);
            T acc = T(0);
            for (int64_t t = 0; t < wx.n[k]; ++t) acc += w[t] * rq[t];
            horz[e * pw + q] = acc;
          }
        }
        for (int64_t p = 0; p < ph; ++p) {
          for (int64_t q = 0; q < pw; ++q) {
            const T gg = go[p * pw + q];
            const EdgeGrads<T> d = bin_edge_grads(
                out[p * pw + q], vert[p * (pw + 1) + q], vert[p * (pw + 1) + q + 1],
                horz[p * pw + q], horz[(p + 1) * pw + q], g.bw, g.bh, g.inv_area);
            dax[q] += gg * d.ax;
            dbx[q] += gg * d.bx;
            day[p] += gg * d.ay;
            dby[p] += gg * d.by;
          }
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

at::Tensor prroi_pool_forward_cpu(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, bool aligned) {
  check_inputs(input, rois, pooled_height, pooled_width);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  at::Tensor output =
      at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  if (output.numel() == 0 || input.numel() == 0) return output;
  const at::Tensor in = input.contiguous(), r = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_forward_cpu", [&] {
    forward_impl<scalar_t>(
        in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(), num_rois,
        in.size(0), channels, in.size(2), in.size(3), static_cast<scalar_t>(spatial_scale),
        pooled_height, pooled_width, aligned);
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_backward_cpu(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
    const at::Tensor& output, double spatial_scale, int64_t pooled_height, int64_t pooled_width,
    bool aligned) {
  check_inputs(input, rois, pooled_height, pooled_width);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  check_grad(grad, input, num_rois, pooled_height, pooled_width, "grad");
  check_grad(output, input, num_rois, pooled_height, pooled_width, "output");
  at::Tensor grad_input = at::zeros_like(input, at::MemoryFormat::Contiguous);
  at::Tensor grad_rois = at::zeros_like(rois, at::MemoryFormat::Contiguous);
  if (grad.numel() == 0 || input.numel() == 0) return {grad_input, grad_rois};
  const at::Tensor in = input.contiguous(), r = rois.contiguous();
  const at::Tensor g = grad.contiguous(), out = output.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_backward_cpu", [&] {
    using T = scalar_t;
    const T scale = static_cast<T>(spatial_scale);
    const auto geo = geometries(
        r.data_ptr<T>(), num_rois, in.size(0), scale, pooled_height, pooled_width, aligned);
    const auto wx = axis_weights(geo, true, pooled_width, in.size(3));
    const auto wy = axis_weights(geo, false, pooled_height, in.size(2));
    input_grad_impl<T>(
        g.data_ptr<T>(), geo, wx, wy, grad_input.data_ptr<T>(), in.size(0), channels, in.size(2),
        in.size(3), pooled_height, pooled_width);
    rois_grad_impl<T>(
        g.data_ptr<T>(), in.data_ptr<T>(), out.data_ptr<T>(), geo, wx, wy,
        grad_rois.data_ptr<T>(), channels, in.size(2), in.size(3), scale, pooled_height,
        pooled_width);
  });
  return {grad_input, grad_rois};
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("prroi_pool", &prroi_pool_forward_cpu);
  m.impl("_prroi_pool_backward", &prroi_pool_backward_cpu);
}

}  // namespace prroi
}  // namespace d2_boxunc
