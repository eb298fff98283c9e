// GEMM and linear layers (dsk_ops.h).
#include "capi/guard.h"
#include "core/context.h"
#include "dsk/dsk_ops.h"
#include "ops/gemm.h"

extern "C" {

DSK_API dsk_status dsk_gemm(dsk_context* ctx, const DLTensor* a, const DLTensor* b,
                            const DLTensor* c, const DLTensor* d, int32_t trans_a, int32_t trans_b,
                            float alpha, float beta) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::gemm(*ctx, a, b, c, d, trans_a, trans_b, alpha, beta);
  });
}

DSK_API dsk_status dsk_linear(dsk_context* ctx, const DLTensor* x, const DLTensor* w,
                              const DLTensor* bias, const DLTensor* y) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::linear(*ctx, x, w, bias, y);
  });
}

}  // extern "C"
