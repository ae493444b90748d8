// CUDA kernels of PrRoIPool: one thread per output element (RoI, channel, bin), using the per-bin
// math of prroi_pool_kernel.h. Backward scatters with atomicAdd into the gradients asked for.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "prroi_pool/prroi_pool_checks.h"
#include "prroi_pool/prroi_pool_kernel.h"

namespace d2_boxunc {
namespace prroi {
namespace {

constexpr int kThreads = 256;

inline int64_t num_blocks(int64_t n) {
  return std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(1) << 20);
}

// Geometry of the bin of output element `index`; false when the bin pools nothing.
template <typename T>
__device__ inline bool locate(
    int64_t index, const T* rois, int64_t batch_size, int64_t channels, T scale, int64_t ph,
    int64_t pw, bool aligned, RoiGeometry<T>* g, int64_t* m, int64_t* c, int64_t* p,
    int64_t* q) {
  *q = index % pw;
  *p = (index / pw) % ph;
  *c = (index / (pw * ph)) % channels;
  *m = index / (pw * ph * channels);
  const T* roi = rois + 5 * (*m);
  *g = roi_geometry(roi, scale, ph, pw, aligned);
  return g->valid && roi[0] >= T(0) && roi[0] < T(batch_size);
}

template <typename T>
__global__ void forward_kernel(
    int64_t total, const T* input, const T* rois, T* output, int64_t batch_size,
    int64_t channels, int64_t height, int64_t width, T scale, int64_t ph, int64_t pw,
    bool aligned) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < total;
       index += int64_t(blockDim.x) * gridDim.x) {
    RoiGeometry<T> g;
    int64_t m, c, p, q;
    T value = T(0);
    if (locate(index, rois, batch_size, channels, scale, ph, pw, aligned, &g, &m, &c, &p, &q)) {
      const T* plane = input + (g.batch * channels + c) * height * width;
      const T ax = bin_edge(g.x1, g.bw, q), bx = bin_edge(g.x1, g.bw, q + 1);
      const T ay = bin_edge(g.y1, g.bh, p), by = bin_edge(g.y1, g.bh, p + 1);
      value = bin_integral(plane, height, width, ax, bx, ay, by) * g.inv_area;
    }
    output[index] = value;
  }
}

template <typename T>
__global__ void backward_kernel(
    int64_t total, const T* grad, const T* input, const T* rois, const T* output,
    T* grad_input, T* grad_rois, int64_t batch_size, int64_t channels, int64_t height,
    int64_t width, T scale, int64_t ph, int64_t pw, bool aligned, bool want_input,
    bool want_rois) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < total;
       index += int64_t(blockDim.x) * gridDim.x) {
    RoiGeometry<T> g;
    int64_t m, c, p, q;
    if (!locate(index, rois, batch_size, channels, scale, ph, pw, aligned, &g, &m, &c, &p, &q))
      continue;
    const T gg = grad[index];
    if (gg == T(0)) continue;
    const int64_t offset = (g.batch * channels + c) * height * width;
    const T* plane = input + offset;
    const T ax = bin_edge(g.x1, g.bw, q), bx = bin_edge(g.x1, g.bw, q + 1);
    const T ay = bin_edge(g.y1, g.bh, p), by = bin_edge(g.y1, g.bh, p + 1);

    if (want_input) {
      T* dplane = grad_input + offset;
      int64_t i_lo, i_hi, j_lo, j_hi;
      support(ay, by, height, &i_lo, &i_hi);
      support(ax, bx, width, &j_lo, &j_hi);
      const T scaled = gg * g.inv_area;
      for (int64_t i = i_lo; i <= i_hi; ++i) {
        const T wy = tent_weight(ay, by, i) * scaled;
        for (int64_t j = j_lo; j <= j_hi; ++j) {
          atomicAdd(dplane + i * width + j, wy * tent_weight(ax, bx, j));
        }
      }
    }
    if (!want_rois) continue;

    const EdgeGrads<T> d = bin_edge_grads(
        output[index], vertical_line_integral(plane, height, width, ax, ay, by),
        vertical_line_integral(plane, height, width, bx, ay, by),
        horizontal_line_integral(plane, height, width, ay, ax, bx),
        horizontal_line_integral(plane, height, width, by, ax, bx), g.bw, g.bh, g.inv_area);
    T d1 = T(0), d2 = T(0), d3 = T(0), d4 = T(0);
    edges_to_corners(d.ax, d.bx, q, pw, &d1, &d3);
    edges_to_corners(d.ay, d.by, p, ph, &d2, &d4);
    T* dr = grad_rois + 5 * m;
    atomicAdd(dr + 1, gg * scale * d1);
    atomicAdd(dr + 2, gg * scale * d2);
    atomicAdd(dr + 3, gg * scale * d3);
    atomicAdd(dr + 4, gg * scale * d4);
  }
}

at::Tensor prroi_pool_forward_cuda(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, bool aligned) {
  check_inputs(input, rois, pooled_height, pooled_width);
  at::cuda::CUDAGuard guard(input.device());
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  at::Tensor output =
      at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  if (output.numel() == 0 || input.numel() == 0) return output;
  const at::Tensor in = input.contiguous(), r = rois.contiguous();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_forward_cuda", [&] {
    forward_kernel<scalar_t><<<num_blocks(output.numel()), kThreads, 0, stream>>>(
        output.numel(), in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(),
        output.data_ptr<scalar_t>(), in.size(0), channels, in.size(2), in.size(3),
        static_cast<scalar_t>(spatial_scale), pooled_height, pooled_width, aligned);
  });
  AT_CUDA_CHECK(cudaGetLastError());
  return output;
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_backward_cuda(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& rois,
    const at::Tensor& output, double spatial_scale, int64_t pooled_height, int64_t pooled_width,
    bool aligned, bool input_grad, bool rois_grad) {
  check_inputs(input, rois, pooled_height, pooled_width);
  const int64_t num_rois = rois.size(0), channels = input.size(1);
  check_grad(grad, input, num_rois, pooled_height, pooled_width, "grad");
  check_grad(output, input, num_rois, pooled_height, pooled_width, "output");
  at::cuda::CUDAGuard guard(input.device());
  // One fused kernel; each gradient that is not asked for is skipped and returned empty.
  at::Tensor grad_input = input_grad ? at::zeros_like(input, at::MemoryFormat::Contiguous)
                                     : at::empty({0}, input.options());
  at::Tensor grad_rois = rois_grad ? at::zeros_like(rois, at::MemoryFormat::Contiguous)
                                   : at::empty({0}, rois.options());
  if (grad.numel() == 0 || input.numel() == 0 || !(input_grad || rois_grad)) {
    return {grad_input, grad_rois};
  }
  const at::Tensor in = input.contiguous(), r = rois.contiguous();
  const at::Tensor g = grad.contiguous(), out = output.contiguous();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "prroi_pool_backward_cuda", [&] {
    backward_kernel<scalar_t><<<num_blocks(g.numel()), kThreads, 0, stream>>>(
        g.numel(), g.data_ptr<scalar_t>(), in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(),
        out.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(),
        grad_rois.data_ptr<scalar_t>(), in.size(0), channels, in.size(2), in.size(3),
        static_cast<scalar_t>(spatial_scale), pooled_height, pooled_width, aligned, input_grad,
        rois_grad);
  });
  AT_CUDA_CHECK(cudaGetLastError());
  return {grad_input, grad_rois};
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("prroi_pool", &prroi_pool_forward_cuda);
  m.impl("_prroi_pool_backward", &prroi_pool_backward_cuda);
}

}  // namespace prroi
}  // namespace d2_boxunc
