// moe_gate_score.h - the score and selection steps of the CPU gate (lib/cpu/moe_gate.cpp): steps
// 1-2 and 4 of lib/common/moe_gate_row.h for one row, each in a scalar version (the definition)
// and an AVX-512 version (moe_gate_avx512.cpp) that gives the same bits 16 experts at a time.
#ifndef DSK_LIB_CPU_MOE_GATE_SCORE_H_
#define DSK_LIB_CPU_MOE_GATE_SCORE_H_

#include <stdint.h>

#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cpu {

struct MoeGateScoreArgs {
  int32_t num_experts;  // E >= 1
  int32_t score_func;   // DSK_MOE_SCORE_*
  int32_t score_bf16;   // 0 or 1
  const float* bias;    // [E] contiguous, or NULL
};

// in [E]: the row's logits in f32 (may be x itself). Writes the cleaned logits x [E] (non-finite
// -> -inf), the scores s [E] and the selection keys key [E] (moe::gate_key of s'). Returns whether
// some s' is finite.
bool moe_gate_score_row_scalar(const MoeGateScoreArgs& a, const float* in, float* x, float* s,
                               uint32_t* key);
// The same with AVX-512F; call only when moe_gate_have_avx512().
bool moe_gate_score_row_avx512(const MoeGateScoreArgs& a, const float* in, float* x, float* s,
                               uint32_t* key);
bool moe_gate_have_avx512();
// The AVX-512 version where the CPU has it, else the scalar one.
bool moe_gate_score_row(const MoeGateScoreArgs& a, const float* in, float* x, float* s,
                        uint32_t* key);

// Step 3's group scores: gk[g] = the key of group g's score (MAX: the largest key; TOP2SUM:
// moe::gate_top2_key of the two largest) for `groups` groups of `size` consecutive keys. The
// AVX-512 version needs size % 16 == 0.
void moe_gate_group_keys_scalar(const uint32_t* key, int32_t groups, int32_t size, bool top2,
                                uint32_t* gk);
void moe_gate_group_keys_avx512(const uint32_t* key, int32_t groups, int32_t size, bool top2,
                                uint32_t* gk);

// Step 4: the k best (key, index) of key [n] (gate keys: below 0xFFFFFFFF, which the largest,
// the key of +inf, is) in selection order (moe::gate_before) into
// top_key/top_index [k], 1 <= k <= n. The scalar version inserts every expert in index order into
// a sorted list. The AVX-512 version (n <= 256, k <= 16) takes the k-th largest of the maxima of
// k or more blocks as a threshold and ranks the (at most 32) keys reaching it, else runs k rounds
// of argmax over block maxima (the first block holding the maximum, then its first lane);
// `scratch` holds moe_gate_select_scratch(n) values. Both give the same picks in the same order.
void moe_gate_select_scalar(const uint32_t* key, int32_t n, int32_t k, uint32_t* top_key,
                            int32_t* top_index);
void moe_gate_select_avx512(const uint32_t* key, int32_t n, int32_t k, uint32_t* scratch,
                            uint32_t* top_key, int32_t* top_index);
inline int32_t moe_gate_select_scratch(int32_t n) {
  const int32_t blocks = (n + 15) / 16;
  return (blocks + 15) / 16 * 16 + blocks;
}

// ---- The fused row (AVX-512F + DQ): steps 1-4 for one row held in at most 16 vectors ----

// Per-call constants of the fused row. Usable for E <= 256, k <= 16 and, when a group stage
// runs, G <= 16 (moe_gate_row_fast_usable).
struct MoeGateRowPlan {
  int32_t num_experts;
  int32_t top_k;
  int32_t score_func;
  int32_t score_bf16;
  bool has_bias;
  bool grouped;  // a group stage runs (G > 1 and topk_group < G)
  bool top2;     // TOP2SUM group scores (else MAX)
  int32_t groups;
  int32_t group_size;
  int32_t topk_group;
  alignas(64) float bias[256];   // zero past E (and everywhere without a bias)
  alignas(64) int32_t gid[256];  // the group of each expert
  // The fast row (moe_gate_row_fast_avx512) applies: f32 scores, E % 16 == 0, k <= 16, and
  // sigmoid with every bias finite and |b| <= kMoeGateFastMaxBias, or softmax without a bias.
  bool fast;
  float fast_margin;             // D of moe_gate_row_fast_avx512, for this plan's biases
  bool vector_groups;            // a group stage runs and groups are whole vectors (size % 16 == 0)
  alignas(64) int32_t vgid[16];  // with vector_groups: the group of vector v (experts 16 v ..)
};

// The proven bound on |avx512::sigmoid_approx(x) - det_sigmoid(x)| over every finite f32 x:
// 2^-12 = 2.44e-4, over 5x the largest error measured on all 2^32 bit patterns (4.33e-5,
// tests/core/test_moe_gate_fast.cpp, which checks the bound in CI on every 97th pattern).
constexpr float kMoeGateSigmoidApproxBound = 0x1p-12f;
// The fast softmax row's candidates: e >= fl(t * kMoeGateSoftmaxTauFactor) for t the k-th
// largest column maximum of e, when t >= kMoeGateSoftmaxMinTau (else the exact row runs).
constexpr float kMoeGateSoftmaxTauFactor = 1.0f - 0x1p-20f;
constexpr float kMoeGateSoftmaxMinTau = 0x1p-90f;
// Larger biases (or non-finite ones) send every row to the exact row.
constexpr float kMoeGateFastMaxBias = 1e3f;
// The candidate count above which the fast row gives up (ties; the exact row runs).
constexpr int32_t kMoeGateFastMaxCandidates = 32;

// D for the largest |bias| maxb (see moe_gate_row_fast_avx512): 2 delta + 3 U, with U = 2^(c - 23)
// and c = ceil(log2(2 + maxb)) + 1, rounded up to f32.
float moe_gate_fast_margin(float maxb);

// Fills the plan; returns false when the fused row cannot run (config too large, or no
// AVX-512F/DQ on this CPU).
bool moe_gate_row_plan_init(MoeGateRowPlan& plan, int32_t num_experts, int32_t top_k,
                            int32_t score_func, int32_t score_bf16, const float* bias,
                            int32_t groups, int32_t topk_group, bool top2);

// Steps 1-4 of one row from its f32 logits in [E]: the scores into s [256] (what the weights
// read at the picks), the k best (key, index) in selection order into top_key/top_index [k].
// key [256] and scratch [moe_gate_select_scratch(256)] are work space. Returns whether some s'
// is finite (before the group stage). The same bits as the scalar steps.
bool moe_gate_row_avx512(const MoeGateRowPlan& plan, const float* in, float* s, uint32_t* key,
                         uint32_t* scratch, uint32_t* top_key, int32_t* top_index);
// moe_gate_row_avx512 in two steps, so that a caller can overlap one row's selection with the next
// row's scores (each ends in a chain of dependent operations): steps 1-2 (s and key; returns
// whether some s' is finite), then steps 3-4 on key.
bool moe_gate_row_score_avx512(const MoeGateRowPlan& plan, const float* in, float* s,
                               uint32_t* key);
void moe_gate_row_select_avx512(const MoeGateRowPlan& plan, uint32_t* key, uint32_t* scratch,
                                uint32_t* top_key, int32_t* top_index);

// The same picks for plan.fast rows with far fewer exact sigmoids: returns false (having decided
// nothing) when the row must go through moe_gate_row_avx512 instead: a non-finite logit, or more
// than kMoeGateFastMaxCandidates candidates for the top k. When it returns true, the row has a
// finite s' everywhere (the "any finite" of moe_gate_row_avx512 is true), top_key/top_index are
// bitwise moe_gate_row_avx512's and s holds the exact scores at least at the picks.
//
// Method and proof. a_e = avx512::sigmoid_approx(x_e) has |a_e - s_e| <= delta (s_e =
// det_sigmoid(x_e), delta = kMoeGateSigmoidApproxBound), and u_e = fl(a_e + b_e) approximates the
// exact selection score s'_e = fl(s_e + b_e). Every value involved (a_e + b_e, s_e + b_e, u_e, s'_e
// and u - D below) has magnitude below 2^c with c = ceil(log2(2 + maxb)) + 1, so each rounding
// errs by at most U / 2, U = 2^(c - 23). Hence
//   |u_e - s'_e| <= |fl(a + b) - (a + b)| + |a - s| + |(s + b) - fl(s + b)| <= delta + U =: E1.
// Given a reference value R reached by at least r experts (u >= R), the threshold
// T = fl(R - D) with D = 2 delta + 3 U satisfies T <= R - D + U / 2, so an expert with u_e < T has
//   s'_e <= u_e + E1 < T + E1 <= R - delta - 1.5 U < R - E1,
// while each of the r experts has s' >= R - E1: s'_e is STRICTLY below r distinct experts'
// exact scores, so it is neither among the r largest values nor tied with them.
//  - Group stage, first from u alone: the j-th largest value of a group moves by at most
//    max |s' - u| <= E1 between u and s', so a group's exact score S (fl of the sum of its two
//    largest s', or its largest) and G, the same computed from u, differ by at most
//    2 E1 + U / 2 + U / 2 = D. When the topk_group-th largest G exceeds the next one by more
//    than 2.5 D (evaluated in double: its error is far below 0.5 D), every kept group's S is
//    strictly above every other group's S, so the exact stage keeps the same groups.
//    Otherwise (about 5% of random V3 rows) exactly: R = the group's 2nd largest u (TOP2SUM,
//    r = 2) or largest (MAX, r = 1); only the candidates u >= T get the exact sigmoid, and the
//    group score from the candidates' exact keys is the full computation's (its two largest /
//    its largest s' are candidates); the groups are then chosen as in moe_gate.cpp.
//  - Top k: R = tau, a value k distinct kept experts reach with their u: with k == 2 topk_group
//    (TOP2SUM; V3) or k == topk_group, the smallest of the kept groups' two largest (largest) u;
//    otherwise the k-th largest of the column maxima of u over the kept experts. The candidates
//    u >= T of kept groups get exact scores and are ranked by (exact key, index); a
//    non-candidate is strictly below k of them, so the k picks are the full computation's, in
//    the same order.
// Exact scores are computed only for listed candidates (their indices compressed into a list,
// the logits and biases gathered), with moe_gate_row_avx512's operations (the same IEEE
// operations as the scalar reference; the approximation alone uses FMA freely, the exact code
// only where detmath_avx512.h shows it exact). Comparisons of u against T are
// float comparisons (no NaN: non-finite logits sent the row away before).
//
// Softmax rows (no bias, f32 scores: V2, V2-Lite) take a fast row too, exact from the start: it
// skips the divisions and keys of the experts that cannot be picked. Pass 1 computes every
// e = det_exp(x - m) and the canonical sum S exactly as the exact row does (the weights need S,
// so no exp can be skipped); rows with some x - m outside [-87, 0] (non-finite logits, or e in
// det_exp's general range) take the exact row. s = fl(e / S) is non-decreasing in e (one
// correctly rounded division by the same S), so:
//  - Group stage: a group's largest (and second largest) s is fl(e / S) of its largest (second
//    largest) e, so its exact score (MAX, or fl of the two scores' sum) comes from the group
//    maxima of e: G divisions, the groups' ranks by (key, group) as in moe_gate.cpp.
//  - Top k: t = the k-th largest column maximum of e over the kept experts (k distinct experts
//    reach it, so t <= e_(k), the k-th largest kept e). If t >= 2^-90 (else the exact row runs),
//    every s involved is normal, and an expert j that could be picked has s_j >= s_(k) >=
//    fl(t / S) >= (t / S)(1 - 2^-24); fl(e_j / S) >= that value needs
//    e_j / S >= (t / S)(1 - 2^-24)^2, so e_j >= t (1 - 2^-24)^2 > t (1 - 2^-23) >
//    fl(t (1 - 2^-20)). The candidates e >= fl(t (1 - 2^-20)) of kept groups therefore hold every
//    expert with s >= s_(k); their exact s and keys, ranked by (key, index), give the picks in
//    the exact row's order. Ties in s (equal after rounding though e differ) are resolved the
//    same way as in the exact row because every tied expert is a candidate.
bool moe_gate_row_fast_avx512(const MoeGateRowPlan& plan, const float* in, float* s, uint32_t* key,
                              uint32_t* top_key, int32_t* top_index);

// The fast row in three phases, so that a caller can overlap rows (each phase ends in a chain of
// dependent operations): moe_gate_row_fast_approx (u of every expert),
// moe_gate_row_fast_select (group stage, the list of top-k candidates; false: the exact row must
// run) and moe_gate_row_fast_finish (their exact scores, the ranking, s at the picks).
// moe_gate_row_fast_avx512 is the three in a row.
struct MoeGateFastRow {
  alignas(64) float ua[256];         // u = fl(a + b) per expert (softmax: e = det_exp(x - m))
  alignas(64) int32_t li[256 + 16];  // the top-k candidates in increasing order
  float sum;                         // softmax: the canonical sum of e
  int32_t count;
  bool bad;  // a non-finite logit (softmax: or x - m < -87)
};
// A row's logits for the first pass: contiguous f32 (4-byte aligned) read in place, or
// contiguous bf16 / f16 widened on the way into x, which the later phases then read (f32()).
struct MoeGateRowIn {
  const void* data;
  int32_t dtype;  // DSK_DTYPE_F32, DSK_DTYPE_BF16 or DSK_DTYPE_F16
  float* x;       // [256], 64-byte aligned (bf16 and f16 only)
  const float* f32() const { return dtype == DSK_DTYPE_F32 ? static_cast<const float*>(data) : x; }
};
// Pass 1 (u of every expert); then select (false: the exact row must run), then finish.
void moe_gate_row_fast_approx(const MoeGateRowPlan& plan, const MoeGateRowIn& row,
                              MoeGateFastRow& st);
inline void moe_gate_row_fast_approx(const MoeGateRowPlan& plan, const float* in,
                                     MoeGateFastRow& st) {
  moe_gate_row_fast_approx(plan, MoeGateRowIn{in, DSK_DTYPE_F32, nullptr}, st);
}
// Pass 1 of two rows at once (rows [2], st [2]; softmax rows of one dtype interleave their
// operations; the same results).
void moe_gate_row_fast_approx2(const MoeGateRowPlan& plan, const MoeGateRowIn* rows,
                               MoeGateFastRow* const* st);
inline void moe_gate_row_fast_approx2(const MoeGateRowPlan& plan, const float* in0,
                                      MoeGateFastRow& st0, const float* in1, MoeGateFastRow& st1) {
  const MoeGateRowIn rows[2] = {{in0, DSK_DTYPE_F32, nullptr}, {in1, DSK_DTYPE_F32, nullptr}};
  MoeGateFastRow* st[2] = {&st0, &st1};
  moe_gate_row_fast_approx2(plan, rows, st);
}
bool moe_gate_row_fast_select(const MoeGateRowPlan& plan, const float* in, MoeGateFastRow& st);
// The select phase of two rows at once (ok[2]: their results; softmax rows interleave their
// operations; the same results as one row at a time).
void moe_gate_row_fast_select2(const MoeGateRowPlan& plan, const float* in0, MoeGateFastRow& st0,
                               const float* in1, MoeGateFastRow& st1, bool* ok);
void moe_gate_row_fast_finish(const MoeGateRowPlan& plan, const float* in, const MoeGateFastRow& st,
                              float* s, uint32_t* top_key, int32_t* top_index);
// The finish phase of two rows at once (in, st, s, top_key, top_index: two each; both rows must
// have been decided by the select phase), their operations interleaved; the same results.
void moe_gate_row_fast_finish2(const MoeGateRowPlan& plan, const float* const* in,
                               const MoeGateFastRow* const* st, float* const* s,
                               uint32_t* const* top_key, int32_t* const* top_index);

// Step 5's last operations for k <= 16 weights without bf16 rounding, 16 at a time:
// out[j] = (w[j] / divisor when renormalizing) * scale, each one IEEE operation as in
// moe::gate_finish_weight. Call only when moe_gate_have_avx512().
void moe_gate_finish_weights_avx512(const float* w, int32_t k, bool renormalize, float divisor,
                                    float scale, float* out);

// avx512::sigmoid_approx on n values (tests: the approximation bound).
void moe_gate_sigmoid_approx(const float* x, int64_t n, float* out);

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_MOE_GATE_SCORE_H_
