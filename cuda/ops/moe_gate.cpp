// The moe_gate entry of the CUDA backend (kernel in moe_gate_kernels.cu): bitwise equal to the CPU
// reference, one launch, no allocation, no synchronization.
#include <stdint.h>

#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/moe_gate_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_moe.h"

namespace dsk {
namespace cuda {

dsk_status moe_gate(const dsk_exec* ex, const dsk_moe_gate_params* p, const DLTensor* logits_t,
                    const DLTensor* bias_t, const DLTensor* ids_t, const DLTensor* weights_t,
                    const DLTensor* row_flags_t) noexcept {
  if (p == nullptr) return fail(DSK_ERR_INVALID_ARGUMENT, "moe_gate: params must not be NULL");
  const int32_t n = p->num_experts;
  const int32_t k = p->top_k;
  const int32_t groups = p->n_group;
  if (n < 1 || groups < 1 || n % groups != 0 || p->topk_group < 1 || p->topk_group > groups ||
      k < 1 || static_cast<int64_t>(k) > static_cast<int64_t>(p->topk_group) * (n / groups) ||
      (p->score_func != DSK_MOE_SCORE_SOFTMAX && p->score_func != DSK_MOE_SCORE_SIGMOID &&
       p->score_func != DSK_MOE_SCORE_NONE) ||
      (p->top2sum != 0 && groups > 1 && n / groups < 2)) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_gate: invalid config (E %d, k %d, n_group %d, topk_group %d, score_func %d, "
                "top2sum %d)",
                static_cast<int>(n), static_cast<int>(k), static_cast<int>(groups),
                static_cast<int>(p->topk_group), static_cast<int>(p->score_func),
                static_cast<int>(p->top2sum));
  }
  const TensorInfo logits = tensor_info(logits_t);
  const TensorInfo ids = tensor_info(ids_t);
  const TensorInfo weights = tensor_info(weights_t);
  TensorInfo bias{};
  TensorInfo flags{};
  if (bias_t != nullptr) bias = tensor_info(bias_t);
  if (row_flags_t != nullptr) flags = tensor_info(row_flags_t);
  const int64_t tokens = logits.ndim == 2 ? logits.shape[0] : -1;
  if (logits.ndim != 2 || logits.shape[1] != n ||
      (logits.dtype_id != DSK_DTYPE_F32 && logits.dtype_id != DSK_DTYPE_F16 &&
       logits.dtype_id != DSK_DTYPE_BF16) ||
      ids.ndim != 2 || ids.shape[0] != tokens || ids.shape[1] != k ||
      (ids.dtype_id != DSK_DTYPE_INT32 && ids.dtype_id != DSK_DTYPE_INT64) || weights.ndim != 2 ||
      weights.shape[0] != tokens || weights.shape[1] != k || weights.dtype_id != DSK_DTYPE_F32 ||
      (bias_t != nullptr &&
       (bias.ndim != 1 || bias.shape[0] != n || bias.dtype_id != DSK_DTYPE_F32)) ||
      (row_flags_t != nullptr &&
       (flags.ndim != 1 || flags.shape[0] != tokens || flags.dtype_id != DSK_DTYPE_UINT8))) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_gate: expected logits [T, E] f32/f16/bf16, bias [E] f32, ids [T, k] "
                "int32/int64, weights [T, k] f32 and row_flags [T] uint8");
  }
  if (tokens == 0) return DSK_OK;
  MoeGateArgs a{};
  a.logits = logits.data;
  a.bias = bias_t != nullptr ? bias.data : nullptr;
  a.ids = ids.data;
  a.weights = weights.data;
  a.flags = row_flags_t != nullptr ? flags.data : nullptr;
  a.logits_stride[0] = logits.strides[0];
  a.logits_stride[1] = logits.strides[1];
  a.bias_stride = bias_t != nullptr ? bias.strides[0] : 0;
  a.ids_stride[0] = ids.strides[0];
  a.ids_stride[1] = ids.strides[1];
  a.weights_stride[0] = weights.strides[0];
  a.weights_stride[1] = weights.strides[1];
  a.flags_stride = row_flags_t != nullptr ? flags.strides[0] : 0;
  a.tokens = tokens;
  a.logits_dtype = logits.dtype_id;
  a.ids64 = ids.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  a.num_experts = n;
  a.top_k = k;
  a.n_group = groups;
  a.topk_group = p->topk_group;
  a.score_func = p->score_func;
  a.top2sum = p->top2sum;
  a.renormalize = p->renormalize;
  a.score_bf16 = p->score_bf16;
  a.scale = p->scale;
  a.outputs_aligned = is_aligned(ids.data, a.ids64 != 0 ? 8 : 4) && is_aligned(weights.data, 4);
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_moe_gate(a, static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
