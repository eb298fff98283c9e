// STUB: placeholder until the fp8 implementation lands.
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status quant_fp8(const dsk_exec* ex, const DLTensor* /*x*/, const DLTensor* /*q*/,
                     const DLTensor* /*scales*/, int32_t /*is_weight*/,
                     uint32_t /*flags*/) noexcept {
  (void)ex;
  return fail_unimplemented("quant_fp8");
}

dsk_status dequant_fp8(const dsk_exec* ex, const DLTensor* /*q*/, const DLTensor* /*scales*/,
                       const DLTensor* /*x*/, int32_t /*is_weight*/) noexcept {
  (void)ex;
  return fail_unimplemented("dequant_fp8");
}

dsk_status linear_fp8(const dsk_exec* ex, const DLTensor* /*x*/, const DLTensor* /*x_scales*/,
                      const DLTensor* /*w*/, const DLTensor* /*w_scales*/, const DLTensor* /*y*/,
                      uint32_t /*flags*/) noexcept {
  (void)ex;
  return fail_unimplemented("linear_fp8");
}

int32_t linear_fp8_kernel(int32_t device) noexcept {
  (void)device;
  return DSK_FP8_KERNEL_DEQUANT_GEMM;
}

}  // namespace cuda
}  // namespace dsk
