// moe_stats_kernels.h - host launchers of the MoE statistics kernels (moe_stats_kernels.cu): the
// per-expert load histogram, the auxiliary-loss-free bias update and the expert-parallel layout.
// Called by the backend entries in moe_stats.cpp after the device has been made current. Plain
// C++: no CUDA types beyond the stream handle.
#ifndef DSK_CUDA_OPS_MOE_STATS_KERNELS_H_
#define DSK_CUDA_OPS_MOE_STATS_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// ids [T, k] int32 or int64, strides in elements.
struct MoeIds {
  const char* data;
  int64_t s0;
  int64_t s1;
  int64_t tokens;
  int64_t k;
  int32_t is64;
  int32_t reserved;
};

// load [E] int64 += the histogram of ids at e = id - expert_begin in [0, E). `hist`: E unsigned
// ints of scratch (device memory, 4-byte aligned).
dsk_status launch_moe_load_accumulate(const MoeIds& ids, int32_t expert_begin, char* load,
                                      int64_t load_s, int64_t num_experts, unsigned* hist,
                                      cudaStream_t stream) noexcept;

// bias [E] f32 (stride bias_s) updated from load [E] (int64, or f32 when load_f32) with one block
// in the order of common/moe_bias.h.
dsk_status launch_moe_bias_update(const char* load, int64_t load_s, bool load_f32, char* bias,
                                  int64_t bias_s, int64_t num_experts, float gamma,
                                  cudaStream_t stream) noexcept;

struct EpLayoutArgs {
  MoeIds ids;
  int64_t num_experts;  // E
  int64_t num_ranks;    // R, E % R == 0
  char* per_rank;       // [R] int32
  int64_t per_rank_s;
  char* per_expert;  // [E] int32
  int64_t per_expert_s;
  char* in_rank;  // [T, R] 1-byte elements
  int64_t in_rank_s0;
  int64_t in_rank_s1;
};

// The layout; `counts`: E + R unsigned ints of scratch. An id outside [-1, E) is skipped and
// recorded in `record`.
dsk_status launch_moe_ep_layout(const EpLayoutArgs& a, unsigned* counts,
                                DeferredErrorRecord* record, cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MOE_STATS_KERNELS_H_
