// moe_gate_kernels.h - host launcher of the MoE gate kernel (moe_gate_kernels.cu), called by the
// backend entry in moe_gate.cpp after the device has been made current.
#ifndef DSK_CUDA_OPS_MOE_GATE_KERNELS_H_
#define DSK_CUDA_OPS_MOE_GATE_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// logits [T, E] f32/f16/bf16, bias [E] f32 or NULL, ids [T, k] int32/int64, weights [T, k] f32,
// flags [T] uint8 or NULL. Strides in elements, data pointers already offset (any alignment).
struct MoeGateArgs {
  const char* logits;
  const char* bias;
  char* ids;
  char* weights;
  char* flags;
  int64_t logits_stride[2];
  int64_t bias_stride;
  int64_t ids_stride[2];
  int64_t weights_stride[2];
  int64_t flags_stride;
  int64_t tokens;  // T >= 1
  int32_t logits_dtype;
  int32_t ids64;  // ids are int64
  int32_t num_experts;
  int32_t top_k;
  int32_t n_group;
  int32_t topk_group;
  int32_t score_func;
  int32_t top2sum;
  int32_t renormalize;
  int32_t score_bf16;
  float scale;
  int32_t outputs_aligned;  // ids and weights naturally aligned (typed stores)
};

// Queues the gate on `stream`: one launch, no allocation, no synchronization (capturable).
// DSK_ERR_UNSUPPORTED when one token's working set (about 8 E + 4 G + 8 k bytes) does not fit in
// the device's shared memory.
dsk_status launch_moe_gate(const MoeGateArgs& a, cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MOE_GATE_KERNELS_H_
