// norm_host.h - the host side of the RMSNorm, SwiGLU and RoPE entries: kernel operands from
// validated DLTensors.
#ifndef DSK_CUDA_OPS_NORM_HOST_H_
#define DSK_CUDA_OPS_NORM_HOST_H_

#include <stdint.h>

#include "cuda/ops/norm_kernels.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_dlpack.h"

namespace dsk {
namespace cuda {

// An operand over a DLTensor of at most 3 dims (strides of size-1 dims set to 0, so that any
// stride a producer put there is ignored). NULL gives an operand with data NULL.
inline NormOperand norm_operand(const DLTensor* t) noexcept {
  NormOperand op{};
  if (t == nullptr) return op;
  const TensorInfo info = tensor_info(t);
  op.data = info.data;
  op.dtype = info.dtype_id;
  op.elem_size = info.elem_size;
  for (int32_t d = 0; d < info.ndim && d < 3; ++d) {
    op.stride[d] = info.shape[d] == 1 ? 0 : info.strides[d];
  }
  return op;
}

// Whether operand elements are naturally aligned (a NULL operand is).
inline bool operand_aligned(const NormOperand& op, int64_t elements = 1) noexcept {
  return op.data == nullptr ||
         reinterpret_cast<uintptr_t>(op.data) %
                 (static_cast<uintptr_t>(op.elem_size) * static_cast<uintptr_t>(elements)) ==
             0;
}

// Whether rows [rows, cols] of `op` (row stride stride[0]) can be accessed four elements at a
// time: cols % 4 == 0 (checked by the caller), unit column stride, rows starting on 4-element
// boundaries of a 4-element-aligned base.
inline bool rows_vectorizable(const NormOperand& op, int64_t rows, int64_t cols) noexcept {
  if (op.data == nullptr) return true;
  return (cols <= 1 || op.stride[1] == 1) && (rows <= 1 || op.stride[0] % 4 == 0) &&
         operand_aligned(op, 4);
}

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_NORM_HOST_H_
