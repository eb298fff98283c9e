// detmath_avx512.h - det_exp (lib/common/detmath.h) on 16 lanes with AVX-512F, for the CPU
// kernels that vectorize a path whose results must equal the scalar reference bit for bit (the MoE
// gate, the sampler).
//
// Every lane does det_exp's operations in the same order with the same correctly rounded IEEE
// instruction (vmulps, vaddps, vsubps are exact-rounding like their scalar forms; lib/ is built
// with -ffp-contract=off, so the compiler fuses nothing). Two steps take one instruction where
// that gives the same bits: hi = x - k ln2_hi is one FMA (the product and the difference are both
// exact, see det_exp, so a single rounding of the exact result gives the same value), and
// det_exp_in_range scales by 2^k with vscalefps (y * 2^k is normal there, so exact either way).
// Include it after <immintrin.h> (and after any diagnostic pragmas the includer needs for the
// intrinsics), only on x86-64 with GCC or Clang, and call it only where the CPU has AVX-512F.
#ifndef DSK_LIB_CPU_DETMATH_AVX512_H_
#define DSK_LIB_CPU_DETMATH_AVX512_H_

#include <immintrin.h>

namespace dsk {
namespace cpu {
namespace avx512 {

#define DSK_DETMATH_AVX512_INLINE \
  __attribute__((target("avx512f"))) inline __attribute__((always_inline))

// e^r evaluated as det_exp does on the reduced argument of x: returns y with e^x = y * 2^k,
// kf = k as a float.
DSK_DETMATH_AVX512_INLINE __m512 det_exp_reduced(__m512 x, __m512* kf_out) {
  const __m512 shifter = _mm512_set1_ps(0x1.8p23f);
  const __m512 kf = _mm512_sub_ps(
      _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(0x1.715476p+0f)), shifter), shifter);
  const __m512 hi = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0x1.62e4p-1f), x);  // exact
  const __m512 lo = _mm512_mul_ps(kf, _mm512_set1_ps(0x1.7f7d1cp-20f));
  const __m512 r = _mm512_sub_ps(hi, lo);
  const __m512 c = _mm512_sub_ps(_mm512_sub_ps(hi, r), lo);
  __m512 p = _mm512_add_ps(_mm512_set1_ps(0x1.6c16c2p-10f),
                           _mm512_mul_ps(r, _mm512_set1_ps(0x1.a01a02p-13f)));
  p = _mm512_add_ps(_mm512_set1_ps(0x1.111112p-7f), _mm512_mul_ps(r, p));
  p = _mm512_add_ps(_mm512_set1_ps(0x1.555556p-5f), _mm512_mul_ps(r, p));
  p = _mm512_add_ps(_mm512_set1_ps(0x1.555556p-3f), _mm512_mul_ps(r, p));
  p = _mm512_add_ps(_mm512_set1_ps(0.5f), _mm512_mul_ps(r, p));
  *kf_out = kf;
  return _mm512_add_ps(_mm512_set1_ps(1.0f),
                       _mm512_add_ps(r, _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(r, r), p), c)));
}

// 2^k for integer lanes k in [-126, 127].
DSK_DETMATH_AVX512_INLINE __m512 pow2_of(__m512i k) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23));
}

// det_exp for lanes with -87 <= x <= 88 (not NaN): then k is in [-126, 127], det_exp's k1 = k,
// k2 = 0 and its last product is by 1.0 (exact), and none of its early returns applies.
DSK_DETMATH_AVX512_INLINE __m512 det_exp_in_range(__m512 x) {
  __m512 kf;
  const __m512 y = det_exp_reduced(x, &kf);
  return _mm512_scalef_ps(y, kf);  // kf is an integer: y * 2^kf
}

// det_exp for any lanes. Out-of-range lanes are computed on 0 and replaced afterwards, as
// det_exp's early returns do.
DSK_DETMATH_AVX512_INLINE __m512 det_exp(__m512 x) {
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __mmask16 big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.8f), _CMP_GT_OQ);
  const __mmask16 small = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-104.0f), _CMP_LT_OQ);
  const __m512 xc =
      _mm512_mask_blend_ps(static_cast<__mmask16>(nan | big | small), x, _mm512_setzero_ps());
  __m512 kf;
  const __m512 y = det_exp_reduced(xc, &kf);
  const __m512i k = _mm512_cvttps_epi32(kf);
  const __mmask16 low_k = _mm512_cmplt_epi32_mask(k, _mm512_set1_epi32(-126));
  const __m512i k1 = _mm512_mask_add_epi32(_mm512_min_epi32(k, _mm512_set1_epi32(127)), low_k, k,
                                           _mm512_set1_epi32(64));
  const __m512i k2 = _mm512_sub_epi32(k, k1);
  __m512 res = _mm512_mul_ps(_mm512_mul_ps(y, pow2_of(k1)), pow2_of(k2));
  res = _mm512_mask_blend_ps(big, res, _mm512_castsi512_ps(_mm512_set1_epi32(0x7F800000)));
  res = _mm512_mask_blend_ps(small, res, _mm512_setzero_ps());
  return _mm512_mask_blend_ps(nan, res, x);
}

// A cheap approximation of det_sigmoid (NOT its bits): |sigmoid_approx(x) - det_sigmoid(x)| stays
// below a bound that tests/core/test_moe_gate_fast.cpp measures over every finite f32 (the MoE
// gate's fast sigmoid row uses it only to rule experts out, with a margin; moe_gate_score.h).
// e^-x = 2^t with t = -x log2(e); f = t - floor(t) in [0, 1] (vreduceps, rounding down; exact up
// to one rounding when t is a small negative number), 2^f by a degree-3 polynomial fitted for
// relative error on [0, 1] (7.5e-5 at worst; FMA: fused or not, the sweep measures what runs),
// times 2^floor(t) by vscalefps, which floors its exponent operand itself (overflow to +inf,
// underflow to 0: no clamp needed for finite x), then 1 / (1 + e^-x) by vrcp14ps (relative error
// below 2^-14). 8 vector operations, no division; the result is in [0, 1] for finite x.
// Needs AVX-512F, AVX-512DQ and FMA; its callers are built for them (and run only where the CPU
// has them).
__attribute__((target("avx512f,avx512dq,fma"))) inline __attribute__((always_inline)) __m512
sigmoid_approx(__m512 x) {
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(-0x1.715476p+0f));
  // imm 0x09: keep 0 fraction bits, round down, suppress the precision exception.
  const __m512 f = _mm512_reduce_ps(t, 0x09);
  __m512 p = _mm512_fmadd_ps(f, _mm512_set1_ps(0x1.3f96a6p-4f), _mm512_set1_ps(0x1.cefc4ap-3f));
  p = _mm512_fmadd_ps(f, p, _mm512_set1_ps(0x1.64444cp-1f));
  p = _mm512_fmadd_ps(f, p, _mm512_set1_ps(0x1.fff632p-1f));
  const __m512 e = _mm512_scalef_ps(p, t);
  return _mm512_rcp14_ps(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

#undef DSK_DETMATH_AVX512_INLINE

}  // namespace avx512
}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_DETMATH_AVX512_H_
