// Per-thread bodies of the CUDA PrRoIPool kernels (one thread per output element (RoI, channel,
// bin)), shared with the CPU grid launcher of the `_prroi_pool_*_gridcpu` test ops, and the host
// code around the launch (layout, allocation), shared the same way (docs/gpu.md).
//
// The bin integral is the separable sum of the CPU kernel, sum_i Ky(i) sum_j F[i, j] Kx(j), with
// the same tent weights (prroi_pool_kernel.h); the CPU kernel shares the row sums between the bins
// of a RoI, a thread here recomputes those of its own bin. The map is read in the layout it comes
// in (NCHW or channels-last, through its strides): no copy for either.
#pragma once

#include <ATen/ATen.h>

#include "common/grid.h"
#include "prroi_pool/prroi_pool_checks.h"
#include "prroi_pool/prroi_pool_kernel.h"

namespace d2_boxunc {
namespace prroi {

template <typename T>
struct PrroiArgs {
  const T* input;
  const T* rois;
  int64_t batch_size, channels, height, width;
  int64_t s_n, s_c, s_h, s_w;  // strides of input, and of grad_input, in elements
  T scale;
  int64_t ph, pw;
  bool aligned;
  T* output;  // forward
  const T* grad;  // backward: d loss / d output, (K, C, PH, PW) contiguous
  const T* out;  // backward: the forward's output, (K, C, PH, PW) contiguous
  T* grad_input;  // backward, or nullptr
  T* grad_rois;  // backward, (K, 5) contiguous, or nullptr
};

// Geometry of the bin of output element `index`; false when the bin pools nothing.
template <typename T>
HOST_DEVICE inline bool locate(
    int64_t index, const PrroiArgs<T>& a, RoiGeometry<T>* g, int64_t* m, int64_t* c, int64_t* p,
    int64_t* q) {
  *q = index % a.pw;
  *p = (index / a.pw) % a.ph;
  *c = (index / (a.pw * a.ph)) % a.channels;
  *m = index / (a.pw * a.ph * a.channels);
  const T* roi = a.rois + 5 * (*m);
  *g = roi_geometry(roi, a.scale, a.ph, a.pw, a.aligned);
  return g->valid && roi[0] >= T(0) && roi[0] < T(a.batch_size);
}

// Forward body: output[index] = the mean of the interpolant over the bin.
template <typename T>
HOST_DEVICE inline void forward_element(int64_t index, const PrroiArgs<T>& a) {
  RoiGeometry<T> g;
  int64_t m, c, p, q;
  T value = T(0);
  if (locate(index, a, &g, &m, &c, &p, &q)) {
    const T* plane = a.input + g.batch * a.s_n + c * a.s_c;
    const T ax = bin_edge(g.x1, g.bw, q), bx = bin_edge(g.x1, g.bw, q + 1);
    const T ay = bin_edge(g.y1, g.bh, p), by = bin_edge(g.y1, g.bh, p + 1);
    value = bin_integral(plane, a.height, a.width, a.s_h, a.s_w, ax, bx, ay, by) * g.inv_area;
  }
  a.output[index] = value;
}

// Backward body: scatters output element `index`'s share of d loss / d input and d loss / d rois
// with atomic adds into the gradients asked for (non-null pointers).
template <typename T>
HOST_DEVICE inline void backward_element(int64_t index, const PrroiArgs<T>& a) {
  RoiGeometry<T> g;
  int64_t m, c, p, q;
  if (!locate(index, a, &g, &m, &c, &p, &q)) return;
  const T gg = a.grad[index];
  if (gg == T(0)) return;
  const int64_t offset = g.batch * a.s_n + c * a.s_c;
  const T* plane = a.input + offset;
  const T ax = bin_edge(g.x1, g.bw, q), bx = bin_edge(g.x1, g.bw, q + 1);
  const T ay = bin_edge(g.y1, g.bh, p), by = bin_edge(g.y1, g.bh, p + 1);

  if (a.grad_input != nullptr) {
    T* dplane = a.grad_input + offset;
    int64_t i_lo, i_hi, j_lo, j_hi;
    support(ay, by, a.height, &i_lo, &i_hi);
    support(ax, bx, a.width, &j_lo, &j_hi);
    const T scaled = gg * g.inv_area;
    for (int64_t i = i_lo; i <= i_hi; ++i) {
      const T wy = tent_weight(ay, by, i) * scaled;
      for (int64_t j = j_lo; j <= j_hi; ++j) {
        grid_atomic_add(dplane + i * a.s_h + j * a.s_w, wy * tent_weight(ax, bx, j));
      }
    }
  }
  if (a.grad_rois == nullptr) return;

  const int64_t H = a.height, W = a.width, sh = a.s_h, sw = a.s_w;
  const EdgeGrads<T> d = bin_edge_grads(
      a.out[index], vertical_line_integral(plane, H, W, sh, sw, ax, ay, by),
      vertical_line_integral(plane, H, W, sh, sw, bx, ay, by),
      horizontal_line_integral(plane, H, W, sh, sw, ay, ax, bx),
      horizontal_line_integral(plane, H, W, sh, sw, by, ax, bx), g.bw, g.bh, g.inv_area);
  T d1 = T(0), d2 = T(0), d3 = T(0), d4 = T(0);
  edges_to_corners(d.ax, d.bx, q, a.pw, &d1, &d3);
  edges_to_corners(d.ay, d.by, p, a.ph, &d2, &d4);
  T* dr = a.grad_rois + 5 * m;
  grid_atomic_add(dr + 1, gg * a.scale * d1);
  grid_atomic_add(dr + 2, gg * a.scale * d2);
  grid_atomic_add(dr + 3, gg * a.scale * d3);
  grid_atomic_add(dr + 4, gg * a.scale * d4);
}

// --- host side of a launch, shared by the CUDA op and the grid-CPU test op ---------------------

// The map as the kernels read it: NCHW-contiguous and channels-last inputs as they are, any other
// layout made NCHW-contiguous.
inline at::Tensor readable_map(const at::Tensor& input) {
  if (input.is_contiguous() || input.is_contiguous(at::MemoryFormat::ChannelsLast)) return input;
  return input.contiguous();
}

template <typename T>
PrroiArgs<T> make_args(
    const at::Tensor& in, const at::Tensor& r, double spatial_scale, int64_t ph, int64_t pw,
    bool aligned) {
  PrroiArgs<T> a{};
  a.input = in.data_ptr<T>();
  a.rois = r.data_ptr<T>();
  a.batch_size = in.size(0);
  a.channels = in.size(1);
  a.height = in.size(2);
  a.width = in.size(3);
  a.s_n = in.stride(0);
  a.s_c = in.stride(1);
  a.s_h = in.stride(2);
  a.s_w = in.stride(3);
  a.scale = static_cast<T>(spatial_scale);
  a.ph = ph;
  a.pw = pw;
  a.aligned = aligned;
  return a;
}

// `launch(total, args)` runs forward_element for every index < total (a CUDA launch, or
// cpu_grid_launch).
template <typename Launch>
at::Tensor forward_grid(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t ph,
    int64_t pw, bool aligned, Launch&& launch) {
  check_inputs(input, rois, ph, pw);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  at::Tensor output = at::zeros({num_rois, channels, ph, pw}, input.options());
  if (output.numel() == 0 || input.numel() == 0) return output;
  const at::Tensor in = readable_map(input), r = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_forward_grid", [&] {
    PrroiArgs<scalar_t> a = make_args<scalar_t>(in, r, spatial_scale, ph, pw, aligned);
    a.output = output.data_ptr<scalar_t>();
    launch(output.numel(), a);
  });
  return output;
}

// `launch(total, args)` runs backward_element for every index < total.
template <typename Launch>
std::tuple<at::Tensor, at::Tensor> backward_grid(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
    const at::Tensor& output, double spatial_scale, int64_t ph, int64_t pw, bool aligned,
    bool input_grad, bool rois_grad, Launch&& launch) {
  check_inputs(input, rois, ph, pw);
  const int64_t num_rois = rois.size(0);
  check_grad(grad, input, num_rois, ph, pw, "grad");
  check_grad(output, input, num_rois, ph, pw, "output");
  const at::Tensor in = readable_map(input);
  // d/d input is accumulated in the map's own layout (zeros_like keeps the strides of a dense
  // tensor), so the kernel indexes both with one set of strides.
  at::Tensor grad_input = input_grad ? at::zeros_like(in) : at::empty({0}, input.options());
  at::Tensor grad_rois = rois_grad ? at::zeros_like(rois, at::MemoryFormat::Contiguous)
                                   : at::empty({0}, rois.options());
  if (grad.numel() == 0 || input.numel() == 0 || !(input_grad || rois_grad)) {
    return {grad_input, grad_rois};
  }
  TORCH_INTERNAL_ASSERT(!input_grad || grad_input.strides() == in.strides());
  const at::Tensor r = rois.contiguous(), g = grad.contiguous(), out = output.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_backward_grid", [&] {
    using T = scalar_t;
    PrroiArgs<T> a = make_args<T>(in, r, spatial_scale, ph, pw, aligned);
    a.grad = g.data_ptr<T>();
    a.out = out.data_ptr<T>();
    a.grad_input = input_grad ? grad_input.data_ptr<T>() : nullptr;
    a.grad_rois = rois_grad ? grad_rois.data_ptr<T>() : nullptr;
    launch(g.numel(), a);
  });
  return {grad_input, grad_rois};
}

}  // namespace prroi
}  // namespace d2_boxunc
