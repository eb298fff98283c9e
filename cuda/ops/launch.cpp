#include "cuda/ops/launch.h"

#include "cuda/device.h"
#include "cuda/error.h"

namespace dsk {
namespace cuda {

dsk_status elementwise_grid(int64_t n, unsigned* blocks) noexcept {
  int32_t sms = 1;
  DSK_RETURN_IF_FAILED(current_multiprocessor_count(&sms));
  // 2048 resident threads per SM on sm_80/sm_90 = 8 blocks of 256; a few waves more smooth out
  // the tail without making the per-block start-up cost noticeable.
  const int64_t cap = static_cast<int64_t>(sms) * 32;
  const int64_t needed = n / kElementwiseBlock + (n % kElementwiseBlock != 0 ? 1 : 0);
  *blocks = static_cast<unsigned>(needed < cap ? needed : cap);
  return DSK_OK;
}

}  // namespace cuda
}  // namespace dsk
