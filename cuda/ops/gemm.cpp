// STUB: placeholder until the gemm implementation lands.
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status gemm(const dsk_exec* ex, const DLTensor* /*a*/, const DLTensor* /*b*/,
                const DLTensor* /*c*/, const DLTensor* /*bias*/, const DLTensor* /*d*/,
                float /*alpha*/, float /*beta*/) noexcept {
  (void)ex;
  return fail_unimplemented("gemm");
}

}  // namespace cuda
}  // namespace dsk
