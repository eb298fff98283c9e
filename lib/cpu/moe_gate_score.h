// moe_gate_score.h - the score and selection steps of the CPU gate (lib/cpu/moe_gate.cpp): steps
// 1-2 and 4 of lib/common/moe_gate_row.h for one row, each in a scalar version (the definition)
// and an AVX-512 version (moe_gate_avx512.cpp) that gives the same bits 16 experts at a time.
#ifndef DSK_LIB_CPU_MOE_GATE_SCORE_H_
#define DSK_LIB_CPU_MOE_GATE_SCORE_H_

#include <stdint.h>

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

// Step 4: the k best (key, index) of key [n] in selection order (moe::gate_before) into
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
};

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

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_MOE_GATE_SCORE_H_
