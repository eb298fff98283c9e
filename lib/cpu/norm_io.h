// norm_io.h - row loads and stores of the CPU RMSNorm, SwiGLU and RoPE references: n elements of
// any float dtype (stepping a byte stride) to and from an f32 row.
//
// Contiguous f32 and bf16 rows, the common case, take loops the compiler vectorizes; everything
// else goes through convert_run. The bf16 store is the bit form of round to nearest even,
// (u + 0x7FFF + lsb) >> 16 with NaN quieted as f32_to_bf16 does; it was checked equal to
// lib/common/convert.h's f32_to_bf16 for all 2^32 inputs.
#ifndef DSK_LIB_CPU_NORM_IO_H_
#define DSK_LIB_CPU_NORM_IO_H_

#include <cstdint>
#include <cstring>

#include "common/convert.h"
#include "cpu/convert_run.h"
#include "dsk/dsk_dtype.h"

// Row loops compiled for AVX2 as well as the baseline, picked at load time (GCC function
// multiversioning). Only vector width changes: every f32 operation and its order are the
// source's (no FMA: "avx2" does not enable it, and lib/ is built with -ffp-contract=off), so both
// versions give the same bits.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#  define DSK_NORM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#  define DSK_NORM_CLONES
#endif

// Helpers of a DSK_NORM_CLONES function that must be compiled into each clone (inlined).
#if defined(__GNUC__)
#  define DSK_NORM_INLINE inline __attribute__((always_inline))
#else
#  define DSK_NORM_INLINE inline
#endif

namespace dsk {
namespace cpu {

inline void load_f32_row(int32_t dtype, const char* src, int64_t step, float* dst, int64_t n) {
  if (dtype == DSK_DTYPE_F32 && step == 4) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  if (dtype == DSK_DTYPE_BF16 && step == 2) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, src + 2 * i, 2);
      const uint32_t u = static_cast<uint32_t>(b) << 16;
      std::memcpy(dst + i, &u, 4);
    }
    return;
  }
  convert_run(dtype, DSK_DTYPE_F32)(src, step, reinterpret_cast<char*>(dst), 4, n);
}

inline void store_f32_row(int32_t dtype, const float* src, char* dst, int64_t step, int64_t n) {
  if (dtype == DSK_DTYPE_F32 && step == 4) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  if (dtype == DSK_DTYPE_BF16 && step == 2) {
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, src + i, 4);
      const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
      const uint32_t quiet = (u >> 16) | 0x40u;
      const auto r = static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);
      std::memcpy(dst + 2 * i, &r, 2);
    }
    return;
  }
  convert_run(DSK_DTYPE_F32, dtype)(reinterpret_cast<const char*>(src), 4, dst, step, n);
}

// ---- Element access for the fused row kernels (contiguous rows, dtype known at compile time) ----
//
// Element i of a contiguous row of dtype DT at p. Loads are exact widenings; f16 is decoded
// branch-free (so the loop vectorizes) and gives the bits of lib/common/convert.h's f16_to_f32 for
// all 2^16 inputs (checked exhaustively). Stores round once to nearest even: f32 as is, bf16 the
// bit form of store_f32_row (== f32_to_bf16), f16 through f32_to_f16.

DSK_NORM_INLINE float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t o = (static_cast<uint32_t>(h) & 0x7FFFu) << 13;
  const uint32_t exp = o & 0x0F800000u;
  // Normal: rebias 15 -> 127. Inf/NaN: exponent all ones, payload kept. Zero/subnormal:
  // m * 2^-24 = (2^-14 * (1 + m / 1024)) - 2^-14, an exact f32 subtraction (+0 for m = 0).
  const uint32_t normal = o + 0x38000000u;
  const uint32_t special = o + 0x70000000u;
  const uint32_t sub = f32_bits(f32_from_bits(o + 0x38800000u) - 6.103515625e-05f);
  const uint32_t r = exp == 0x0F800000u ? special : (exp == 0 ? sub : normal);
  return f32_from_bits(r | sign);
}

DSK_NORM_INLINE uint16_t f32_to_bf16_bits(float v) {
  const uint32_t u = f32_bits(v);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);
}

template <int32_t DT>
DSK_NORM_INLINE float load_elem(const char* p, int64_t i) {
  if (DT == DSK_DTYPE_F32) {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  uint16_t b;
  std::memcpy(&b, p + 2 * i, 2);
  if (DT == DSK_DTYPE_BF16) return f32_from_bits(static_cast<uint32_t>(b) << 16);
  return f16_bits_to_f32(b);
}

// v rounded to DT and widened back to f32 (what load_elem reads after store_elem wrote v).
template <int32_t DT>
DSK_NORM_INLINE float round_to(float v) {
  if (DT == DSK_DTYPE_F32) return v;
  if (DT == DSK_DTYPE_BF16) return f32_from_bits(static_cast<uint32_t>(f32_to_bf16_bits(v)) << 16);
  return f16_bits_to_f32(f32_to_f16(v));
}

template <int32_t DT>
DSK_NORM_INLINE void store_elem(char* p, int64_t i, float v) {
  if (DT == DSK_DTYPE_F32) {
    std::memcpy(p + 4 * i, &v, 4);
    return;
  }
  const uint16_t b = DT == DSK_DTYPE_BF16 ? f32_to_bf16_bits(v) : f32_to_f16(v);
  std::memcpy(p + 2 * i, &b, 2);
}

// Whether dtype is one of the three the fused kernels are instantiated for.
inline bool fused_dtype(int32_t dtype) {
  return dtype == DSK_DTYPE_F32 || dtype == DSK_DTYPE_BF16 || dtype == DSK_DTYPE_F16;
}

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_NORM_IO_H_
