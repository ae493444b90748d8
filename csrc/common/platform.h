// The one place that decides which platform-specific speed-ups of the CPU kernels are compiled in
// (docs/design.md#portable-build). Each is used through one small header that has a portable
// fallback (standard C++20 and ATen only). setup.py defines D2B_PORTABLE for
// `D2_BOXUNC_PORTABLE=1`, which selects every fallback; the `_build_features` op reports the
// selection of the loaded library (d2_boxunc._extension.build_features).
//
//   D2B_USE_VECTOR_EXT  GCC/Clang vector extension for simd::Vec (simd.h); else one lane
//   D2B_USE_SSE         SSE shuffles for the float 4x4 transpose (simd.h); else a scalar loop
//   D2B_USE_LIBMVEC     glibc's vector exp, found by setup.py (vec_exp.h); else std::exp
//   D2B_USE_MADVISE     madvise(MADV_HUGEPAGE) on large fresh tensors (huge_pages.h); else none
//   D2B_USE_GNU_HINTS   D2B_RESTRICT = __restrict__, D2B_UNROLL(n) = #pragma GCC unroll n;
//                       else both empty
#pragma once

#if !defined(D2B_PORTABLE) && (defined(__GNUC__) || defined(__clang__))
#define D2B_USE_VECTOR_EXT 1
#define D2B_USE_GNU_HINTS 1
#else
#define D2B_USE_VECTOR_EXT 0
#define D2B_USE_GNU_HINTS 0
#endif

#if D2B_USE_VECTOR_EXT && defined(__SSE__)
#define D2B_USE_SSE 1
#else
#define D2B_USE_SSE 0
#endif

#if !defined(D2B_PORTABLE) && defined(D2B_HAVE_LIBMVEC) && defined(__x86_64__)
#define D2B_USE_LIBMVEC 1
#else
#define D2B_USE_LIBMVEC 0
#endif

#if !defined(D2B_PORTABLE) && defined(__linux__)
#include <sys/mman.h>
#endif
#if !defined(D2B_PORTABLE) && defined(__linux__) && defined(MADV_HUGEPAGE)
#define D2B_USE_MADVISE 1
#else
#define D2B_USE_MADVISE 0
#endif

#define D2B_PRAGMA(x) _Pragma(#x)
#if D2B_USE_GNU_HINTS
#define D2B_RESTRICT __restrict__
#if defined(__clang__)
#define D2B_UNROLL(n) D2B_PRAGMA(unroll n)
#else
#define D2B_UNROLL(n) D2B_PRAGMA(GCC unroll n)
#endif
#else
#define D2B_RESTRICT
#define D2B_UNROLL(n)
#endif
