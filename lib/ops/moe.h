// moe.h - libdsk side of the Mixture-of-Experts ops (dsk_moe.h): validation, normalization to the
// backend entries' forms, the router GEMM, the expert FFN built from the GEMM/SwiGLU entries, and
// the layer plan. Each function throws dsk::Error on invalid arguments or a backend failure.
#ifndef DSK_LIB_OPS_MOE_H_
#define DSK_LIB_OPS_MOE_H_

#include <stddef.h>
#include <stdint.h>

#include "core/backend_iface.h"
#include "core/context.h"
#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_moe.h"

// The opaque layer plan of dsk_moe.h: the shapes and dtypes it was made for, where it runs and the
// scratch layout of a run. Immutable after creation.
struct dsk_moe_plan {
  const dsk::Backend* backend = nullptr;
  int32_t backend_kind = 0;  // DSK_BACKEND_*
  int32_t device = 0;
  dsk_moe_gate_config config{};
  int64_t tokens = 0;        // T
  int64_t hidden = 0;        // D
  int64_t inter = 0;         // I of a routed expert
  int64_t shared_inter = 0;  // I of the shared experts, 0 without them
  int32_t x_dtype = 0;       // x and router_w
  int32_t out_dtype = 0;
  int32_t expert_dtype = 0;  // w1/w3/w2 of the routed experts
  int32_t shared_dtype = 0;  // of the shared experts, 0 without them
  size_t workspace_bytes = 0;
};

namespace dsk {
namespace ops {

// The gate's config after validation, in the backend's form (group rule resolved).
dsk_moe_gate_params moe_gate_params(const dsk_moe_gate_config& config, bool has_bias);

// Internal pieces the layer shares: the bytes of router logits for T tokens, and the router GEMM
// (x [T, D] @ w [E, D]^T into `logits`, f32 or bf16 per p.score_bf16) followed by the gate entry.
struct Target;
struct Arg;
size_t router_logits_bytes(const dsk_moe_gate_params& p, int64_t tokens);
void router_gate(const Target& t, const dsk_exec& ex, const dsk_moe_gate_params& p, const Arg& x,
                 const Arg& w, char* logits, const DLTensor* bias, const DLTensor* ids,
                 const DLTensor* weights, const DLTensor* flags);

void moe_gate_config_init(dsk_moe_gate_config* config);
void moe_gate(dsk_context& ctx, const dsk_moe_gate_config& config, const DLTensor* logits,
              const DLTensor* bias, const DLTensor* ids, const DLTensor* weights,
              const DLTensor* row_flags);
void moe_gate_router(dsk_context& ctx, const dsk_moe_gate_config& config, const DLTensor* x,
                     const DLTensor* w, const DLTensor* bias, const DLTensor* ids,
                     const DLTensor* weights, const DLTensor* row_flags);

int64_t moe_dispatch_capacity(int64_t num_tokens, int32_t top_k, int32_t num_experts,
                              int32_t block_size);
void moe_dispatch(dsk_context& ctx, const DLTensor* ids, int32_t num_experts, int32_t expert_begin,
                  int32_t block_size, const DLTensor* counts, const DLTensor* offsets,
                  const DLTensor* sorted_rows, const DLTensor* block_experts, const DLTensor* dest);
void moe_permute(dsk_context& ctx, const DLTensor* x, const DLTensor* sorted_rows, int32_t top_k,
                 const DLTensor* out, const DLTensor* out_scales, uint32_t flags);
void moe_combine(dsk_context& ctx, const DLTensor* y, const DLTensor* dest, const DLTensor* weights,
                 const DLTensor* shared, const DLTensor* out);

void moe_experts(dsk_context& ctx, const dsk_moe_expert_weights& weights, const DLTensor* x,
                 const DLTensor* x_scales, const DLTensor* offsets, const DLTensor* y);

dsk_moe_plan* moe_plan_create(dsk_context& ctx, const dsk_moe_gate_config& config,
                              const DLTensor* x, const DLTensor* router_w,
                              const dsk_moe_expert_weights& experts,
                              const dsk_moe_expert_weights* shared, const DLTensor* out);
void moe_forward_run(dsk_context& ctx, const dsk_moe_plan& plan, const DLTensor* x,
                     const DLTensor* router_w, const DLTensor* bias,
                     const dsk_moe_expert_weights& experts, const dsk_moe_expert_weights* shared,
                     const DLTensor* out, const DLTensor* ids, const DLTensor* weights);

void moe_load_accumulate(dsk_context& ctx, const DLTensor* ids, int32_t expert_begin,
                         const DLTensor* load);
void moe_bias_update(dsk_context& ctx, const DLTensor* load, const DLTensor* bias, float gamma);
void moe_ep_layout(dsk_context& ctx, const DLTensor* ids, int32_t num_experts, int32_t num_ranks,
                   const DLTensor* tokens_per_rank, const DLTensor* tokens_per_expert,
                   const DLTensor* is_token_in_rank);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_MOE_H_
