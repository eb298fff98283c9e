// STUB: placeholder until the rope implementation lands.
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

dsk_status rope(const dsk_exec* ex, const DLTensor* /*x*/, const DLTensor* /*positions*/,
                const DLTensor* /*cos*/, const DLTensor* /*sin*/, const DLTensor* /*y*/,
                int32_t /*layout*/) noexcept {
  (void)ex;
  return fail_unimplemented("rope");
}

}  // namespace cpu
}  // namespace dsk
