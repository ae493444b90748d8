// A 16-byte SIMD vector of float or double (SSE2 on x86-64, NEON on arm64) through the GCC/Clang
// vector extension (D2B_USE_VECTOR_EXT, common/platform.h), for CPU loops the auto-vectoriser
// would leave in memory: accumulators held in registers across an inner loop. Portable fallback:
// one lane, i.e. plain scalar code. Also a 4 x 4 transpose (SSE shuffles for float with
// D2B_USE_SSE, a scalar loop otherwise).
#pragma once

#include <cstdint>
#include <cstring>

#include "common/platform.h"

#if D2B_USE_SSE
#include <xmmintrin.h>
#endif

namespace d2_boxunc {
namespace simd {

#if D2B_USE_VECTOR_EXT
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

// dst[j * dst_ld + i] = src[i * src_ld + j] for i, j < 4.
template <typename T>
inline void transpose4x4(const T* src, int64_t src_ld, T* dst, int64_t dst_ld) {
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 4; ++j) dst[j * dst_ld + i] = src[i * src_ld + j];
  }
}

#if D2B_USE_SSE
template <>
inline void transpose4x4<float>(const float* src, int64_t src_ld, float* dst, int64_t dst_ld) {
  __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + src_ld);
  __m128 r2 = _mm_loadu_ps(src + 2 * src_ld), r3 = _mm_loadu_ps(src + 3 * src_ld);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(dst, r0);
  _mm_storeu_ps(dst + dst_ld, r1);
  _mm_storeu_ps(dst + 2 * dst_ld, r2);
  _mm_storeu_ps(dst + 3 * dst_ld, r3);
}
#endif

}  // namespace simd
}  // namespace d2_boxunc
