// The CUDA aLRP band kernels as HOST_DEVICE bodies, and the host code around their launches,
// shared with the CPU launchers of the `_alrp_band_*_gridcpu` test ops (docs/gpu.md).
//
// Statistics: a grid-stride loop of one thread per value. With a per-block shared-memory
// histogram (the buckets fit) the kernel has three phases separated by __syncthreads: zero the
// block's histogram, accumulate the block's values into it with atomics, add it into the global
// one with atomics; otherwise the values go straight into global memory (one phase). The CPU
// launcher runs each phase for every thread of a block before the next, block after block.
// Gradients: one thread per value.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "alrp/alrp_bands.h"
#include "alrp/alrp_host.h"
#include "alrp/alrp_tables.h"
#include "common/grid.h"

namespace d2_boxunc {
namespace alrp {

constexpr int kThreads = 256;
constexpr int64_t kSharedBuckets = 2048;  // 2 x 2048 doubles = 32 KiB of shared memory

template <typename T, typename L>
struct BandArgs {
  const T* v;
  const L* y;
  int64_t m;
  const T* edges;  // n + 1: the sorted edges, then +inf
  int64_t n;
  const BandCell* info;
  T lo, scale;
  int64_t cells;
  double* count;  // stats: (n + 2,)
  double* sum;  // stats: (n + 1,)
  const double* offset;  // grad: (n + 1,)
  const double* slope;  // grad: (n + 1,)
  T* out;  // grad: (m,)
};

// Stats phase 1 (shared histogram only): zero the block's 2 (n + 2) doubles.
template <typename T, typename L>
HOST_DEVICE inline void stats_zero(int tid, int threads, const BandArgs<T, L>& a, double* smem) {
  for (int64_t b = tid; b < 2 * (a.n + 2); b += threads) smem[b] = 0.0;
}

// Stats phase 2: the values of thread `tid` of block `block` (grid-stride), into cnt / tot (the
// block's shared histogram, or the global count / sum).
template <typename T, typename L>
HOST_DEVICE inline void stats_values(
    int64_t block, int tid, int threads, int64_t blocks, const BandArgs<T, L>& a, double* cnt,
    double* tot) {
  const int64_t stride = blocks * threads;
  for (int64_t j = block * threads + tid; j < a.m; j += stride) {
    if (a.y[j] != L(0)) continue;
    const T x = a.v[j];
    if (!band_is_finite(x)) {
      grid_atomic_add(cnt + a.n + 1, 1.0);
      continue;
    }
    const int64_t b = band_bucket(x, a.edges, a.info, a.lo, a.scale, a.cells);
    grid_atomic_add(cnt + b, 1.0);
    grid_atomic_add(tot + b, static_cast<double>(x));
  }
}

// Stats phase 3 (shared histogram only): add the block's histogram into the global one.
template <typename T, typename L>
HOST_DEVICE inline void stats_flush(int tid, int threads, const BandArgs<T, L>& a, double* smem) {
  const int64_t width = a.n + 2;
  const double* cnt = smem;
  const double* tot = smem + width;
  for (int64_t b = tid; b < width; b += threads) {
    if (cnt[b] != 0.0) grid_atomic_add(a.count + b, cnt[b]);
    if (b <= a.n && tot[b] != 0.0) grid_atomic_add(a.sum + b, tot[b]);
  }
}

// Gradient body of value j.
template <typename T, typename L>
HOST_DEVICE inline void grad_element(int64_t j, const BandArgs<T, L>& a) {
  const T x = a.v[j];
  if (a.y[j] != L(0) || !band_is_finite(x)) {
    a.out[j] = T(0);
    return;
  }
  a.out[j] = band_negative_grad(
      x, band_bucket(x, a.edges, a.info, a.lo, a.scale, a.cells), a.offset, a.slope);
}

inline int64_t grid_size(int64_t m) {
  return std::max<int64_t>(1, std::min<int64_t>((m + kThreads - 1) / kThreads, 4096));
}

// The CPU launcher of the stats kernel: the same grid (blocks x kThreads), phase by phase.
template <typename T, typename L>
void stats_gridcpu(const BandArgs<T, L>& a, bool shared, int64_t blocks) {
  std::vector<double> smem(shared ? 2 * (a.n + 2) : 0);
  for (int64_t block = 0; block < blocks; ++block) {
    if (shared) {
      for (int tid = 0; tid < kThreads; ++tid) stats_zero(tid, kThreads, a, smem.data());
      for (int tid = 0; tid < kThreads; ++tid) {
        stats_values(block, tid, kThreads, blocks, a, smem.data(), smem.data() + a.n + 2);
      }
      for (int tid = 0; tid < kThreads; ++tid) stats_flush(tid, kThreads, a, smem.data());
    } else {
      for (int tid = 0; tid < kThreads; ++tid) {
        stats_values(block, tid, kThreads, blocks, a, a.count, a.sum);
      }
    }
  }
}

// The grid table of alrp_tables.h on the values' device: edges (n + 1, with +inf) and cells.
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
                .to(edges.device(), /*non_blocking=*/false, /*copy=*/true);
  const auto bytes = static_cast<int64_t>(d.host.info.size() * sizeof(BandCell));
  d.info = at::from_blob(d.host.info.data(), {bytes}, at::TensorOptions().dtype(at::kByte))
               .to(edges.device(), /*non_blocking=*/false, /*copy=*/true);
  return d;
}

template <typename T, typename L>
BandArgs<T, L> band_args(const at::Tensor& values, const at::Tensor& labels,
                         const DeviceTables<T>& tab) {
  BandArgs<T, L> a{};
  a.v = values.data_ptr<T>();
  a.y = labels.data_ptr<L>();
  a.m = values.numel();
  a.edges = tab.edges.template data_ptr<T>();
  a.n = static_cast<int64_t>(tab.host.edges.size()) - 1;
  a.info = reinterpret_cast<const BandCell*>(tab.info.template data_ptr<uint8_t>());
  a.lo = tab.host.lo;
  a.scale = tab.host.scale;
  a.cells = tab.host.cells;
  return a;
}

// `launch(args, shared, blocks)` runs the stats kernel; the histogram is shared when the n + 2
// buckets fit in `shared_buckets`.
template <typename Launch>
std::tuple<at::Tensor, at::Tensor> band_stats_grid(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges,
    int64_t shared_buckets, Launch&& launch) {
  check_band_args(values, labels, edges);
  const int64_t n = edges.numel();
  const int64_t m = values.numel();
  at::Tensor count = at::zeros({n + 2}, values.options().dtype(at::kDouble));
  at::Tensor sum = at::zeros({n + 1}, values.options().dtype(at::kDouble));
  if (m == 0) return {count, sum};
  const bool shared = n + 2 <= shared_buckets;
  dispatch_band_types(values, labels, [&]<typename T, typename L>() {
    const DeviceTables<T> tab = device_tables<T>(edges);
    BandArgs<T, L> a = band_args<T, L>(values, labels, tab);
    a.count = count.data_ptr<double>();
    a.sum = sum.data_ptr<double>();
    launch(a, shared, grid_size(m));
  });
  return {count, sum};
}

// `launch(args, blocks)` runs grad_element for every value.
template <typename Launch>
at::Tensor band_grad_grid(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges,
    const at::Tensor& offset, const at::Tensor& slope, Launch&& launch) {
  check_band_args(values, labels, edges);
  check_coef_args(values, edges, offset, slope);
  at::Tensor out = at::empty_like(values);
  const int64_t m = values.numel();
  if (m == 0) return out;
  dispatch_band_types(values, labels, [&]<typename T, typename L>() {
    const DeviceTables<T> tab = device_tables<T>(edges);
    BandArgs<T, L> a = band_args<T, L>(values, labels, tab);
    a.offset = offset.data_ptr<double>();
    a.slope = slope.data_ptr<double>();
    a.out = out.data_ptr<T>();
    launch(a, grid_size(m));
  });
  return out;
}

}  // namespace alrp
}  // namespace d2_boxunc
