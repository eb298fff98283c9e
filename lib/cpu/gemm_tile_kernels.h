// gemm_tile_kernels.h - the register tiles of gemm_tile.h as templates over the tile size and B's
// element type, written once with GCC/Clang vector extensions of 16 floats. Included by the
// translation units that compile them for one instruction set each: gemm_tile.cpp (the baseline
// with SSE2 and AVX2 clones under target attributes) and gemm_tile_avx512.cpp (the whole unit
// compiled for AVX-512, which lets the fp8 loads use intrinsics). Everything here has internal
// linkage, so each unit keeps its own instructions. Vector + and * are the per-element IEEE
// operations in every clone and -ffp-contract=off (lib/CMakeLists.txt) keeps them unfused, so the
// clones agree bit for bit; only the register blocking differs, which changes no element's
// arithmetic.
#ifndef DSK_LIB_CPU_GEMM_TILE_KERNELS_H_
#define DSK_LIB_CPU_GEMM_TILE_KERNELS_H_

#include <stdint.h>
#include <string.h>

#include "cpu/gemm_tile.h"
#include "cpu/vector_ext.h"

namespace dsk {
namespace cpu {
namespace {

typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));
typedef uint16_t H16 __attribute__((vector_size(32)));
typedef uint16_t H32 __attribute__((vector_size(64)));
typedef uint32_t U16 __attribute__((vector_size(64)));
typedef uint8_t Q16 __attribute__((vector_size(16)));

DSK_VEC_INLINE V16 load_f32(const float* p) {
  V16 v;
  memcpy(&v, p, sizeof(v));
  return v;
}

// How a clone reads B: f32; bf16 widened in one of two equivalent ways (bf16 is the top half of an
// f32, so both are exact): a zero-extension and shift, or interleaving zero halves, which
// AVX-512BW does in one permute where GCC splits the zero-extension into four steps; or fp8
// e4m3fn codes (load_e4m3) times their 128-k block's scale.
enum BType { kF32 = 0, kBf16Shift = 1, kBf16Interleave = 2, kFp8 = 3 };

template <int BT>
DSK_VEC_INLINE V16 load_bf16(const char* p) {
  H16 h;
  memcpy(&h, p, sizeof(h));
  V16 v;
  if (BT == kBf16Interleave) {
    const H16 z = {};
    const H32 w =
        __builtin_shufflevector(z, h, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24,
                                9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    memcpy(&v, &w, sizeof(v));
  } else {
    const U16 w = __builtin_convertvector(h, U16) << 16;
    memcpy(&v, &w, sizeof(v));
  }
  return v;
}

// e4m3fn codes to f32, exactly e4m3fn_to_f32 (lib/common/convert.h): sign | magnitude, where a
// normal code's exponent is rebiased (7 -> 127) and a subnormal one is m * 2^-9; 0x7F / 0xFF are
// NaN (0x7FC00000 with the sign). Used where the weight is read once per few rows (decode); larger
// products dequantize a block to f32 once instead (lib/cpu/gemm.cpp).
DSK_VEC_INLINE V16 load_e4m3(const char* p) {
#if defined(DSK_GT_AVX512_UNIT)
  // The code as an fp16 with the same exponent and mantissa bits (shifted into place, the sign
  // moved to bit 15): its value times 2^-8 exactly, subnormal codes as fp16 subnormals, which
  // vcvtph2ps converts exactly whatever MXCSR says (it ignores DAZ; the f32 results are normal).
  // 10 instructions per 16 codes (13 with the integer steps of the other clones).
  const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i t = _mm256_slli_epi16(w, 7);
  const __m256i h = _mm256_add_epi16(t, _mm256_and_si256(t, _mm256_set1_epi16(0x4000)));
  const __m512 v = _mm512_cvtph_ps(h);
  // 0x7F / 0xFF became +-1.875 (480 is no e4m3fn value): NaN 0x7FC00000 with the sign.
  const __mmask16 nan = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(1.875f), _CMP_EQ_OQ);
  const __m512i x = _mm512_castps_si512(_mm512_mul_ps(v, _mm512_set1_ps(256.0f)));
  const __m512i signed_nan = _mm512_ternarylogic_epi32(
      _mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int32_t>(0x80000000u)),
      _mm512_set1_epi32(0x7FC00000), 0xEA);  // (v & sign) | qnan
  const __m512i bits = _mm512_mask_mov_epi32(x, nan, signed_nan);
  V16 v16;
  memcpy(&v16, &bits, sizeof(v16));
  return v16;
#else
  Q16 q;
  memcpy(&q, p, sizeof(q));
  // Bytes to 16-bit then 32-bit lanes: GCC widens that in a few instructions, while a direct
  // 8 -> 32-bit conversion comes out element by element.
  const U16 w = __builtin_convertvector(__builtin_convertvector(q, H16), U16);
  const U16 mag = w & 0x7Fu;
  // A normal code's exponent and mantissa are adjacent: shifted into place, +120 rebiases.
  const U16 normal = (mag << 20) + 0x3C000000u;
  const V16 sub = __builtin_convertvector(mag, V16) * 0x1p-9f;  // mag < 8: m * 2^-9, exact
  U16 sub_bits;
  memcpy(&sub_bits, &sub, sizeof(sub_bits));
  U16 bits = mag < 8u ? sub_bits : normal;
  bits = mag == 0x7Fu ? U16{} + 0x7FC00000u : bits;
  bits |= (w & 0x80u) << 24;
  V16 v;
  memcpy(&v, &bits, sizeof(v));
  return v;
#endif
}

template <int BT>
DSK_VEC_INLINE V16 load_b(const char* col, int64_t k) {
  if (BT != kF32) return load_bf16<BT>(col + 2 * k);
  return load_f32(reinterpret_cast<const float*>(col) + k);
}

// The first n (< 16) elements, the rest +0.
DSK_VEC_INLINE V16 load_f32_tail(const float* p, int64_t n) {
  float buf[16] = {};
  memcpy(buf, p, static_cast<size_t>(n) * sizeof(float));
  return load_f32(buf);
}

template <int BT>
DSK_VEC_INLINE V16 load_b_tail(const char* col, int64_t k, int64_t n) {
  if (BT != kF32) {
    uint16_t buf[16] = {};
    memcpy(buf, col + 2 * k, static_cast<size_t>(n) * 2);
    return load_bf16<BT>(reinterpret_cast<const char*>(buf));
  }
  return load_f32_tail(reinterpret_cast<const float*>(col) + k, n);
}

// The fixed tree of gemm_tile.h.
DSK_VEC_INLINE float reduce16(const V16& p) {
  const V8 t8 = __builtin_shufflevector(p, p, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(p, p, 8, 9, 10, 11, 12, 13, 14, 15);
  const V4 t4 =
      __builtin_shufflevector(t8, t8, 0, 1, 2, 3) + __builtin_shufflevector(t8, t8, 4, 5, 6, 7);
  const float t2a = t4[0] + t4[2];
  const float t2b = t4[1] + t4[3];
  return t2a + t2b;
}

// Column j's 16 elements at k (of the block), fp8 ones dequantized with their scale.
template <int BT>
DSK_VEC_INLINE V16 load_col(const GemmTile& t, int j, int64_t k) {
  if (BT == kFp8) {
    return load_e4m3(t.b[j] + k) * t.b_scale[j][((t.k0 + k) >> 7) * t.b_scale_step];
  }
  return load_b<BT>(t.b[j], k);
}

// The first n (< 16) elements of column j at k, the rest +0.
template <int BT>
DSK_VEC_INLINE V16 load_col_tail(const GemmTile& t, int j, int64_t k, int64_t n) {
  if (BT == kFp8) {
    char q[16] = {};
    memcpy(q, t.b[j] + k, static_cast<size_t>(n));
    float v[16];
    const V16 x = load_e4m3(q) * t.b_scale[j][((t.k0 + k) >> 7) * t.b_scale_step];
    memcpy(v, &x, sizeof(v));
    for (int64_t l = n; l < 16; ++l) v[l] = 0.0f;  // whatever the scale, as the other types
    return load_f32(v);
  }
  return load_b_tail<BT>(t.b[j], k, n);
}

template <int MR, int NR, int BT>
DSK_VEC_INLINE void tile(const GemmTile& t) {
  V16 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      if (t.first) {
        acc[i][j] = V16{};
      } else {
        acc[i][j] = load_f32(t.partial + (i * NR + j) * kGemmLanes);
      }
    }
  }
  const int64_t full = t.kc / kGemmLanes * kGemmLanes;
  for (int64_t k = 0; k < full; k += kGemmLanes) {
    V16 va[MR];
    for (int i = 0; i < MR; ++i) va[i] = load_f32(t.a[i] + k);
    for (int j = 0; j < NR; ++j) {
      const V16 vb = load_col<BT>(t, j, k);
      for (int i = 0; i < MR; ++i) acc[i][j] = acc[i][j] + va[i] * vb;
    }
  }
  if (full < t.kc) {
    const int64_t n = t.kc - full;
    V16 va[MR];
    for (int i = 0; i < MR; ++i) va[i] = load_f32_tail(t.a[i] + full, n);
    for (int j = 0; j < NR; ++j) {
      const V16 vb = load_col_tail<BT>(t, j, full, n);
      for (int i = 0; i < MR; ++i) acc[i][j] = acc[i][j] + va[i] * vb;
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      if (t.last) {
        t.sums[i * t.ld + j] = reduce16(acc[i][j]);
      } else {
        memcpy(t.partial + (i * NR + j) * kGemmLanes, &acc[i][j], sizeof(V16));
      }
    }
  }
}

// The tile<MR, nr> for nr <= NR columns.
template <int MR, int NR, int BT>
DSK_VEC_INLINE void tile_cols(const GemmTile& t, int nr) {
  if constexpr (NR == 1) {
    tile<MR, 1, BT>(t);
  } else if (nr >= NR) {
    tile<MR, NR, BT>(t);
  } else {
    tile_cols<MR, NR - 1, BT>(t, nr);
  }
}

// The tile<mr, nr> for mr <= MR rows and nr <= NC columns.
template <int MR, int NC, int BT>
DSK_VEC_INLINE void tile_any(const GemmTile& t, int mr, int nr) {
  if constexpr (MR == 1) {
    tile_cols<1, NC, BT>(t, nr);
  } else if (mr >= MR) {
    tile_cols<MR, NC, BT>(t, nr);
  } else {
    tile_any<MR - 1, NC, BT>(t, mr, nr);
  }
}

// Row k of B's 16 columns (FULL) or of its first n (the others hold whatever: only the first n
// sums are kept); an fp8 row times its scale.
template <int BT, bool FULL>
DSK_VEC_INLINE V16 load_b_row(const GemmRowTile& t, const char* p, int64_t k) {
  if (BT == kFp8) {
    const float s = t.b_scale[((t.k_phase + k) >> 7) * t.b_scale_step];
    if (FULL) return load_e4m3(p) * s;
    char q[16] = {};
    memcpy(q, p, static_cast<size_t>(t.cols));
    return load_e4m3(q) * s;
  }
  if (FULL) return BT != kF32 ? load_bf16<BT>(p) : load_f32(reinterpret_cast<const float*>(p));
  return load_b_tail<BT>(p, 0, t.cols);
}

template <int BT, bool FULL>
DSK_VEC_INLINE void row_tile_cols(const GemmRowTile& t) {
  V16 acc[16];
  for (int l = 0; l < 16; ++l) acc[l] = V16{};
  const int64_t full = t.k / kGemmLanes * kGemmLanes;
  const char* b = t.b;
  for (int64_t k0 = 0; k0 < full; k0 += kGemmLanes) {
    // Unrolled so that the 16 lane sums stay in registers.
#if defined(__clang__)
#  pragma clang loop unroll(full)
#elif defined(__GNUC__)
#  pragma GCC unroll 16
#endif
    for (int l = 0; l < 16; ++l) {
      acc[l] = acc[l] + t.a[k0 + l] * load_b_row<BT, FULL>(t, b, k0 + l);
      b += t.b_ld;
    }
  }
  // The tail: lanes past K add +0 * +0 in GemmTile, which turns a -0 sum into +0.
  for (int l = 0; l < 16; ++l) {
    if (full + l < t.k) {
      acc[l] = acc[l] + t.a[full + l] * load_b_row<BT, FULL>(t, b, full + l);
      b += t.b_ld;
    } else if (full < t.k) {
      acc[l] = acc[l] + V16{};
    }
  }
  for (int l = 0; l < 8; ++l) acc[l] = acc[l] + acc[l + 8];
  for (int l = 0; l < 4; ++l) acc[l] = acc[l] + acc[l + 4];
  for (int l = 0; l < 2; ++l) acc[l] = acc[l] + acc[l + 2];
  const V16 s = acc[0] + acc[1];
  float out[16];
  memcpy(out, &s, sizeof(out));
  memcpy(t.sums, out, static_cast<size_t>(t.cols) * sizeof(float));
}

template <int BT>
DSK_VEC_INLINE void row_tile(const GemmRowTile& t) {
  if (t.cols == 16) {
    row_tile_cols<BT, true>(t);
  } else {
    row_tile_cols<BT, false>(t);
  }
}

// GemmTileKernel::dequant_fp8: 16 codes a vector (they share a scale: phase % 16 == 0).
DSK_VEC_INLINE void dequant_fp8_any(const uint8_t* q, int64_t n, const float* scale, int64_t step,
                                    int64_t phase, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const V16 v =
        load_e4m3(reinterpret_cast<const char*>(q + i)) * scale[((phase + i) >> 7) * step];
    memcpy(out + i, &v, sizeof(v));
  }
  if (i < n) {
    char tail[16] = {};
    memcpy(tail, q + i, static_cast<size_t>(n - i));
    const V16 v = load_e4m3(tail) * scale[((phase + i) >> 7) * step];
    memcpy(out + i, &v, static_cast<size_t>(n - i) * sizeof(float));
  }
}

// GemmTileKernel::row_panel.
template <int BT, bool FULL>
DSK_VEC_INLINE void row_panel_cols(const GemmRowTile& t, float* out) {
  const char* b = t.b;
  for (int64_t k = 0; k < t.k; ++k) {
    const V16 v = load_b_row<BT, FULL>(t, b, k);
    memcpy(out + 16 * k, &v, sizeof(v));
    b += t.b_ld;
  }
}
template <int BT>
DSK_VEC_INLINE void row_panel_type(const GemmRowTile& t, float* out) {
  if (t.cols == 16) {
    row_panel_cols<BT, true>(t, out);
  } else {
    row_panel_cols<BT, false>(t, out);
  }
}
template <int BF16_TYPE>
DSK_VEC_INLINE void row_panel_any(const GemmRowTile& t, int b_type, float* out) {
  if (b_type == kGemmBFp8) {
    row_panel_type<kFp8>(t, out);
  } else {
    row_panel_type<BF16_TYPE>(t, out);
  }
}

template <int BF16_TYPE>
DSK_VEC_INLINE void row_any(const GemmRowTile& t, int b_type) {
  if (b_type == kGemmBBf16) {
    row_tile<BF16_TYPE>(t);
  } else if (b_type == kGemmBFp8) {
    row_tile<kFp8>(t);
  } else {
    row_tile<kF32>(t);
  }
}

template <int MAXR, int MAXC, int BF16_TYPE>
DSK_VEC_INLINE void run_any(const GemmTile& t, int mr, int nr, int b_type) {
  if (b_type == kGemmBBf16) {
    tile_any<MAXR, MAXC, BF16_TYPE>(t, mr, nr);
  } else if (b_type == kGemmBFp8) {
    tile_any<MAXR, MAXC, kFp8>(t, mr, nr);
  } else {
    tile_any<MAXR, MAXC, kF32>(t, mr, nr);
  }
}

}  // namespace
}  // namespace cpu
}  // namespace dsk

// The four GemmTileKernel entries of one clone, PREFIX_run, PREFIX_row, PREFIX_dequant_fp8 and
// PREFIX_row_panel, each declared with ATTR (a target attribute, or nothing), for register tiles of
// up to MAXR x MAXC and bf16 widened as BF16_TYPE. Expanded in the unit that compiles the clone.
#define DSK_GT_DEFINE_CLONE(ATTR, PREFIX, MAXR, MAXC, BF16_TYPE)                                \
  ATTR void PREFIX##_run(const GemmTile& t, int mr, int nr, int b_type) {                       \
    run_any<MAXR, MAXC, BF16_TYPE>(t, mr, nr, b_type);                                          \
  }                                                                                             \
  ATTR void PREFIX##_row(const GemmRowTile& t, int b_type) { row_any<BF16_TYPE>(t, b_type); }   \
  ATTR void PREFIX##_dequant_fp8(const uint8_t* q, int64_t n, const float* scale, int64_t step, \
                                 int64_t phase, float* out) {                                   \
    dequant_fp8_any(q, n, scale, step, phase, out);                                             \
  }                                                                                             \
  ATTR void PREFIX##_row_panel(const GemmRowTile& t, int b_type, float* out) {                  \
    row_panel_any<BF16_TYPE>(t, b_type, out);                                                   \
  }

#endif  // DSK_LIB_CPU_GEMM_TILE_KERNELS_H_
