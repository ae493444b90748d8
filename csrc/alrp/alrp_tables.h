// Host-side grid table of the aLRP band kernels (see alrp_bands.h), built with the same
// band_cell() the kernels use on the values, which is what makes the O(1) lookup exact.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "alrp/alrp_bands.h"

namespace d2_boxunc {

template <typename T>
struct BandTables {
  T lo = T(0);
  T scale = T(0);  // 0: a single cell holding every edge (all edges equal)
  int64_t cells = 0;
  std::vector<T> edges;  // sorted edges, then +inf
  std::vector<BandCell> info;  // cells + 1 entries
};

// `edges_cpu`: contiguous, ascending, finite CPU tensor of dtype T.
template <typename T>
BandTables<T> build_band_tables(const at::Tensor& edges_cpu) {
  BandTables<T> t;
  const int64_t n = edges_cpu.numel();
  const T* e = edges_cpu.data_ptr<T>();
  t.edges.assign(e, e + n);
  for (int64_t k = 0; k < n; ++k) {
    TORCH_CHECK(std::isfinite(static_cast<double>(e[k])), "edges must be finite");
    TORCH_CHECK(k == 0 || !(e[k] < e[k - 1]), "edges must be sorted in ascending order");
  }
  t.edges.push_back(std::numeric_limits<T>::infinity());
  t.lo = e[0];
  // 32 cells per edge: values then rarely share a cell with an edge (a bounded table: at most
  // 2^20 cells, 8 MiB)
  const int64_t cells = std::min<int64_t>(32 * n, int64_t(1) << 20);
  const double span = static_cast<double>(e[n - 1]) - static_cast<double>(e[0]);
  const T scale = span > 0 ? static_cast<T>(static_cast<double>(cells) / span) : T(0);
  if (span > 0 && std::isfinite(static_cast<double>(scale)) && scale > T(0)) {
    t.cells = cells;
    t.scale = scale;
  }
  t.info.assign(t.cells + 1, BandCell{0, 0});
  for (int64_t k = 0; k < n; ++k) ++t.info[band_cell(e[k], t.lo, t.scale, t.cells)].num;
  int32_t first = 0;
  for (auto& c : t.info) {
    c.first = first;
    first += c.num;
  }
  return t;
}

}  // namespace d2_boxunc
