// moe_permute_kernels.h - host launchers of the MoE permute and combine kernels
// (moe_permute_kernels.cu), called by the backend entries in moe_permute.cpp after the device has
// been made current. Plain C++: no CUDA types beyond the stream handle.
#ifndef DSK_CUDA_OPS_MOE_PERMUTE_KERNELS_H_
#define DSK_CUDA_OPS_MOE_PERMUTE_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// x [T, D] float dtype, sorted_rows [R] int32, out [R, D] float dtype or (with scales) fp8_e4m3fn,
// scales [R, ceil(D / 128)] f32 or NULL. Strides in elements, data pointers already offset.
struct PermuteArgs {
  const char* x;
  int64_t x_s0;
  int64_t x_s1;
  int32_t x_dtype;
  int32_t out_dtype;
  const char* rows;
  int64_t rows_s;
  char* out;
  int64_t out_s0;
  int64_t out_s1;
  char* scales;  // NULL: a float out
  int64_t scales_s0;
  int64_t scales_s1;
  int64_t tokens;  // T
  int64_t top_k;
  int64_t pad;     // T * top_k, the padding sentinel
  int64_t rows_n;  // R >= 1
  int64_t d;       // D >= 1
  int32_t pow2;    // DSK_QUANT_SCALE_POW2
};

// y [R, D], shared [T, D] or NULL, out [T, D] float dtypes; dest [T, k] int32, weights [T, k] f32.
struct CombineArgs {
  const char* y;
  int64_t y_s0;
  int64_t y_s1;
  int32_t y_dtype;
  int32_t shared_dtype;
  const char* shared;  // NULL: none (may equal out)
  int64_t shared_s0;
  int64_t shared_s1;
  char* out;
  int64_t out_s0;
  int64_t out_s1;
  int32_t out_dtype;
  int32_t reserved;
  const char* dest;
  int64_t dest_s0;
  int64_t dest_s1;
  const char* weights;
  int64_t weights_s0;
  int64_t weights_s1;
  int64_t y_rows;  // R (0 allowed: every dest must then be -1)
  int64_t tokens;  // T >= 1
  int64_t k;
  int64_t d;  // D >= 1
};

// Queue the kernels on `stream` (no allocation, no synchronization). A bad sorted_rows value zeroes
// its row, a bad dest value skips its slot; either is recorded in `record`.
dsk_status launch_moe_permute(const PermuteArgs& a, DeferredErrorRecord* record,
                              cudaStream_t stream) noexcept;
dsk_status launch_moe_combine(const CombineArgs& a, DeferredErrorRecord* record,
                              cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MOE_PERMUTE_KERNELS_H_
