// STUB: placeholder until the topk implementation lands.
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

dsk_status topk(const dsk_exec* ex, const DLTensor* /*x*/, int32_t /*k*/,
                const DLTensor* /*values*/, const DLTensor* /*indices*/) noexcept {
  (void)ex;
  return fail_unimplemented("topk");
}

}  // namespace cpu
}  // namespace dsk
