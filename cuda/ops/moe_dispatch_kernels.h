// moe_dispatch_kernels.h - host launcher of the MoE dispatch kernels (moe_dispatch_kernels.cu),
// called by the backend entry in moe_dispatch.cpp after the device has been made current.
// Plain C++: no CUDA types beyond the stream handle.
#ifndef DSK_CUDA_OPS_MOE_DISPATCH_KERNELS_H_
#define DSK_CUDA_OPS_MOE_DISPATCH_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// ids [T, k] int32/int64; every output int32. Strides in elements, data pointers already offset.
struct DispatchArgs {
  const char* ids;
  int64_t ids_s0;
  int64_t ids_s1;
  int64_t tokens;
  int64_t k;
  int64_t n;  // T * k <= INT32_MAX (also the padding sentinel)
  int32_t ids64;
  int32_t num_experts;  // E
  int32_t expert_begin;
  int32_t block_size;
  char* counts;  // [E]
  int64_t counts_s;
  char* offsets;  // [E + 1]
  int64_t offsets_s;
  char* sorted;  // [capacity]
  int64_t sorted_s;
  int64_t capacity;  // <= INT32_MAX, at least dsk_moe_dispatch_capacity
  char* blocks;      // [num_blocks] or NULL
  int64_t blocks_s;
  int64_t num_blocks;
  char* dest;  // [T, k] or NULL
  int64_t dest_s0;
  int64_t dest_s1;
};

// Scratch bytes launch_moe_dispatch needs (0 for the single-block path); a host-side query
// (cub's temporary size), no device work.
dsk_status moe_dispatch_scratch_bytes(const DispatchArgs& a, size_t* bytes) noexcept;

// Queues the dispatch on `stream`: no synchronization. `scratch` holds at least
// moe_dispatch_scratch_bytes (256-byte aligned); NULL when that is 0.
dsk_status launch_moe_dispatch(const DispatchArgs& a, char* scratch, cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MOE_DISPATCH_KERNELS_H_
