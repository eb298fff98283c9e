// The embedding entry of the CUDA backend (kernel in embedding_kernels.cu).
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/softmax_kernels.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status embedding(const dsk_exec* ex, const DLTensor* table_t, const DLTensor* ids_t,
                     const DLTensor* out_t) noexcept {
  const TensorInfo table = tensor_info(table_t);
  const TensorInfo ids = tensor_info(ids_t);
  const TensorInfo out = tensor_info(out_t);
  if (table.ndim != 2 || ids.ndim != 1 || out.ndim != 2 || out.shape[0] != ids.shape[0] ||
      out.shape[1] != table.shape[1]) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "embedding: expected table [V, D], ids [T] and out [T, D]");
  }
  if (ids.numel == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_embedding(table, ids, out, static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
