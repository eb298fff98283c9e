// STUB: placeholder until the swiglu implementation lands.
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status swiglu(const dsk_exec* ex, const DLTensor* /*gate*/, const DLTensor* /*up*/,
                  const DLTensor* /*y*/) noexcept {
  (void)ex;
  return fail_unimplemented("swiglu");
}

}  // namespace cuda
}  // namespace dsk
