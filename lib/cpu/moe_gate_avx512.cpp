// The AVX-512 steps of the CPU gate (moe_gate_score.h): scores and keys (steps 1-2 of
// lib/common/moe_gate_row.h), group scores (step 3) and the top-k selection (step 4), 16 experts
// at a time.
//
// Bitwise equal to the scalar versions in moe_gate.cpp: per element, every operation of det_exp,
// det_sigmoid, the bf16 rounding, the bias addition and gate_key is done in the same order with
// the same IEEE operation (vmulps, vaddps, vsubps, vdivps are correctly rounded like their scalar
// forms; lib/ is built with -ffp-contract=off, so the compiler fuses nothing; the one FMA, in
// det_exp's argument reduction, fuses an exact product with an exact difference, see
// detmath_avx512.h).
// Out-of-range exp arguments are computed on 0 and replaced afterwards, as det_exp's early returns
// do. Across elements only exact operations are used (max, comparisons, counts); the softmax sum
// is the shared canonical one. Every function that uses AVX-512 carries the target attribute and
// is only called after moe_gate_have_avx512().
//
// The fast rows at the end (moe_gate_row_fast_*; method and proof in moe_gate_score.h) compute
// exact scores only for the experts that can still be picked (sigmoid: those an approximation
// cannot rule out; softmax: those whose exp is close enough to the k-th largest); their picks are
// the fused row's bit for bit.
#include "common/moe_gate_row.h"
#include "cpu/moe_gate_score.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_moe.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define DSK_GATE_HAVE_AVX512 1
// GCC's AVX-512 intrinsics start many results from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports once they are inlined.
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#    pragma GCC diagnostic ignored "-Wuninitialized"
#  endif
#  include <immintrin.h>

#  include "cpu/detmath_avx512.h"
#else
#  define DSK_GATE_HAVE_AVX512 0
#endif

namespace dsk {
namespace cpu {

#if DSK_GATE_HAVE_AVX512

#  define DSK_GATE_AVX512 __attribute__((target("avx512f")))
#  define DSK_GATE_AVX512_INLINE DSK_GATE_AVX512 inline __attribute__((always_inline))

namespace {

DSK_GATE_AVX512_INLINE __m512 vset(float v) { return _mm512_set1_ps(v); }
DSK_GATE_AVX512_INLINE __m512i iset(uint32_t v) {
  return _mm512_set1_epi32(static_cast<int32_t>(v));
}

// bf16 rounding (to nearest even) of values that are not NaN, as f32 (gate_round_bf16).
DSK_GATE_AVX512_INLINE __m512 v_round_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), iset(1));
  const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, iset(0x7FFFu)), lsb);
  return _mm512_castsi512_ps(_mm512_and_si512(r, iset(0xFFFF0000u)));
}

// Lanes holding a finite value.
DSK_GATE_AVX512_INLINE __mmask16 v_finite(__m512 v) {
  const __m512i e = _mm512_and_si512(_mm512_castps_si512(v), iset(0x7F800000u));
  return _mm512_cmpneq_epi32_mask(e, iset(0x7F800000u));
}

// gate_key, lane by lane.
DSK_GATE_AVX512_INLINE __m512i v_key(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  const __mmask16 neg_zero = _mm512_cmpeq_epi32_mask(u, iset(0x80000000u));
  u = _mm512_mask_mov_epi32(u, neg_zero, _mm512_setzero_si512());
  const __mmask16 neg = _mm512_cmplt_epi32_mask(u, _mm512_setzero_si512());
  return _mm512_mask_blend_epi32(neg, _mm512_or_si512(u, iset(0x80000000u)),
                                 _mm512_xor_si512(u, iset(0xFFFFFFFFu)));
}

DSK_GATE_AVX512_INLINE __mmask16 lanes_from(int32_t e, int32_t n) {
  const int32_t rem = n - e;
  return rem >= 16 ? static_cast<__mmask16>(0xFFFFu)
                   : static_cast<__mmask16>((1u << static_cast<uint32_t>(rem)) - 1u);
}

// Step 2 for lanes m of block e: key[e + i] = gate_key(gate_biased(s_i, valid_i, ...)); returns
// the lanes whose s' is finite.
DSK_GATE_AVX512_INLINE __mmask16 biased_keys(const MoeGateScoreArgs& a, int32_t e, __mmask16 m,
                                             __mmask16 valid, __m512 sc, uint32_t* key) {
  const __m512 ninf = _mm512_castsi512_ps(iset(0xFF800000u));
  __m512 sp = sc;
  if (a.bias != nullptr) sp = _mm512_add_ps(sp, _mm512_maskz_loadu_ps(m, a.bias + e));
  sp = _mm512_mask_blend_ps(static_cast<__mmask16>(valid & v_finite(sp)), ninf, sp);
  const __m512i kv = v_key(sp);
  _mm512_mask_storeu_epi32(key + e, m, kv);
  return _mm512_cmpgt_epu32_mask(kv, iset(moe::kKeyNegInf));
}

}  // namespace

DSK_GATE_AVX512 bool moe_gate_score_row_avx512(const MoeGateScoreArgs& a, const float* in, float* x,
                                               float* s, uint32_t* key) {
  const int32_t n = a.num_experts;
  const __m512 ninf = _mm512_castsi512_ps(iset(0xFF800000u));
  if (a.score_func == DSK_MOE_SCORE_SOFTMAX) {
    __m512 vm = ninf;
    for (int32_t e = 0; e < n; e += 16) {
      const __mmask16 m = lanes_from(e, n);
      __m512 v = _mm512_maskz_loadu_ps(m, in + e);
      v = _mm512_mask_blend_ps(v_finite(v), ninf, v);
      _mm512_mask_storeu_ps(x + e, m, v);
      vm = _mm512_mask_max_ps(vm, m, vm, v);
    }
    const float mx = moe::gate_softmax_max(_mm512_reduce_max_ps(vm));
    const __m512 vmx = vset(mx);
    for (int32_t e = 0; e < n; e += 16) {
      const __mmask16 m = lanes_from(e, n);
      const __m512 v = _mm512_maskz_loadu_ps(m, x + e);
      __m512 ev = avx512::det_exp(_mm512_sub_ps(v, vmx));
      ev = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, ninf, _CMP_EQ_OQ), ev, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(s + e, m, ev);
    }
    const float sum = moe::gate_softmax_sum(s, n);
    const __m512 vsum = vset(sum);
    for (int32_t e = 0; e < n; e += 16) {
      const __mmask16 m = lanes_from(e, n);
      const __m512 ev = _mm512_maskz_loadu_ps(m, s + e);
      const __m512 q = sum != 0.0f ? _mm512_div_ps(ev, vsum) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(s + e, m, q);
    }
  } else {
    // Sigmoid and none: scores and keys in one pass.
    const bool sigmoid = a.score_func == DSK_MOE_SCORE_SIGMOID;
    __mmask16 any = 0;
    for (int32_t e = 0; e < n; e += 16) {
      const __mmask16 m = lanes_from(e, n);
      __m512 v = _mm512_maskz_loadu_ps(m, in + e);
      const __mmask16 valid = v_finite(v);
      v = _mm512_mask_blend_ps(valid, ninf, v);
      _mm512_mask_storeu_ps(x + e, m, v);
      __m512 sc = v;
      if (sigmoid) {
        const __m512 neg =
            _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), iset(0x80000000u)));
        sc = _mm512_div_ps(vset(1.0f), _mm512_add_ps(vset(1.0f), avx512::det_exp(neg)));
      }
      if (a.score_bf16 != 0) sc = v_round_bf16(sc);
      _mm512_mask_storeu_ps(s + e, m, sc);
      any = static_cast<__mmask16>(any | (m & biased_keys(a, e, m, valid, sc, key)));
    }
    return any != 0;
  }
  __mmask16 any = 0;
  for (int32_t e = 0; e < n; e += 16) {
    const __mmask16 m = lanes_from(e, n);
    const __mmask16 valid = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, x + e), ninf, _CMP_NEQ_OQ);
    any = static_cast<__mmask16>(
        any | (m & biased_keys(a, e, m, valid, _mm512_maskz_loadu_ps(m, s + e), key)));
  }
  return any != 0;
}

DSK_GATE_AVX512 void moe_gate_group_keys_avx512(const uint32_t* key, int32_t groups, int32_t size,
                                                bool top2, uint32_t* gk) {
  for (int32_t g = 0; g < groups; ++g) {
    const uint32_t* k = key + static_cast<int64_t>(g) * size;
    __m512i mx = _mm512_loadu_si512(k);
    for (int32_t i = 16; i < size; i += 16) mx = _mm512_max_epu32(mx, _mm512_loadu_si512(k + i));
    const uint32_t a = _mm512_reduce_max_epu32(mx);
    if (!top2) {
      gk[g] = a;
      continue;
    }
    // The second largest as a multiset: a itself when it occurs twice, else the largest other key.
    const __m512i va = iset(a);
    int32_t count = 0;
    __m512i rest = _mm512_setzero_si512();
    for (int32_t i = 0; i < size; i += 16) {
      const __m512i kv = _mm512_loadu_si512(k + i);
      const __mmask16 eq = _mm512_cmpeq_epi32_mask(kv, va);
      count += __builtin_popcount(eq);
      rest = _mm512_max_epu32(rest, _mm512_mask_mov_epi32(kv, eq, _mm512_setzero_si512()));
    }
    const uint32_t b = count >= 2 ? a : _mm512_reduce_max_epu32(rest);
    gk[g] = moe::gate_top2_key(a, b);
  }
}

namespace {

// k rounds of argmax over the maxima of blocks of 16 keys (any n, any k): the first block holding
// the maximum, then its first lane; picked lanes are tracked per block.
DSK_GATE_AVX512 void select_rounds(const uint32_t* key, int32_t n, int32_t k, uint32_t* scratch,
                                   uint32_t* top_key, int32_t* top_index) {
  const int32_t blocks = (n + 15) / 16;
  const int32_t vectors = (blocks + 15) / 16;
  uint32_t* bm = scratch;                    // block maxima of the keys not taken, padded
  uint32_t* taken = scratch + 16 * vectors;  // per block: lanes already picked
  for (int32_t b = 0; b < blocks; ++b) {
    bm[b] = _mm512_reduce_max_epu32(_mm512_maskz_loadu_epi32(lanes_from(16 * b, n), key + 16 * b));
    taken[b] = 0;
  }
  for (int32_t b = blocks; b < 16 * vectors; ++b) bm[b] = moe::kKeyTaken;
  // Up to 256 experts the block maxima stay in one register.
  __m512i bmv = _mm512_loadu_si512(bm);
  for (int32_t j = 0; j < k; ++j) {
    uint32_t top;
    int32_t b = 0;
    if (vectors == 1) {
      top = _mm512_reduce_max_epu32(bmv);
      b = __builtin_ctz(_mm512_cmpeq_epi32_mask(bmv, iset(top)));
    } else {
      __m512i mv = _mm512_loadu_si512(bm);
      for (int32_t v = 1; v < vectors; ++v) {
        mv = _mm512_max_epu32(mv, _mm512_loadu_si512(bm + 16 * v));
      }
      top = _mm512_reduce_max_epu32(mv);
      for (int32_t v = 0; v < vectors; ++v) {
        const __mmask16 eq = _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(bm + 16 * v), iset(top));
        if (eq != 0) {
          b = 16 * v + __builtin_ctz(eq);
          break;
        }
      }
    }
    // Taken lanes and lanes past n load as kKeyTaken, below every real key: they never match.
    const auto live = static_cast<__mmask16>(lanes_from(16 * b, n) & ~taken[b]);
    __m512i kv = _mm512_maskz_loadu_epi32(live, key + 16 * b);
    const uint32_t lane = __builtin_ctz(_mm512_cmpeq_epi32_mask(kv, iset(top)));
    top_key[j] = top;
    top_index[j] = 16 * b + static_cast<int32_t>(lane);
    taken[b] |= 1u << lane;
    kv = _mm512_mask_mov_epi32(kv, static_cast<__mmask16>(1u << lane), _mm512_setzero_si512());
    const uint32_t next = _mm512_reduce_max_epu32(kv);
    if (vectors == 1) {
      bmv =
          _mm512_mask_set1_epi32(bmv, static_cast<__mmask16>(1u << b), static_cast<int32_t>(next));
    } else {
      bm[b] = next;
    }
  }
}

// Ranks of the first `count` lanes of c0 (keys in index order, also stored in ck) in selection
// order: lane i's rank counts the j < count with c_j > c_i, or c_j == c_i and j < i, i.e.
// c_j >= c_i + [i <= j] (keys stay below 0xFFFFFFFF). c_j is broadcast from memory (a load, not a
// shuffle: the shuffle port is the busy one), one compare a key.
DSK_GATE_AVX512_INLINE __m512i rank16(const uint32_t* ck, __m512i c0, int32_t count) {
  const __m512i one = iset(1);
  __m512i r0 = _mm512_setzero_si512();
  for (int32_t j = 0; j < count; ++j) {
    const __m512i bj = _mm512_set1_epi32(static_cast<int32_t>(ck[j]));
    const auto le0 = static_cast<__mmask16>(j >= 15 ? 0xFFFFu : (2u << j) - 1u);
    r0 = _mm512_mask_add_epi32(
        r0, _mm512_cmpge_epu32_mask(bj, _mm512_mask_add_epi32(c0, le0, c0, one)), r0, one);
  }
  return r0;
}

// rank16 of the lanes of a register.
DSK_GATE_AVX512_INLINE __m512i lane_ranks(__m512i kv, int32_t count) {
  alignas(64) uint32_t keys[16];
  _mm512_store_si512(keys, kv);
  return rank16(keys, kv, count);
}

}  // namespace

// Up to 256 experts and k <= 16: a threshold first. The maxima of W-key blocks (W = 16, or 8
// when there are fewer than k blocks of 16) are k or more distinct experts, so the k-th largest
// of them, tau, is at most the k-th largest key: every pick has a key >= tau. The experts with a
// key >= tau (in index order) are ranked by (key, index) and the first k ranks are the picks.
// Otherwise, or when more than 16 experts reach tau (ties), k rounds of argmax.
DSK_GATE_AVX512 void moe_gate_select_avx512(const uint32_t* key, int32_t n, int32_t k,
                                            uint32_t* scratch, uint32_t* top_key,
                                            int32_t* top_index) {
  const int32_t width = (n + 15) / 16 >= k ? 16 : 8;
  const int32_t blocks = (n + width - 1) / width;
  if (n > 256 || k > 16 || blocks < k || blocks > 16) {
    select_rounds(key, n, k, scratch, top_key, top_index);
    return;
  }
  alignas(64) uint32_t bm[16];
  const auto wmask = static_cast<__mmask16>(width == 16 ? 0xFFFFu : 0xFFu);
  for (int32_t b = 0; b < 16; ++b) {
    bm[b] = b < blocks
                ? _mm512_reduce_max_epu32(_mm512_maskz_loadu_epi32(
                      static_cast<__mmask16>(lanes_from(width * b, n) & wmask), key + width * b))
                : moe::kKeyTaken;
  }
  const __m512i bmv = _mm512_load_si512(bm);
  const __m512i brank = lane_ranks(bmv, blocks);
  const __mmask16 at_k = _mm512_cmpeq_epi32_mask(brank, iset(static_cast<uint32_t>(k - 1)));
  const uint32_t tau = bm[__builtin_ctz(at_k)];
  // Every block is compressed and stored whole (no data-dependent branch); ck/ci have room for
  // all n plus one vector.
  alignas(64) uint32_t ck[256 + 16];
  alignas(64) int32_t ci[256 + 16];
  int32_t count = 0;
  const __m512i lane_id = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int32_t e = 0; e < n; e += 16) {
    const __mmask16 m = lanes_from(e, n);
    const __m512i kv = _mm512_maskz_loadu_epi32(m, key + e);
    const __mmask16 c = _mm512_mask_cmpge_epu32_mask(m, kv, iset(tau));
    _mm512_storeu_si512(ck + count, _mm512_maskz_compress_epi32(c, kv));
    _mm512_storeu_si512(
        ci + count,
        _mm512_maskz_compress_epi32(c, _mm512_add_epi32(lane_id, iset(static_cast<uint32_t>(e)))));
    count += __builtin_popcount(c);
  }
  if (count > 32) {  // many ties at tau
    select_rounds(key, n, k, scratch, top_key, top_index);
    return;
  }
  // Rank the candidates (two vectors of 16) by (key, position), position being index order.
  const __m512i c0 = _mm512_loadu_si512(ck);
  const __m512i c1 = _mm512_loadu_si512(ck + 16);
  const __m512i id0 = lane_id;
  const __m512i id1 = _mm512_add_epi32(lane_id, iset(16));
  const __m512i one = iset(1);
  __m512i r0 = _mm512_setzero_si512();
  __m512i r1 = _mm512_setzero_si512();
  for (int32_t j = 0; j < count; ++j) {
    const __m512i bj = iset(ck[j]);
    const __m512i vj = iset(static_cast<uint32_t>(j));
    const auto m0 = static_cast<__mmask16>(
        _mm512_cmpgt_epu32_mask(bj, c0) |
        _mm512_mask_cmpeq_epi32_mask(_mm512_cmpgt_epi32_mask(id0, vj), bj, c0));
    const auto m1 = static_cast<__mmask16>(
        _mm512_cmpgt_epu32_mask(bj, c1) |
        _mm512_mask_cmpeq_epi32_mask(_mm512_cmpgt_epi32_mask(id1, vj), bj, c1));
    r0 = _mm512_mask_add_epi32(r0, m0, r0, one);
    r1 = _mm512_mask_add_epi32(r1, m1, r1, one);
  }
  alignas(64) int32_t rk[32];
  _mm512_store_si512(rk, r0);
  _mm512_store_si512(rk + 16, r1);
  const uint64_t live = (uint64_t{1} << count) - 1u;
  const uint64_t below =
      static_cast<uint64_t>(_mm512_cmplt_epi32_mask(r0, iset(static_cast<uint32_t>(k)))) |
      (static_cast<uint64_t>(_mm512_cmplt_epi32_mask(r1, iset(static_cast<uint32_t>(k)))) << 16);
  for (uint64_t keep = below & live; keep != 0; keep &= keep - 1) {
    const int32_t i = __builtin_ctzll(keep);
    top_key[rk[i]] = ck[i];
    top_index[rk[i]] = ci[i];
  }
}

// ---- The fused row ----

#  define DSK_GATE_FUSED __attribute__((target("avx512f,avx512dq,popcnt,bmi,bmi2")))
#  define DSK_GATE_FUSED_INLINE DSK_GATE_FUSED inline __attribute__((always_inline))

namespace {

// The group packing tree (fused_groups, group_top2): lanes of (first source, second source) as
// 0..31, the even and the odd w-lane chunks for w = 8, 4, 2, 1.
alignas(64) const int32_t kPackEven[4][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
    {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
    {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
    {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}};
alignas(64) const int32_t kPackOdd[4][16] = {
    {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
    {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31},
    {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31},
    {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}};

// Lanes holding a NaN or an infinity (vfpclassps: QNaN, +inf, -inf, SNaN).
DSK_GATE_FUSED_INLINE __mmask16 f_nonfinite(__m512 v) { return _mm512_fpclass_ps_mask(v, 0x99); }

// det_exp, lane by lane, for any input: the shorter sequence when every lane has -87 <= x <= 88.
DSK_GATE_FUSED_INLINE __m512 f_det_exp(__m512 x) {
  const __mmask16 lo_ok = _mm512_cmp_ps_mask(x, vset(-87.0f), _CMP_GE_OQ);
  const __mmask16 ok = _mm512_mask_cmp_ps_mask(lo_ok, x, vset(88.0f), _CMP_LE_OQ);
  return ok != 0xFFFFu ? avx512::det_exp(x) : avx512::det_exp_in_range(x);
}

// gate_key of values that are not NaN: x | sign for x >= +0 and -0 (the key of +0), ~x below.
DSK_GATE_FUSED_INLINE __m512i f_key(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_xor_epi32(_mm512_or_si512(u, iset(0x80000000u)), neg, u, iset(0xFFFFFFFFu));
}

// gate_key_value, lane by lane.
DSK_GATE_FUSED_INLINE __m512 f_key_value(__m512i key) {
  const __mmask16 pos = _mm512_cmplt_epi32_mask(key, _mm512_setzero_si512());  // top bit set
  return _mm512_castsi512_ps(
      _mm512_mask_and_epi32(_mm512_xor_si512(key, iset(0xFFFFFFFFu)), pos, key, iset(0x7FFFFFFFu)));
}

// Step 2 for vector v: stores the keys (0 = kKeyTaken past E) and returns the lanes whose s' is
// finite.
DSK_GATE_FUSED_INLINE __mmask16 f_keys(const MoeGateRowPlan& p, int32_t e, __mmask16 m,
                                       __mmask16 valid, __m512 sc, uint32_t* key) {
  __m512 sp = sc;
  if (p.has_bias) sp = _mm512_add_ps(sp, _mm512_load_ps(p.bias + e));
  const auto fin = static_cast<__mmask16>(valid & m & ~f_nonfinite(sp));
  sp = _mm512_mask_blend_ps(fin, _mm512_castsi512_ps(iset(0xFF800000u)), sp);
  _mm512_store_si512(key + e, _mm512_maskz_mov_epi32(m, f_key(sp)));
  return fin;
}

// Lane-wise max, min and two-source permute of order-preserving keys (unsigned) or of floats
// without NaN, so that one packing tree serves both.
DSK_GATE_FUSED_INLINE __m512i lane_max(__m512i x, __m512i y) { return _mm512_max_epu32(x, y); }
DSK_GATE_FUSED_INLINE __m512 lane_max(__m512 x, __m512 y) { return _mm512_max_ps(x, y); }
DSK_GATE_FUSED_INLINE __m512i lane_min(__m512i x, __m512i y) { return _mm512_min_epu32(x, y); }
DSK_GATE_FUSED_INLINE __m512 lane_min(__m512 x, __m512 y) { return _mm512_min_ps(x, y); }
DSK_GATE_FUSED_INLINE __m512i pick2(__m512i x, __m512i idx, __m512i y) {
  return _mm512_permutex2var_epi32(x, idx, y);
}
DSK_GATE_FUSED_INLINE __m512 pick2(__m512 x, __m512i idx, __m512 y) {
  return _mm512_permutex2var_ps(x, idx, y);
}

// Reduces count (a power of 2, <= 16) vectors of per-lane top-2 states a, b (b only with top2;
// a multiset: a repeated maximum fills both) to the states of whole groups, group g's in lane g
// of ga, gb. At width w, output chunk c (w lanes) merges the two w-lane halves of chunk
// c' = c mod (8 / w) of the first source (c < 8 / w) or of the second; kPackEven / kPackOdd hold
// the lanes of (first source, second source) as 0..31 for w = 8, 4, 2, 1.
// The tree is unrolled for each power of 2 (a loop with a run-time count keeps the states in
// memory).
template <int Count, int Levels = 4, typename V>
DSK_GATE_FUSED_INLINE void pack_groups(V* a, V* b, bool top2, V& ga, V& gb) {
  int32_t count = Count;
#  pragma GCC unroll 4
  for (int32_t level = 0; level < Levels; ++level) {
    const __m512i vx = _mm512_load_si512(kPackEven[level]);
    const __m512i vy = _mm512_load_si512(kPackOdd[level]);
    const int32_t out = count > 1 ? count / 2 : 1;
#  pragma GCC unroll 8
    for (int32_t i = 0; i < out; ++i) {
      const int32_t i0 = count > 1 ? 2 * i : 0;
      const int32_t i1 = count > 1 ? 2 * i + 1 : 0;
      const V xa = pick2(a[i0], vx, a[i1]);
      const V ya = pick2(a[i0], vy, a[i1]);
      if (top2) {
        const V xb = pick2(b[i0], vx, b[i1]);
        const V yb = pick2(b[i0], vy, b[i1]);
        b[i] = lane_max(lane_min(xa, ya), lane_max(xb, yb));
      }
      a[i] = lane_max(xa, ya);
    }
    count = out;
  }
  ga = a[0];
  gb = b[0];
}

// pack_groups for a run-time count (a power of 2, <= 16).
template <typename V>
DSK_GATE_FUSED_INLINE void pack_groups_any(V* a, V* b, int32_t count, bool top2, V& ga, V& gb) {
  switch (count) {
    case 1:
      pack_groups<1>(a, b, top2, ga, gb);
      break;
    case 2:
      pack_groups<2>(a, b, top2, ga, gb);
      break;
    case 4:
      pack_groups<4>(a, b, top2, ga, gb);
      break;
    case 8:
      pack_groups<8>(a, b, top2, ga, gb);
      break;
    default:
      pack_groups<16>(a, b, top2, ga, gb);
      break;
  }
}

// Lane i ^ J of v (J = 1, 2, 4, 8).
template <int J>
DSK_GATE_FUSED_INLINE __m512i xor_lanes(__m512i v) {
  if (J == 1) return _mm512_shuffle_epi32(v, static_cast<_MM_PERM_ENUM>(_MM_SHUFFLE(2, 3, 0, 1)));
  if (J == 2) return _mm512_shuffle_epi32(v, static_cast<_MM_PERM_ENUM>(_MM_SHUFFLE(1, 0, 3, 2)));
  if (J == 4) return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1));
  return _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2));
}

// One compare-exchange step: lanes in MaxLanes take the larger of (i, i ^ J).
template <int J, uint32_t MaxLanes>
DSK_GATE_FUSED_INLINE __m512i bitonic_step(__m512i v) {
  const __m512i other = xor_lanes<J>(v);
  return _mm512_mask_blend_epi32(static_cast<__mmask16>(MaxLanes), _mm512_min_epu32(v, other),
                                 _mm512_max_epu32(v, other));
}

// Descending bitonic sort of the 16 unsigned lanes of each of v [0, R), the R sorts' steps
// interleaved. In the merge of blocks of `size` lanes at distance j, lane i takes the larger of
// (i, i ^ j) when it is the lower lane of a descending block ((i & size) == 0) or the upper lane
// of an ascending one.
template <int R>
DSK_GATE_FUSED_INLINE void sort16_desc_n(__m512i* v) {
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<1, 0x9999u>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<2, 0xC3C3u>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<1, 0xA5A5u>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<4, 0xF00Fu>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<2, 0xCC33u>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<1, 0xAA55u>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<8, 0x00FFu>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<4, 0x0F0Fu>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<2, 0x3333u>(v[r]);
  for (int r = 0; r < R; ++r) v[r] = bitonic_step<1, 0x5555u>(v[r]);
}

DSK_GATE_FUSED_INLINE __m512i sort16_desc(__m512i v) {
  sort16_desc_n<1>(&v);
  return v;
}

// Ranks of the first `count` lanes of c (keys in index order) in selection order, c2 the next
// 16 (lanes 16.. of the same list, or zeros): lane i's rank counts the j with c_j > c_i, or
// c_j == c_i and j < i, i.e. c_j >= c_i + [i <= j] (keys stay below 0xFFFFFFFF).
DSK_GATE_FUSED_INLINE void rank32(const uint32_t* ck, __m512i c0, __m512i c1, int32_t count,
                                  __m512i& r0, __m512i& r1) {
  const __m512i one = iset(1);
  r0 = _mm512_setzero_si512();
  r1 = _mm512_setzero_si512();
  for (int32_t j = 0; j < count; ++j) {
    const __m512i bj = _mm512_set1_epi32(static_cast<int32_t>(ck[j]));
    const auto le0 = static_cast<__mmask16>(j >= 15 ? 0xFFFFu : (2u << j) - 1u);
    const auto le1 =
        static_cast<__mmask16>(j >= 31 ? 0xFFFFu : (j >= 16 ? (2u << (j - 16)) - 1u : 0u));
    r0 = _mm512_mask_add_epi32(
        r0, _mm512_cmpge_epu32_mask(bj, _mm512_mask_add_epi32(c0, le0, c0, one)), r0, one);
    r1 = _mm512_mask_add_epi32(
        r1, _mm512_cmpge_epu32_mask(bj, _mm512_mask_add_epi32(c1, le1, c1, one)), r1, one);
  }
}

// The two largest keys of each group (a multiset: a repeated maximum fills both; b only with
// TOP2SUM) of the keys in key [E]: group g's in lane g of ga, gb.
DSK_GATE_FUSED_INLINE void group_top2(const MoeGateRowPlan& p, const uint32_t* key, __m512i& ga,
                                      __m512i& gb) {
  const int32_t groups = p.groups;
  const int32_t size = p.group_size;
  int32_t pow2 = 1;
  while (pow2 < groups) pow2 *= 2;
  __m512i a[16];
  __m512i b[16];
  for (int32_t g = 0; g < pow2; ++g) {
    a[g] = _mm512_setzero_si512();
    b[g] = _mm512_setzero_si512();
    if (g >= groups) continue;
    const uint32_t* k = key + static_cast<int64_t>(g) * size;
    for (int32_t off = 0; off < size; off += 16) {
      const __m512i kv = _mm512_maskz_loadu_epi32(lanes_from(off, size), k + off);
      if (p.top2) {
        b[g] = _mm512_max_epu32(b[g], _mm512_min_epu32(a[g], kv));
      }
      a[g] = _mm512_max_epu32(a[g], kv);
    }
  }
  pack_groups_any(a, b, pow2, p.top2, ga, gb);
}

// The k first of the `count` (<= 32) candidates ck/ci (keys and indices in index order) in
// selection order (moe::gate_before) into top_key/top_index.
DSK_GATE_FUSED_INLINE void rank_picks(const uint32_t* ck, const int32_t* ci, int32_t count,
                                      int32_t k, uint32_t* top_key, int32_t* top_index) {
  const __m512i c0 = _mm512_maskz_loadu_epi32(lanes_from(0, count), ck);
  __m512i r0;
  alignas(64) int32_t rk[32];
  uint32_t below;
  if (count <= 16) {
    r0 = rank16(ck, c0, count);
    _mm512_store_si512(rk, r0);
    below = _mm512_mask_cmplt_epi32_mask(lanes_from(0, count), r0, iset(static_cast<uint32_t>(k)));
  } else {
    const __m512i c1 = _mm512_maskz_loadu_epi32(lanes_from(16, count), ck + 16);
    __m512i r1;
    rank32(ck, c0, c1, count, r0, r1);
    _mm512_store_si512(rk, r0);
    _mm512_store_si512(rk + 16, r1);
    below = static_cast<uint32_t>(_mm512_cmplt_epi32_mask(r0, iset(static_cast<uint32_t>(k)))) |
            (static_cast<uint32_t>(_mm512_mask_cmplt_epi32_mask(lanes_from(16, count), r1,
                                                                iset(static_cast<uint32_t>(k))))
             << 16);
  }
  for (; below != 0; below &= below - 1) {
    const int32_t i = __builtin_ctz(below);
    top_key[rk[i]] = ck[i];
    top_index[rk[i]] = ci[i];
  }
}

// The topk_group best groups (a bit mask) from the two largest keys of each group.
DSK_GATE_FUSED_INLINE uint32_t kept_groups(const MoeGateRowPlan& p, __m512i ga, __m512i gb) {
  const int32_t groups = p.groups;
  const auto gmask = static_cast<__mmask16>((1u << groups) - 1u);
  __m512i gk = ga;
  if (p.top2) gk = f_key(_mm512_add_ps(f_key_value(ga), f_key_value(gb)));
  const __m512i rank = lane_ranks(_mm512_maskz_mov_epi32(gmask, gk), groups);
  return static_cast<uint32_t>(
      _mm512_mask_cmplt_epi32_mask(gmask, rank, iset(static_cast<uint32_t>(p.topk_group))));
}

// Step 3 on the keys in key [16 * nv]: group scores, the topk_group best groups, the other
// groups' experts masked to kKeyNegInf.
DSK_GATE_FUSED void fused_groups(const MoeGateRowPlan& p, int32_t nv, uint32_t* key) {
  __m512i ga;
  __m512i gb;
  group_top2(p, key, ga, gb);
  const __m512i kv_kept = iset(kept_groups(p, ga, gb));
  for (int32_t v = 0; v < nv; ++v) {
    const __m512i g = _mm512_load_si512(p.gid + 16 * v);
    const __mmask16 keep = _mm512_test_epi32_mask(_mm512_srlv_epi32(kv_kept, g), iset(1));
    const __mmask16 m = lanes_from(16 * v, p.num_experts);
    const __m512i kv = _mm512_load_si512(key + 16 * v);
    _mm512_store_si512(key + 16 * v, _mm512_mask_mov_epi32(kv, static_cast<__mmask16>(m & ~keep),
                                                           iset(moe::kKeyNegInf)));
  }
}

}  // namespace

bool moe_gate_row_plan_init(MoeGateRowPlan& plan, int32_t num_experts, int32_t top_k,
                            int32_t score_func, int32_t score_bf16, const float* bias,
                            int32_t groups, int32_t topk_group, bool top2) {
  static const bool have = __builtin_cpu_supports("avx512f") &&
                           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("popcnt") &&
                           __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  plan.num_experts = num_experts;
  plan.top_k = top_k;
  plan.score_func = score_func;
  plan.score_bf16 = score_bf16;
  plan.has_bias = bias != nullptr;
  plan.grouped = groups > 1 && topk_group < groups;
  plan.top2 = top2;
  plan.groups = groups;
  plan.group_size = num_experts / groups;
  plan.topk_group = topk_group;
  plan.fast = false;
  plan.fast_margin = 0.0f;
  plan.vector_groups = plan.grouped && plan.group_size % 16 == 0;
  for (int32_t v = 0; v < 16; ++v) {
    plan.vgid[v] = plan.vector_groups && 16 * v < num_experts ? 16 * v / plan.group_size : 0;
  }
  if (!have || num_experts > 256 || top_k > 16 || (plan.grouped && groups > 16)) return false;
  float maxb = 0.0f;
  bool bias_ok = true;
  for (int32_t e = 0; e < 256; ++e) {
    plan.bias[e] = bias != nullptr && e < num_experts ? bias[e] : 0.0f;
    // Without a group stage every expert is in group 0: the fast rows' kept masks test bit
    // gid of the kept groups, and G may exceed 16 when topk_group == G.
    plan.gid[e] = plan.grouped && e < num_experts ? e / plan.group_size : 0;
    const float ab = plan.bias[e] < 0.0f ? -plan.bias[e] : plan.bias[e];
    bias_ok = bias_ok && ab <= kMoeGateFastMaxBias;  // false for NaN
    maxb = ab > maxb ? ab : maxb;
  }
  static const bool have_fma = __builtin_cpu_supports("fma");
  const bool sigmoid_fast = bias_ok && score_func == DSK_MOE_SCORE_SIGMOID;
  const bool softmax_fast = bias == nullptr && score_func == DSK_MOE_SCORE_SOFTMAX;
  plan.fast = have_fma && (sigmoid_fast || softmax_fast) && score_bf16 == 0 &&
              num_experts % 16 == 0 && top_k <= num_experts;
  if (plan.fast) plan.fast_margin = moe_gate_fast_margin(maxb);
  return true;
}

DSK_GATE_FUSED bool moe_gate_row_avx512(const MoeGateRowPlan& p, const float* in, float* s,
                                        uint32_t* key, uint32_t* scratch, uint32_t* top_key,
                                        int32_t* top_index) {
  const bool any = moe_gate_row_score_avx512(p, in, s, key);
  moe_gate_row_select_avx512(p, key, scratch, top_key, top_index);
  return any;
}

DSK_GATE_FUSED bool moe_gate_row_score_avx512(const MoeGateRowPlan& p, const float* in, float* s,
                                              uint32_t* key) {
  const int32_t n = p.num_experts;
  const int32_t nv = (n + 15) / 16;
  const __m512 ninf = _mm512_castsi512_ps(iset(0xFF800000u));
  __mmask16 any = 0;
  if (p.score_func == DSK_MOE_SCORE_SOFTMAX) {
    // x (cleaned) in s, the max; then e = exp(x - m) and the canonical sum (vector v holds the
    // partial sums (16 v + l) % 32, i.e. the low or high 16 of the 32; lanes past E add +0, which
    // leaves a sum of non-negative terms unchanged); then s = e / sum, keys.
    __m512 vm = ninf;
    for (int32_t v = 0; v < nv; ++v) {
      const __mmask16 m = lanes_from(16 * v, n);
      __m512 x = _mm512_maskz_loadu_ps(m, in + 16 * v);
      x = _mm512_mask_blend_ps(static_cast<__mmask16>(m & ~f_nonfinite(x)), ninf, x);
      _mm512_store_ps(s + 16 * v, x);
      vm = _mm512_max_ps(vm, x);
    }
    const __m512 vmx = vset(moe::gate_softmax_max(_mm512_reduce_max_ps(vm)));
    __m512 part[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    __mmask16 valid[16];
    for (int32_t v = 0; v < nv; ++v) {
      const __m512 x = _mm512_load_ps(s + 16 * v);
      valid[v] = _mm512_cmp_ps_mask(x, ninf, _CMP_NEQ_OQ);
      const __m512 ev = _mm512_maskz_mov_ps(valid[v], f_det_exp(_mm512_sub_ps(x, vmx)));
      part[v & 1] = _mm512_add_ps(part[v & 1], ev);
      _mm512_store_ps(s + 16 * v, ev);
    }
    // p[l] += p[l + o] for o = 16, 8, 4, 2, 1.
    __m512 q = _mm512_add_ps(part[0], part[1]);
    q = _mm512_add_ps(q, _mm512_shuffle_f32x4(q, q, _MM_SHUFFLE(3, 2, 3, 2)));
    q = _mm512_add_ps(q, _mm512_shuffle_f32x4(q, q, _MM_SHUFFLE(1, 1, 1, 1)));
    q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(3, 2, 3, 2)));
    q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 1, 1, 1)));
    const float sum = _mm512_cvtss_f32(q);
    const __m512 vsum = vset(sum);
    for (int32_t v = 0; v < nv; ++v) {
      const __mmask16 m = lanes_from(16 * v, n);
      const __m512 ev = _mm512_load_ps(s + 16 * v);
      const __m512 sc = sum != 0.0f ? _mm512_div_ps(ev, vsum) : _mm512_setzero_ps();
      _mm512_store_ps(s + 16 * v, sc);
      any = static_cast<__mmask16>(any | f_keys(p, 16 * v, m, valid[v], sc, key));
    }
  } else {
    const bool sigmoid = p.score_func == DSK_MOE_SCORE_SIGMOID;
    for (int32_t v = 0; v < nv; ++v) {
      const __mmask16 m = lanes_from(16 * v, n);
      __m512 x = _mm512_maskz_loadu_ps(m, in + 16 * v);
      const auto valid = static_cast<__mmask16>(~f_nonfinite(x));
      x = _mm512_mask_blend_ps(valid, ninf, x);
      __m512 sc = x;
      if (sigmoid) {
        const __m512 neg =
            _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), iset(0x80000000u)));
        sc = _mm512_div_ps(vset(1.0f), _mm512_add_ps(vset(1.0f), f_det_exp(neg)));
      }
      if (p.score_bf16 != 0) sc = v_round_bf16(sc);
      _mm512_store_ps(s + 16 * v, sc);
      any = static_cast<__mmask16>(any | f_keys(p, 16 * v, m, valid, sc, key));
    }
  }
  return any != 0;
}

DSK_GATE_FUSED void moe_gate_row_select_avx512(const MoeGateRowPlan& p, uint32_t* key,
                                               uint32_t* scratch, uint32_t* top_key,
                                               int32_t* top_index) {
  const int32_t n = p.num_experts;
  const int32_t nv = (n + 15) / 16;
  if (p.grouped) fused_groups(p, nv, key);

  // Step 4. The largest key of each of the min(E, 16) columns (experts e with the same e % 16)
  // come from distinct experts, so the k-th largest of them, tau, is at most the k-th largest
  // key: every pick has a key >= tau. The (few) keys >= tau are ranked by (key, index).
  const int32_t k = p.top_k;
  if (k > n || k > 16) {
    select_rounds(key, n, k, scratch, top_key, top_index);
    return;
  }
  __m512i cm = _mm512_load_si512(key);
  for (int32_t v = 1; v < nv; ++v) cm = _mm512_max_epu32(cm, _mm512_load_si512(key + 16 * v));
  alignas(64) uint32_t sorted[16];
  _mm512_store_si512(sorted, sort16_desc(cm));
  const __m512i tau = iset(sorted[k - 1]);
  alignas(64) uint32_t ck[256 + 16];
  alignas(64) int32_t ci[256 + 16];
  int32_t count = 0;
  __m512i ids = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int32_t v = 0; v < nv; ++v) {
    const __m512i kv = _mm512_load_si512(key + 16 * v);
    const __mmask16 c = _mm512_cmpge_epu32_mask(kv, tau);
    _mm512_storeu_si512(ck + count, _mm512_maskz_compress_epi32(c, kv));
    _mm512_storeu_si512(ci + count, _mm512_maskz_compress_epi32(c, ids));
    count += __builtin_popcount(c);
    ids = _mm512_add_epi32(ids, iset(16));
  }
  if (count > 32) {  // many ties at tau
    select_rounds(key, n, k, scratch, top_key, top_index);
    return;
  }
  rank_picks(ck, ci, count, k, top_key, top_index);
}

namespace {

// group_top2 on floats (no NaN): the largest and, with TOP2SUM, the second largest value of each
// group (a multiset) of v [E], group g's in lane g; -inf past the groups.
DSK_GATE_FUSED_INLINE void group_top2_ps(const MoeGateRowPlan& p, const float* v, __m512& ga,
                                         __m512& gb) {
  const int32_t groups = p.groups;
  const int32_t size = p.group_size;
  const __m512 ninf = _mm512_castsi512_ps(iset(0xFF800000u));
  int32_t pow2 = 1;
  while (pow2 < groups) pow2 *= 2;
  __m512 a[16];
  __m512 b[16];
  for (int32_t g = 0; g < pow2; ++g) {
    a[g] = ninf;
    b[g] = ninf;
    if (g >= groups) continue;
    const float* k = v + static_cast<int64_t>(g) * size;
    a[g] = _mm512_mask_loadu_ps(ninf, lanes_from(0, size), k);
    for (int32_t off = 16; off < size; off += 16) {
      const __m512 kv = _mm512_mask_loadu_ps(ninf, lanes_from(off, size), k + off);
      if (p.top2) b[g] = _mm512_max_ps(b[g], _mm512_min_ps(a[g], kv));
      a[g] = _mm512_max_ps(a[g], kv);
    }
  }
  pack_groups_any(a, b, pow2, p.top2, ga, gb);
}

// group_top2_ps for G groups (a power of 2, <= 16) of VPG whole vectors each, held in registers
// (the general version's loop bounds come from the plan, so its states go through memory).
template <int G, int VPG>
DSK_GATE_FUSED_INLINE void group_top2_fixed(const float* v, bool top2, __m512& ga, __m512& gb) {
  const __m512 ninf = _mm512_castsi512_ps(iset(0xFF800000u));
  __m512 a[G];
  __m512 b[G];
#  pragma GCC unroll 16
  for (int32_t g = 0; g < G; ++g) {
    a[g] = _mm512_load_ps(v + 16 * VPG * g);
    b[g] = ninf;
#  pragma GCC unroll 16
    for (int32_t j = 1; j < VPG; ++j) {
      const __m512 kv = _mm512_load_ps(v + 16 * (VPG * g + j));
      if (top2) b[g] = _mm512_max_ps(b[g], _mm512_min_ps(a[g], kv));
      a[g] = _mm512_max_ps(a[g], kv);
    }
  }
  pack_groups<G>(a, b, top2, ga, gb);
}

// Exact scores of the `count` experts listed in idx [count] (logits in, finite): s and the keys
// of s' = s + b into cs, ck [count rounded up to 16], with moe_gate_row_avx512's operations.
DSK_GATE_FUSED_INLINE void exact_listed(const MoeGateRowPlan& p, const float* in,
                                        const int32_t* idx, int32_t count, float* cs,
                                        uint32_t* ck) {
  for (int32_t c = 0; c < count; c += 16) {
    const __mmask16 m = lanes_from(c, count);
    const __m512i vi = _mm512_maskz_loadu_epi32(m, idx + c);
    const __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, vi, in, 4);
    const __m512 neg =
        _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), iset(0x80000000u)));
    const __m512 sc = _mm512_div_ps(vset(1.0f), _mm512_add_ps(vset(1.0f), f_det_exp(neg)));
    __m512 sp = sc;
    if (p.has_bias) {
      sp = _mm512_add_ps(sc, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, vi, p.bias, 4));
    }
    _mm512_store_ps(cs + c, sc);
    _mm512_store_si512(ck + c, _mm512_maskz_mov_epi32(m, f_key(sp)));  // 0 past count
  }
}

}  // namespace

// ---- The fast softmax row (moe_gate_score.h: the method and the proof) ----

namespace {

// 16 logits from vector v of a row in dtype D (DSK_DTYPE_F32, _BF16 or _F16; contiguous) as
// f32; bf16 and f16 ones are widened (exactly) and also stored into x, where the later phases
// read them.
template <int D>
DSK_GATE_FUSED_INLINE __m512 load_logits16(const void* src, int32_t v, float* x) {
  if (D == DSK_DTYPE_F32) return _mm512_loadu_ps(static_cast<const float*>(src) + 16 * v);
  const __m256i h = _mm256_loadu_si256(static_cast<const __m256i*>(src) + v);
  const __m512 f = D == DSK_DTYPE_BF16
                       ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                       : _mm512_cvtph_ps(h);
  _mm512_store_ps(x + 16 * v, f);
  return f;
}

// e = det_exp(x - m) of 16 logits into out, added to the partial sums; clears the lanes of ok
// whose x - m is below -87 or NaN.
DSK_GATE_FUSED_INLINE void softmax_exp16(const float* in, __m512 vmx, __mmask16& ok, __m512& part,
                                         float* out) {
  const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(in), vmx);
  ok = _mm512_mask_cmp_ps_mask(ok, d, vset(-87.0f), _CMP_GE_OQ);
  const __m512 ev = avx512::det_exp_in_range(d);
  part = _mm512_add_ps(part, ev);
  _mm512_store_ps(out, ev);
}

// Pass 1 of R rows: e = det_exp(x - m) of every expert into st[r]->ua, the canonical sum into
// st[r]->sum, and st[r]->bad when some x - m is outside [-87, 0] (a non-finite logit, or one so
// far below the maximum that det_exp's general path would run): such rows take the exact row.
// The operations and their order are moe_gate_row_score_avx512's (kept out of the
// approximation's function). The rows' operations are interleaved: one row's 4 (V2-Lite) to 10
// (V2) exp chains are too few to keep the vector units busy, two rows' are enough.
template <int R, int D>
DSK_GATE_FUSED_INLINE void softmax_fast_pass(const MoeGateRowPlan& p, const MoeGateRowIn* rows,
                                             MoeGateFastRow* const* st) {
  const int32_t nv = p.num_experts / 16;
  __m512 vm[R];
  const void* src[R];
  float* x[R];
  const float* in[R];
  for (int r = 0; r < R; ++r) {
    vm[r] = _mm512_castsi512_ps(iset(0xFF800000u));
    src[r] = rows[r].data;
    x[r] = rows[r].x;
    in[r] = D == DSK_DTYPE_F32 ? static_cast<const float*>(src[r]) : x[r];
  }
  for (int32_t v = 0; v < nv; ++v) {
    for (int r = 0; r < R; ++r) vm[r] = _mm512_max_ps(vm[r], load_logits16<D>(src[r], v, x[r]));
  }
  __m512 vmx[R];
  for (int r = 0; r < R; ++r) {
    vmx[r] = vset(moe::gate_softmax_max(_mm512_reduce_max_ps(vm[r])));
  }
  // part[r][v & 1]: the lane partial sums (16 v + l) % 32, unrolled by two vectors so that they
  // stay in registers.
  __m512 part[R][2];
  __mmask16 ok[R];
  for (int r = 0; r < R; ++r) {
    part[r][0] = _mm512_setzero_ps();
    part[r][1] = _mm512_setzero_ps();
    ok[r] = 0xFFFFu;
  }

  int32_t v = 0;
  for (; v + 2 <= nv; v += 2) {
    for (int r = 0; r < R; ++r) {
      softmax_exp16(in[r] + 16 * v, vmx[r], ok[r], part[r][0], st[r]->ua + 16 * v);
      softmax_exp16(in[r] + 16 * v + 16, vmx[r], ok[r], part[r][1], st[r]->ua + 16 * v + 16);
    }
  }
  if (v < nv) {
    for (int r = 0; r < R; ++r) {
      softmax_exp16(in[r] + 16 * v, vmx[r], ok[r], part[r][0], st[r]->ua + 16 * v);
    }
  }
  // The same tree as moe_gate_row_score_avx512's: p[l] += p[l + o] for o = 16, 8, 4, 2, 1.
  for (int r = 0; r < R; ++r) {
    __m512 q = _mm512_add_ps(part[r][0], part[r][1]);
    q = _mm512_add_ps(q, _mm512_shuffle_f32x4(q, q, _MM_SHUFFLE(3, 2, 3, 2)));
    q = _mm512_add_ps(q, _mm512_shuffle_f32x4(q, q, _MM_SHUFFLE(1, 1, 1, 1)));
    q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(3, 2, 3, 2)));
    q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 1, 1, 1)));
    st[r]->sum = _mm512_cvtss_f32(q);
    st[r]->bad = ok[r] != 0xFFFFu;
  }
}

// One function for each row count and dtype.
template <int R, int D>
__attribute__((noinline)) DSK_GATE_FUSED void softmax_fast_pass_of(const MoeGateRowPlan& p,
                                                                   const MoeGateRowIn* rows,
                                                                   MoeGateFastRow* const* st) {
  softmax_fast_pass<R, D>(p, rows, st);
}

// softmax_fast_pass for R rows of one dtype.
template <int R>
inline void softmax_fast_pass_any(const MoeGateRowPlan& p, const MoeGateRowIn* rows,
                                  MoeGateFastRow* const* st) {
  if (rows[0].dtype == DSK_DTYPE_BF16) {
    softmax_fast_pass_of<R, DSK_DTYPE_BF16>(p, rows, st);
  } else if (rows[0].dtype == DSK_DTYPE_F16) {
    softmax_fast_pass_of<R, DSK_DTYPE_F16>(p, rows, st);
  } else {
    softmax_fast_pass_of<R, DSK_DTYPE_F32>(p, rows, st);
  }
}

// Lane masks of the kept experts (kept_bits: the kept groups), vector by vector, and the
// vectors that hold any (all of them unless groups are whole vectors).
DSK_GATE_FUSED_INLINE uint32_t kept_experts(const MoeGateRowPlan& p, uint32_t kept_bits,
                                            __mmask16* kept) {
  const int32_t nv = (p.num_experts + 15) / 16;
  uint32_t kvec = (1u << nv) - 1u;
  const __m512i kv_kept = iset(kept_bits);
  if (p.vector_groups) {
    kvec &= _mm512_test_epi32_mask(_mm512_srlv_epi32(kv_kept, _mm512_load_si512(p.vgid)), iset(1));
    for (int32_t v = 0; v < nv; ++v) kept[v] = (kvec >> v) & 1u ? 0xFFFFu : 0u;
  } else {
    for (int32_t v = 0; v < nv; ++v) {
      kept[v] = _mm512_test_epi32_mask(
          _mm512_srlv_epi32(kv_kept, _mm512_load_si512(p.gid + 16 * v)), iset(1));
    }
  }
  return kvec;
}

// Group stage and top-k candidates of R softmax rows from e (st[r]->ua) and the sum: the groups
// exactly (their scores from each group's largest e), the candidates e >= fl(t (1 - 2^-20)) of
// kept groups, t the k-th largest column maximum of e, listed in st[r]->li. ok[r]: the row is
// decided (else the exact row must run). The rows' operations are interleaved (each row is a
// chain of dependent steps) and no branch depends on a row's data.
template <int R>
DSK_GATE_FUSED_INLINE void softmax_fast_select(const MoeGateRowPlan& p, MoeGateFastRow* const* st,
                                               bool* ok) {
  const int32_t nv = p.num_experts / 16;
  const int32_t k = p.top_k;
  const __m512i lane_id = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  uint32_t kept_bits[R];
  for (int r = 0; r < R; ++r) kept_bits[r] = 0xFFFFu;
  if (p.grouped) {
    __m512 ga[R];
    __m512 gb[R];
    for (int r = 0; r < R; ++r) group_top2_ps(p, st[r]->ua, ga[r], gb[r]);
    const auto gmask = static_cast<__mmask16>((1u << p.groups) - 1u);
    for (int r = 0; r < R; ++r) {
      const __m512 vsum = vset(st[r]->sum);
      __m512 gs = _mm512_div_ps(ga[r], vsum);
      if (p.top2) gs = _mm512_add_ps(gs, _mm512_div_ps(gb[r], vsum));
      const __m512i rank = lane_ranks(_mm512_maskz_mov_epi32(gmask, f_key(gs)), p.groups);
      kept_bits[r] =
          _mm512_mask_cmplt_epi32_mask(gmask, rank, iset(static_cast<uint32_t>(p.topk_group)));
    }
  }
  __mmask16 kept[R][16];
  for (int r = 0; r < R; ++r) kept_experts(p, kept_bits[r], kept[r]);
  // e >= +0, so the float order of e is the unsigned order of its bits; columns without a kept
  // expert hold -1 (key below every e). Two maxima a row halve the chain.
  __m512 cm[R][2];
  for (int r = 0; r < R; ++r) cm[r][0] = cm[r][1] = vset(-1.0f);
  for (int32_t v = 0; v < nv; ++v) {
    for (int r = 0; r < R; ++r) {
      cm[r][v & 1] = _mm512_mask_max_ps(cm[r][v & 1], kept[r][v], cm[r][v & 1],
                                        _mm512_load_ps(st[r]->ua + 16 * v));
    }
  }
  __m512i sorted[R];
  for (int r = 0; r < R; ++r) sorted[r] = f_key(_mm512_max_ps(cm[r][0], cm[r][1]));
  sort16_desc_n<R>(sorted);
  __m512 thr[R];
  int32_t count[R];
  for (int r = 0; r < R; ++r) {
    const auto tk = static_cast<uint32_t>(_mm512_cvtsi512_si32(
        _mm512_permutexvar_epi32(iset(static_cast<uint32_t>(k - 1)), sorted[r])));
    const float t = moe::gate_key_value(tk);
    ok[r] = !st[r]->bad && t >= kMoeGateSoftmaxMinTau;  // t = -1: fewer than k columns
    thr[r] = vset(t * kMoeGateSoftmaxTauFactor);
    count[r] = 0;
  }
  for (int32_t v = 0; v < nv; ++v) {
    const __m512i ids = _mm512_add_epi32(lane_id, iset(16u * static_cast<uint32_t>(v)));
    for (int r = 0; r < R; ++r) {
      const __mmask16 c = _mm512_mask_cmp_ps_mask(kept[r][v], _mm512_load_ps(st[r]->ua + 16 * v),
                                                  thr[r], _CMP_GE_OQ);
      _mm512_storeu_si512(st[r]->li + count[r], _mm512_maskz_compress_epi32(c, ids));
      count[r] += __builtin_popcount(c);
    }
  }
  for (int r = 0; r < R; ++r) {
    st[r]->count = count[r];
    ok[r] = ok[r] && count[r] <= kMoeGateFastMaxCandidates;
  }
}

__attribute__((noinline)) DSK_GATE_FUSED bool softmax_fast_select1(const MoeGateRowPlan& p,
                                                                   MoeGateFastRow& st) {
  MoeGateFastRow* sts[1] = {&st};
  bool ok[1];
  softmax_fast_select<1>(p, sts, ok);
  return ok[0];
}

__attribute__((noinline)) DSK_GATE_FUSED void softmax_fast_select2(const MoeGateRowPlan& p,
                                                                   MoeGateFastRow* const* st,
                                                                   bool* ok) {
  softmax_fast_select<2>(p, st, ok);
}

// The exact scores s = e / sum of the listed candidates and their keys into cs, ck [count
// rounded up to 16] (keys 0 past count).
DSK_GATE_FUSED_INLINE void softmax_listed(const MoeGateFastRow& st, float* cs, uint32_t* ck) {
  const __m512 vsum = vset(st.sum);
  for (int32_t c = 0; c < st.count; c += 16) {
    const __mmask16 m = lanes_from(c, st.count);
    const __m512i vi = _mm512_maskz_loadu_epi32(m, st.li + c);
    const __m512 ev = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, vi, st.ua, 4);
    const __m512 sc = _mm512_div_ps(ev, vsum);
    _mm512_store_ps(cs + c, sc);
    _mm512_store_si512(ck + c, _mm512_maskz_mov_epi32(m, f_key(sc)));
  }
}

}  // namespace

namespace {

// Pass 1 of the fast sigmoid row: u = fl(sigmoid_approx(x) + b) of every expert into st.ua, and
// whether some logit is not finite. Kept out of the exact code's functions: only this
// approximation is built with FMA (its bound is measured on this very code), the exact
// operations never are.
template <int D>
__attribute__((target("avx512f,avx512dq,popcnt,bmi,bmi2,fma"))) inline
    __attribute__((always_inline)) void
    sigmoid_fast_approx(const MoeGateRowPlan& p, const MoeGateRowIn& row, MoeGateFastRow& st) {
  const int32_t nv = p.num_experts / 16;
  // x * 0 + acc stays +-0 for finite x and turns NaN for a NaN or an infinity: one FMA a vector
  // instead of a classification and a mask transfer.
  __m512 acc = _mm512_setzero_ps();
  for (int32_t v = 0; v < nv; ++v) {
    const __m512 x = load_logits16<D>(row.data, v, row.x);
    acc = _mm512_fmadd_ps(x, _mm512_setzero_ps(), acc);
    _mm512_store_ps(st.ua + 16 * v,
                    _mm512_add_ps(avx512::sigmoid_approx(x), _mm512_load_ps(p.bias + 16 * v)));
  }
  st.bad = _mm512_cmp_ps_mask(acc, acc, _CMP_UNORD_Q) != 0;
}

}  // namespace

__attribute__((target("avx512f,avx512dq,popcnt,bmi,bmi2,fma"))) void moe_gate_row_fast_approx(
    const MoeGateRowPlan& p, const MoeGateRowIn& row, MoeGateFastRow& st) {
  if (p.score_func == DSK_MOE_SCORE_SOFTMAX) {
    MoeGateFastRow* sts[1] = {&st};
    softmax_fast_pass_any<1>(p, &row, sts);
  } else if (row.dtype == DSK_DTYPE_BF16) {
    sigmoid_fast_approx<DSK_DTYPE_BF16>(p, row, st);
  } else if (row.dtype == DSK_DTYPE_F16) {
    sigmoid_fast_approx<DSK_DTYPE_F16>(p, row, st);
  } else {
    sigmoid_fast_approx<DSK_DTYPE_F32>(p, row, st);
  }
}

void moe_gate_row_fast_approx2(const MoeGateRowPlan& p, const MoeGateRowIn* rows,
                               MoeGateFastRow* const* st) {
  if (p.score_func == DSK_MOE_SCORE_SOFTMAX && rows[0].dtype == rows[1].dtype) {
    softmax_fast_pass_any<2>(p, rows, st);
    return;
  }
  moe_gate_row_fast_approx(p, rows[0], *st[0]);
  moe_gate_row_fast_approx(p, rows[1], *st[1]);
}

namespace {

// V3's group stage from u for a pair of rows (8 groups of 32 each): each row's per-lane top-2
// states go through the first three levels of the packing tree alone; the last level merges the
// two rows (row r's group g in lane 8 r + g of ga2, gb2), so that the group scores, their ranks
// within each half and the boundary masks come from one set of vectors. Gives what the one-row
// code gives each row: ga[r], gb[r] (group g in lane g), kept_bits[r] and open[r] (the gap test
// failed: the exact group stage must decide).
DSK_GATE_FUSED_INLINE void v3_pair_groups(const MoeGateRowPlan& p, MoeGateFastRow* const* st,
                                          __m512* ga, __m512* gb, uint32_t* kept_bits, bool* open) {
  const __m512 ninf = _mm512_castsi512_ps(iset(0xFF800000u));
  __m512 half_a[2];
  __m512 half_b[2];
  for (int r = 0; r < 2; ++r) {
    __m512 a[8];
    __m512 b[8];
#  pragma GCC unroll 8
    for (int32_t g = 0; g < 8; ++g) {
      const __m512 v0 = _mm512_load_ps(st[r]->ua + 32 * g);
      const __m512 v1 = _mm512_load_ps(st[r]->ua + 32 * g + 16);
      a[g] = _mm512_max_ps(v0, v1);
      b[g] = p.top2 ? _mm512_min_ps(v0, v1) : ninf;
    }
    pack_groups<8, 3>(a, b, p.top2, half_a[r], half_b[r]);
  }
  const __m512i vx = _mm512_load_si512(kPackEven[3]);
  const __m512i vy = _mm512_load_si512(kPackOdd[3]);
  const __m512 xa = _mm512_permutex2var_ps(half_a[0], vx, half_a[1]);
  const __m512 ya = _mm512_permutex2var_ps(half_a[0], vy, half_a[1]);
  const __m512 ga2 = _mm512_max_ps(xa, ya);
  __m512 gb2 = ninf;
  if (p.top2) {
    const __m512 xb = _mm512_permutex2var_ps(half_b[0], vx, half_b[1]);
    const __m512 yb = _mm512_permutex2var_ps(half_b[0], vy, half_b[1]);
    gb2 = _mm512_max_ps(_mm512_min_ps(xa, ya), _mm512_max_ps(xb, yb));
  }
  const __m512 gv2 = p.top2 ? _mm512_add_ps(ga2, gb2) : ga2;
  const __m512i gkey2 = f_key(gv2);
  // rank16 within each half: lane 8 h + i counts the j of its half with key_j >= key_i + [i <= j].
  const __m512i one = iset(1);
  const __m512i half_base = _mm512_set_epi32(8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512i rank2 = _mm512_setzero_si512();
#  pragma GCC unroll 8
  for (int32_t j = 0; j < 8; ++j) {
    const __m512i bj = _mm512_permutexvar_epi32(
        _mm512_add_epi32(half_base, iset(static_cast<uint32_t>(j))), gkey2);
    const uint32_t le = (2u << j) - 1u;
    const auto le2 = static_cast<__mmask16>(le | (le << 8));
    rank2 = _mm512_mask_add_epi32(
        rank2, _mm512_cmpge_epu32_mask(bj, _mm512_mask_add_epi32(gkey2, le2, gkey2, one)), rank2,
        one);
  }
  const __m512i tgv = iset(static_cast<uint32_t>(p.topk_group));
  const __mmask16 kept2 = _mm512_cmplt_epi32_mask(rank2, tgv);
  const __mmask16 last2 = _mm512_cmpeq_epi32_mask(rank2, _mm512_sub_epi32(tgv, one));
  const __mmask16 first2 = _mm512_cmpeq_epi32_mask(rank2, tgv);
  for (int r = 0; r < 2; ++r) {
    const auto half = static_cast<__mmask16>(r == 0 ? 0x00FFu : 0xFF00u);
    const double gap =
        static_cast<double>(_mm512_cvtss_f32(_mm512_maskz_compress_ps(last2 & half, gv2))) -
        static_cast<double>(_mm512_cvtss_f32(_mm512_maskz_compress_ps(first2 & half, gv2)));
    open[r] = !(gap > 2.5 * static_cast<double>(p.fast_margin));
  }
  kept_bits[0] = kept2 & 0xFFu;
  kept_bits[1] = (static_cast<uint32_t>(kept2) >> 8) & 0xFFu;
  ga[0] = ga2;
  gb[0] = gb2;
  ga[1] = _mm512_shuffle_f32x4(ga2, ga2, _MM_SHUFFLE(3, 2, 3, 2));
  gb[1] = _mm512_shuffle_f32x4(gb2, gb2, _MM_SHUFFLE(3, 2, 3, 2));
}

// The exact group stage of a sigmoid row whose groups the approximation could not separate:
// R = the 2nd largest (TOP2SUM) or the largest u of the group (gb / ga, group g's in lane g); the
// candidates u >= fl(R - D) are listed and scored exactly, and each group's two largest exact
// keys among its candidates are the group's (gate_top2_push over the list, in index order).
// Returns the kept groups (bits).
DSK_GATE_FUSED_INLINE uint32_t sigmoid_exact_groups(const MoeGateRowPlan& p, const float* in,
                                                    MoeGateFastRow& st, __m512 ga, __m512 gb) {
  const int32_t nv = p.num_experts / 16;
  const __m512i lane_id = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  alignas(64) float cs[256 + 16];
  alignas(64) uint32_t ck[256 + 16];
  int32_t* li = st.li;
  const __m512 gt = _mm512_sub_ps(p.top2 ? gb : ga, vset(p.fast_margin));
  int32_t count = 0;
  __m512i ids = lane_id;
  for (int32_t v = 0; v < nv; ++v) {
    const __m512 thr = _mm512_permutexvar_ps(_mm512_load_si512(p.gid + 16 * v), gt);
    const __mmask16 c = _mm512_cmp_ps_mask(_mm512_load_ps(st.ua + 16 * v), thr, _CMP_GE_OQ);
    _mm512_storeu_si512(li + count, _mm512_maskz_compress_epi32(c, ids));
    count += __builtin_popcount(c);
    ids = _mm512_add_epi32(ids, iset(16));
  }
  exact_listed(p, in, li, count, cs, ck);
  uint32_t a[16];
  uint32_t b[16];
  for (int32_t g = 0; g < p.groups; ++g) {
    a[g] = moe::kKeyTaken;
    b[g] = moe::kKeyTaken;
  }
  for (int32_t i = 0; i < count; ++i) {
    const int32_t g = p.gid[li[i]];
    moe::gate_top2_push(ck[i], a[g], b[g]);
  }
  uint32_t gk[16];
  for (int32_t g = 0; g < p.groups; ++g) gk[g] = p.top2 ? moe::gate_top2_key(a[g], b[g]) : a[g];
  // topk_group rounds of argmax, the lower group on ties (group_stage of moe_gate.cpp).
  uint32_t kept_bits = 0;
  for (int32_t round = 0; round < p.topk_group; ++round) {
    int32_t best = 0;
    for (int32_t g = 1; g < p.groups; ++g) best = gk[g] > gk[best] ? g : best;
    gk[best] = moe::kKeyTaken;
    kept_bits |= 1u << best;
  }
  return kept_bits;
}

// The group stage of one sigmoid row from u alone: the groups' two largest (largest) u in ga, gb
// (group g in lane g) and the kept groups in kept_bits; false when the gap test fails (the exact
// group stage must decide). See sigmoid_fast_select for why the gap test suffices.
DSK_GATE_FUSED_INLINE bool sigmoid_approx_groups(const MoeGateRowPlan& p, const float* ua,
                                                 __m512& ga, __m512& gb, uint32_t& kept_bits) {
  if (p.groups == 8 && p.group_size == 32) {  // V3
    group_top2_fixed<8, 2>(ua, p.top2, ga, gb);
  } else {
    group_top2_ps(p, ua, ga, gb);
  }
  const auto gmask = static_cast<__mmask16>((1u << p.groups) - 1u);
  const __m512i tgv = iset(static_cast<uint32_t>(p.topk_group));
  const __m512 gv = p.top2 ? _mm512_add_ps(ga, gb) : ga;
  const __m512i gkey = _mm512_maskz_mov_epi32(gmask, f_key(gv));
  // The groups' ranks in selection order, a permutation of 0 .. G - 1: the kept group of rank
  // topk_group - 1 holds the smallest kept G, the group of rank topk_group the largest other.
  const __m512i rank = lane_ranks(gkey, p.groups);
  kept_bits = _mm512_mask_cmplt_epi32_mask(gmask, rank, tgv);
  const __mmask16 last_kept =
      _mm512_mask_cmpeq_epi32_mask(gmask, rank, _mm512_sub_epi32(tgv, iset(1)));
  const __mmask16 first_other = _mm512_mask_cmpeq_epi32_mask(gmask, rank, tgv);
  const double gap =
      static_cast<double>(_mm512_cvtss_f32(_mm512_maskz_compress_ps(last_kept, gv))) -
      static_cast<double>(_mm512_cvtss_f32(_mm512_maskz_compress_ps(first_other, gv)));
  return gap > 2.5 * static_cast<double>(p.fast_margin);
}

// See moe_gate_score.h for the method and the proof. u = fl(a + b) per expert in st[r]->ua; the
// candidates of each stage are listed (indices in increasing order) and scored exactly from the
// list (gathers), so no exact value makes a round trip through per-expert memory. R rows at
// once, their steps interleaved (each row is a chain of dependent steps); rows with a
// non-finite logit must not be passed (their ok is false without a call).
template <int R>
DSK_GATE_FUSED_INLINE void sigmoid_fast_select(const MoeGateRowPlan& p, const float* const* in,
                                               MoeGateFastRow* const* st, bool* ok) {
  const int32_t k = p.top_k;
  const __m512 ninf = _mm512_castsi512_ps(iset(0xFF800000u));
  const __m512i lane_id = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512 margin = vset(p.fast_margin);
  uint32_t kept_bits[R];
  __m512 ga[R];
  __m512 gb[R];
  for (int r = 0; r < R; ++r) {
    kept_bits[r] = 0xFFFFu;
    ga[r] = ninf;
    gb[r] = ninf;
  }
  if (p.grouped) {
    // The groups from u alone when that is safe. The j-th largest value of a group moves by at
    // most max |s' - u| <= E1 between u and s', so the exact group score S (fl of the sum of the
    // two largest s', or the largest) and G, the same of u, differ by at most
    // 2 E1 + 2 (U / 2) = 2 delta + 3 U = D (MAX: E1 <= D); the sums stay below 2^c. If the
    // topk_group-th largest G exceeds the next by more than 2.5 D (in double, exact to far below
    // 0.5 D), every kept group's S exceeds every other group's S: the exact stage keeps the same
    // groups, without a tie.
    const bool v3 = p.groups == 8 && p.group_size == 32;
    bool open[R];
    if (R == 2 && v3) {
      v3_pair_groups(p, st, ga, gb, kept_bits, open);
    } else {
      for (int r = 0; r < R; ++r) {
        open[r] = !sigmoid_approx_groups(p, st[r]->ua, ga[r], gb[r], kept_bits[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      if (open[r]) kept_bits[r] = sigmoid_exact_groups(p, in[r], *st[r], ga[r], gb[r]);
    }
  }
  // Top k: R = tau, a value that k distinct kept experts reach with their u. With k == 2
  // topk_group (TOP2SUM) or k == topk_group, the kept groups' two largest (or largest) u are k
  // distinct experts: tau = the smallest of them. Otherwise the k-th largest of the column maxima
  // of u over the kept experts (-inf when fewer than k columns hold a kept expert: then every
  // kept expert is a candidate). Kept experts: whole vectors when groups are multiples of 16
  // (only those are visited, the set bits of kvec), else lane masks.
  __mmask16 kept[R][16];
  uint32_t kvec[R];
  for (int r = 0; r < R; ++r) kvec[r] = kept_experts(p, kept_bits[r], kept[r]);
  const int32_t tg = p.topk_group;
  __m512 thr[R];
  if (p.grouped && (k == tg || (p.top2 && k == 2 * tg))) {
    for (int r = 0; r < R; ++r) {
      const auto km = static_cast<__mmask16>(kept_bits[r] & ((1u << p.groups) - 1u));
      const float tv = _mm512_mask_reduce_min_ps(km, k == tg ? ga[r] : gb[r]);
      thr[r] = _mm512_sub_ps(vset(tv), margin);
    }
  } else {
    __m512i sorted[R];
    for (int r = 0; r < R; ++r) {
      __m512 cm = ninf;
      for (uint32_t m = kvec[r]; m != 0; m &= m - 1) {
        const int32_t v = __builtin_ctz(m);
        cm = _mm512_mask_max_ps(cm, kept[r][v], cm, _mm512_load_ps(st[r]->ua + 16 * v));
      }
      sorted[r] = f_key(cm);
    }
    sort16_desc_n<R>(sorted);
    for (int r = 0; r < R; ++r) {
      const auto tau = static_cast<uint32_t>(_mm512_cvtsi512_si32(
          _mm512_permutexvar_epi32(iset(static_cast<uint32_t>(k - 1)), sorted[r])));
      thr[r] =
          tau == moe::kKeyNegInf ? ninf : _mm512_sub_ps(vset(moe::gate_key_value(tau)), margin);
    }
  }
  for (int r = 0; r < R; ++r) {
    int32_t count = 0;
    for (uint32_t m = kvec[r]; m != 0; m &= m - 1) {
      const int32_t v = __builtin_ctz(m);
      const __mmask16 c = _mm512_mask_cmp_ps_mask(kept[r][v], _mm512_load_ps(st[r]->ua + 16 * v),
                                                  thr[r], _CMP_GE_OQ);
      _mm512_storeu_si512(st[r]->li + count,
                          _mm512_maskz_compress_epi32(
                              c, _mm512_add_epi32(lane_id, iset(16u * static_cast<uint32_t>(v)))));
      count += __builtin_popcount(c);
    }
    st[r]->count = count;
    ok[r] = count <= kMoeGateFastMaxCandidates;
  }
}

__attribute__((noinline)) DSK_GATE_FUSED void sigmoid_fast_select2(const MoeGateRowPlan& p,
                                                                   const float* const* in,
                                                                   MoeGateFastRow* const* st,
                                                                   bool* ok) {
  sigmoid_fast_select<2>(p, in, st, ok);
}

}  // namespace

DSK_GATE_FUSED bool moe_gate_row_fast_select(const MoeGateRowPlan& p, const float* in,
                                             MoeGateFastRow& st) {
  if (p.score_func == DSK_MOE_SCORE_SOFTMAX) return softmax_fast_select1(p, st);
  if (st.bad) return false;
  MoeGateFastRow* sts[1] = {&st};
  bool ok[1];
  sigmoid_fast_select<1>(p, &in, sts, ok);
  return ok[0];
}

void moe_gate_row_fast_select2(const MoeGateRowPlan& p, const float* in0, MoeGateFastRow& st0,
                               const float* in1, MoeGateFastRow& st1, bool* ok) {
  MoeGateFastRow* st[2] = {&st0, &st1};
  if (p.score_func == DSK_MOE_SCORE_SOFTMAX) {
    softmax_fast_select2(p, st, ok);
  } else if (st0.bad || st1.bad) {
    ok[0] = moe_gate_row_fast_select(p, in0, st0);
    ok[1] = moe_gate_row_fast_select(p, in1, st1);
  } else {
    const float* in[2] = {in0, in1};
    sigmoid_fast_select2(p, in, st, ok);
  }
}

namespace {

// The exact tails of R rows (the listed candidates' exact scores and keys, their ranks, the k
// picks and s at the picks), the rows' steps interleaved.
template <int R>
DSK_GATE_FUSED_INLINE void fast_finish(const MoeGateRowPlan& p, const float* const* in,
                                       const MoeGateFastRow* const* st, float* const* s,
                                       uint32_t* const* top_key, int32_t* const* top_index) {
  const int32_t k = p.top_k;
  alignas(64) float cs[R][256 + 16];
  alignas(64) uint32_t ck[R][256 + 16];
  for (int r = 0; r < R; ++r) {
    if (p.score_func == DSK_MOE_SCORE_SOFTMAX) {
      softmax_listed(*st[r], cs[r], ck[r]);
    } else {
      exact_listed(p, in[r], st[r]->li, st[r]->count, cs[r], ck[r]);
    }
  }
  // rank16 with a fixed trip count (the keys past count are 0 and never count; rows with more
  // than 16 candidates are ranked again below), then the k picks with the exact scores the
  // weights read: no branch depends on the row's data.
  const __m512i one = iset(1);
  __m512i c0[R];
  __m512i r0[R];
  for (int r = 0; r < R; ++r) {
    c0[r] = _mm512_load_si512(ck[r]);
    r0[r] = _mm512_setzero_si512();
  }
  for (int32_t j = 0; j < 16; ++j) {
    const auto le0 = static_cast<__mmask16>(j >= 15 ? 0xFFFFu : (2u << j) - 1u);
    for (int r = 0; r < R; ++r) {
      const __m512i bj = _mm512_set1_epi32(static_cast<int32_t>(ck[r][j]));
      r0[r] = _mm512_mask_add_epi32(
          r0[r], _mm512_cmpge_epu32_mask(bj, _mm512_mask_add_epi32(c0[r], le0, c0[r], one)), r0[r],
          one);
    }
  }
  for (int r = 0; r < R; ++r) {
    const int32_t count = st[r]->count;
    const int32_t* li = st[r]->li;
    if (count > 16) {
      rank_picks(ck[r], li, count, k, top_key[r], top_index[r]);
      for (int32_t i = 0; i < count; ++i) s[r][li[i]] = cs[r][i];
      continue;
    }
    alignas(64) int32_t rk[16];
    _mm512_store_si512(rk, r0[r]);
    uint32_t below =
        _mm512_mask_cmplt_epi32_mask(lanes_from(0, count), r0[r], iset(static_cast<uint32_t>(k)));
    for (; below != 0; below &= below - 1) {
      const int32_t i = __builtin_ctz(below);
      top_key[r][rk[i]] = ck[r][i];
      top_index[r][rk[i]] = li[i];
      s[r][li[i]] = cs[r][i];
    }
  }
}

}  // namespace

DSK_GATE_FUSED void moe_gate_row_fast_finish(const MoeGateRowPlan& p, const float* in,
                                             const MoeGateFastRow& st, float* s, uint32_t* top_key,
                                             int32_t* top_index) {
  const MoeGateFastRow* sts[1] = {&st};
  fast_finish<1>(p, &in, sts, &s, &top_key, &top_index);
}

DSK_GATE_FUSED void moe_gate_row_fast_finish2(const MoeGateRowPlan& p, const float* const* in,
                                              const MoeGateFastRow* const* st, float* const* s,
                                              uint32_t* const* top_key, int32_t* const* top_index) {
  fast_finish<2>(p, in, st, s, top_key, top_index);
}

bool moe_gate_row_fast_avx512(const MoeGateRowPlan& plan, const float* in, float* s,
                              uint32_t* /*key*/, uint32_t* top_key, int32_t* top_index) {
  MoeGateFastRow st;
  moe_gate_row_fast_approx(plan, MoeGateRowIn{in, DSK_DTYPE_F32, nullptr}, st);
  if (!moe_gate_row_fast_select(plan, in, st)) return false;
  moe_gate_row_fast_finish(plan, in, st, s, top_key, top_index);
  return true;
}

// Only where the CPU has AVX-512F/DQ and FMA (the tests ask moe_gate_row_plan_init first).
__attribute__((target("avx512f,avx512dq,fma"))) void moe_gate_sigmoid_approx(const float* x,
                                                                             int64_t n,
                                                                             float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, avx512::sigmoid_approx(_mm512_loadu_ps(x + i)));
  }
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << static_cast<uint32_t>(n - i)) - 1u);
    _mm512_mask_storeu_ps(out + i, m, avx512::sigmoid_approx(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

namespace {

// Up to 8 weights in 256-bit registers: a 256-bit division is one micro-operation where the
// 512-bit one takes three (two on the shuffle port), and correctly rounded either way.
__attribute__((target("avx512f,avx512vl"))) void finish_weights8(const float* w, int32_t k,
                                                                 bool renormalize, float divisor,
                                                                 float scale, float* out) {
  const auto m = static_cast<__mmask8>((1u << k) - 1u);
  __m256 v = _mm256_maskz_loadu_ps(m, w);
  if (renormalize) v = _mm256_div_ps(v, _mm256_set1_ps(divisor));
  _mm256_mask_storeu_ps(out, m, _mm256_mul_ps(v, _mm256_set1_ps(scale)));
}

}  // namespace

DSK_GATE_AVX512 void moe_gate_finish_weights_avx512(const float* w, int32_t k, bool renormalize,
                                                    float divisor, float scale, float* out) {
  static const bool have_vl = __builtin_cpu_supports("avx512vl");
  if (k <= 8 && have_vl) {
    finish_weights8(w, k, renormalize, divisor, scale, out);
    return;
  }
  const __mmask16 m = lanes_from(0, k);
  __m512 v = _mm512_maskz_loadu_ps(m, w);
  if (renormalize) v = _mm512_div_ps(v, vset(divisor));
  _mm512_mask_storeu_ps(out, m, _mm512_mul_ps(v, vset(scale)));
}

bool moe_gate_have_avx512() {
  static const bool have = __builtin_cpu_supports("avx512f");
  return have;
}

#else

bool moe_gate_score_row_avx512(const MoeGateScoreArgs& a, const float* in, float* x, float* s,
                               uint32_t* key) {
  return moe_gate_score_row_scalar(a, in, x, s, key);
}

void moe_gate_group_keys_avx512(const uint32_t* key, int32_t groups, int32_t size, bool top2,
                                uint32_t* gk) {
  moe_gate_group_keys_scalar(key, groups, size, top2, gk);
}

void moe_gate_select_avx512(const uint32_t* key, int32_t n, int32_t k, uint32_t* /*scratch*/,
                            uint32_t* top_key, int32_t* top_index) {
  moe_gate_select_scalar(key, n, k, top_key, top_index);
}

bool moe_gate_have_avx512() { return false; }

void moe_gate_finish_weights_avx512(const float* w, int32_t k, bool renormalize, float divisor,
                                    float scale, float* out) {
  for (int32_t j = 0; j < k; ++j) {
    out[j] = (StrictF32{renormalize ? (StrictF32{w[j]} / StrictF32{divisor}).v : w[j]} *
              StrictF32{scale})
                 .v;
  }
}

bool moe_gate_row_plan_init(MoeGateRowPlan& plan, int32_t num_experts, int32_t top_k,
                            int32_t score_func, int32_t score_bf16, const float* bias,
                            int32_t groups, int32_t topk_group, bool top2) {
  (void)plan;
  (void)num_experts;
  (void)top_k;
  (void)score_func;
  (void)score_bf16;
  (void)bias;
  (void)groups;
  (void)topk_group;
  (void)top2;
  return false;
}

bool moe_gate_row_avx512(const MoeGateRowPlan& /*plan*/, const float* /*in*/, float* /*s*/,
                         uint32_t* /*key*/, uint32_t* /*scratch*/, uint32_t* /*top_key*/,
                         int32_t* /*top_index*/) {
  return false;
}

bool moe_gate_row_fast_avx512(const MoeGateRowPlan& /*plan*/, const float* /*in*/, float* /*s*/,
                              uint32_t* /*key*/, uint32_t* /*top_key*/, int32_t* /*top_index*/) {
  return false;
}

void moe_gate_row_fast_approx(const MoeGateRowPlan& /*plan*/, const MoeGateRowIn& /*row*/,
                              MoeGateFastRow& st) {
  st.bad = true;
}

void moe_gate_row_fast_approx2(const MoeGateRowPlan& /*plan*/, const MoeGateRowIn* /*rows*/,
                               MoeGateFastRow* const* st) {
  st[0]->bad = true;
  st[1]->bad = true;
}

bool moe_gate_row_fast_select(const MoeGateRowPlan& /*plan*/, const float* /*in*/,
                              MoeGateFastRow& /*st*/) {
  return false;
}

void moe_gate_row_fast_select2(const MoeGateRowPlan& /*plan*/, const float* /*in0*/,
                               MoeGateFastRow& /*st0*/, const float* /*in1*/,
                               MoeGateFastRow& /*st1*/, bool* ok) {
  ok[0] = false;
  ok[1] = false;
}

void moe_gate_row_fast_finish(const MoeGateRowPlan& /*plan*/, const float* /*in*/,
                              const MoeGateFastRow& /*st*/, float* /*s*/, uint32_t* /*top_key*/,
                              int32_t* /*top_index*/) {}

void moe_gate_row_fast_finish2(const MoeGateRowPlan& /*plan*/, const float* const* /*in*/,
                               const MoeGateFastRow* const* /*st*/, float* const* /*s*/,
                               uint32_t* const* /*top_key*/, int32_t* const* /*top_index*/) {}

void moe_gate_sigmoid_approx(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = det_sigmoid(x[i]);
}

#endif

}  // namespace cpu
}  // namespace dsk
