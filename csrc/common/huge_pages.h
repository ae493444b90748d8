// at::empty for large CPU results (tens of MB). Fresh allocations of that size are new pages, and
// faulting them in 4 KiB at a time costs about as much as the writes that fill them; with
// D2B_USE_MADVISE (Linux, common/platform.h) the 2 MiB-aligned interior is marked for transparent
// huge pages before first touch (what torch's THP_MEM_ALLOC_ENABLE does for every allocation).
// Portable fallback, and when THP is off: plain at::empty.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "common/platform.h"

namespace d2_boxunc {

inline at::Tensor empty_large(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if D2B_USE_MADVISE
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

}  // namespace d2_boxunc
