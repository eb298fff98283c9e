// softmax_kernels.h - host launchers of the softmax, top-k and embedding kernels
// (softmax_kernels.cu, topk_kernels.cu, embedding_kernels.cu), called by the backend entries in
// softmax.cpp, topk.cpp and embedding.cpp after the device has been made current.
//
// Tensors are the normalized views of lib/core/backend_iface.h: x/y/values/indices rows [R, N] or
// [R, k], ids [T], table [V, D], out [T, D], with element strides. Work is queued on `stream`;
// temporaries are stream-ordered (cudaMallocAsync / cudaFreeAsync). Errors go through
// cuda/error.h.
#ifndef DSK_CUDA_OPS_SOFTMAX_KERNELS_H_
#define DSK_CUDA_OPS_SOFTMAX_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/ops/strided.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// Rows [R, N] (N >= 1, R >= 1): softmax (log_softmax when is_log) of x * inv_temperature.
dsk_status launch_softmax(const TensorInfo& x, const TensorInfo& y, float inv_temperature,
                          bool is_log, cudaStream_t stream) noexcept;

// Rows [R, N] -> indices [R, k] (int32/int64) and values [R, k] (NULL: none), 1 <= k <= N.
dsk_status launch_topk(const TensorInfo& x, int32_t k, const TensorInfo* values,
                       const TensorInfo& indices, cudaStream_t stream) noexcept;

// out [T, D] = table [V, D] rows at ids [T] (T >= 1). Synchronizes `stream` to read the range
// flag back; an id outside [0, V) gives DSK_ERR_INVALID_ARGUMENT naming the first such position.
dsk_status launch_embedding(const TensorInfo& table, const TensorInfo& ids, const TensorInfo& out,
                            cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_SOFTMAX_KERNELS_H_
