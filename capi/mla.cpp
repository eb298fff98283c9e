// Multi-head Latent Attention (dsk_mla.h). Checks and dispatch live in lib/ops/mla*.cpp.
#include "ops/mla.h"

#include <memory>

#include "capi/guard.h"
#include "core/context.h"
#include "core/error.h"
#include "dsk/dsk_mla.h"

namespace {

void check_plan(const dsk_mla_decode_plan* plan) {
  dsk::check_arg(plan != nullptr, "plan is NULL, expected a plan from dsk_mla_decode_plan_create");
}

}  // namespace

extern "C" {

DSK_API dsk_status dsk_mla_softmax_scale(int64_t qk_head_dim, double rope_factor, double mscale,
                                         int32_t use_yarn, float* scale) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(scale != nullptr, "scale is NULL, expected a pointer to a float");
    *scale = dsk::ops::mla_softmax_scale(qk_head_dim, rope_factor, mscale, use_yarn);
  });
}

DSK_API dsk_status dsk_mla_decode_plan_create(dsk_context* ctx, const DLTensor* q,
                                              const DLTensor* kv_cache, const DLTensor* block_table,
                                              const DLTensor* cache_seqlens, const DLTensor* out,
                                              dsk_mla_decode_plan** plan) {
  if (plan != nullptr) *plan = nullptr;
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(plan != nullptr, "plan is NULL, expected a pointer to receive the plan");
    dsk::check_context(ctx);
    *plan = dsk::ops::mla_decode_plan_create(*ctx, q, kv_cache, block_table, cache_seqlens, out);
  });
}

DSK_API void dsk_mla_decode_plan_release(dsk_mla_decode_plan* plan) { delete plan; }

DSK_API dsk_status dsk_mla_decode_plan_workspace_size(const dsk_mla_decode_plan* plan,
                                                      size_t* bytes) {
  return dsk::capi_call(__func__, [&] {
    check_plan(plan);
    dsk::check_arg(bytes != nullptr, "bytes is NULL, expected a pointer to a size_t");
    *bytes = plan->work.workspace_bytes;
  });
}

DSK_API dsk_status dsk_mla_decode_plan_num_splits(const dsk_mla_decode_plan* plan,
                                                  int32_t* num_splits) {
  return dsk::capi_call(__func__, [&] {
    check_plan(plan);
    dsk::check_arg(num_splits != nullptr, "num_splits is NULL, expected a pointer to an int32_t");
    *num_splits = plan->work.num_splits;
  });
}

DSK_API dsk_status dsk_mla_decode_run(dsk_context* ctx, const dsk_mla_decode_plan* plan,
                                      const DLTensor* q, const DLTensor* kv_cache,
                                      const DLTensor* block_table, const DLTensor* cache_seqlens,
                                      float softmax_scale, int32_t causal, const DLTensor* out,
                                      const DLTensor* lse) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    check_plan(plan);
    dsk::ops::mla_decode_run(*ctx, *plan, q, kv_cache, block_table, cache_seqlens, softmax_scale,
                             causal, out, lse);
  });
}

DSK_API dsk_status dsk_mla_decode(dsk_context* ctx, const DLTensor* q, const DLTensor* kv_cache,
                                  const DLTensor* block_table, const DLTensor* cache_seqlens,
                                  float softmax_scale, int32_t causal, const DLTensor* out,
                                  const DLTensor* lse) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    std::unique_ptr<dsk_mla_decode_plan> plan(
        dsk::ops::mla_decode_plan_create(*ctx, q, kv_cache, block_table, cache_seqlens, out));
    dsk::ops::mla_decode_run(*ctx, *plan, q, kv_cache, block_table, cache_seqlens, softmax_scale,
                             causal, out, lse);
  });
}

DSK_API dsk_status dsk_mla_cache_append(dsk_context* ctx, const DLTensor* c_kv,
                                        const DLTensor* k_pe, const DLTensor* slot_mapping,
                                        const DLTensor* kv_cache) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::mla_cache_append(*ctx, c_kv, k_pe, slot_mapping, kv_cache);
  });
}

DSK_API dsk_status dsk_mla_absorb_q(dsk_context* ctx, const DLTensor* q_nope, const DLTensor* wkv_b,
                                    const DLTensor* wkv_b_scale, const DLTensor* q_latent) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::mla_absorb_q(*ctx, q_nope, wkv_b, wkv_b_scale, q_latent);
  });
}

DSK_API dsk_status dsk_mla_absorb_out(dsk_context* ctx, const DLTensor* o_latent,
                                      const DLTensor* wkv_b, const DLTensor* wkv_b_scale,
                                      const DLTensor* o) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::mla_absorb_out(*ctx, o_latent, wkv_b, wkv_b_scale, o);
  });
}

DSK_API dsk_status dsk_mla_decompress_kv(dsk_context* ctx, const DLTensor* c_kv,
                                         const DLTensor* k_pe, const DLTensor* wkv_b,
                                         const DLTensor* wkv_b_scale, const DLTensor* k,
                                         const DLTensor* v) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::mla_decompress_kv(*ctx, c_kv, k_pe, wkv_b, wkv_b_scale, k, v);
  });
}

DSK_API dsk_status dsk_mla_prefill(dsk_context* ctx, const DLTensor* q, const DLTensor* k,
                                   const DLTensor* v, const DLTensor* cu_seqlens_q,
                                   const DLTensor* cu_seqlens_k, float softmax_scale,
                                   int32_t causal, const DLTensor* out, const DLTensor* lse) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::mla_prefill(*ctx, q, k, v, cu_seqlens_q, cu_seqlens_k, softmax_scale, causal, out,
                          lse);
  });
}

}  // extern "C"
