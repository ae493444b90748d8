// exp of four values at once, for the CPU loops whose cost is dominated by exp (the KL-NMS vote
// weights). With D2B_USE_LIBMVEC (common/platform.h: x86-64, setup.py found glibc's libmvec, not a
// portable build) it calls the SSE variants of glibc's vector math library by their names in the
// x86-64 vector function ABI (what compilers target under -ffast-math); these are within 3 ulp of
// std::exp. Portable fallback: four std::exp calls.
#pragma once

#include <cmath>

#include "common/platform.h"

#if D2B_USE_LIBMVEC
#include <emmintrin.h>
extern "C" __m128 _ZGVbN4v_expf(__m128);
extern "C" __m128d _ZGVbN2v_exp(__m128d);
#endif

namespace d2_boxunc {

inline void exp4(const float* in, float* out) {
#if D2B_USE_LIBMVEC
  _mm_storeu_ps(out, _ZGVbN4v_expf(_mm_loadu_ps(in)));
#else
  for (int k = 0; k < 4; ++k) out[k] = std::exp(in[k]);
#endif
}

inline void exp4(const double* in, double* out) {
#if D2B_USE_LIBMVEC
  _mm_storeu_pd(out, _ZGVbN2v_exp(_mm_loadu_pd(in)));
  _mm_storeu_pd(out + 2, _ZGVbN2v_exp(_mm_loadu_pd(in + 2)));
#else
  for (int k = 0; k < 4; ++k) out[k] = std::exp(in[k]);
#endif
}

}  // namespace d2_boxunc
