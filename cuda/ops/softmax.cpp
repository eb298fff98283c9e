// The softmax entry of the CUDA backend (kernels in softmax_kernels.cu).
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/softmax_kernels.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status softmax(const dsk_exec* ex, const DLTensor* x_t, const DLTensor* y_t,
                   float inv_temperature, int32_t is_log) noexcept {
  const TensorInfo x = tensor_info(x_t);
  const TensorInfo y = tensor_info(y_t);
  if (x.ndim != 2 || y.ndim != 2 || x.shape[0] != y.shape[0] || x.shape[1] != y.shape[1]) {
    return fail(DSK_ERR_INVALID_ARGUMENT, "softmax: expected x and y rows [R, N] of one shape");
  }
  if (x.numel == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_softmax(x, y, inv_temperature, is_log != 0, static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
