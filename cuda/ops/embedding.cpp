// STUB: placeholder until the embedding implementation lands.
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status embedding(const dsk_exec* ex, const DLTensor* /*table*/, const DLTensor* /*ids*/,
                     const DLTensor* /*out*/) noexcept {
  (void)ex;
  return fail_unimplemented("embedding");
}

}  // namespace cuda
}  // namespace dsk
