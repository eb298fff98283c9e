// The AVX-512 steps of the CPU gate (moe_gate_score.h): scores and keys (steps 1-2 of
// lib/common/moe_gate_row.h), group scores (step 3) and the top-k selection (step 4), 16 experts
// at a time.
//
// Bitwise equal to the scalar versions in moe_gate.cpp: per element, every operation of det_exp,
// det_sigmoid, the bf16 rounding, the bias addition and gate_key is done in the same order with
// the same IEEE operation (vmulps, vaddps, vsubps, vdivps are correctly rounded like their scalar
// forms; no FMA: the target below does not enable it and lib/ is built with -ffp-contract=off).
// Out-of-range exp arguments are computed on 0 and replaced afterwards, as det_exp's early returns
// do. Across elements only exact operations are used (max, comparisons, counts); the softmax sum
// is the shared canonical one. Every function that uses AVX-512 carries the target attribute and
// is only called after moe_gate_have_avx512().
#include "common/moe_gate_row.h"
#include "cpu/moe_gate_score.h"
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

// Rank of each lane of the first `count` lanes of (kv, order by lane) in selection order: the
// number of lanes with a larger key plus the earlier lanes with an equal key.
DSK_GATE_AVX512_INLINE __m512i lane_ranks(__m512i kv, int32_t count) {
  __m512i rank = _mm512_setzero_si512();
  const __m512i one = iset(1);
  const __m512i lane_id = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (int32_t j = 0; j < count; ++j) {
    const __m512i bj = _mm512_permutexvar_epi32(iset(static_cast<uint32_t>(j)), kv);
    const __mmask16 gt = _mm512_cmpgt_epu32_mask(bj, kv);
    const __mmask16 eq = _mm512_mask_cmpeq_epi32_mask(
        _mm512_cmpgt_epi32_mask(lane_id, iset(static_cast<uint32_t>(j))), bj, kv);
    rank = _mm512_mask_add_epi32(rank, static_cast<__mmask16>(gt | eq), rank, one);
  }
  return rank;
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

// Top-2 state merge (multiset): a = max, b = second largest of the union of two (a, b) states.
DSK_GATE_FUSED_INLINE void top2_merge(__m512i& a, __m512i& b, __m512i a2, __m512i b2) {
  const __m512i lo = _mm512_min_epu32(a, a2);
  a = _mm512_max_epu32(a, a2);
  b = _mm512_max_epu32(lo, _mm512_max_epu32(b, b2));
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

// Descending bitonic sort of 16 unsigned lanes. In the merge of blocks of `size` lanes at
// distance j, lane i takes the larger of (i, i ^ j) when it is the lower lane of a descending
// block ((i & size) == 0) or the upper lane of an ascending one.
DSK_GATE_FUSED_INLINE __m512i sort16_desc(__m512i v) {
  v = bitonic_step<1, 0x9999u>(v);
  v = bitonic_step<2, 0xC3C3u>(v);
  v = bitonic_step<1, 0xA5A5u>(v);
  v = bitonic_step<4, 0xF00Fu>(v);
  v = bitonic_step<2, 0xCC33u>(v);
  v = bitonic_step<1, 0xAA55u>(v);
  v = bitonic_step<8, 0x00FFu>(v);
  v = bitonic_step<4, 0x0F0Fu>(v);
  v = bitonic_step<2, 0x3333u>(v);
  return bitonic_step<1, 0x5555u>(v);
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

DSK_GATE_FUSED_INLINE void rank16(const uint32_t* ck, __m512i c0, int32_t count, __m512i& r0) {
  const __m512i one = iset(1);
  r0 = _mm512_setzero_si512();
  for (int32_t j = 0; j < count; ++j) {
    const __m512i bj = _mm512_set1_epi32(static_cast<int32_t>(ck[j]));
    const auto le0 = static_cast<__mmask16>(j >= 15 ? 0xFFFFu : (2u << j) - 1u);
    r0 = _mm512_mask_add_epi32(
        r0, _mm512_cmpge_epu32_mask(bj, _mm512_mask_add_epi32(c0, le0, c0, one)), r0, one);
  }
}

// Step 3 on the keys in key [16 * nv]: group scores, the topk_group best groups, the other
// groups' experts masked to kKeyNegInf.
DSK_GATE_FUSED void fused_groups(const MoeGateRowPlan& p, int32_t nv, uint32_t* key) {
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
  // Reduce each group's 16 lanes, packing groups: at width w, output chunk c (w lanes) merges
  // the two w-lane halves of chunk c' = c mod (8 / w) of the first source (c < 8 / w) or of the
  // second; group g ends in lane g.
  // Lanes of (first source, second source) as 0..31: the even and the odd w-lane chunks, for
  // w = 8, 4, 2, 1.
  alignas(64) static const int32_t kEven[4][16] = {
      {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
      {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
      {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
      {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}};
  alignas(64) static const int32_t kOdd[4][16] = {
      {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
      {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31},
      {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31},
      {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}};
  int32_t count = pow2;
  for (int32_t level = 0; level < 4; ++level) {
    const __m512i vx = _mm512_load_si512(kEven[level]);
    const __m512i vy = _mm512_load_si512(kOdd[level]);
    const int32_t out = count > 1 ? count / 2 : 1;
    for (int32_t i = 0; i < out; ++i) {
      const int32_t i0 = count > 1 ? 2 * i : 0;
      const int32_t i1 = count > 1 ? 2 * i + 1 : 0;
      __m512i xa = _mm512_permutex2var_epi32(a[i0], vx, a[i1]);
      const __m512i ya = _mm512_permutex2var_epi32(a[i0], vy, a[i1]);
      if (p.top2) {
        __m512i xb = _mm512_permutex2var_epi32(b[i0], vx, b[i1]);
        const __m512i yb = _mm512_permutex2var_epi32(b[i0], vy, b[i1]);
        top2_merge(xa, xb, ya, yb);
        b[i] = xb;
      } else {
        xa = _mm512_max_epu32(xa, ya);
      }
      a[i] = xa;
    }
    count = out;
  }
  const auto gmask = static_cast<__mmask16>((1u << groups) - 1u);
  __m512i gk = a[0];
  if (p.top2) gk = f_key(_mm512_add_ps(f_key_value(a[0]), f_key_value(b[0])));
  gk = _mm512_maskz_mov_epi32(gmask, gk);
  alignas(64) uint32_t gks[16];
  _mm512_store_si512(gks, gk);
  __m512i rank;
  rank16(gks, gk, groups, rank);
  const uint32_t kept = static_cast<uint32_t>(
      _mm512_mask_cmplt_epi32_mask(gmask, rank, iset(static_cast<uint32_t>(p.topk_group))));
  const __m512i kv_kept = iset(kept);
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
  if (!have || num_experts > 256 || top_k > 16 || (plan.grouped && groups > 16)) return false;
  for (int32_t e = 0; e < 256; ++e) {
    plan.bias[e] = bias != nullptr && e < num_experts ? bias[e] : 0.0f;
    plan.gid[e] = e < num_experts ? e / plan.group_size : 0;
  }
  return true;
}

DSK_GATE_FUSED bool moe_gate_row_avx512(const MoeGateRowPlan& p, const float* in, float* s,
                                        uint32_t* key, uint32_t* scratch, uint32_t* top_key,
                                        int32_t* top_index) {
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
  if (p.grouped) fused_groups(p, nv, key);

  // Step 4. The largest key of each of the min(E, 16) columns (experts e with the same e % 16)
  // come from distinct experts, so the k-th largest of them, tau, is at most the k-th largest
  // key: every pick has a key >= tau. The (few) keys >= tau are ranked by (key, index).
  const int32_t k = p.top_k;
  if (k > n || k > 16) {
    select_rounds(key, n, k, scratch, top_key, top_index);
    return any != 0;
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
    return any != 0;
  }
  const __m512i c0 = _mm512_maskz_loadu_epi32(lanes_from(0, count), ck);
  __m512i r0;
  alignas(64) int32_t rk[32];
  uint32_t below;
  if (count <= 16) {
    rank16(ck, c0, count, r0);
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
  return any != 0;
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

#endif

}  // namespace cpu
}  // namespace dsk
