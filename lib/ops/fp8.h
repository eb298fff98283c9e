// fp8.h - libdsk side of the FP8 block quantization family (dsk_quant_fp8_*, dsk_dequant_fp8_*,
// dsk_linear_fp8, dsk_linear_fp8_kernel): validation, normalization to 2-D views and dispatch to
// the backend's quant_fp8 / dequant_fp8 / linear_fp8 / linear_fp8_kernel entries.
#ifndef DSK_LIB_OPS_FP8_H_
#define DSK_LIB_OPS_FP8_H_

#include <stdint.h>

#include "dsk/dsk_context.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace ops {

// Each throws dsk::Error on invalid arguments or a backend failure; see dsk_ops.h.
void quant_fp8(dsk_context& ctx, const DLTensor* x, const DLTensor* q, const DLTensor* scales,
               uint32_t flags, bool is_weight);
void dequant_fp8(dsk_context& ctx, const DLTensor* q, const DLTensor* scales, const DLTensor* x,
                 bool is_weight);
void linear_fp8(dsk_context& ctx, const DLTensor* x, const DLTensor* x_scales, const DLTensor* w,
                const DLTensor* w_scales, const DLTensor* y, uint32_t flags);
// DSK_FP8_KERNEL_* for tensors on the context's device.
int32_t linear_fp8_kernel(dsk_context& ctx);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_FP8_H_
