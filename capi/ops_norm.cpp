// Normalization, activations and RoPE (dsk_ops.h): RMSNorm, fused add + RMSNorm, SwiGLU, and the
// YaRN rotary embedding (config, table, apply). Checks and dispatch live in lib/ops/.
#include "capi/guard.h"
#include "core/context.h"
#include "dsk/dsk_ops.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

extern "C" {

DSK_API dsk_status dsk_rmsnorm(dsk_context* ctx, const DLTensor* x, const DLTensor* weight,
                               const DLTensor* y, float eps) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::rmsnorm(*ctx, x, weight, y, eps);
  });
}

DSK_API dsk_status dsk_add_rmsnorm(dsk_context* ctx, const DLTensor* x, const DLTensor* residual,
                                   const DLTensor* weight, const DLTensor* y,
                                   const DLTensor* residual_out, float eps) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::add_rmsnorm(*ctx, x, residual, weight, y, residual_out, eps);
  });
}

DSK_API dsk_status dsk_swiglu(dsk_context* ctx, const DLTensor* gate, const DLTensor* up,
                              const DLTensor* y) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::swiglu(*ctx, gate, up, y);
  });
}

DSK_API dsk_status dsk_swiglu_fused(dsk_context* ctx, const DLTensor* gate_up, const DLTensor* y) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::swiglu_fused(*ctx, gate_up, y);
  });
}

DSK_API dsk_status dsk_rope_config_init(dsk_rope_config* config) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(config != nullptr, "config is NULL, expected a dsk_rope_config");
    *config = dsk_rope_config{};
    config->struct_size = sizeof(dsk_rope_config);
    config->dim = 64;
    config->theta = 10000.0;
    config->factor = 40.0;
    config->original_seq_len = 4096;
    config->beta_fast = 32.0;
    config->beta_slow = 1.0;
    config->mscale = 1.0;
    config->mscale_all_dim = 1.0;
  });
}

DSK_API dsk_status dsk_rope_table(dsk_context* ctx, const dsk_rope_config* config,
                                  const DLTensor* cos, const DLTensor* sin) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk_rope_config c;
    dsk_rope_config_init(&c);
    // Every field is in the first released version: a shorter struct is refused.
    dsk::read_versioned(config, &c, sizeof(dsk_rope_config), "config");
    dsk::ops::rope_table(*ctx, c, cos, sin);
  });
}

DSK_API dsk_status dsk_rope_apply(dsk_context* ctx, const DLTensor* x, const DLTensor* positions,
                                  const DLTensor* cos, const DLTensor* sin, const DLTensor* y,
                                  int32_t layout) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::rope_apply(*ctx, x, positions, cos, sin, y, layout);
  });
}

}  // extern "C"
