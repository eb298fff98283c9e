// AVX-512 dense kernels of the CPU sampler (sample_row.h), for contiguous f32, bf16 and f16 rows.
//
// Bitwise equal to the scalar kernels of sample_row.cpp: per lane, every float operation of
// sample_temper, sample_score, det_log (inside sample_gumbel) and the f32 subtraction is the same
// IEEE operation in the same order (vdivps, vaddps, vsubps, vmulps are correctly rounded like their
// scalar forms; no FMA: the target below does not enable it and lib/ is built with
// -ffp-contract=off). det_log is only evaluated on the Gumbel domain (positive normal finite
// inputs), where its special cases do not occur. Across lanes only exact operations are used:
// integer maxima of keys, comparisons of scores and first-lane picks, so the (score, id) and
// (key, id) winners are the scalar ones. Philox is pure 32-bit integer arithmetic.
#include "common/convert.h"
#include "common/sampling_math.h"
#include "cpu/sample_row.h"
#include "dsk/dsk_dtype.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define DSK_SAMPLE_HAVE_AVX512 1
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#    pragma GCC diagnostic ignored "-Wuninitialized"
#  endif
#  include <immintrin.h>

#  include "cpu/detmath_avx512.h"
#else
#  define DSK_SAMPLE_HAVE_AVX512 0
#endif

namespace dsk {
namespace cpu {
namespace sampling {

#if DSK_SAMPLE_HAVE_AVX512

#  define DSK_SAMPLE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#  define DSK_SAMPLE_INLINE DSK_SAMPLE_AVX512 inline __attribute__((always_inline))

namespace {

DSK_SAMPLE_INLINE __m512i iset(uint32_t v) { return _mm512_set1_epi32(static_cast<int32_t>(v)); }
DSK_SAMPLE_INLINE __m512 fset(float v) { return _mm512_set1_ps(v); }

DSK_SAMPLE_INLINE __mmask16 lanes(int64_t rem) {
  return rem >= 16 ? static_cast<__mmask16>(0xFFFFu)
                   : static_cast<__mmask16>((1u << static_cast<uint32_t>(rem)) - 1u);
}

// Allowed bits of tokens base .. base + 15 (base % 16 == 0).
DSK_SAMPLE_INLINE __mmask16 mask_bits(const uint32_t* mask, int64_t base) {
  if (mask == nullptr) return static_cast<__mmask16>(0xFFFFu);
  return static_cast<__mmask16>(mask[base >> 5] >> (base & 16));
}

template <int kDtype>
DSK_SAMPLE_INLINE __m512 load16(const char* x, int64_t base, __mmask16 valid) {
  if (kDtype == DSK_DTYPE_F32) return _mm512_maskz_loadu_ps(valid, x + 4 * base);
  const __m256i h = _mm256_maskz_loadu_epi16(valid, x + 2 * base);
  if (kDtype == DSK_DTYPE_BF16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

// sample_key, lane by lane.
DSK_SAMPLE_INLINE __m512i v_key(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  const __mmask16 neg_zero = _mm512_cmpeq_epi32_mask(u, iset(0x80000000u));
  u = _mm512_mask_mov_epi32(u, neg_zero, _mm512_setzero_si512());
  const __mmask16 neg = _mm512_cmplt_epi32_mask(u, _mm512_setzero_si512());
  return _mm512_mask_blend_epi32(neg, _mm512_or_si512(u, iset(0x80000000u)),
                                 _mm512_xor_si512(u, iset(0xFFFFFFFFu)));
}

// det_log for positive normal finite lanes (lib/common/detmath.h, same operations in order).
DSK_SAMPLE_INLINE __m512 v_log_pos(__m512 x) {
  const __m512i ix = _mm512_castps_si512(x);
  const __m512i mant = _mm512_and_si512(ix, iset(0x7FFFFFu));
  __m512i k = _mm512_sub_epi32(_mm512_srli_epi32(ix, 23), iset(127));
  const __mmask16 halve = _mm512_cmpge_epu32_mask(mant, iset(0x3504F3u));
  k = _mm512_mask_add_epi32(k, halve, k, iset(1));
  const __m512 m = _mm512_castsi512_ps(
      _mm512_or_si512(mant, _mm512_mask_blend_epi32(halve, iset(0x3F800000u), iset(0x3F000000u))));
  const __m512 f = _mm512_sub_ps(m, fset(1.0f));
  const __m512 fk = _mm512_cvtepi32_ps(k);
  const __m512 s = _mm512_div_ps(f, _mm512_add_ps(fset(2.0f), f));
  const __m512 z = _mm512_mul_ps(s, s);
  __m512 r = _mm512_add_ps(fset(0x1.24924ap-2f), _mm512_mul_ps(z, fset(0x1.c71c72p-3f)));
  r = _mm512_add_ps(fset(0x1.99999ap-2f), _mm512_mul_ps(z, r));
  r = _mm512_add_ps(fset(0x1.555556p-1f), _mm512_mul_ps(z, r));
  r = _mm512_mul_ps(z, r);
  const __m512 hfsq = _mm512_mul_ps(_mm512_mul_ps(fset(0.5f), f), f);
  const __m512 inner = _mm512_add_ps(_mm512_mul_ps(s, _mm512_add_ps(hfsq, r)),
                                     _mm512_mul_ps(fk, fset(0x1.7f7d1cp-20f)));
  return _mm512_sub_ps(_mm512_mul_ps(fk, fset(0x1.62e4p-1f)),
                       _mm512_sub_ps(_mm512_sub_ps(hfsq, inner), f));
}

// -x as a sign flip (as the scalar unary minus; 0 - x would differ at x = +0).
DSK_SAMPLE_INLINE __m512 v_neg(__m512 x) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), iset(0x80000000u)));
}

// sample_gumbel, lane by lane.
DSK_SAMPLE_INLINE __m512 v_gumbel(__m512i word) {
  const __m512i h = _mm512_or_si512(_mm512_slli_epi32(_mm512_srli_epi32(word, 9), 1), iset(1));
  const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(h), fset(0x1p-24f));
  const __m512 nl = v_neg(v_log_pos(u));  // -det_log(u) >= 5.96e-8
  return v_neg(v_log_pos(nl));
}

// The round keys of Philox4x32-10 for key (k0, k1), broadcast.
struct PhiloxKeys {
  __m512i k0[10];
  __m512i k1[10];
};

DSK_SAMPLE_INLINE void philox_keys(uint32_t k0, uint32_t k1, PhiloxKeys& keys) {
  for (int round = 0; round < 10; ++round) {
    keys.k0[round] = iset(k0);
    keys.k1[round] = iset(k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Philox4x32-10 of G groups of 16 counters (c0s[g] + l, c1s, c2s, c3s), l = 0 .. 15: out[g][w]
// lane l = word w of counter c0s[g] + l. Each 32-bit state word lives in the low half of a 64-bit
// lane (8 counters per vector), so that vpmuludq gives the whole 64-bit product (its low half is
// Philox's lo, its high half hi); the high halves of the lanes carry garbage that no low half
// ever depends on. The groups' (and halves') rounds are independent chains, interleaved.
template <int G>
DSK_SAMPLE_INLINE void v_philox(const uint32_t* c0s, uint32_t c1s, uint32_t c2s, uint32_t c3s,
                                const PhiloxKeys& keys, __m512i (*out)[4]) {
  constexpr int N = 2 * G;
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53);
  const __m512i m1 = _mm512_set1_epi64(0xCD9E8D57);
  const __m512i iota = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  __m512i c0[N], c1[N], c2[N], c3[N];
  for (int h = 0; h < N; ++h) {
    c0[h] =
        _mm512_add_epi64(iota, _mm512_set1_epi64(static_cast<int64_t>(c0s[h / 2]) + 8 * (h % 2)));
    c1[h] = iset(c1s);
    c2[h] = iset(c2s);
    c3[h] = iset(c3s);
  }
  for (int round = 0; round < 10; ++round) {
    for (int h = 0; h < N; ++h) {
      const __m512i p0 = _mm512_mul_epu32(m0, c0[h]);
      const __m512i p1 = _mm512_mul_epu32(m1, c2[h]);
      // 0x96: a ^ b ^ c.
      c0[h] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1, 32), c1[h], keys.k0[round], 0x96);
      c2[h] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0, 32), c3[h], keys.k1[round], 0x96);
      c1[h] = p1;
      c3[h] = p0;
    }
  }
  for (int g = 0; g < G; ++g) {
    const __m512i* st[4] = {c0 + 2 * g, c1 + 2 * g, c2 + 2 * g, c3 + 2 * g};
    for (int w = 0; w < 4; ++w) {
      out[g][w] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(st[w][0])),
                                     _mm512_cvtepi64_epi32(st[w][1]), 1);
    }
  }
}

// From lane l word w (token 4l + w) to vector v lane i (token 16v + i).
DSK_SAMPLE_INLINE void transpose_words(const __m512i w[4], __m512i t[4]) {
  const __m512i a0 = _mm512_unpacklo_epi32(w[0], w[1]);
  const __m512i a1 = _mm512_unpackhi_epi32(w[0], w[1]);
  const __m512i a2 = _mm512_unpacklo_epi32(w[2], w[3]);
  const __m512i a3 = _mm512_unpackhi_epi32(w[2], w[3]);
  const __m512i r0 = _mm512_unpacklo_epi64(a0, a2);
  const __m512i r1 = _mm512_unpackhi_epi64(a0, a2);
  const __m512i r2 = _mm512_unpacklo_epi64(a1, a3);
  const __m512i r3 = _mm512_unpackhi_epi64(a1, a3);
  const __m512i b0 = _mm512_shuffle_i32x4(r0, r1, 0x44);
  const __m512i b1 = _mm512_shuffle_i32x4(r0, r1, 0xEE);
  const __m512i b2 = _mm512_shuffle_i32x4(r2, r3, 0x44);
  const __m512i b3 = _mm512_shuffle_i32x4(r2, r3, 0xEE);
  t[0] = _mm512_shuffle_i32x4(b0, b2, 0x88);
  t[1] = _mm512_shuffle_i32x4(b0, b2, 0xDD);
  t[2] = _mm512_shuffle_i32x4(b1, b3, 0x88);
  t[3] = _mm512_shuffle_i32x4(b1, b3, 0xDD);
}

DSK_SAMPLE_INLINE __m512 v_temper(__m512 x, float t) {
  return t > 0.0f ? _mm512_div_ps(x, fset(t)) : x;
}

DSK_SAMPLE_INLINE __m512i key_of(__m512 x) {
  const __m512i u = _mm512_castps_si512(_mm512_add_ps(x, _mm512_setzero_ps()));
  const __m512i sign = _mm512_srai_epi32(u, 31);
  return _mm512_xor_si512(u, _mm512_or_si512(sign, iset(0x80000000u)));
}

// A 16-bit order key of bf16 bits, 32 lanes: 0x8000 + the sign-magnitude value as a two's
// complement integer, so -0 and +0 share the key 0x8000 (as x + 0 makes them one in key_of) and
// the order is the order of the values; NaN lands above key(+inf) = 0xFF80 or below
// key(-inf) = 0x0080.
DSK_SAMPLE_INLINE __m512i bf16_key16(__m512i u) {
  const __m512i sm = _mm512_srai_epi16(u, 15);
  const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi16(0x7FFF));
  const __m512i v = _mm512_sub_epi16(_mm512_xor_si512(mag, sm), sm);
  return _mm512_xor_si512(v, _mm512_set1_epi16(static_cast<int16_t>(0x8000)));
}

// The f32 key (key_of) of the bf16 value whose bf16_key16 is k.
inline uint32_t key32_of_key16(uint32_t k) {
  const auto v = static_cast<int32_t>(k) - 0x8000;  // the two's complement value
  const uint32_t bits = v < 0 ? 0x8000u | static_cast<uint32_t>(-v) : static_cast<uint32_t>(v);
  return sample_key(bf16_to_f32(static_cast<uint16_t>(bits)));
}

// The largest of 32 unsigned 16-bit lanes.
DSK_SAMPLE_INLINE uint32_t max_epu16(__m512i v) {
  __m256i m = _mm256_max_epu16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i x = _mm_max_epu16(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
  // minpos finds the smallest of 8 lanes: of the complements, i.e. the largest.
  x = _mm_minpos_epu16(_mm_xor_si128(x, _mm_set1_epi32(-1)));
  return 0xFFFFu - static_cast<uint32_t>(_mm_extract_epi16(x, 0));
}

// Keys of x + 0 (which turns -0 into +0 and changes nothing else): sign-magnitude to unsigned
// order. NaN lanes get keys above key(+inf) or below key(-inf); they only set `bad` (a bad row's
// block maxima are never used). Whole bf16 blocks without a mask take their maximum over 16-bit
// keys, 32 tokens a vector (the same maximum: both keys follow the values' order).
template <int kDtype>
DSK_SAMPLE_AVX512 void pass1_avx(const DenseRow& r, int64_t b0, int64_t b1, uint32_t* bmax,
                                 bool& bad_out) {
  __mmask16 bad = 0;
  __mmask32 bad16 = 0;
  const int64_t full_blocks = r.vocab / kBlock;
  const __m512i lo_key = iset(0x007FFFFFu);              // key(-inf)
  const __m512i span = iset(0xFF800000u - 0x007FFFFFu);  // key(+inf) - key(-inf)
  const __m512i lo_key16 = _mm512_set1_epi16(0x0080);
  const __m512i span16 = _mm512_set1_epi16(static_cast<int16_t>(0xFF80 - 0x0080));
  static_assert(kBlock == 64, "a bf16 block is two vectors of 32");
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lo = b * kBlock;
    __m512i bk = _mm512_setzero_si512();
    if (kDtype == DSK_DTYPE_BF16 && r.mask == nullptr && b < full_blocks) {
      const char* p = r.x + 2 * lo;
      const __m512i k0 = bf16_key16(_mm512_loadu_si512(p));
      const __m512i k1 = bf16_key16(_mm512_loadu_si512(p + 64));
      bad16 = static_cast<__mmask32>(
          bad16 | _mm512_cmpge_epu16_mask(_mm512_sub_epi16(k0, lo_key16), span16) |
          _mm512_cmpge_epu16_mask(_mm512_sub_epi16(k1, lo_key16), span16));
      bmax[b] = key32_of_key16(max_epu16(_mm512_max_epu16(k0, k1)));
      continue;
    }
    if (r.mask == nullptr && b < full_blocks) {
      for (int v = 0; v < 4; ++v) {
        const __m512i key =
            key_of(load16<kDtype>(r.x, lo + 16 * v, static_cast<__mmask16>(0xFFFFu)));
        // bad: key - key(-inf) above key(+inf) - key(-inf) (NaN or +inf; wraps below -inf).
        bad = static_cast<__mmask16>(bad |
                                     _mm512_cmpge_epu32_mask(_mm512_sub_epi32(key, lo_key), span));
        bk = _mm512_max_epu32(bk, key);
      }
    } else {
      for (int v = 0; v < 4; ++v) {
        const int64_t base = lo + 16 * v;
        if (base >= r.vocab) break;
        const __mmask16 allowed =
            static_cast<__mmask16>(lanes(r.vocab - base) & mask_bits(r.mask, base));
        const __m512i key =
            _mm512_maskz_mov_epi32(allowed, key_of(load16<kDtype>(r.x, base, allowed)));
        bad = static_cast<__mmask16>(
            bad | _mm512_mask_cmpge_epu32_mask(allowed, _mm512_sub_epi32(key, lo_key), span));
        bk = _mm512_max_epu32(bk, key);
      }
    }
    bmax[b] = _mm512_reduce_max_epu32(bk);
  }
  if (bad != 0 || bad16 != 0) bad_out = true;
}

// Upper bounds of the Gumbel value of a word (sample_gumbel is nondecreasing in word >> 9:
// tests/core/test_sample_entry.cpp checks every value), in two 32-entry levels: lo[k] for the
// words with word >> 27 == k < 31 (the largest such word's value), hi[k] for the words with
// word >> 22 == 31 * 32 + k (the top 1/32 of u, where g grows fast).
struct GumbelBounds {
  float lo[32];
  float hi[32];
  GumbelBounds() {
    for (uint32_t k = 0; k < 32; ++k) {
      lo[k] = sample_gumbel((k << 27) | 0x7FFFFFFu);
      hi[k] = sample_gumbel((31u << 27) | (k << 22) | 0x3FFFFFu);
    }
  }
};

const GumbelBounds& gumbel_bounds() {
  static const GumbelBounds b;
  return b;
}

// A block of the race waiting for its Philox words: z and the lanes that may still win.
struct RaceBlock {
  int64_t lo;
  __m512 z[4];
  __mmask16 ok[4];
};

struct RaceConsts {
  __m512 glo0, glo1, ghi0, ghi1;
  uint32_t ord_key, ord_id;
};

// The race over one block given its Philox words (lane l word w = token lo + 4 l + w).
DSK_SAMPLE_INLINE void race_block(const RaceBlock& blk, const __m512i words[4], const RaceConsts& c,
                                  const RaceFilter& f, RaceBest& best) {
  const __m512 ninf = fset(-__builtin_inff());
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i tw[4];
  transpose_words(words, tw);
  for (int v = 0; v < 4; ++v) {
    if (blk.ok[v] == 0) continue;
    // Exact prune: g(word) <= gu (GumbelBounds), so a lane with fl(z + gu) < best.score
    // cannot win (rounding is monotone).
    const __m512i top5 = _mm512_srli_epi32(tw[v], 27);
    const __m512i next5 = _mm512_and_si512(_mm512_srli_epi32(tw[v], 22), iset(31));
    const __m512 gu = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(top5, iset(31)),
                                           _mm512_permutex2var_ps(c.glo0, top5, c.glo1),
                                           _mm512_permutex2var_ps(c.ghi0, next5, c.ghi1));
    const __m512 z = blk.z[v];
    __mmask16 live =
        _mm512_mask_cmp_ps_mask(blk.ok[v], _mm512_add_ps(z, gu), fset(best.score), _CMP_GE_OQ);
    if (f.min_ord != 0 && live != 0) {
      // cand_ord(key, j) >= min_ord: key above ord_key, or equal with j <= ord_id.
      const __m512i key = v_key(z);
      const __m512i j = _mm512_add_epi32(iota, iset(static_cast<uint32_t>(blk.lo + 16 * v)));
      const __mmask16 above = _mm512_cmpgt_epu32_mask(key, iset(c.ord_key));
      const __mmask16 tie = _mm512_mask_cmple_epu32_mask(
          _mm512_cmpeq_epi32_mask(key, iset(c.ord_key)), j, iset(c.ord_id));
      live = static_cast<__mmask16>(live & (above | tie));
    }
    if (f.min_p > 0.0f && live != 0) {
      // Min-p on the few lanes left (scalar, the shared functions).
      alignas(64) float zl[16];
      _mm512_store_ps(zl, z);
      unsigned bits = live;
      while (bits != 0) {
        const int i = __builtin_ctz(bits);
        bits &= bits - 1;
        if (!sample_min_p_keeps(sample_rel_exp(zl[i], f.m), f.min_p))
          live = static_cast<__mmask16>(live & ~(1u << i));
      }
    }
    if (live == 0) continue;
    const __m512 s = _mm512_mask_blend_ps(live, ninf, _mm512_add_ps(z, v_gumbel(tw[v])));
    const float smax = _mm512_reduce_max_ps(s);
    if (smax < best.score) continue;
    const __mmask16 eq = _mm512_mask_cmp_ps_mask(live, s, fset(smax), _CMP_EQ_OQ);
    const int lane = __builtin_ctz(static_cast<unsigned>(eq));
    const int64_t id = blk.lo + 16 * v + lane;
    if (race_better(smax, id, best)) {
      alignas(64) float zs[16];
      _mm512_store_ps(zs, z);
      best = RaceBest{smax, id, zs[lane]};
    }
  }
}

// Per-block tests of the dense kernels on a block's largest key k (0: no allowed token), with
// z = temper(value of k): the block is open when k != 0, z != -inf (finite), fl(z +
// kGumbelUpper) is not below bound, sample_key(z) >= min_key and fl(z - m) is not below thr.
// -inf for bound or thr and 0 for min_key leave a test out.
struct BlockTests {
  float t;
  bool finite;
  float bound;
  uint32_t min_key;
  float m;
  float thr;
};

// The tests on the 16 blocks of bmax [16] in `valid`, lane by lane with the IEEE steps of the
// scalar kernels' tests (sample_temper, sample_score, the f32 subtraction; sample_key_value is
// exact bit work), so they open exactly the blocks those open.
DSK_SAMPLE_INLINE __mmask16 open_blocks16(const BlockTests& c, const uint32_t* bmax,
                                          __mmask16 valid) {
  const __m512i k = _mm512_maskz_loadu_epi32(valid, bmax);
  __mmask16 open = _mm512_mask_test_epi32_mask(valid, k, k);
  const __mmask16 pos = _mm512_test_epi32_mask(k, iset(0x80000000u));
  const __m512 v = _mm512_castsi512_ps(_mm512_mask_blend_epi32(
      pos, _mm512_xor_si512(k, iset(0xFFFFFFFFu)), _mm512_and_si512(k, iset(0x7FFFFFFFu))));
  const __m512 z = v_temper(v, c.t);
  if (c.finite) open = _mm512_mask_cmp_ps_mask(open, z, fset(-__builtin_inff()), _CMP_NEQ_UQ);
  if (c.bound > -__builtin_inff()) {
    open = _mm512_mask_cmp_ps_mask(open, _mm512_add_ps(z, fset(kGumbelUpper)), fset(c.bound),
                                   _CMP_NLT_UQ);
  }
  if (c.min_key != 0) open = _mm512_mask_cmpge_epu32_mask(open, v_key(z), iset(c.min_key));
  if (c.thr > -__builtin_inff()) {
    open = _mm512_mask_cmp_ps_mask(open, _mm512_sub_ps(z, fset(c.m)), fset(c.thr), _CMP_NLT_UQ);
  }
  return open;
}

template <int kDtype>
DSK_SAMPLE_AVX512 void race_avx(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax,
                                const RaceFilter& f, RaceBest& best) {
  const float t = r.temperature;
  const __m512 ninf = fset(-__builtin_inff());
  const auto off_lo = static_cast<uint32_t>(r.offset);
  const auto off_hi = static_cast<uint32_t>(r.offset >> 32);
  PhiloxKeys keys;
  philox_keys(static_cast<uint32_t>(r.seed), static_cast<uint32_t>(r.seed >> 32), keys);
  const GumbelBounds& gb = gumbel_bounds();
  RaceConsts rc;
  rc.glo0 = _mm512_loadu_ps(gb.lo);
  rc.glo1 = _mm512_loadu_ps(gb.lo + 16);
  rc.ghi0 = _mm512_loadu_ps(gb.hi);
  rc.ghi1 = _mm512_loadu_ps(gb.hi + 16);
  rc.ord_key = static_cast<uint32_t>(f.min_ord >> 32);
  rc.ord_id = 0xFFFFFFFFu - static_cast<uint32_t>(f.min_ord);
  // Blocks that need Philox words wait in groups, so that their rounds interleave.
  constexpr int kPend = 2;
  RaceBlock pend[kPend];
  int np = 0;
  // Blocks 16 at a time through the vector form of the block tests, against the best score
  // when the group is looked at: a later, higher best only skips more (the score test is
  // repeated when the best has moved; the other tests do not depend on it).
  BlockTests tests{t, false, best.score, rc.ord_key, f.m, f.thr};
  __mmask16 open = 0;
  int64_t g = b0 - 16;
  for (;;) {
    if (open == 0) {
      g += 16;
      if (g >= b1) break;
      tests.bound = best.score;
      open = open_blocks16(tests, bmax + g, lanes(b1 - g));
      continue;
    }
    const int64_t b = g + __builtin_ctz(open);
    open = static_cast<__mmask16>(open & (open - 1u));
    if (best.score != tests.bound &&
        sample_score(sample_temper(sample_key_value(bmax[b]), t), kGumbelUpper) < best.score) {
      continue;
    }
    RaceBlock& blk = pend[np];
    const int64_t lo = b * kBlock;
    blk.lo = lo;
    __mmask16 any = 0;
    const __m512 bound = fset(best.score);
    for (int v = 0; v < 4; ++v) {
      const int64_t base = lo + 16 * v;
      blk.ok[v] = 0;
      blk.z[v] = ninf;
      if (base >= r.vocab) continue;
      const __mmask16 allowed =
          static_cast<__mmask16>(lanes(r.vocab - base) & mask_bits(r.mask, base));
      const __m512 z = v_temper(load16<kDtype>(r.x, base, allowed), t);
      blk.z[v] = z;
      const __mmask16 fin = _mm512_mask_cmp_ps_mask(allowed, z, ninf, _CMP_NEQ_UQ);
      __mmask16 ok =
          _mm512_mask_cmp_ps_mask(fin, _mm512_add_ps(z, fset(kGumbelUpper)), bound, _CMP_GE_OQ);
      if (f.thr > -__builtin_inff() && ok != 0)
        ok = _mm512_mask_cmp_ps_mask(ok, _mm512_sub_ps(z, fset(f.m)), fset(f.thr), _CMP_GE_OQ);
      blk.ok[v] = ok;
      any = static_cast<__mmask16>(any | ok);
    }
    if (any == 0) continue;
    if (++np < kPend) continue;
    uint32_t c0s[kPend];
    for (int i = 0; i < kPend; ++i) c0s[i] = static_cast<uint32_t>(pend[i].lo >> 2);
    __m512i words[kPend][4];
    v_philox<kPend>(c0s, kSampleStreamGumbel, off_lo, off_hi, keys, words);
    for (int i = 0; i < kPend; ++i) race_block(pend[i], words[i], rc, f, best);
    np = 0;
  }
  for (int i = 0; i < np; ++i) {
    const uint32_t c0s[1] = {static_cast<uint32_t>(pend[i].lo >> 2)};
    __m512i words[1][4];
    v_philox<1>(c0s, kSampleStreamGumbel, off_lo, off_hi, keys, words);
    race_block(pend[i], words[0], rc, f, best);
  }
}

template <int kDtype>
DSK_SAMPLE_AVX512 void collect_avx(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax,
                                   float m, float thr, uint32_t min_key, uint32_t max_key,
                                   std::vector<Cand>& out) {
  const float t = r.temperature;
  const __m512 ninf = fset(-__builtin_inff());
  const BlockTests tests{t, true, -__builtin_inff(), min_key, m, thr};
  for (int64_t g = b0; g < b1; g += 16) {
    // Blocks 16 at a time through the block tests; b runs over the open ones.
    for (unsigned open = open_blocks16(tests, bmax + g, lanes(b1 - g)); open != 0;
         open &= open - 1) {
      const int64_t b = g + __builtin_ctz(open);
      const int64_t lo = b * kBlock;
      for (int v = 0; v < 4; ++v) {
        const int64_t base = lo + 16 * v;
        if (base >= r.vocab) break;
        const __mmask16 allowed =
            static_cast<__mmask16>(lanes(r.vocab - base) & mask_bits(r.mask, base));
        const __m512 z = v_temper(load16<kDtype>(r.x, base, allowed), t);
        __mmask16 ok = _mm512_mask_cmp_ps_mask(allowed, z, ninf, _CMP_NEQ_UQ);
        ok = _mm512_mask_cmp_ps_mask(ok, _mm512_sub_ps(z, fset(m)), fset(thr), _CMP_GE_OQ);
        const __m512i key = v_key(z);
        ok = _mm512_mask_cmpge_epu32_mask(ok, key, iset(min_key));
        ok = _mm512_mask_cmple_epu32_mask(ok, key, iset(max_key));
        if (ok == 0) continue;
        alignas(64) float zs[16];
        alignas(64) uint32_t ks[16];
        _mm512_store_ps(zs, z);
        _mm512_store_si512(ks, key);
        unsigned bits = ok;
        while (bits != 0) {
          const int i = __builtin_ctz(bits);
          bits &= bits - 1;
          const int64_t j = base + i;
          out.push_back(Cand{cand_ord(ks[i], j), 0, zs[i], static_cast<int32_t>(j)});
        }
      }
    }
  }
}

// The mass histogram (sample_row.h): W of 16 lanes by det_exp, the scaling by 2^shift (exact)
// and the truncating conversion to uint64 (vcvttps2uqq, as the scalar cast for values in
// [0, 2^63)); lanes are spread over the four histogram copies so that runs of one bucket do not
// chain their additions.
template <int kDtype>
DSK_SAMPLE_AVX512 void mass_avx(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax,
                                float m, float thr, int32_t shift, uint64_t* hist) {
  const float t = r.temperature;
  const __m512 ninf = fset(-__builtin_inff());
  const __m512 scale = _mm512_castsi512_ps(iset(static_cast<uint32_t>(127 + shift) << 23));
  uint64_t* h0 = hist;
  uint64_t* h1 = hist + kHistBuckets;
  uint64_t* h2 = hist + 2 * kHistBuckets;
  uint64_t* h3 = hist + 3 * kHistBuckets;
  const bool short_exp = thr >= -87.0f;  // every lane's argument is in [thr, 0]
  const BlockTests tests{t, true, -__builtin_inff(), 0, m, thr};
  for (int64_t g = b0; g < b1; g += 16) {
    // Blocks 16 at a time through the block tests; b runs over the open ones.
    for (unsigned open = open_blocks16(tests, bmax + g, lanes(b1 - g)); open != 0;
         open &= open - 1) {
      const int64_t b = g + __builtin_ctz(open);
      const int64_t lo = b * kBlock;
      // The four vectors of the block side by side, so that their exp chains overlap.
      __m512 d[4];
      __m512i key[4];
      __mmask16 ok[4];
      for (int v = 0; v < 4; ++v) {
        const int64_t base = lo + 16 * v;
        ok[v] = 0;
        d[v] = _mm512_setzero_ps();
        key[v] = _mm512_setzero_si512();
        if (base >= r.vocab) continue;
        const __mmask16 allowed =
            static_cast<__mmask16>(lanes(r.vocab - base) & mask_bits(r.mask, base));
        const __m512 z = v_temper(load16<kDtype>(r.x, base, allowed), t);
        const __mmask16 fin = _mm512_mask_cmp_ps_mask(allowed, z, ninf, _CMP_NEQ_UQ);
        const __m512 dz = _mm512_sub_ps(z, fset(m));
        ok[v] = _mm512_mask_cmp_ps_mask(fin, dz, fset(thr), _CMP_GE_OQ);
        d[v] = _mm512_maskz_mov_ps(ok[v], dz);
        key[v] = _mm512_srli_epi32(v_key(z), kHistShift);
      }
      __m512 w[4];
      if (short_exp) {
        for (int v = 0; v < 4; ++v) w[v] = _mm512_mul_ps(avx512::det_exp_in_range(d[v]), scale);
      } else {
        for (int v = 0; v < 4; ++v) w[v] = _mm512_mul_ps(avx512::det_exp(d[v]), scale);
      }
      for (int v = 0; v < 4; ++v) {
        if (ok[v] == 0) continue;
        const __m512i wlo =
            _mm512_maskz_cvttps_epu64(static_cast<__mmask8>(ok[v]), _mm512_castps512_ps256(w[v]));
        const __m512i whi = _mm512_maskz_cvttps_epu64(
            static_cast<__mmask8>(ok[v] >> 8),
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w[v]), 1)));
        alignas(64) uint64_t ws[16];
        alignas(64) uint32_t ks[16];
        _mm512_store_si512(ws, wlo);
        _mm512_store_si512(ws + 8, whi);
        _mm512_store_si512(ks, key[v]);
        for (int i = 0; i < 16; i += 4) {
          h0[ks[i]] += ws[i];
          h1[ks[i + 1]] += ws[i + 1];
          h2[ks[i + 2]] += ws[i + 2];
          h3[ks[i + 3]] += ws[i + 3];
        }
      }
    }
  }
}

// The count histogram (sample_row.h), lanes spread over the four copies.
template <int kDtype>
DSK_SAMPLE_AVX512 void count_avx(const DenseRow& r, int64_t b0, int64_t b1, uint64_t* hist) {
  uint64_t* h0 = hist;
  uint64_t* h1 = hist + kHistBuckets;
  uint64_t* h2 = hist + 2 * kHistBuckets;
  uint64_t* h3 = hist + 3 * kHistBuckets;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lo = b * kBlock;
    for (int v = 0; v < 4; ++v) {
      const int64_t base = lo + 16 * v;
      if (base >= r.vocab) break;
      const __mmask16 ok = static_cast<__mmask16>(lanes(r.vocab - base) & mask_bits(r.mask, base));
      if (ok == 0) continue;
      alignas(64) uint32_t ks[16];
      _mm512_store_si512(ks, _mm512_srli_epi32(v_key(load16<kDtype>(r.x, base, ok)), kHistShift));
      for (int i = 0; i < 16; i += 4) {
        h0[ks[i]] += (ok >> i) & 1u;
        h1[ks[i + 1]] += (ok >> (i + 1)) & 1u;
        h2[ks[i + 2]] += (ok >> (i + 2)) & 1u;
        h3[ks[i + 3]] += (ok >> (i + 3)) & 1u;
      }
    }
  }
}

template <int kDtype>
struct AvxKernels {
  static constexpr DenseKernels table{&pass1_avx<kDtype>, &race_avx<kDtype>, &collect_avx<kDtype>,
                                      &mass_avx<kDtype>, &count_avx<kDtype>};
};

bool have_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return ok;
}

}  // namespace

const DenseKernels* dense_kernels_avx512(const DenseRow& r) {
  if (!have_avx512() || r.vocab > 0x7FFFFFF0) return nullptr;
  if (r.dtype == DSK_DTYPE_F32 && r.step == 4) return &AvxKernels<DSK_DTYPE_F32>::table;
  if (r.dtype == DSK_DTYPE_BF16 && r.step == 2) return &AvxKernels<DSK_DTYPE_BF16>::table;
  if (r.dtype == DSK_DTYPE_F16 && r.step == 2) return &AvxKernels<DSK_DTYPE_F16>::table;
  return nullptr;
}

#else

const DenseKernels* dense_kernels_avx512(const DenseRow&) { return nullptr; }

#endif

}  // namespace sampling
}  // namespace cpu
}  // namespace dsk
