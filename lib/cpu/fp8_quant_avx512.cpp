// fp8_quant_avx512.cpp - fp8_quantize_avx512 (fp8_quant.h): e4m3fn_from_non_nan(v / scale) on 16
// lanes, step by step as the scalar code (lib/common/fp8_block.h) does it: the division is the
// same correctly rounded IEEE operation, the rest is integer work on the bits, and the two float
// steps of the subnormal branch (|q| * 2^9 + 2^23, then - 2^23) are exact, so their order and
// contraction cannot matter.
#include "cpu/fp8_quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12's intrinsic headers trip these inside target("avx512...") functions (undefined vector
// operands of the masked builtins), as in detmath_arrays.cpp.
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#    pragma GCC diagnostic ignored "-Wuninitialized"
#  endif
#  include <immintrin.h>

namespace dsk {
namespace cpu {

bool fp8_have_avx512() {
  static const bool have = __builtin_cpu_supports("avx512f") &&
                           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return have;
}

namespace {

__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __attribute__((always_inline)) __m128i
e4m3fn16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(bits, 24), _mm512_set1_epi32(0x80));
  const __m512i a = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF));
  // Normal range: round to nearest even at 3 mantissa bits; the exponent rebias (127 -> 7).
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(0x7FFFF)), odd);
  const __m512i normal =
      _mm512_sub_epi32(_mm512_srli_epi32(rounded, 20), _mm512_set1_epi32(120 << 3));
  // Subnormal range (|v| < 2^-6): |v| * 2^9 rounded to an integer by the 2^23 addition.
  const __mmask16 small = _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(0x3C800000));
  const __m512 t = _mm512_add_ps(
      _mm512_mul_ps(_mm512_maskz_mov_ps(small, _mm512_castsi512_ps(a)), _mm512_set1_ps(512.0f)),
      _mm512_set1_ps(8388608.0f));
  const __m512i sub = _mm512_cvttps_epi32(_mm512_sub_ps(t, _mm512_set1_ps(8388608.0f)));
  __m512i mag = _mm512_mask_blend_epi32(small, normal, sub);
  mag = _mm512_min_epu32(mag, _mm512_set1_epi32(0x7E));
  return _mm512_cvtepi32_epi8(_mm512_or_si512(sign, mag));
}

// v / scale: by vdivps, or (kRecip) as v * vs where vs = 1 / scale exactly.
template <bool kRecip>
__attribute__((target("avx512f"))) inline __attribute__((always_inline)) __m512 quotient(
    __m512 v, __m512 vs) {
  return kRecip ? _mm512_mul_ps(v, vs) : _mm512_div_ps(v, vs);
}

// q = e4m3fn(v / scale) for n values (vs: the scale, or with kRecip its exact reciprocal).
template <bool kRecip>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __attribute__((always_inline)) void
quantize_lanes(const float* v, int64_t n, __m512 vs, uint8_t* q) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(v + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), e4m3fn16(quotient<kRecip>(x, vs)));
  }
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    // Masked-off lanes hold 1 (no exception flags from garbage) and are not stored.
    const __m512 x = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, v + i);
    _mm_mask_storeu_epi8(q + i, m, e4m3fn16(quotient<kRecip>(x, vs)));
  }
}

// The kernel of fp8_quantize_avx512, for CPUs that have been checked.
__attribute__((noinline, target("avx512f,avx512bw,avx512vl"))) void quantize_avx512(const float* v,
                                                                                    int64_t n,
                                                                                    float scale,
                                                                                    uint8_t* q) {
  // A power-of-two scale 2^e with a normal 2^-e (exponent field 1..253): v * 2^-e is the same
  // real number as v / 2^e, rounded once either way, so one multiplication gives the division's
  // bits (DSK_QUANT_SCALE_POW2 tiles; vdivps costs about 20 times as much).
  const uint32_t sb = f32_bits(scale);
  const uint32_t field = (sb >> 23) & 0xFFu;
  if ((sb & 0x007FFFFFu) == 0u && field - 1u < 253u) {
    const float recip = f32_from_bits(((254u - field) << 23) | (sb & 0x80000000u));
    quantize_lanes<true>(v, n, _mm512_set1_ps(recip), q);
  } else {
    quantize_lanes<false>(v, n, _mm512_set1_ps(scale), q);
  }
}

}  // namespace

// No target attribute here: a function built for AVX-512 may use AVX instructions before its
// first statement (saving registers), so the CPU check must come from plain code.
bool fp8_quantize_avx512(const float* v, int64_t n, float scale, uint8_t* q) {
  if (!fp8_have_avx512()) return false;
  quantize_avx512(v, n, scale, q);
  return true;
}

}  // namespace cpu
}  // namespace dsk

#else

namespace dsk {
namespace cpu {

bool fp8_have_avx512() { return false; }
bool fp8_quantize_avx512(const float*, int64_t, float, uint8_t*) { return false; }

}  // namespace cpu
}  // namespace dsk

#endif
