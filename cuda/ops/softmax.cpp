// STUB: placeholder until the softmax implementation lands.
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status softmax(const dsk_exec* ex, const DLTensor* /*x*/, const DLTensor* /*y*/,
                   float /*inv_temperature*/, int32_t /*is_log*/) noexcept {
  (void)ex;
  return fail_unimplemented("softmax");
}

}  // namespace cuda
}  // namespace dsk
