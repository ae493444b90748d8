// CPU kernels of the bucketed aLRP / AP Loss: two streaming passes over the logits (statistics,
// then gradients), each value placed in its bucket in O(1) through the grid table.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "alrp/alrp_bands.h"
#include "alrp/alrp_host.h"
#include "alrp/alrp_tables.h"
#include "common/platform.h"

namespace d2_boxunc {

namespace {

constexpr int64_t kChunk = 1 << 16;

// Per-chunk histograms, added in chunk order: the result does not depend on thread timing.
template <typename T, typename L>
void band_stats_impl(
    const T* v, const L* y, int64_t m, const BandTables<T>& tab, double* count, double* sum) {
  const int64_t n = static_cast<int64_t>(tab.edges.size()) - 1;
  const int64_t chunks = std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), (m + kChunk - 1) / kChunk));
  const int64_t per = (m + chunks - 1) / chunks;
  const int64_t width = n + 2;  // n + 1 buckets and the non-finite slot
  std::vector<double> cnt(chunks * width, 0.0), tot(chunks * width, 0.0);
  const T* edges = tab.edges.data();
  const BandCell* info = tab.info.data();
  const T lo = tab.lo, scale = tab.scale;
  const int64_t cells = tab.cells;
  at::parallel_for(0, chunks, 1, [=, &cnt, &tot](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double* D2B_RESTRICT cc = cnt.data() + c * width;
      double* D2B_RESTRICT tt = tot.data() + c * width;
      const int64_t end = std::min(m, (c + 1) * per);
      for (int64_t j = c * per; j < end; ++j) {
        if (y[j] != L(0)) continue;
        const T x = v[j];
        if (!band_is_finite(x)) {
          cc[n + 1] += 1.0;
          continue;
        }
        const int64_t b = band_bucket(x, edges, info, lo, scale, cells);
        cc[b] += 1.0;
        tt[b] += static_cast<double>(x);
      }
    }
  });
  for (int64_t c = 0; c < chunks; ++c) {
    for (int64_t b = 0; b < width; ++b) count[b] += cnt[c * width + b];
    for (int64_t b = 0; b <= n; ++b) sum[b] += tot[c * width + b];
  }
}

template <typename T, typename L>
void band_grad_impl(
    const T* v, const L* y, int64_t m, const BandTables<T>& tab, const double* offset,
    const double* slope, T* out) {
  const T* edges = tab.edges.data();
  const BandCell* info = tab.info.data();
  const T lo = tab.lo, scale = tab.scale;
  const int64_t cells = tab.cells;
  at::parallel_for(0, m, kChunk, [=](int64_t begin, int64_t end) {
    T* D2B_RESTRICT o = out;
    for (int64_t j = begin; j < end; ++j) {
      const T x = v[j];
      if (y[j] != L(0) || !band_is_finite(x)) {
        o[j] = T(0);
        continue;
      }
      o[j] = band_negative_grad(x, band_bucket(x, edges, info, lo, scale, cells), offset, slope);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> alrp_band_stats_cpu(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges) {
  check_band_args(values, labels, edges);
  const int64_t n = edges.numel();
  at::Tensor count = at::zeros({n + 2}, values.options().dtype(at::kDouble));
  at::Tensor sum = at::zeros({n + 1}, values.options().dtype(at::kDouble));
  dispatch_band_types(values, labels, [&]<typename T, typename L>() {
    band_stats_impl<T, L>(
        values.data_ptr<T>(), labels.data_ptr<L>(), values.numel(), build_band_tables<T>(edges),
        count.data_ptr<double>(), sum.data_ptr<double>());
  });
  return {count, sum};
}

at::Tensor alrp_band_grad_cpu(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges,
    const at::Tensor& offset, const at::Tensor& slope) {
  check_band_args(values, labels, edges);
  check_coef_args(values, edges, offset, slope);
  at::Tensor out = at::empty_like(values);
  dispatch_band_types(values, labels, [&]<typename T, typename L>() {
    band_grad_impl<T, L>(
        values.data_ptr<T>(), labels.data_ptr<L>(), values.numel(), build_band_tables<T>(edges),
        offset.data_ptr<double>(), slope.data_ptr<double>(), out.data_ptr<T>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("alrp_band_stats", &alrp_band_stats_cpu);
  m.impl("alrp_band_grad", &alrp_band_grad_cpu);
}

}  // namespace d2_boxunc
