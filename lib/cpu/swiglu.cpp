// STUB: placeholder until the swiglu implementation lands.
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

dsk_status swiglu(const dsk_exec* ex, const DLTensor* /*gate*/, const DLTensor* /*up*/,
                  const DLTensor* /*y*/) noexcept {
  (void)ex;
  return fail_unimplemented("swiglu");
}

}  // namespace cpu
}  // namespace dsk
