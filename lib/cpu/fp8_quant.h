// fp8_quant.h - the per-segment steps of FP8 block quantization on the CPU, shared by
// dsk_quant_fp8 (fp8.cpp) and the fp8 permute (moe_permute.cpp): the amax of a segment and
// q = e4m3fn(v / scale) (common/fp8_block.h's formula). Contiguous codes go through an AVX-512
// kernel where the CPU has it (one vdivps per 16 values; GCC does not vectorize the scalar loop's
// division), which gives the scalar code's bits (tests/core/test_fp8_quant.cpp).
#ifndef DSK_LIB_CPU_FP8_QUANT_H_
#define DSK_LIB_CPU_FP8_QUANT_H_

#include <stdint.h>

#include "common/fp8_block.h"
#include "cpu/norm_io.h"

namespace dsk {
namespace cpu {

// Whether fp8_quantize_avx512 runs here (AVX-512F, BW and VL).
bool fp8_have_avx512();

// q[i] = fp8::e4m3fn_from_non_nan(v[i] / scale) for n finite v and scale != 0; false (nothing
// written) where the CPU lacks AVX-512.
bool fp8_quantize_avx512(const float* v, int64_t n, float scale, uint8_t* q);

// max(m, max |v[i]|) as f32 bits: for non-negative floats the integer order is the float order,
// and NaN / Inf patterns lie above every finite one (>= 0x7F800000).
DSK_NORM_INLINE uint32_t fp8_amax_bits(const float* v, int64_t n, uint32_t m) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = f32_bits(v[i]) & 0x7FFFFFFFu;
    m = b > m ? b : m;
  }
  return m;
}

// q[i * qstep] = e4m3fn(v[i] / scale) for finite v (the NaN check has run); scale 0 (an all-zero
// tile) gives +0, as fp8::quantize.
DSK_NORM_INLINE void fp8_quantize_segment(const float* v, int64_t n, float scale, char* q,
                                          int64_t qstep) {
  auto* o = reinterpret_cast<uint8_t*>(q);
  if (scale == 0.0f) {
    for (int64_t i = 0; i < n; ++i) o[i * qstep] = 0;
  } else if (qstep == 1) {
    if (fp8_quantize_avx512(v, n, scale, o)) return;
    for (int64_t i = 0; i < n; ++i) o[i] = fp8::e4m3fn_from_non_nan(v[i] / scale);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i * qstep] = fp8::e4m3fn_from_non_nan(v[i] / scale);
  }
}

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_FP8_QUANT_H_
