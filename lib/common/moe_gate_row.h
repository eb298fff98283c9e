// moe_gate_row.h - the per-row arithmetic of the MoE gate (include/dsk/dsk_moe.h, "Gate"), shared
// by the CPU reference (lib/cpu/moe_gate.cpp) and the CUDA kernel (cuda/ops/moe_gate_kernels.cu),
// so that both select the same experts and give the same weight bits.
//
// Every float operation of the gate is one of the functions below, built from single IEEE
// operations (StrictF32, det_exp, det_sigmoid of lib/common/detmath.h; no libm, no intrinsics).
// Operations whose result depends on an order have that order fixed here:
//  - max and argmax are exact in any order (ties are broken by index, not by arrival);
//  - the softmax denominator is gate_softmax_sum's: 32 lane partial sums (partial l adds the
//    elements e = l, l + 32, l + 64, ... in that order, starting from +0), then the pairwise tree
//    p[l] += p[l + o] for o = 16, 8, 4, 2, 1. A warp holding expert e in lane e % 32 reproduces it
//    with p += shfl_xor(p, o) for the same o (float addition is commutative, so both lanes of a
//    pair get the same sum);
//  - the renormalization sum adds the k weights in pick order, starting from +0.
//
// The row, for logits x[0..E) (f32 after exact widening) and bias b[0..E) or none:
//  1. A non-finite logit is replaced by -inf and its expert is "invalid". Scores s:
//     softmax  e_i = det_exp(x_i - m) (0 when invalid), m the largest valid logit (+0 for -0),
//              s_i = e_i / gate_softmax_sum(e) (every s is 0 in a row without a valid logit);
//     sigmoid  s_i = det_sigmoid(x_i) (0 when invalid);
//     none     s_i = x_i;
//     with score_bf16, sigmoid and none scores are rounded to bf16 (round to nearest even).
//  2. s'_i = s_i + b_i (s_i without a bias) for a valid expert, -inf for an invalid one; a
//     non-finite s' becomes -inf. So an invalid expert is never a finite candidate, and a row
//     without a valid logit picks experts 0..k-1 with weight 0.
//  3. Selection compares (s', index): the larger s' first, equal values (-0 == +0) by the lower
//     index. gate_key maps s' to an unsigned key with the same order; kKeyTaken is below every
//     key, so an expert already picked never wins again (picks are tracked, not masked with -inf).
//     Groups (G > 1, topk_group < G): the score of a group of E / G experts is its largest s'
//     (MAX) or the sum of its two largest s' (TOP2SUM, a multiset: a repeated maximum counts twice;
//     -inf + x = -inf); the topk_group best groups by (score, lower group index) stay, the s' of
//     every expert of the other groups becomes -inf.
//  4. The k best experts by (s', index), best first.
//  5. w_j = s at pick j when its s' is finite, else 0. With renormalize: w_j /= (sum of the w in
//     pick order) + 1e-20. Then w_j *= scale. With score_bf16: for sigmoid and none the sum, each
//     quotient and each scaled weight are rounded to bf16 (the reference's bf16 weight tensor);
//     for softmax (f32 scores in the reference) only the scaled weight is.
//  Flags: DSK_MOE_ROW_NO_FINITE when no expert has a finite s' (before the group stage), and
//  DSK_MOE_ROW_SHORT when fewer than k picks have a finite s' (so NO_FINITE rows are also SHORT).
#ifndef DSK_LIB_COMMON_MOE_GATE_ROW_H_
#define DSK_LIB_COMMON_MOE_GATE_ROW_H_

#include <stdint.h>

#include "common/convert.h"
#include "common/detmath.h"
#include "common/hd.h"
#include "dsk/dsk_moe.h"

namespace dsk {
namespace moe {

// Lanes of the canonical softmax sum (one warp).
constexpr int32_t kGateLanes = 32;
// gate_key(-inf): the key of a masked or invalid expert.
constexpr uint32_t kKeyNegInf = 0x007FFFFFu;
// Below every key: marks an expert (or group) already picked.
constexpr uint32_t kKeyTaken = 0u;
// The renormalization guard.
constexpr float kRenormEpsilon = 1e-20f;

DSK_HD float gate_neg_inf() { return f32_from_bits(0xFF800000u); }

DSK_HD bool gate_is_finite(float x) { return (f32_bits(x) & 0x7F800000u) != 0x7F800000u; }

// The logit as the gate reads it: non-finite values become -inf.
DSK_HD float gate_clean_logit(float x) { return gate_is_finite(x) ? x : gate_neg_inf(); }

// Order-preserving key of a selection score (never NaN): unsigned order equals float order, -0
// and +0 share the key of +0, and every key is above kKeyTaken.
DSK_HD uint32_t gate_key(float v) {
  uint32_t b = f32_bits(v);
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}

// The value of a key (-0 comes back as +0).
DSK_HD float gate_key_value(uint32_t key) {
  return f32_from_bits((key & 0x80000000u) != 0 ? (key & 0x7FFFFFFFu) : ~key);
}

// (key_a, index_a) is selected before (key_b, index_b).
DSK_HD bool gate_before(uint32_t key_a, int64_t index_a, uint32_t key_b, int64_t index_b) {
  return key_a > key_b || (key_a == key_b && index_a < index_b);
}

DSK_HD float gate_round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

// Score of a cleaned logit for DSK_MOE_SCORE_SIGMOID and DSK_MOE_SCORE_NONE.
DSK_HD float gate_point_score(int32_t score_func, int32_t score_bf16, float x) {
  const float s = score_func == DSK_MOE_SCORE_SIGMOID ? det_sigmoid(x) : x;
  return score_bf16 != 0 ? gate_round_bf16(s) : s;
}

// The row maximum as the softmax subtracts it: -0 becomes +0 (it changes no difference's value,
// but keeps every path on the same bits).
DSK_HD float gate_softmax_max(float m) { return (StrictF32{m} + StrictF32{0.0f}).v; }

// exp(x - m) of a cleaned logit x (0 for -inf).
DSK_HD float gate_softmax_exp(float x, float m) {
  return x == gate_neg_inf() ? 0.0f : det_exp((StrictF32{x} - StrictF32{m}).v);
}

// Adds v to a running sum (lane partials, tree steps, the renormalization sum).
DSK_HD float gate_add(float sum, float v) { return (StrictF32{sum} + StrictF32{v}).v; }

// The canonical softmax denominator of e[0..n) (see the top of this file).
DSK_HD float gate_softmax_sum(const float* e, int64_t n) {
  float part[kGateLanes];
  for (int32_t l = 0; l < kGateLanes; ++l) part[l] = 0.0f;
  int64_t i = 0;
  for (; i + kGateLanes <= n; i += kGateLanes) {
    for (int32_t l = 0; l < kGateLanes; ++l) part[l] = gate_add(part[l], e[i + l]);
  }
  for (int32_t l = 0; i + l < n; ++l) part[l] = gate_add(part[l], e[i + l]);
  for (int32_t o = kGateLanes / 2; o >= 1; o /= 2) {
    for (int32_t l = 0; l < o; ++l) part[l] = gate_add(part[l], part[l + o]);
  }
  return part[0];
}

// s = e / sum (0 in a row without a valid logit, whose sum is 0).
DSK_HD float gate_softmax_score(float e, float sum) {
  return sum != 0.0f ? (StrictF32{e} / StrictF32{sum}).v : 0.0f;
}

// The selection score s' of an expert with score s (see 2. above).
DSK_HD float gate_biased(float s, bool valid, bool has_bias, float b) {
  if (!valid) return gate_neg_inf();
  const float v = has_bias ? (StrictF32{s} + StrictF32{b}).v : s;
  return gate_is_finite(v) ? v : gate_neg_inf();
}

// Keeps the two largest keys seen (a >= b; start both at kKeyTaken): a repeated maximum fills both.
DSK_HD void gate_top2_push(uint32_t key, uint32_t& a, uint32_t& b) {
  if (key > a) {
    b = a;
    a = key;
  } else if (key > b) {
    b = key;
  }
}

// Key of a TOP2SUM group score from its two largest keys (real keys: a group has >= 2 experts).
DSK_HD uint32_t gate_top2_key(uint32_t a, uint32_t b) {
  return gate_key(gate_add(gate_key_value(a), gate_key_value(b)));
}

// The weights' rounding points.
struct GateWeightMode {
  float scale;
  bool renormalize;
  bool bf16_steps;  // score_bf16 with sigmoid/none: sum, quotient and scaled weight in bf16
  bool bf16_final;  // score_bf16: the scaled weight in bf16
};

DSK_HD GateWeightMode gate_weight_mode(int32_t score_func, int32_t renormalize, int32_t score_bf16,
                                       float scale) {
  GateWeightMode m;
  m.scale = scale;
  m.renormalize = renormalize != 0;
  m.bf16_final = score_bf16 != 0;
  m.bf16_steps = score_bf16 != 0 && score_func != DSK_MOE_SCORE_SOFTMAX;
  return m;
}

// The renormalization divisor from the pick-order sum of the weights.
DSK_HD float gate_renorm_divisor(const GateWeightMode& m, float sum) {
  const float s = m.bf16_steps ? gate_round_bf16(sum) : sum;
  return gate_add(s, kRenormEpsilon);
}

// The output weight of a pick with raw weight w (s, or 0 for a pick whose s' is -inf).
DSK_HD float gate_finish_weight(const GateWeightMode& m, float w, float divisor) {
  float v = w;
  if (m.renormalize) {
    v = (StrictF32{v} / StrictF32{divisor}).v;
    if (m.bf16_steps) v = gate_round_bf16(v);
  }
  v = (StrictF32{v} * StrictF32{m.scale}).v;
  return m.bf16_final ? gate_round_bf16(v) : v;
}

DSK_HD uint8_t gate_row_flags(bool any_finite, int64_t finite_picks, int64_t k) {
  uint32_t f = 0;
  if (!any_finite) f |= DSK_MOE_ROW_NO_FINITE;
  if (finite_picks < k) f |= DSK_MOE_ROW_SHORT;
  return static_cast<uint8_t>(f);
}

// The group holding expert e (groups of group_size consecutive experts), walked incrementally
// along e = lane, lane + 32, ...: no division per element.
struct GateGroupWalk {
  int32_t group;
  int32_t rem;  // e - group * group_size
  int32_t step_q;
  int32_t step_r;
  int32_t size;

  DSK_HD void start(int32_t first, int32_t stride, int32_t group_size) {
    size = group_size;
    group = first / group_size;
    rem = first - group * group_size;
    step_q = stride / group_size;
    step_r = stride - step_q * group_size;
  }
  DSK_HD void advance() {
    group += step_q;
    rem += step_r;
    if (rem >= size) {
      rem -= size;
      ++group;
    }
  }
};

}  // namespace moe
}  // namespace dsk

#endif  // DSK_LIB_COMMON_MOE_GATE_ROW_H_
