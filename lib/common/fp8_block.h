// fp8_block.h - the scale math of DeepSeek-V3 FP8 block quantization (dsk_ops.h), shared by the
// CPU reference and the CUDA kernels so both produce the same bits.
//
// Per 1 x 128 activation tile or 128 x 128 weight block:
//   amax  = max |x|                      (exact: |x| is a sign-bit clear, max is order-free)
//   scale = amax / 448                   (one f32 division, round to nearest even)
//   scale = 2^ceil(log2(scale))          with DSK_QUANT_SCALE_POW2 (exact bit manipulation)
//   q     = f32_to_e4m3fn(x / scale)     (one f32 division; RNE, saturating to +-448)
// amax == 0 gives scale 0 and q = 0 (+0). The only float operations are the two divisions and the
// dequantizing multiply (q * scale), each correctly rounded on the host and on the device (nvcc's
// default -prec-div=true, -ftz=false), so no contraction flag can change a result; callers still
// compile with -ffp-contract=off / -fmad=false as every bit-exact path does.
#ifndef DSK_LIB_COMMON_FP8_BLOCK_H_
#define DSK_LIB_COMMON_FP8_BLOCK_H_

#include <stdint.h>

#include "common/convert.h"
#include "common/hd.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace fp8 {

// Tile edge (DSK_FP8_BLOCK) and the largest finite e4m3fn magnitude.
constexpr int64_t kBlock = 128;
constexpr float kE4M3Max = 448.0f;

// Number of tiles covering n elements (the last one partial when n % 128 != 0).
DSK_HD_CONST int64_t blocks(int64_t n) { return (n + kBlock - 1) / kBlock; }

// |x|, by clearing the sign bit (exact; NaN stays NaN).
DSK_HD float abs_bits(float x) { return f32_from_bits(f32_bits(x) & 0x7FFFFFFFu); }

// True for finite x (not NaN, not +-Inf), from the bits.
DSK_HD bool is_finite(float x) { return (f32_bits(x) & 0x7F800000u) != 0x7F800000u; }

// max(m, v) for non-negative m and v where a NaN on either side wins: once a tile has met a NaN its
// amax stays NaN whatever the order of the reduction (fmaxf would drop it).
DSK_HD float nan_max(float m, float v) { return (v > m || v != v) ? v : m; }

// One step of the amax reduction: max(m, |x|), NaN-propagating.
DSK_HD float amax_step(float m, float x) { return nan_max(m, abs_bits(x)); }

// The smallest power of two >= s, for s >= 0 (exact). 0 stays 0; Inf and NaN are returned as is; a
// result past the largest finite power (s > 2^127) is +Inf. Subnormal s rounds up to a subnormal
// power of two or to the smallest normal (2^-126).
DSK_HD float round_up_pow2(float s) {
  const uint32_t b = f32_bits(s) & 0x7FFFFFFFu;
  if (b == 0u || b >= 0x7F800000u) return s;
  if (b >= 0x00800000u) {
    if ((b & 0x007FFFFFu) == 0u) return s;  // already 2^e
    // Clear the mantissa and step the exponent: 2^(e+1); exponent field 255 is +Inf.
    return f32_from_bits(((b >> 23) + 1u) << 23);
  }
  // Subnormal: the value is b * 2^-149, so powers of two are the single-bit patterns.
  uint32_t p = 1u;
  while (p < b) p <<= 1;
  return f32_from_bits(p);  // p <= 0x00800000u (2^-126)
}

// The dequantization scale of a tile with the given amax: amax / 448 (f32), optionally rounded up
// to a power of two. amax == 0 gives 0; NaN/Inf amax gives NaN/Inf.
DSK_HD float tile_scale(float amax, bool pow2) {
  if (amax == 0.0f) return 0.0f;
  const float s = amax / kE4M3Max;
  return pow2 ? round_up_pow2(s) : s;
}

// q = e4m3fn(x / scale); scale 0 (an all-zero tile) gives +0.
DSK_HD uint8_t quantize(float x, float scale) {
  if (scale == 0.0f) return 0u;
  return f32_to_e4m3fn(x / scale);
}

// f32_to_e4m3fn(v) for any v that is not NaN (finite or +-Inf), branch-free so that a host compiler
// can vectorize it: round to nearest even on the bits for the normal range (|v| >= 2^-6), and by
// the 2^23 magic-number addition for the subnormal range (quantum 2^-9), then saturation to 448.
// Equal to f32_to_e4m3fn for every non-NaN input (checked exhaustively in tests/core). The CPU
// uses it after rejecting NaN; the CUDA kernels keep f32_to_e4m3fn, which maps NaN to 0x7F.
// The subnormal code (an integer 0..8) goes through int32, which gives the same value and lets a
// host compiler vectorize the loop (float -> uint32 has no SSE/AVX2 instruction).
DSK_HD uint8_t e4m3fn_from_non_nan(float v) {
  const uint32_t bits = f32_bits(v);
  const uint32_t sign = (bits >> 24) & 0x80u;
  const uint32_t a = bits & 0x7FFFFFFFu;
  // Normal: keep 3 mantissa bits with RNE; the carry moves into the exponent by itself. The f32
  // exponent field minus 120 is the e4m3 one (bias 127 vs 7). Wraps (unused) below 2^-6.
  const uint32_t rounded = a + 0x7FFFFu + ((a >> 20) & 1u);
  const uint32_t normal = (rounded >> 20) - (120u << 3);
  // Subnormal: |v| * 2^9 (exact) rounded to an integer 0..8 (8 is 2^-6, code 0x08). Larger
  // inputs are replaced by 0 first so the float-to-int conversion stays in range.
  const bool small = a < 0x3C800000u;
  const float t = f32_from_bits(small ? a : 0u) * 512.0f + 8388608.0f;
  const auto sub = static_cast<uint32_t>(static_cast<int32_t>(t - 8388608.0f));
  uint32_t mag = small ? sub : normal;
  mag = mag < 0x7Eu ? mag : 0x7Eu;
  return static_cast<uint8_t>(sign | mag);
}

// x = q * scale in f32 (the value before rounding to the output dtype).
DSK_HD float dequantize(uint8_t q, float scale) { return e4m3fn_to_f32(q) * scale; }

// The 2-D view [rows, cols] with element strides (s0, s1) of a normalized argument of the FP8
// entries (host side, CPU and CUDA alike); a 1-D tensor is one row. Size-1 dims carry stride 0
// after validation: they get the strides of a compact layout, so that leading dimensions derived
// from them (GEMM lda / ldd) are valid.
struct View2d {
  int64_t rows, cols, s0, s1;
};

inline View2d view_2d(const DLTensor* t) {
  View2d v;
  v.rows = t->ndim >= 2 ? t->shape[t->ndim - 2] : 1;
  v.cols = t->ndim >= 1 ? t->shape[t->ndim - 1] : 1;
  if (t->strides != nullptr) {
    v.s0 = t->ndim >= 2 ? t->strides[t->ndim - 2] : 0;
    v.s1 = t->ndim >= 1 ? t->strides[t->ndim - 1] : 0;
  } else {
    v.s0 = v.cols;
    v.s1 = 1;
  }
  if (v.cols <= 1) v.s1 = 1;
  if (v.rows <= 1) v.s0 = v.cols * v.s1;
  return v;
}

}  // namespace fp8
}  // namespace dsk

#endif  // DSK_LIB_COMMON_FP8_BLOCK_H_
