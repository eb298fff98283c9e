// STUB: placeholder until the topk implementation lands.
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status topk(const dsk_exec* ex, const DLTensor* /*x*/, int32_t /*k*/,
                const DLTensor* /*values*/, const DLTensor* /*indices*/) noexcept {
  (void)ex;
  return fail_unimplemented("topk");
}

}  // namespace cuda
}  // namespace dsk
