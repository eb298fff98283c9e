// mla_append_kernels.h - host launcher of the MLA latent cache append kernel
// (mla_append_kernels.cu), called by the backend entry in mla_append.cpp after the device has been
// made current.
#ifndef DSK_CUDA_OPS_MLA_APPEND_KERNELS_H_
#define DSK_CUDA_OPS_MLA_APPEND_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// c_kv [T, Hkv, Dv], k_pe [T, Hkv, D - Dv] (any float dtypes), slots [T] int64, cache
// [P, page, Hkv, D] bf16/f16. Strides in elements, data pointers already offset.
struct MlaAppendArgs {
  const char* c_kv;
  const char* k_pe;
  const char* slots;
  char* cache;
  int32_t c_dtype;
  int32_t p_dtype;
  int32_t cache_dtype;
  int32_t reserved;
  int64_t c_stride[3];
  int64_t p_stride[3];
  int64_t slot_stride;
  int64_t cache_stride[4];
  int64_t tokens;
  int64_t heads;
  int64_t d;
  int64_t dv;
  int64_t page;
  int64_t num_slots;  // P * page
};

// Queues the append on `stream` (T >= 1): no allocation, no synchronization. A slot outside
// [-1, num_slots) skips its token and is recorded in `record` (kDeferredMlaSlot).
dsk_status launch_mla_append(const MlaAppendArgs& a, DeferredErrorRecord* record,
                             cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MLA_APPEND_KERNELS_H_
