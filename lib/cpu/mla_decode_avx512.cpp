// The AVX-512 kernel set of the CPU MLA decode (see mla_decode_kernels.h).
//
// Every function that uses AVX-512 carries a target attribute and is only called after
// __builtin_cpu_supports said the CPU (and the OS) runs it; the file itself is compiled with the
// project's flags, so nothing outside these functions (inline library code, templates shared
// with other files) is built for AVX-512. Register blocking:
//   qk  4 x 16 rows by 6 keys (or 2 x 16 by 12, 1 x 16 by 12): 24 accumulators, the query
//       vectors loaded from qt, the key value broadcast from kf; the common width D = 576 is a
//       compile-time row stride, so every broadcast is an immediate offset from one pointer.
//   pv  6 rows by 4 x 16 columns: 24 accumulators, one kf row loaded per key, p broadcast.
//   exp Cephes' expf polynomial (about 1 ulp) with an exact power-of-two scaling (vscalefps);
//       arguments are <= 0 here, and below -120 (including -inf) the result is 0.
#include "cpu/mla_decode_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define DSK_MLA_HAVE_AVX512 1
// GCC's AVX-512 intrinsics start many results from _mm512_undefined_*() (`__m512 __Y = __Y;`),
// which -Wmaybe-uninitialized reports once they are inlined into code like this.
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#    pragma GCC diagnostic ignored "-Wuninitialized"
#  endif
#  include <immintrin.h>
#else
#  define DSK_MLA_HAVE_AVX512 0
#endif

#if DSK_MLA_HAVE_AVX512

#  include <cstdint>
#  include <cstring>
#  include <limits>

#  include "dsk/dsk_dtype.h"

#  define DSK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#  define DSK_AVX512_INLINE DSK_AVX512 inline __attribute__((always_inline))

namespace dsk {
namespace cpu {
namespace {

// The common cached-row width (DeepSeek's 512 + 64): a compile-time stride for qk.
constexpr int64_t kWideD = 576;

DSK_AVX512_INLINE __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-120.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

// 16 values of dtype at src (the first `valid`, the others 0) as f32.
DSK_AVX512_INLINE __m512 load16(const char* src, __mmask16 valid, bool bf16) {
  const __m256i v = _mm256_maskz_loadu_epi16(valid, src);
  return bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16))
              : _mm512_cvtph_ps(v);
}

// Blocks of 16 rows x 16 values: converted rows into a small buffer, columns gathered out.
DSK_AVX512 void pack_q(const char* const* qrows, int64_t nr, int64_t d, int32_t dtype, float* qt,
                       int64_t ldr) {
  const bool bf16 = dtype == DSK_DTYPE_BF16;
  alignas(64) float tmp[16 * 16];
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(16));
  for (int64_t r0 = 0; r0 < ldr; r0 += 16) {
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
      const int64_t w = d - c0 < 16 ? d - c0 : 16;
      const auto valid = static_cast<__mmask16>((1u << w) - 1u);
      for (int64_t i = 0; i < 16; ++i) {
        const __m512 row =
            r0 + i < nr ? load16(qrows[r0 + i] + 2 * c0, valid, bf16) : _mm512_setzero_ps();
        _mm512_store_ps(tmp + 16 * i, row);
      }
      for (int64_t k = 0; k < w; ++k) {
        _mm512_storeu_ps(qt + (c0 + k) * ldr + r0, _mm512_i32gather_ps(idx, tmp + k, 4));
      }
    }
  }
}

DSK_AVX512 void load_tile(const char* const* rows, int64_t n, int64_t n_fill, int32_t dtype,
                          int64_t d, float* kf, int64_t ldk) {
  const int64_t full = d / 16 * 16;
  const auto tail = static_cast<__mmask16>((1u << (d - full)) - 1u);
  const bool bf16 = dtype == DSK_DTYPE_BF16;
  for (int64_t j = 0; j < n; ++j) {
    const char* src = rows[j];
    float* dst = kf + j * ldk;
    if (j + 1 < n) {
      // The next row's first lines: rows of different pages are not sequential in memory.
      _mm_prefetch(rows[j + 1], _MM_HINT_T0);
      _mm_prefetch(rows[j + 1] + 64, _MM_HINT_T0);
    }
    int64_t i = 0;
    if (bf16) {
      for (; i < full; i += 16) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
        _mm512_storeu_ps(dst + i,
                         _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)));
      }
      if (i < d) {
        const __m256i v = _mm256_maskz_loadu_epi16(tail, src + 2 * i);
        _mm512_storeu_ps(dst + i,
                         _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)));
        i += 16;
      }
    } else {
      for (; i < full; i += 16) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(v));
      }
      if (i < d) {
        const __m256i v = _mm256_maskz_loadu_epi16(tail, src + 2 * i);
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(v));
        i += 16;
      }
    }
    for (; i < ldk; ++i) dst[i] = 0.0f;
  }
  for (int64_t j = n; j < n_fill; ++j) std::memset(kf + j * ldk, 0, sizeof(float) * ldk);
}

// st[j0 + j][r0 + 16 v] for RV row vectors and NK keys; LDK > 0 fixes ldk at compile time.
template <int RV, int NK, int64_t LDK>
DSK_AVX512 void qk_block(const float* qt, int64_t ldr, const float* kf, int64_t ldk_rt, int64_t d,
                         float scale, float* st) {
  const int64_t ldk = LDK > 0 ? LDK : ldk_rt;
  __m512 acc[RV][NK];
#  pragma GCC unroll 16
  for (int v = 0; v < RV; ++v) {
#  pragma GCC unroll 16
    for (int j = 0; j < NK; ++j) acc[v][j] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < d; ++i) {
    __m512 q[RV];
#  pragma GCC unroll 16
    for (int v = 0; v < RV; ++v) q[v] = _mm512_loadu_ps(qt + i * ldr + 16 * v);
    const float* k = kf + i;
#  pragma GCC unroll 16
    for (int j = 0; j < NK; ++j) {
      const __m512 b = _mm512_set1_ps(k[j * ldk]);
#  pragma GCC unroll 16
      for (int v = 0; v < RV; ++v) acc[v][j] = _mm512_fmadd_ps(q[v], b, acc[v][j]);
    }
  }
  const __m512 s = _mm512_set1_ps(scale);
#  pragma GCC unroll 16
  for (int j = 0; j < NK; ++j) {
#  pragma GCC unroll 16
    for (int v = 0; v < RV; ++v) {
      _mm512_storeu_ps(st + j * ldr + 16 * v, _mm512_mul_ps(acc[v][j], s));
    }
  }
}

template <int64_t LDK>
DSK_AVX512 void qk_rows(const float* qt, int64_t ldr, const float* kf, int64_t ldk, int64_t d,
                        int64_t nk, float scale, float* st) {
  int64_t r0 = 0;
  for (; r0 + 64 <= ldr; r0 += 64) {
    for (int64_t j0 = 0; j0 < nk; j0 += 6) {
      qk_block<4, 6, LDK>(qt + r0, ldr, kf + j0 * ldk, ldk, d, scale, st + j0 * ldr + r0);
    }
  }
  for (; r0 + 32 <= ldr; r0 += 32) {
    for (int64_t j0 = 0; j0 < nk; j0 += 12) {
      qk_block<2, 12, LDK>(qt + r0, ldr, kf + j0 * ldk, ldk, d, scale, st + j0 * ldr + r0);
    }
  }
  for (; r0 < ldr; r0 += 16) {
    for (int64_t j0 = 0; j0 < nk; j0 += 12) {
      qk_block<1, 12, LDK>(qt + r0, ldr, kf + j0 * ldk, ldk, d, scale, st + j0 * ldr + r0);
    }
  }
}

DSK_AVX512 void qk(const float* qt, int64_t ldr, const float* kf, int64_t ldk, int64_t d,
                   int64_t nk, float scale, float* st) {
  if (ldk == kWideD && d == kWideD) {
    qk_rows<kWideD>(qt, ldr, kf, ldk, d, nk, scale, st);
  } else {
    qk_rows<0>(qt, ldr, kf, ldk, d, nk, scale, st);
  }
}

DSK_AVX512 void softmax(float* st, int64_t ldr, int64_t nk, int64_t key0, const int32_t* lim,
                        bool masked, float* m, float* l, float* alpha) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < ldr; r += 16) {
    const __m512 m_old = _mm512_loadu_ps(m + r);
    const __m512i limv = _mm512_loadu_si512(lim + r);
    __m512 mx = m_old;
    for (int64_t j = 0; j < nk; ++j) {
      float* p = st + j * ldr + r;
      __m512 s = _mm512_loadu_ps(p);
      if (masked) {
        const __mmask16 live =
            _mm512_cmplt_epi32_mask(_mm512_set1_epi32(static_cast<int32_t>(key0 + j)), limv);
        s = _mm512_mask_mov_ps(neg_inf, live, s);
        _mm512_storeu_ps(p, s);
      }
      mx = _mm512_max_ps(mx, s);
    }
    // Rows that still saw no key subtract 0: exp(-inf - 0) = 0 gives p = 0 and alpha = 0.
    const __m512 m_use =
        _mm512_mask_mov_ps(mx, _mm512_cmp_ps_mask(mx, neg_inf, _CMP_EQ_OQ), _mm512_setzero_ps());
    const __m512 a = exp_nonpositive(_mm512_sub_ps(m_old, m_use));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; ++j) {
      float* p = st + j * ldr + r;
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(p), m_use));
      _mm512_storeu_ps(p, e);
      sum = _mm512_add_ps(sum, e);
    }
    _mm512_storeu_ps(l + r, _mm512_fmadd_ps(_mm512_loadu_ps(l + r), a, sum));
    _mm512_storeu_ps(m + r, mx);
    _mm512_storeu_ps(alpha + r, a);
  }
}

// MR rows by NC x 16 columns of o.
template <int MR, int NC>
DSK_AVX512 void pv_block(float* o, int64_t ldo, const float* alpha, const float* st, int64_t ldr,
                         const float* kf, int64_t ldk, int64_t nk) {
  __m512 acc[MR][NC];
#  pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const __m512 a = _mm512_set1_ps(alpha[i]);
#  pragma GCC unroll 8
    for (int c = 0; c < NC; ++c)
      acc[i][c] = _mm512_mul_ps(_mm512_loadu_ps(o + i * ldo + 16 * c), a);
  }
  for (int64_t j = 0; j < nk; ++j) {
    const float* v = kf + j * ldk;
    const float* p = st + j * ldr;
    __m512 vv[NC];
#  pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) vv[c] = _mm512_loadu_ps(v + 16 * c);
#  pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 b = _mm512_set1_ps(p[i]);
#  pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) acc[i][c] = _mm512_fmadd_ps(b, vv[c], acc[i][c]);
    }
  }
#  pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#  pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(o + i * ldo + 16 * c, acc[i][c]);
  }
}

template <int NC>
DSK_AVX512 void pv_cols(float* o, int64_t ldo, int64_t rows, const float* alpha, const float* st,
                        int64_t ldr, const float* kf, int64_t ldk, int64_t nk) {
  int64_t r = 0;
  for (; r + 6 <= rows; r += 6) {
    pv_block<6, NC>(o + r * ldo, ldo, alpha + r, st + r, ldr, kf, ldk, nk);
  }
  switch (rows - r) {
    case 5:
      pv_block<5, NC>(o + r * ldo, ldo, alpha + r, st + r, ldr, kf, ldk, nk);
      break;
    case 4:
      pv_block<4, NC>(o + r * ldo, ldo, alpha + r, st + r, ldr, kf, ldk, nk);
      break;
    case 3:
      pv_block<3, NC>(o + r * ldo, ldo, alpha + r, st + r, ldr, kf, ldk, nk);
      break;
    case 2:
      pv_block<2, NC>(o + r * ldo, ldo, alpha + r, st + r, ldr, kf, ldk, nk);
      break;
    case 1:
      pv_block<1, NC>(o + r * ldo, ldo, alpha + r, st + r, ldr, kf, ldk, nk);
      break;
    default:
      break;
  }
}

DSK_AVX512 void pv(float* o, int64_t ldo, int64_t rows, const float* alpha, const float* st,
                   int64_t ldr, const float* kf, int64_t ldk, int64_t nk, int64_t dvp) {
  int64_t c = 0;
  for (; c + 64 <= dvp; c += 64) pv_cols<4>(o + c, ldo, rows, alpha, st, ldr, kf + c, ldk, nk);
  switch ((dvp - c) / 16) {
    case 3:
      pv_cols<3>(o + c, ldo, rows, alpha, st, ldr, kf + c, ldk, nk);
      break;
    case 2:
      pv_cols<2>(o + c, ldo, rows, alpha, st, ldr, kf + c, ldk, nk);
      break;
    case 1:
      pv_cols<1>(o + c, ldo, rows, alpha, st, ldr, kf + c, ldk, nk);
      break;
    default:
      break;
  }
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");  // every AVX-512F CPU has F16C (not queryable in Clang)
}

}  // namespace

const MlaKernels* mla_kernels_avx512() {
  static const MlaKernels k = {"avx512", pack_q, load_tile, qk, softmax, pv};
  static const bool usable = cpu_has_avx512();
  return usable ? &k : nullptr;
}

}  // namespace cpu
}  // namespace dsk

#else  // !DSK_MLA_HAVE_AVX512

namespace dsk {
namespace cpu {

const MlaKernels* mla_kernels_avx512() { return nullptr; }

}  // namespace cpu
}  // namespace dsk

#endif
