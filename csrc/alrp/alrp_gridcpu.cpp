// Test-only ops: the CUDA aLRP band kernels (alrp_grid.h) run on the CPU, phase by phase for the
// shared-histogram stats kernel, with the CUDA ops' host code (docs/gpu.md). `shared_buckets`
// picks the stats kernel as the CUDA op does (shared histogram when n + 2 <= shared_buckets;
// 2048 on CUDA); 0 forces the global-memory variant.
#include <torch/library.h>

#include "alrp/alrp_grid.h"

namespace d2_boxunc {
namespace alrp {
namespace {

std::tuple<at::Tensor, at::Tensor> alrp_band_stats_gridcpu(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges,
    int64_t shared_buckets) {
  return band_stats_grid(
      values, labels, edges, shared_buckets,
      []<typename T, typename L>(const BandArgs<T, L>& a, bool shared, int64_t blocks) {
        stats_gridcpu(a, shared, blocks);
      });
}

at::Tensor alrp_band_grad_gridcpu(
    const at::Tensor& values, const at::Tensor& labels, const at::Tensor& edges,
    const at::Tensor& offset, const at::Tensor& slope) {
  return band_grad_grid(
      values, labels, edges, offset, slope,
      []<typename T, typename L>(const BandArgs<T, L>& a, int64_t) {
        cpu_grid_launch(a.m, [&](int64_t j) { grad_element(j, a); });
      });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  m.def(
      "_alrp_band_stats_gridcpu(Tensor values, Tensor labels, Tensor edges, "
      "int shared_buckets=2048) -> (Tensor, Tensor)");
  m.def(
      "_alrp_band_grad_gridcpu(Tensor values, Tensor labels, Tensor edges, Tensor offset, "
      "Tensor slope) -> Tensor");
}

TORCH_LIBRARY_IMPL(d2_boxunc, CPU, m) {
  m.impl("_alrp_band_stats_gridcpu", &alrp_band_stats_gridcpu);
  m.impl("_alrp_band_grad_gridcpu", &alrp_band_grad_gridcpu);
}

}  // namespace alrp
}  // namespace d2_boxunc
