// mla_prefill_kernels.h - host launcher of the MLA prefill (varlen MHA forward) kernels
// (mla_prefill_kernels.cu), called by the backend entry in mla_prefill.cpp after the device has
// been made current.
#ifndef DSK_CUDA_OPS_MLA_PREFILL_KERNELS_H_
#define DSK_CUDA_OPS_MLA_PREFILL_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// The widest head dims the kernels take (multiples of 8).
constexpr int64_t kMlaPrefillMaxDim = 256;

// q [Tq, H, Dqk], k [Tk, Hk, Dqk], v [Tk, Hk, Dv], out [Tq, H, Dv] (one dtype, bf16 or f16),
// lse [H, Tq] f32 or NULL, cu_q / cu_k [batch + 1] int32. Strides in elements; data pointers
// already offset.
struct MlaPrefillArgs {
  const char* q;
  const char* k;
  const char* v;
  char* out;
  char* lse;
  const char* cu_q;
  const char* cu_k;
  int64_t q_stride[3];
  int64_t k_stride[3];
  int64_t v_stride[3];
  int64_t out_stride[3];
  int64_t lse_stride[2];
  int64_t cu_q_stride;
  int64_t cu_k_stride;
  int64_t tq;
  int64_t tk;
  int64_t batch;
  int32_t heads;
  int32_t group;  // H / Hk
  int32_t dqk;
  int32_t dv;
  float scale;
  int32_t causal;
  DeferredErrorRecord* record;
};

// Queues the prefill on `stream` (dtype DSK_DTYPE_BF16 or DSK_DTYPE_F16; batch >= 1, heads in
// [1, 65535], Dqk and Dv multiples of 8 up to kMlaPrefillMaxDim): no allocation, no
// synchronization, no host-side knowledge of the request lengths. `vectorized`: q, k, v and out
// have 16-byte aligned rows (data pointers 16-byte aligned, last stride 1, token and head strides
// multiples of 8 elements), so the kernels move 16-byte chunks; otherwise they move single
// elements (any strides, any alignment). Bad cu_seqlens skip the requests they make unreadable and
// are recorded in a.record (kDeferredMlaCuSeqlens).
dsk_status launch_mla_prefill(const MlaPrefillArgs& a, int32_t dtype, bool vectorized,
                              cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MLA_PREFILL_KERNELS_H_
