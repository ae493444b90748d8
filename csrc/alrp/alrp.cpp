// Schemas of the bucketed ranking-loss kernels (aLRP Loss / AP Loss,
// docs/design.md#fast-exact-ranking).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(d2_boxunc, m) {
  // values (M,) float32/float64 logits; labels (M,) integer, 0 marks a negative (anything else is
  // skipped); edges (n,) finite, ascending, values' dtype. Returns count (n + 2,) float64: the
  // negatives per bucket (bucket b holds edges[b-1] < v <= edges[b]) and, last, the number of
  // non-finite negatives; and sum (n + 1,) float64: the sum of the negatives' values per bucket.
  m.def("alrp_band_stats(Tensor values, Tensor labels, Tensor edges) -> (Tensor, Tensor)");
  // offset[b] + v * slope[b] (offset, slope: (n + 1,) float64) for each finite negative v of
  // bucket b, 0 for every other value. Returns (M,) in the values' dtype.
  m.def(
      "alrp_band_grad(Tensor values, Tensor labels, Tensor edges, Tensor offset, Tensor slope) "
      "-> Tensor");
}
