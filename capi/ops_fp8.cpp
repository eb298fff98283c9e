// FP8 block quantization and the FP8 block-scaled linear layer (dsk_ops.h).
#include "capi/guard.h"
#include "core/context.h"
#include "dsk/dsk_ops.h"
#include "ops/fp8.h"

DSK_API dsk_status dsk_quant_fp8_act(dsk_context* ctx, const DLTensor* x, const DLTensor* q,
                                     const DLTensor* scales, uint32_t flags) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::quant_fp8(*ctx, x, q, scales, flags, /*is_weight=*/false);
  });
}

DSK_API dsk_status dsk_dequant_fp8_act(dsk_context* ctx, const DLTensor* q, const DLTensor* scales,
                                       const DLTensor* x) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::dequant_fp8(*ctx, q, scales, x, /*is_weight=*/false);
  });
}

DSK_API dsk_status dsk_quant_fp8_weight(dsk_context* ctx, const DLTensor* w, const DLTensor* q,
                                        const DLTensor* scales, uint32_t flags) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::quant_fp8(*ctx, w, q, scales, flags, /*is_weight=*/true);
  });
}

DSK_API dsk_status dsk_dequant_fp8_weight(dsk_context* ctx, const DLTensor* q,
                                          const DLTensor* scales, const DLTensor* w) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::dequant_fp8(*ctx, q, scales, w, /*is_weight=*/true);
  });
}

DSK_API dsk_status dsk_linear_fp8(dsk_context* ctx, const DLTensor* x, const DLTensor* x_scales,
                                  const DLTensor* w, const DLTensor* w_scales, const DLTensor* y,
                                  uint32_t flags) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::ops::linear_fp8(*ctx, x, x_scales, w, w_scales, y, flags);
  });
}

DSK_API dsk_status dsk_linear_fp8_kernel(dsk_context* ctx, int32_t* kernel) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::check_arg(kernel != nullptr, "kernel is NULL, expected a pointer to an int32_t");
    *kernel = dsk::ops::linear_fp8_kernel(*ctx);
  });
}
