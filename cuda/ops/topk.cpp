// The topk entry of the CUDA backend (kernels in topk_kernels.cu).
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/softmax_kernels.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status topk(const dsk_exec* ex, const DLTensor* x_t, int32_t k, const DLTensor* values_t,
                const DLTensor* indices_t) noexcept {
  const TensorInfo x = tensor_info(x_t);
  const TensorInfo indices = tensor_info(indices_t);
  TensorInfo values{};
  if (values_t != nullptr) values = tensor_info(values_t);
  if (x.ndim != 2 || indices.ndim != 2 || indices.shape[0] != x.shape[0] || indices.shape[1] != k ||
      k < 1 || k > x.shape[1] ||
      (values_t != nullptr &&
       (values.ndim != 2 || values.shape[0] != x.shape[0] || values.shape[1] != k))) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "topk: expected x [R, N], indices and values [R, k] with 1 <= k <= N");
  }
  if (x.numel == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_topk(x, k, values_t != nullptr ? &values : nullptr, indices,
                     static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
