// STUB: placeholder until the rmsnorm implementation lands.
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

dsk_status rmsnorm(const dsk_exec* ex, const DLTensor* /*x*/, const DLTensor* /*residual*/,
                   const DLTensor* /*weight*/, const DLTensor* /*y*/,
                   const DLTensor* /*residual_out*/, float /*eps*/) noexcept {
  (void)ex;
  return fail_unimplemented("rmsnorm");
}

}  // namespace cpu
}  // namespace dsk
