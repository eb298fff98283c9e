// STUB: placeholder until the rope implementation lands.
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status rope(const dsk_exec* ex, const DLTensor* /*x*/, const DLTensor* /*positions*/,
                const DLTensor* /*cos*/, const DLTensor* /*sin*/, const DLTensor* /*y*/,
                int32_t /*layout*/) noexcept {
  (void)ex;
  return fail_unimplemented("rope");
}

}  // namespace cuda
}  // namespace dsk
