// speculative_kernels.h - host launcher of the speculative verification kernel
// (speculative_kernels.cu) behind the speculative_verify entry (speculative.cpp). Plain C++.
#ifndef DSK_CUDA_OPS_SPECULATIVE_KERNELS_H_
#define DSK_CUDA_OPS_SPECULATIVE_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// Element strides throughout; any alignment.
struct VerifyLaunch {
  int32_t mode;  // DSK_VERIFY_SAMPLE or DSK_VERIFY_GREEDY
  int32_t n;     // drafts per row
  int64_t rows;
  int64_t vocab;
  const char* draft_ids;  // [B, n] int32 / int64
  int64_t d_s0, d_s1;
  int32_t draft64;
  int32_t probs_dtype_id;  // target's dtype
  const char* target;      // [B, n + 1, V]
  int64_t t_s0, t_s1, t_s2;
  const char* draft_probs;  // [B, n, V] or NULL
  int64_t q_s0, q_s1, q_s2;
  int32_t draft_dtype_id;
  int32_t reserved;
  const char* seeds;  // int64 [B] or NULL
  int64_t seeds_s;
  const char* offsets;
  int64_t offsets_s;
  uint64_t seed_v;
  uint64_t offset_v;
  char* out_ids;  // int32 [B, n + 1]
  int64_t o_s0, o_s1;
  char* accepted;  // int32 [B]
  int64_t a_s0;
  char* emitted;  // int32 [B] or NULL
  int64_t e_s0;
  DeferredErrorRecord* record;
};

dsk_status launch_verify(const VerifyLaunch& a, cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_SPECULATIVE_KERNELS_H_
