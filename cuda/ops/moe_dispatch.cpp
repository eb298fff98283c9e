// The MoE dispatch entry of the CUDA backend (kernels in moe_dispatch_kernels.cu). Scratch comes
// from the context's workspace when it is large enough, else stream-ordered memory; nothing
// synchronizes.
#include <stdint.h>

#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/moe_dispatch_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "cuda/stream_temp.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {

dsk_status moe_dispatch(const dsk_exec* ex, const DLTensor* ids_t, int32_t num_experts,
                        int32_t expert_begin, int32_t block_size, const DLTensor* counts_t,
                        const DLTensor* offsets_t, const DLTensor* sorted_rows_t,
                        const DLTensor* block_experts_t, const DLTensor* dest_t) noexcept {
  const TensorInfo ids = tensor_info(ids_t);
  const TensorInfo counts = tensor_info(counts_t);
  const TensorInfo offsets = tensor_info(offsets_t);
  const TensorInfo sorted = tensor_info(sorted_rows_t);
  if (ids.ndim != 2 || counts.ndim != 1 || offsets.ndim != 1 || sorted.ndim != 1 ||
      num_experts < 1 || block_size < 1 || counts.shape[0] != num_experts ||
      offsets.shape[0] != int64_t{num_experts} + 1 ||
      (ids.dtype_id != DSK_DTYPE_INT32 && ids.dtype_id != DSK_DTYPE_INT64) ||
      ids.shape[0] * ids.shape[1] > INT32_MAX || sorted.shape[0] > INT32_MAX) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_dispatch: expected ids [T, k] int32/int64 with T * k < 2^31, counts [E], "
                "offsets [E + 1], sorted_rows [capacity < 2^31], E >= 1, block_size >= 1");
  }
  DispatchArgs a{};
  a.ids = ids.data;
  a.ids_s0 = ids.strides[0];
  a.ids_s1 = ids.strides[1];
  a.tokens = ids.shape[0];
  a.k = ids.shape[1];
  a.n = a.tokens * a.k;
  a.ids64 = ids.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  a.num_experts = num_experts;
  a.expert_begin = expert_begin;
  a.block_size = block_size;
  a.counts = counts.data;
  a.counts_s = counts.strides[0];
  a.offsets = offsets.data;
  a.offsets_s = offsets.strides[0];
  a.sorted = sorted.data;
  a.sorted_s = sorted.strides[0];
  a.capacity = sorted.shape[0];
  if (block_experts_t != nullptr) {
    const TensorInfo blocks = tensor_info(block_experts_t);
    a.blocks = blocks.data;
    a.blocks_s = blocks.strides[0];
    a.num_blocks = blocks.shape[0];
    if (blocks.ndim != 1 || a.num_blocks != (a.capacity + block_size - 1) / block_size) {
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "moe_dispatch: expected block_experts [ceil(capacity / block_size)]");
    }
  }
  if (dest_t != nullptr) {
    const TensorInfo dest = tensor_info(dest_t);
    if (dest.ndim != 2 || dest.shape[0] != a.tokens || dest.shape[1] != a.k) {
      return fail(DSK_ERR_INVALID_ARGUMENT, "moe_dispatch: expected dest [T, k] like ids");
    }
    a.dest = dest.data;
    a.dest_s0 = dest.strides[0];
    a.dest_s1 = dest.strides[1];
  }
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  const auto stream = static_cast<cudaStream_t>(ex->stream);
  size_t bytes = 0;
  DSK_RETURN_IF_FAILED(moe_dispatch_scratch_bytes(a, &bytes));
  char* scratch = nullptr;
  StreamTemp temp(stream);
  if (bytes > 0) {
    // The workspace is used from its first 256-byte boundary.
    const auto base = reinterpret_cast<uintptr_t>(ex->workspace);
    const uintptr_t start = (base + 255u) / 256u * 256u;
    if (ex->workspace != nullptr && start - base + bytes <= ex->workspace_bytes) {
      scratch = reinterpret_cast<char*>(start);
    } else {
      DSK_RETURN_IF_FAILED(temp.alloc(bytes));
      scratch = temp.get();
    }
  }
  return launch_moe_dispatch(a, scratch, stream);
}

}  // namespace cuda
}  // namespace dsk
