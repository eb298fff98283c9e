// STUB: placeholder until the gemm implementation lands.
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

dsk_status gemm(const dsk_exec* ex, const DLTensor* /*a*/, const DLTensor* /*b*/,
                const DLTensor* /*c*/, const DLTensor* /*bias*/, const DLTensor* /*d*/,
                float /*alpha*/, float /*beta*/) noexcept {
  (void)ex;
  return fail_unimplemented("gemm");
}

}  // namespace cpu
}  // namespace dsk
