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

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_NORM_IO_H_
