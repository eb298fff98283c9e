// Softmax, log-softmax, argmax, top-k and embedding gather (dsk_ops.h).
#include "capi/guard.h"
#include "core/context.h"
#include "dsk/dsk_ops.h"
#include "ops/embedding.h"
#include "ops/softmax.h"
#include "ops/topk.h"

extern "C" {

DSK_API dsk_status dsk_softmax(dsk_context* ctx, const DLTensor* x, const DLTensor* y,
                               float temperature) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::softmax(*ctx, x, y, temperature, /*is_log=*/false);
  });
}

DSK_API dsk_status dsk_log_softmax(dsk_context* ctx, const DLTensor* x, const DLTensor* y,
                                   float temperature) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::softmax(*ctx, x, y, temperature, /*is_log=*/true);
  });
}

DSK_API dsk_status dsk_argmax(dsk_context* ctx, const DLTensor* x, const DLTensor* indices) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::argmax(*ctx, x, indices);
  });
}

DSK_API dsk_status dsk_topk(dsk_context* ctx, const DLTensor* x, int32_t k, const DLTensor* values,
                            const DLTensor* indices) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::topk(*ctx, x, k, values, indices);
  });
}

DSK_API dsk_status dsk_embedding(dsk_context* ctx, const DLTensor* table, const DLTensor* ids,
                                 const DLTensor* out) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::embedding(*ctx, table, ids, out);
  });
}

}  // extern "C"
