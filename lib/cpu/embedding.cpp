// STUB: placeholder until the embedding implementation lands.
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

dsk_status embedding(const dsk_exec* ex, const DLTensor* /*table*/, const DLTensor* /*ids*/,
                     const DLTensor* /*out*/) noexcept {
  (void)ex;
  return fail_unimplemented("embedding");
}

}  // namespace cpu
}  // namespace dsk
