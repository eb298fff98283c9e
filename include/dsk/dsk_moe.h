/* dsk_moe.h - Mixture of Experts (DeepSeek-V2/V3): the gate (router), token dispatch into expert
 * order, permute/combine, the SwiGLU expert FFN, the whole layer (plan/run), load statistics with
 * the auxiliary-loss-free bias update, and the expert-parallel dispatch layout.
 *
 * The conventions of dsk_ops.h apply (borrowed DLTensors, one device per call, messages that name
 * the argument, outputs never overlap inputs unless allowed). The algorithm, the config table and
 * the tolerances are in docs/ops/moe.md.
 *
 * Names: T tokens, E experts (routed), k experts per token (top_k), G expert groups, D the hidden
 * size, I an expert's intermediate size. An "assignment" is one (token t, slot j) pair of the
 * gate's output, numbered t * k + j.
 */
#ifndef DSK_MOE_H_
#define DSK_MOE_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_context.h"
#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Gate ---------------------------------------------------------------------------------------
 *
 * For each token row of logits [T, E] (DeepSeek-V3 inference/model.py, class Gate):
 *   1. s = score(logits) in f32: softmax over the row (max subtracted), sigmoid 1 / (1 + exp(-x)),
 *      or the logits themselves (none). A non-finite logit (NaN, +-inf) takes its expert out of
 *      the selection: its s' below is -inf whatever the bias, and it counts as 0 in the softmax
 *      denominator. With score_dtype BF16, s is rounded to bf16 after the score function (the
 *      GitHub reference's bf16 sigmoid; softmax is f32 there too, so only sigmoid and none change).
 *   2. s' = s + bias (f32, selection only; bias may be NULL). A non-finite s' counts as -inf.
 *   3. With G > 1: a group's score is the max of its s' (rule MAX) or the sum of its two largest
 *      s' (rule TOP2SUM); the topk_group best groups stay, every expert of the others gets -inf.
 *      Rule AUTO is TOP2SUM when a bias is given, MAX when not (the reference's choice).
 *   4. ids = the k largest s', in descending order; ties go to the lower expert index, and an
 *      expert is never picked twice (after the finite candidates run out, the lowest free indices
 *      come next).
 *   5. weights = s at ids (never the bias); a pick whose s' is -inf gets weight 0. With
 *      renormalize, weights /= (sum of the k weights, added in pick order) + 1e-20. Then
 *      weights *= routed_scaling_factor. With score_dtype BF16 the reference's bf16 steps are
 *      reproduced: the renormalizing sum, the quotient and the scaled weight are each rounded to
 *      bf16 (softmax scores stay f32 until that last rounding).
 * Every float step uses the library's own exp (no libm, no fast-math, no FMA contraction) and a
 * fixed summation order for the softmax denominator, so CPU and CUDA select the same experts bit
 for bit and give bitwise equal weights for the same logits. Rows never depend on other rows. */

/* Score functions (dsk_moe_gate_config.score_func). */
#define DSK_MOE_SCORE_SOFTMAX 0
#define DSK_MOE_SCORE_SIGMOID 1
#define DSK_MOE_SCORE_NONE 2 /* the logits are already scores */

/* Group score rules (dsk_moe_gate_config.group_rule). */
#define DSK_MOE_GROUP_AUTO 0    /* TOP2SUM with a bias, MAX without (DeepSeek's reference) */
#define DSK_MOE_GROUP_MAX 1     /* the group's largest biased score */
#define DSK_MOE_GROUP_TOP2SUM 2 /* the sum of the group's two largest biased scores */

/* Per-row flags written by the gate (bits of row_flags[t]). */
#define DSK_MOE_ROW_NO_FINITE \
  1u                         /* no finite s': ids are valid, every weight is 0 (SHORT is set too) */
#define DSK_MOE_ROW_SHORT 2u /* fewer than k finite candidates: the extra picks weigh 0 */

typedef struct dsk_moe_gate_config {
  uint32_t struct_size;        /* sizeof(dsk_moe_gate_config), set by dsk_moe_gate_config_init */
  int32_t num_experts;         /* E (n_routed_experts), >= 1 */
  int32_t top_k;               /* k (num_experts_per_tok), 1 <= k <= topk_group * E / G */
  int32_t n_group;             /* G, E % G == 0; 1 = no group limit */
  int32_t topk_group;          /* groups kept, 1 <= topk_group <= G */
  int32_t score_func;          /* DSK_MOE_SCORE_* */
  int32_t group_rule;          /* DSK_MOE_GROUP_*; TOP2SUM needs E / G >= 2 when G > 1 */
  int32_t renormalize;         /* 0 or 1 (norm_topk_prob) */
  float routed_scaling_factor; /* finite (route_scale) */
  int32_t score_dtype;         /* DSK_DTYPE_F32 (default) or DSK_DTYPE_BF16 (GitHub reference) */
} dsk_moe_gate_config;

/* Fills *config with DeepSeek-V3's gate: E 256, k 8, G 8, topk_group 4, sigmoid, AUTO, renormalize,
 * scale 2.5, f32. V2: (160, 6, 8, 3, softmax, no renormalize, 16); V2-Lite: (64, 6, 1, 1, softmax,
 * no renormalize, 1). Errors: NULL config. */
DSK_API dsk_status dsk_moe_gate_config_init(dsk_moe_gate_config* config);

/* Routes T tokens. logits [T, E] f32, f16 or bf16 (any strides); bias [E] f32 or NULL;
 * ids [T, k] int32 or int64 (always in [0, E)); weights [T, k] f32; row_flags [T] uint8 or NULL
 * (DSK_MOE_ROW_* bits, 0 for an ordinary row). T may be 0. Runs asynchronously. */
DSK_API dsk_status dsk_moe_gate(dsk_context* ctx, const dsk_moe_gate_config* config,
                                const DLTensor* logits, const DLTensor* bias, const DLTensor* ids,
                                const DLTensor* weights, const DLTensor* row_flags);

/* The router GEMM and the gate in one call: logits = x [T, D] @ w [E, D]^T with f32 accumulation
 * (x and w one float dtype), kept in f32, or rounded to bf16 when config->score_dtype is BF16 (the
 * GitHub reference's bf16 linear), then dsk_moe_gate. The logits live in scratch memory (the
 * context's workspace when it holds T * E * 4 bytes, else allocated). CPU and CUDA GEMMs may round
 * differently, so only dsk_moe_gate promises bitwise equal selections. */
DSK_API dsk_status dsk_moe_gate_router(dsk_context* ctx, const dsk_moe_gate_config* config,
                                       const DLTensor* x, const DLTensor* w, const DLTensor* bias,
                                       const DLTensor* ids, const DLTensor* weights,
                                       const DLTensor* row_flags);

/* ---- Dispatch: expert order for grouped GEMMs ---------------------------------------------------
 *
 * Sorts the assignments of ids [T, k] (int32 or int64) by local expert e = id - expert_begin,
 * stably (within an expert, by assignment number t * k + j). Assignments with e outside
 * [0, num_experts) belong to another device (or are dropped, id -1) and are skipped. Each
 * expert's segment starts at a multiple of block_size (1..4096; 1 = packed; 16, 64 or 128 for
 * grouped GEMM tiles, as vLLM's moe_align_block_size and DeepGEMM's contiguous layout) and is
 * padded with the sentinel T * k up to that multiple.
 * Outputs (all int32, written on the ids' device):
 *   counts        [E]        assignments per local expert
 *   offsets       [E + 1]    start of expert e's segment; offsets[E] = rows used (padding included)
 *   sorted_rows   [capacity] the assignment number of each row in expert order, T * k for padding
 *                            and for every row at or past offsets[E]
 *   block_experts [ceil(capacity / block_size)] or NULL: the local expert of each block, -1 past
 *                            offsets[E]
 *   dest          [T, k] or NULL: the row of each assignment, -1 for a skipped one
 * capacity must be at least dsk_moe_dispatch_capacity(T, k, E, block_size). Runs asynchronously
 * without synchronizing; deterministic (the same ids give the same outputs on CPU and CUDA). */
DSK_API dsk_status dsk_moe_dispatch(dsk_context* ctx, const DLTensor* ids, int32_t num_experts,
                                    int32_t expert_begin, int32_t block_size,
                                    const DLTensor* counts, const DLTensor* offsets,
                                    const DLTensor* sorted_rows, const DLTensor* block_experts,
                                    const DLTensor* dest);

/* The rows sorted_rows needs in the worst case: T * k + min(E, T * k) * (block_size - 1).
 * Errors: negative T, k < 1, E < 1, block_size < 1, overflow, NULL capacity. */
DSK_API dsk_status dsk_moe_dispatch_capacity(int64_t num_tokens, int32_t top_k, int32_t num_experts,
                                             int32_t block_size, int64_t* capacity);

/* Gathers token rows into expert order: out[r, :] = x[sorted_rows[r] / k, :] for every row r of
 * sorted_rows [R] int32, and 0 where sorted_rows[r] == T * k (padding). x [T, D] float dtype;
 * out [R, D] a float dtype, or fp8_e4m3fn with out_scales [R, ceil(D / 128)] f32: each row is then
 * quantized per 1 x 128 tile exactly as dsk_quant_fp8_act does (`flags` as there; padding rows get
 * q = 0 and scale 0). out_scales must be NULL and flags 0 for float outputs. A sorted_rows value
 * outside [0, T * k] is DSK_ERR_INVALID_ARGUMENT: on the CPU before anything is written, on CUDA at
 * the next dsk_context_synchronize (that row is zeroed). */
DSK_API dsk_status dsk_moe_permute(dsk_context* ctx, const DLTensor* x, const DLTensor* sorted_rows,
                                   int32_t top_k, const DLTensor* out, const DLTensor* out_scales,
                                   uint32_t flags);

/* Weighted sum of the expert outputs back in token order:
 *   out[t, :] = shared[t, :] + sum_j weights[t, j] * y[dest[t, j], :]
 * in f32, over j = 0 .. k-1 in order, skipping dest -1, rounded once. y [R, D], shared [T, D] or
 * NULL, out [T, D] any float dtypes; dest [T, k] int32 (from dsk_moe_dispatch); weights [T, k] f32.
 * out may be shared itself. A dest value outside [-1, R) is DSK_ERR_INVALID_ARGUMENT: on the CPU
 * before anything is written, on CUDA at the next dsk_context_synchronize (that slot is skipped).
 */
DSK_API dsk_status dsk_moe_combine(dsk_context* ctx, const DLTensor* y, const DLTensor* dest,
                                   const DLTensor* weights, const DLTensor* shared,
                                   const DLTensor* out);

/* ---- Expert FFN ---------------------------------------------------------------------------------
 *
 * SwiGLU experts: y = (silu(x @ w1^T) * (x @ w3^T)) @ w2^T (DeepSeek's Expert / MLP).
 * Routed experts: w1, w3 [E, I, D], w2 [E, D, I]. Shared experts (dsk_moe_forward): the same with
 * the E dimension dropped (w1, w3 [Is, D], w2 [D, Is]; V2's two shared experts are one MLP of width
 * 2 * 1408). The weights are one float dtype, or fp8_e4m3fn with the *_scales tensors
 * ([E,] ceil(rows / 128), ceil(cols / 128)] f32, DeepSeek-V3's 128 x 128 blocks); the scales must
 * be NULL for float weights. */
typedef struct dsk_moe_expert_weights {
  uint32_t struct_size; /* sizeof(dsk_moe_expert_weights), set by dsk_moe_expert_weights_init */
  const DLTensor* w1;   /* gate projection */
  const DLTensor* w3;   /* up projection */
  const DLTensor* w2;   /* down projection */
  const DLTensor* w1_scales;
  const DLTensor* w3_scales;
  const DLTensor* w2_scales;
} dsk_moe_expert_weights;

/* Sets struct_size and every tensor to NULL. Errors: NULL weights. */
DSK_API dsk_status dsk_moe_expert_weights_init(dsk_moe_expert_weights* weights);

/* Runs expert e over rows offsets[e] .. offsets[e + 1] of x (dsk_moe_dispatch's layout; padding
 * rows simply yield rows of y nobody reads): y [R, D], rows at or past offsets[E] not written.
 * x [R, D]: with float weights, x has their dtype; with fp8 weights x is a float dtype (quantized
 * per 1 x 128 tile on the fly, as dsk_linear_fp8) or fp8_e4m3fn with x_scales [R, ceil(D / 128)]
 * (dsk_moe_permute's fp8 output). offsets [E + 1] int32 on the host or on x's device; CUDA reads
 * device offsets back (one synchronization). Gate and up outputs and their SwiGLU product are
 * rounded to y's dtype (the reference's bf16 activations); the product is quantized per 1 x 128
 * tile before w2 with fp8 weights (as the reference's act_quant). y any float dtype. Per expert: a
 * GEMM with f32 accumulation (CPU: Eigen; CUDA: cuBLAS grouped GEMM for float weights, a loop of
 * block-scaled cuBLASLt GEMMs for fp8). */
DSK_API dsk_status dsk_moe_experts(dsk_context* ctx, const dsk_moe_expert_weights* weights,
                                   const DLTensor* x, const DLTensor* x_scales,
                                   const DLTensor* offsets, const DLTensor* y);

/* ---- The whole layer (plan/run) -----------------------------------------------------------------
 *
 *   dsk_moe_gate_router(x, router_w, bias) -> dsk_moe_dispatch (expert_begin 0, block_size 1)
 *   -> dsk_moe_permute (to fp8 1 x 128 tiles for fp8 experts) -> dsk_moe_experts
 *   -> shared experts on x (when given) -> dsk_moe_combine (+ shared)  = out
 * with every intermediate in the plan's workspace; the expert and shared-expert outputs (and their
 * gate/up activations) are rounded to out's dtype before the f32 combine. x [T, D] bf16, f16 or
 * f32; router_w [E, D] the dtype of x; bias [E] f32 or NULL; out [T, D] float dtype. The plan fixes
 * T, D, the gate config, the expert shapes and dtypes and the device; its workspace size covers
 * every intermediate. When the context's workspace is at least that large
 * (dsk_context_reserve_workspace), run does not allocate; on CUDA it synchronizes once (the
 * per-expert row counts go to the host to size the GEMMs). */
typedef struct dsk_moe_plan dsk_moe_plan;

/* Creates a plan for these shapes (tensor contents are not read). shared may be NULL (no shared
 * experts); *plan is NULL on error. The plan is immutable, usable from any thread and by any
 * context on the same device; release it with dsk_moe_plan_release. */
DSK_API dsk_status dsk_moe_plan_create(dsk_context* ctx, const dsk_moe_gate_config* config,
                                       const DLTensor* x, const DLTensor* router_w,
                                       const dsk_moe_expert_weights* experts,
                                       const dsk_moe_expert_weights* shared, const DLTensor* out,
                                       dsk_moe_plan** plan);

/* Releases a plan (NULL is a no-op). */
DSK_API void dsk_moe_plan_release(dsk_moe_plan* plan);

/* Bytes of scratch dsk_moe_forward_run uses. */
DSK_API dsk_status dsk_moe_plan_workspace_size(const dsk_moe_plan* plan, size_t* bytes);

/* Runs the layer. The tensors must match the plan's shapes, dtypes and device; shared must be
 * given exactly when it was at plan time. ids [T, k] int32 or int64 and weights [T, k] f32 may be
 * given to receive the gate's output (NULL otherwise). */
DSK_API dsk_status dsk_moe_forward_run(dsk_context* ctx, const dsk_moe_plan* plan,
                                       const DLTensor* x, const DLTensor* router_w,
                                       const DLTensor* bias, const dsk_moe_expert_weights* experts,
                                       const dsk_moe_expert_weights* shared, const DLTensor* out,
                                       const DLTensor* ids, const DLTensor* weights);

/* Plan, run and release in one call. */
DSK_API dsk_status dsk_moe_forward(dsk_context* ctx, const dsk_moe_gate_config* config,
                                   const DLTensor* x, const DLTensor* router_w,
                                   const DLTensor* bias, const dsk_moe_expert_weights* experts,
                                   const dsk_moe_expert_weights* shared, const DLTensor* out);

/* ---- Load statistics and the auxiliary-loss-free bias update ------------------------------------
 */

/* load[e] += number of assignments of ids [T, k] (int32 or int64) to expert expert_begin + e, for
 * load [E] int64; other ids (other devices' experts, -1) are skipped. Accumulates across calls;
 * zero load with dsk_tensor_fill or a copy to start over. */
DSK_API dsk_status dsk_moe_load_accumulate(dsk_context* ctx, const DLTensor* ids,
                                           int32_t expert_begin, const DLTensor* load);

/* DeepSeek-V3's bias update (arXiv 2412.19437, 2.1.2): with mean = sum(load) / E,
 *   bias[e] += gamma * sign(mean - load[e])   (sign 0 at equality; computed in double, bias f32)
 * so overloaded experts lose gamma and underloaded ones gain it. load [E] int64 or f32; bias [E]
 * f32, updated in place; gamma finite, >= 0 (DeepSeek: 0.001). */
DSK_API dsk_status dsk_moe_bias_update(dsk_context* ctx, const DLTensor* load, const DLTensor* bias,
                                       float gamma);

/* ---- Expert-parallel layout ---------------------------------------------------------------------
 *
 * For R ranks owning contiguous expert ranges (rank r owns experts r * E / R .. (r + 1) * E / R -
 * 1, E % R == 0), the layout DeepEP's dispatch takes (get_dispatch_layout): tokens_per_rank   [R]
 * int32: tokens with at least one expert on rank r tokens_per_expert [E] int32: assignments per
 * expert is_token_in_rank  [T, R] bool or uint8: 1 when token t has an expert on rank r from ids
 * [T, k] int32 or int64, where -1 means no expert. An id outside [-1, E) is
 * DSK_ERR_INVALID_ARGUMENT: on the CPU before anything is written, on CUDA at the next
 * dsk_context_synchronize (the id is skipped). */
DSK_API dsk_status dsk_moe_ep_layout(dsk_context* ctx, const DLTensor* ids, int32_t num_experts,
                                     int32_t num_ranks, const DLTensor* tokens_per_rank,
                                     const DLTensor* tokens_per_expert,
                                     const DLTensor* is_token_in_rank);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_MOE_H_ */
