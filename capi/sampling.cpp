// Token sampling (dsk_sampling.h). Checks and dispatch live in lib/ops/sampling.cpp.
#include "ops/sampling.h"

#include "capi/guard.h"
#include "core/context.h"
#include "core/error.h"
#include "dsk/dsk_sampling.h"

namespace {

// Full-size copies of the caller's versioned structs (every field is in the first version).
template <typename T>
T read_struct(const T* in, const char* name) {
  T full{};
  dsk::read_versioned(in, &full, sizeof(T), name);
  return full;
}

}  // namespace

extern "C" {

DSK_API dsk_status dsk_sampling_params_init(dsk_sampling_params* params) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(params != nullptr, "params is NULL, expected a dsk_sampling_params");
    dsk::ops::sampling_params_init(params);
  });
}

DSK_API dsk_status dsk_sampling_outputs_init(dsk_sampling_outputs* outputs) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(outputs != nullptr, "outputs is NULL, expected a dsk_sampling_outputs");
    dsk::ops::sampling_outputs_init(outputs);
  });
}

DSK_API dsk_status dsk_verify_params_init(dsk_verify_params* params) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(params != nullptr, "params is NULL, expected a dsk_verify_params");
    dsk::ops::verify_params_init(params);
  });
}

DSK_API dsk_status dsk_sample(dsk_context* ctx, const dsk_sampling_params* params,
                              const DLTensor* logits, const dsk_sampling_outputs* outputs) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    const dsk_sampling_params p = read_struct(params, "params");
    const dsk_sampling_outputs o = read_struct(outputs, "outputs");
    dsk::ops::sample(*ctx, p, logits, o);
  });
}

DSK_API dsk_status dsk_sampling_logits(dsk_context* ctx, const dsk_sampling_params* params,
                                       const DLTensor* logits, const DLTensor* out,
                                       const DLTensor* status) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    const dsk_sampling_params p = read_struct(params, "params");
    dsk::ops::sampling_transform(*ctx, p, logits, out, status, false);
  });
}

DSK_API dsk_status dsk_sampling_probs(dsk_context* ctx, const dsk_sampling_params* params,
                                      const DLTensor* logits, const DLTensor* probs,
                                      const DLTensor* status) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    const dsk_sampling_params p = read_struct(params, "params");
    dsk::ops::sampling_transform(*ctx, p, logits, probs, status, true);
  });
}

DSK_API dsk_status dsk_speculative_verify(dsk_context* ctx, const dsk_verify_params* params,
                                          const DLTensor* draft_ids, const DLTensor* draft_probs,
                                          const DLTensor* target, const DLTensor* out_ids,
                                          const DLTensor* accepted, const DLTensor* emitted) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    const dsk_verify_params p = read_struct(params, "params");
    dsk::ops::speculative_verify(*ctx, p, draft_ids, draft_probs, target, out_ids, accepted,
                                 emitted);
  });
}

}  // extern "C"
