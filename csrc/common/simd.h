// A 16-byte SIMD vector of float or double (SSE2 on x86-64, NEON on arm64) through the GCC/Clang
// vector extension, for CPU loops the auto-vectoriser would leave in memory: accumulators held in
// registers across an inner loop. Elsewhere it is one lane, i.e. plain scalar code.
#pragma once

#include <cstdint>
#include <cstring>

namespace d2_boxunc {
namespace simd {

#if defined(__GNUC__) || defined(__clang__)
template <typename T>
struct VecOf {
  typedef T type __attribute__((vector_size(16)));
};
#else
template <typename T>
struct VecOf {
  typedef T type;
};
#endif

template <typename T>
using Vec = typename VecOf<T>::type;

template <typename T>
constexpr int64_t kLanes = static_cast<int64_t>(sizeof(Vec<T>) / sizeof(T));

// Unaligned load and store (memcpy of a vector compiles to one movups).
template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
inline void store(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof v);
}

// Sum of the lanes.
template <typename T>
inline T sum(const Vec<T>& v) {
  T lanes[kLanes<T>];
  std::memcpy(lanes, &v, sizeof v);
  T s = T(0);
  for (int64_t u = 0; u < kLanes<T>; ++u) s += lanes[u];
  return s;
}

}  // namespace simd
}  // namespace d2_boxunc
