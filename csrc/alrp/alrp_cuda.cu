// CUDA kernels of the bucketed aLRP / AP Loss. The grid table is built on the host from the
// (few) edges with the same band_cell() the device applies to the values. Statistics: one thread per value, accumulated in a
// per-block shared-memory histogram when the buckets fit (else straight into global memory), then
// added to the global one with atomics (float64 sums: the order of additions may vary between
// runs). Gradients: one thread per value.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "alrp/alrp_bands.h"
#include "alrp/alrp_host.h"
#include "alrp/alrp_tables.h"

namespace d2_boxunc {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kSharedBuckets = 2048;  // 2 x 2048 doubles = 32 KiB of shared memory

template <typename T, typename L, bool kShared>
__global__ void band_stats_kernel(
    const T* __restrict__ v, const L* __restrict__ y, int64_t m, const T* __restrict__ edges,
    int64_t n, const BandCell* __restrict__ info, T lo, T scale, int64_t cells,
    double* __restrict__ count, double* __restrict__ sum) {
  extern __shared__ double smem[];
  const int64_t width = n + 2;
  double* cnt = kShared ? smem : count;
  double* tot = kShared ? smem + width : sum;
  if (kShared) {
    for (int64_t b = threadIdx.x; b < 2 * width; b += blockDim.x) smem[b] = 0.0;
    __syncthreads();
  }
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < m;
       j += stride) {
    if (y[j] != L(0)) continue;
    const T x = v[j];
    if (!band_is_finite(x)) {
      atomicAdd(cnt + n + 1, 1.0);
      continue;
    }
    const int64_t b = band_bucket(x, edges, info, lo, scale, cells);
    atomicAdd(cnt + b, 1.0);
    atomicAdd(tot + b, static_cast<double>(x));
  }
  if (kShared) {
    __syncthreads();
    for (int64_t b = threadIdx.x; b < width; b += blockDim.x) {
      if (cnt[b] != 0.0) atomicAdd(count + b, cnt[b]);
      if (b <= n && tot[b] != 0.0) atomicAdd(sum + b, tot[b]);
    }
  }
}

template <typename T, typename L>
__global__ void band_grad_kernel(
    const T* __restrict__ v, const L* __restrict__ y, int64_t m, const T* __restrict__ edges,
    const BandCell* __restrict__ info, T lo, T scale, int64_t cells,
    const double* __restrict__ offset, const double* __restrict__ slope, T* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < m;
       j += stride) {
    const T x = v[j];
    if (y[j] != L(0) || !band_is_finite(x)) {
      out[j] = T(0);
      continue;
    }
    out[j] = band_negative_grad(x, band_bucket(x, edges, info, lo, scale, cells), offset, slope);
  }
}

int64_t grid_size(int64_t m) {
  return std::max<int64_t>(1, std::min<int64_t>((m + kThreads - 1) / kThreads, 4096));
}

// The table of alrp_tables.h, copied to the device: edges (n + 1, with +inf) and cells.
template <typename T>
struct DeviceTables {
  BandTables<T> host;
  at::Tensor edges, info;
};

template <typename T>
DeviceTables<T> device_tables(const at::Tensor& edges) {
  DeviceTables<T> d{build_band_tables<T>(edges.cpu().contiguous()), {}, {}};
  const auto n1 = static_cast<int64_t>(d.host.edges.size());
  d.edges = at::from_blob(d.host.edges.data(), {n1}, edges.options().device(at::kCPU))
                .to(edges.device());
  const auto bytes = static_cast<int64_t>(d.host.info.size() * sizeof(BandCell));
  d.info = at::from_blob(d.host.info.data(), {bytes}, at::TensorOptions().dtype(at::kByte))
               .to(edges.device());
  return d;
}

std::tuple<at::Tensor, at::Tensor> alrp_band_stats_cuda(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges) {
  check_band_args(values, labels, edges);
  c10::cuda::CUDAGuard guard(values.device());
  const int64_t n = edges.numel();
  const int64_t m = values.numel();
  at::Tensor count = at::zeros({n + 2}, values.options().dtype(at::kDouble));
  at::Tensor sum = at::zeros({n + 1}, values.options().dtype(at::kDouble));
  if (m == 0) return {count, sum};
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const bool shared = n + 2 <= kSharedBuckets;
  const size_t smem = shared ? 2 * (n + 2) * sizeof(double) : 0;
  dispatch_band_types(values, labels, [&]<typename T, typename L>() {
    const DeviceTables<T> tab = device_tables<T>(edges);
    const at::Tensor &e = tab.edges, &info = tab.info;  // non-dependent names for data_ptr<>
    auto kernel = shared ? band_stats_kernel<T, L, true> : band_stats_kernel<T, L, false>;
    kernel<<<grid_size(m), kThreads, smem, stream>>>(
        values.data_ptr<T>(), labels.data_ptr<L>(), m, e.data_ptr<T>(), n,
        reinterpret_cast<const BandCell*>(info.data_ptr<uint8_t>()), tab.host.lo,
        tab.host.scale, tab.host.cells, count.data_ptr<double>(), sum.data_ptr<double>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {count, sum};
}

at::Tensor alrp_band_grad_cuda(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges,
    const at::Tensor& offset, const at::Tensor& slope) {
  check_band_args(values, labels, edges);
  check_coef_args(values, edges, offset, slope);
  c10::cuda::CUDAGuard guard(values.device());
  at::Tensor out = at::empty_like(values);
  const int64_t m = values.numel();
  if (m == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  dispatch_band_types(values, labels, [&]<typename T, typename L>() {
    const DeviceTables<T> tab = device_tables<T>(edges);
    const at::Tensor &e = tab.edges, &info = tab.info;  // non-dependent names for data_ptr<>
    band_grad_kernel<T, L><<<grid_size(m), kThreads, 0, stream>>>(
        values.data_ptr<T>(), labels.data_ptr<L>(), m, e.data_ptr<T>(),
        reinterpret_cast<const BandCell*>(info.data_ptr<uint8_t>()), tab.host.lo,
        tab.host.scale, tab.host.cells, offset.data_ptr<double>(), slope.data_ptr<double>(),
        out.data_ptr<T>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CUDA, m) {
  m.impl("alrp_band_stats", &alrp_band_stats_cuda);
  m.impl("alrp_band_grad", &alrp_band_grad_cuda);
}

}  // namespace d2_boxunc
