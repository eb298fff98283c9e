// STUB: placeholder until the softmax implementation lands.
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

dsk_status softmax(const dsk_exec* ex, const DLTensor* /*x*/, const DLTensor* /*y*/,
                   float /*inv_temperature*/, int32_t /*is_log*/) noexcept {
  (void)ex;
  return fail_unimplemented("softmax");
}

}  // namespace cpu
}  // namespace dsk
