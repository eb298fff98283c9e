// Mixture of Experts (dsk_moe.h). Checks and dispatch live in lib/ops/moe*.cpp.
#include "ops/moe.h"

#include <memory>

#include "capi/guard.h"
#include "core/context.h"
#include "core/error.h"
#include "dsk/dsk_moe.h"

namespace {

void check_plan(const dsk_moe_plan* plan) {
  dsk::check_arg(plan != nullptr, "plan is NULL, expected a plan from dsk_moe_plan_create");
}

// Full-size copies of the caller's versioned structs (every field is in the first version).
struct Config {
  dsk_moe_gate_config c{};
  explicit Config(const dsk_moe_gate_config* in) {
    dsk::read_versioned(in, &c, sizeof(dsk_moe_gate_config), "config");
  }
};

struct Weights {
  dsk_moe_expert_weights w{};
  const dsk_moe_expert_weights* ptr = nullptr;  // NULL when the caller passed none
  Weights(const dsk_moe_expert_weights* in, const char* name, bool optional) {
    if (in == nullptr && optional) return;
    dsk::read_versioned(in, &w, sizeof(dsk_moe_expert_weights), name);
    ptr = &w;
  }
};

}  // namespace

extern "C" {

DSK_API dsk_status dsk_moe_gate_config_init(dsk_moe_gate_config* config) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(config != nullptr, "config is NULL, expected a dsk_moe_gate_config");
    dsk::ops::moe_gate_config_init(config);
  });
}

DSK_API dsk_status dsk_moe_gate(dsk_context* ctx, const dsk_moe_gate_config* config,
                                const DLTensor* logits, const DLTensor* bias, const DLTensor* ids,
                                const DLTensor* weights, const DLTensor* row_flags) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_gate(*ctx, Config(config).c, logits, bias, ids, weights, row_flags);
  });
}

DSK_API dsk_status dsk_moe_gate_router(dsk_context* ctx, const dsk_moe_gate_config* config,
                                       const DLTensor* x, const DLTensor* w, const DLTensor* bias,
                                       const DLTensor* ids, const DLTensor* weights,
                                       const DLTensor* row_flags) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_gate_router(*ctx, Config(config).c, x, w, bias, ids, weights, row_flags);
  });
}

DSK_API dsk_status dsk_moe_dispatch(dsk_context* ctx, const DLTensor* ids, int32_t num_experts,
                                    int32_t expert_begin, int32_t block_size,
                                    const DLTensor* counts, const DLTensor* offsets,
                                    const DLTensor* sorted_rows, const DLTensor* block_experts,
                                    const DLTensor* dest) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_dispatch(*ctx, ids, num_experts, expert_begin, block_size, counts, offsets,
                           sorted_rows, block_experts, dest);
  });
}

DSK_API dsk_status dsk_moe_dispatch_capacity(int64_t num_tokens, int32_t top_k, int32_t num_experts,
                                             int32_t block_size, int64_t* capacity) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(capacity != nullptr, "capacity is NULL, expected a pointer to an int64_t");
    *capacity = dsk::ops::moe_dispatch_capacity(num_tokens, top_k, num_experts, block_size);
  });
}

DSK_API dsk_status dsk_moe_permute(dsk_context* ctx, const DLTensor* x, const DLTensor* sorted_rows,
                                   int32_t top_k, const DLTensor* out, const DLTensor* out_scales,
                                   uint32_t flags) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_permute(*ctx, x, sorted_rows, top_k, out, out_scales, flags);
  });
}

DSK_API dsk_status dsk_moe_combine(dsk_context* ctx, const DLTensor* y, const DLTensor* dest,
                                   const DLTensor* weights, const DLTensor* shared,
                                   const DLTensor* out) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_combine(*ctx, y, dest, weights, shared, out);
  });
}

DSK_API dsk_status dsk_moe_expert_weights_init(dsk_moe_expert_weights* weights) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(weights != nullptr, "weights is NULL, expected a dsk_moe_expert_weights");
    *weights = dsk_moe_expert_weights{};
    weights->struct_size = sizeof(dsk_moe_expert_weights);
  });
}

DSK_API dsk_status dsk_moe_experts(dsk_context* ctx, const dsk_moe_expert_weights* weights,
                                   const DLTensor* x, const DLTensor* x_scales,
                                   const DLTensor* offsets, const DLTensor* y) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_experts(*ctx, *Weights(weights, "weights", false).ptr, x, x_scales, offsets, y);
  });
}

DSK_API dsk_status dsk_moe_plan_create(dsk_context* ctx, const dsk_moe_gate_config* config,
                                       const DLTensor* x, const DLTensor* router_w,
                                       const dsk_moe_expert_weights* experts,
                                       const dsk_moe_expert_weights* shared, const DLTensor* out,
                                       dsk_moe_plan** plan) {
  if (plan != nullptr) *plan = nullptr;
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(plan != nullptr, "plan is NULL, expected a pointer to receive the plan");
    dsk::check_context(ctx);
    const Weights e(experts, "experts", false);
    const Weights s(shared, "shared", true);
    *plan = dsk::ops::moe_plan_create(*ctx, Config(config).c, x, router_w, *e.ptr, s.ptr, out);
  });
}

DSK_API void dsk_moe_plan_release(dsk_moe_plan* plan) { delete plan; }

DSK_API dsk_status dsk_moe_plan_workspace_size(const dsk_moe_plan* plan, size_t* bytes) {
  return dsk::capi_call(__func__, [&] {
    check_plan(plan);
    dsk::check_arg(bytes != nullptr, "bytes is NULL, expected a pointer to a size_t");
    *bytes = plan->workspace_bytes;
  });
}

DSK_API dsk_status dsk_moe_forward_run(dsk_context* ctx, const dsk_moe_plan* plan,
                                       const DLTensor* x, const DLTensor* router_w,
                                       const DLTensor* bias, const dsk_moe_expert_weights* experts,
                                       const dsk_moe_expert_weights* shared, const DLTensor* out,
                                       const DLTensor* ids, const DLTensor* weights) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    check_plan(plan);
    const Weights e(experts, "experts", false);
    const Weights s(shared, "shared", true);
    dsk::ops::moe_forward_run(*ctx, *plan, x, router_w, bias, *e.ptr, s.ptr, out, ids, weights);
  });
}

DSK_API dsk_status dsk_moe_forward(dsk_context* ctx, const dsk_moe_gate_config* config,
                                   const DLTensor* x, const DLTensor* router_w,
                                   const DLTensor* bias, const dsk_moe_expert_weights* experts,
                                   const dsk_moe_expert_weights* shared, const DLTensor* out) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    const Weights e(experts, "experts", false);
    const Weights s(shared, "shared", true);
    std::unique_ptr<dsk_moe_plan> plan(
        dsk::ops::moe_plan_create(*ctx, Config(config).c, x, router_w, *e.ptr, s.ptr, out));
    dsk::ops::moe_forward_run(*ctx, *plan, x, router_w, bias, *e.ptr, s.ptr, out, nullptr, nullptr);
  });
}

DSK_API dsk_status dsk_moe_load_accumulate(dsk_context* ctx, const DLTensor* ids,
                                           int32_t expert_begin, const DLTensor* load) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_load_accumulate(*ctx, ids, expert_begin, load);
  });
}

DSK_API dsk_status dsk_moe_bias_update(dsk_context* ctx, const DLTensor* load, const DLTensor* bias,
                                       float gamma) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_bias_update(*ctx, load, bias, gamma);
  });
}

DSK_API dsk_status dsk_moe_ep_layout(dsk_context* ctx, const DLTensor* ids, int32_t num_experts,
                                     int32_t num_ranks, const DLTensor* tokens_per_rank,
                                     const DLTensor* tokens_per_expert,
                                     const DLTensor* is_token_in_rank) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::moe_ep_layout(*ctx, ids, num_experts, num_ranks, tokens_per_rank, tokens_per_expert,
                            is_token_in_rank);
  });
}

}  // extern "C"
