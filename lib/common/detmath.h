// detmath.h - deterministic float math: the same bits on the CPU and on every CUDA device.
//
// libm and CUDA's math library are each accurate but they are different approximations, so a
// result that must match bitwise across backends (random fills, sampling) is computed here from
// single IEEE operations (+ - * / sqrt, all correctly rounded) in a fixed order.
//
// Build requirement: no floating-point contraction and no fast math for code including this header.
//  - Host: compile with -ffp-contract=off (GCC's default in GNU modes is "fast", which fuses a*b+c
//    into an FMA when the target has one, and that changes det_log/random_value results) and never
//    with -ffast-math (rejected below). On x86-64 and AArch64 with GCC/Clang the products also
//    carry an optimization barrier, so a forgotten flag cannot fuse them there.
//  - Device: every operation goes through the correctly rounded intrinsics (__fadd_rn, ...), which
//    nvcc never fuses or approximates, so -fmad=true cannot change results here (the project
//    still builds these files with -fmad=false for the code around them). Flush-to-zero
//    (-ftz=true, implied by --use_fast_math) does not change det_log or det_cos_2pi on their
//    domains (det_log normalizes subnormal inputs with integer shifts; checked on the host with
//    FTZ/DAZ set), but would flush subnormal a/b in random_value: keep nvcc's default -ftz=false.
#ifndef DSK_LIB_COMMON_DETMATH_H_
#define DSK_LIB_COMMON_DETMATH_H_

#include <math.h>
#include <stdint.h>

#include "common/hd.h"

#if defined(__FAST_MATH__) && !defined(__CUDA_ARCH__)
#  error "lib/common/detmath.h needs IEEE float semantics; do not build it with -ffast-math"
#endif

namespace dsk {

// An f32 whose arithmetic operators are each one correctly rounded IEEE operation, evaluated in the
// order the expression is written: formulas stay readable and the device cannot fuse them.
struct StrictF32 {
  float v;
};

DSK_HD StrictF32 operator+(StrictF32 a, StrictF32 b) {
#ifdef __CUDA_ARCH__
  return {__fadd_rn(a.v, b.v)};
#else
  return {a.v + b.v};
#endif
}

DSK_HD StrictF32 operator-(StrictF32 a, StrictF32 b) {
#ifdef __CUDA_ARCH__
  return {__fsub_rn(a.v, b.v)};
#else
  return {a.v - b.v};
#endif
}

DSK_HD StrictF32 operator*(StrictF32 a, StrictF32 b) {
#ifdef __CUDA_ARCH__
  return {__fmul_rn(a.v, b.v)};
#else
  float product = a.v * b.v;
  // An empty asm that "modifies" the rounded product hides where it came from, so the compiler
  // cannot fuse it into an FMA even if -ffp-contract=off was forgotten. It emits no instruction.
#  if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(product));
#  elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(product));
#  endif
  return {product};
#endif
}

DSK_HD StrictF32 operator/(StrictF32 a, StrictF32 b) {
#ifdef __CUDA_ARCH__
  return {__fdiv_rn(a.v, b.v)};
#else
  return {a.v / b.v};
#endif
}

// Correctly rounded square root (IEEE requires it of sqrtf; the device intrinsic is the exact one).
DSK_HD StrictF32 strict_sqrt(StrictF32 a) {
#ifdef __CUDA_ARCH__
  return {__fsqrt_rn(a.v)};
#else
  return {sqrtf(a.v)};
#endif
}

// Natural logarithm of x, within 2 ulp over (0, FLT_MAX] (subnormals included); det_log(1) == +0.
// Outside the domain: +0/-0 -> -inf, negative or NaN -> NaN, +inf -> +inf.
//
// Method: x = 2^k * m with m in [sqrt(2)/2, sqrt(2)), f = m - 1 (exact), s = f / (2 + f), so that
// log(m) = 2 atanh(s) = 2s + s*R with R = z(2/3 + z(2/5 + z(2/7 + z 2/9))), z = s^2 (|s| < 0.172:
// the next term is below 2^-27 relative). The identity 2s = f - f^2/2 + s f^2/2 lets the large
// part f enter exactly and leaves only small terms rounded:
//   log x = k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f),   hfsq = f^2 / 2.
// ln2_hi has 15 significant bits, so k * ln2_hi is exact for every |k| < 512 (here |k| <= 149).
DSK_HD float det_log(float x) {
  using S = StrictF32;
  const uint32_t ix = f32_bits(x);
  if (ix >= 0x7F800000u) {  // +inf, NaN, or the sign bit is set
    if (ix == 0x7F800000u) return x;
    if (ix == 0x80000000u) return f32_from_bits(0xFF800000u);
    return f32_from_bits(0x7FC00000u);
  }
  if (ix == 0) return f32_from_bits(0xFF800000u);
  uint32_t mant = ix & 0x7FFFFFu;
  int32_t k = static_cast<int32_t>(ix >> 23) - 127;
  if (ix < 0x00800000u) {
    // Subnormal: normalize with integer shifts (a float rescale would be flushed to zero under the
    // device's flush-to-zero mode); x = ix * 2^-149.
    mant = ix;
    k = -126;
    while ((mant & 0x00800000u) == 0) {
      mant <<= 1;
      --k;
    }
    mant &= 0x7FFFFFu;
  }
  // Mantissas from sqrt(2) up are halved (exponent field 126) so m straddles 1.
  const bool halve = mant >= 0x3504F3u;
  if (halve) ++k;
  const S m{f32_from_bits(mant | (halve ? 0x3F000000u : 0x3F800000u))};
  const S f = m - S{1.0f};
  const S fk{static_cast<float>(k)};
  const S ln2_hi{0x1.62e4p-1f};
  const S ln2_lo{0x1.7f7d1cp-20f};
  const S s = f / (S{2.0f} + f);
  const S z = s * s;
  // 2/3, 2/5, 2/7, 2/9 rounded to f32.
  const S l3{0x1.555556p-1f};
  const S l5{0x1.99999ap-2f};
  const S l7{0x1.24924ap-2f};
  const S l9{0x1.c71c72p-3f};
  const S r = z * (l3 + z * (l5 + z * (l7 + z * l9)));
  const S hfsq = S{0.5f} * f * f;
  return (fk * ln2_hi - ((hfsq - (s * (hfsq + r) + fk * ln2_lo)) - f)).v;
}

// e^x, within 1 ulp for normal results (tested: 0.94 ulp at worst over every 7th float; subnormal
// results within 1 ulp of the subnormal spacing); det_exp(+-0) == 1. x > 88.8 (and +inf) -> +inf, x
// < -104 (and -inf) -> +0, NaN -> x. Results between FLT_MAX and 88.8 overflow to +inf and below
// 2^-149 round to 0 as the arithmetic gives them. No division and no branch inside the range, so it
// costs about 20 device instructions.
//
// Method: k = the integer nearest to fl(x * (1 / ln2)) (the 1.5 * 2^23 shifter rounds it),
// hi = x - k ln2_hi (exact: ln2_hi has 15 significant bits, so k ln2_hi is exact for |k| <= 256,
// and the difference by Sterbenz's lemma), lo = k ln2_lo, r = hi - lo with |r| <= 0.3466 + 2^-16
// and c = (hi - r) - lo the part of the reduced argument that r lost, then
//   e^r = 1 + (r + (r^2 (1/2 + r (1/6 + r (1/24 + r (1/120 + r (1/720 + r / 5040))))) + c))
// (the next Taylor term is below 2^-27 relative), so the two largest terms enter with one rounding
// each. The result is e^r * 2^k formed as (e^r * 2^k1) * 2^k2 with k1 = k + 64 below -126, 127
// above 127, else k: the first product is exact, the second (by 2^-64, 1 or 2) rounds once, also
// for subnormal results.
DSK_HD float det_exp(float x) {
  using S = StrictF32;
  if (x != x) return x;
  if (x > 88.8f) return f32_from_bits(0x7F800000u);
  if (x < -104.0f) return 0.0f;
  const S shifter{0x1.8p23f};
  const S kf = (S{x} * S{0x1.715476p+0f} + shifter) - shifter;  // 1 / ln2 rounded; exact integer
  const int32_t k = static_cast<int32_t>(kf.v);                 // in [-150, 128]
  const S ln2_hi{0x1.62e4p-1f};
  const S ln2_lo{0x1.7f7d1cp-20f};
  const S hi = S{x} - kf * ln2_hi;
  const S lo = kf * ln2_lo;
  const S r = hi - lo;
  const S c = (hi - r) - lo;  // what rounding r lost, to first order
  // 1/5040, 1/720, 1/120, 1/24, 1/6 rounded to f32.
  const S c7{0x1.a01a02p-13f};
  const S c6{0x1.6c16c2p-10f};
  const S c5{0x1.111112p-7f};
  const S c4{0x1.555556p-5f};
  const S c3{0x1.555556p-3f};
  const S p = S{0.5f} + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))));
  const S y = S{1.0f} + (r + (r * r * p + c));
  const int32_t k1 = k < -126 ? k + 64 : (k > 127 ? 127 : k);
  const int32_t k2 = k - k1;  // -64, 0 or 1
  const S p1{f32_from_bits(static_cast<uint32_t>(k1 + 127) << 23)};
  const S p2{f32_from_bits(static_cast<uint32_t>(k2 + 127) << 23)};
  return ((y * p1) * p2).v;
}

// The logistic function 1 / (1 + det_exp(-x)): within 2.5 ulp where the result is at least 2^-126
// (x >= -87.3; tested); 0 for x < -88.8 and -inf, 1 for large x and +inf, NaN -> NaN.
DSK_HD float det_sigmoid(float x) {
  using S = StrictF32;
  return (S{1.0f} / (S{1.0f} + S{det_exp(-x)})).v;
}

// cos(2 pi u) for u in [0, 1), absolute error below 2e-7.
//
// Method: r = 4u (exact), q = nearest integer to r, f = r - q in [-1/2, 1/2] (exact), a = f pi/2,
// so cos(2 pi u) = cos(q pi/2 + a), which is cos a, -sin a, -cos a, sin a for q mod 4 = 0..3.
// Taylor polynomials on |a| <= pi/4 (next terms below 3e-8):
//   cos a = 1 - (z/2 - z^2 (1/24 - z (1/720 - z/40320))),   z = a^2
//   sin a = a + a z (-1/6 + z (1/120 + z (-1/5040 + z/362880)))
DSK_HD float det_cos_2pi(float u) {
  using S = StrictF32;
  const S r = S{u} * S{4.0f};
  int32_t q = static_cast<int32_t>(r.v);  // truncation: floor for r >= 0
  S f = r - S{static_cast<float>(q)};
  // Fold to [-1/2, 1/2]; the second branch only keeps small negative u meaningful.
  if (f.v > 0.5f) {
    f = f - S{1.0f};
    ++q;
  } else if (f.v < -0.5f) {
    f = f + S{1.0f};
    --q;
  }
  const S a = f * S{0x1.921fb6p+0f};  // pi/2
  const S z = a * a;
  // 1/24, 1/720, 1/40320 and -1/6, 1/120, -1/5040, 1/362880 rounded to f32.
  const S c4{0x1.555556p-5f};
  const S c6{0x1.6c16c2p-10f};
  const S c8{0x1.a01a02p-16f};
  const S s3{-0x1.555556p-3f};
  const S s5{0x1.111112p-7f};
  const S s7{-0x1.a01a02p-13f};
  const S s9{0x1.71de3ap-19f};
  const S c = S{1.0f} - (S{0.5f} * z - z * z * (c4 - z * (c6 - z * c8)));
  const S s = a + a * z * (s3 + z * (s5 + z * (s7 + z * s9)));
  switch (q & 3) {
    case 0:
      return c.v;
    case 1:
      return -s.v;
    case 2:
      return -c.v;
    default:
      return s.v;
  }
}

}  // namespace dsk

#endif  // DSK_LIB_COMMON_DETMATH_H_
