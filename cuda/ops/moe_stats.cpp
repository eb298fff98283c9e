// The MoE statistics entries of the CUDA backend (kernels in moe_stats_kernels.cu): load
// accumulation, the bias update and the EP layout. Scratch counters come from the context's
// workspace when it is large enough, else stream-ordered memory; nothing synchronizes.
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/moe_stats_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "cuda/stream_temp.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

bool ids_ok(const TensorInfo& ids) {
  return ids.ndim == 2 && (ids.dtype_id == DSK_DTYPE_INT32 || ids.dtype_id == DSK_DTYPE_INT64);
}

MoeIds moe_ids(const TensorInfo& ids) {
  MoeIds m{};
  m.data = ids.data;
  m.s0 = ids.strides[0];
  m.s1 = ids.strides[1];
  m.tokens = ids.shape[0];
  m.k = ids.shape[1];
  m.is64 = ids.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  return m;
}

// `count` unsigned counters: the workspace when it holds them, else `temp`.
dsk_status counters(const dsk_exec* ex, StreamTemp* temp, int64_t count, unsigned** out) {
  const auto bytes = static_cast<size_t>(count) * sizeof(unsigned);
  const auto base = reinterpret_cast<uintptr_t>(ex->workspace);
  const uintptr_t start = (base + 15u) / 16u * 16u;
  if (ex->workspace != nullptr && start - base + bytes <= ex->workspace_bytes) {
    *out = reinterpret_cast<unsigned*>(start);
    return DSK_OK;
  }
  DSK_RETURN_IF_FAILED(temp->alloc(bytes));
  *out = reinterpret_cast<unsigned*>(temp->get());
  return DSK_OK;
}

}  // namespace

dsk_status moe_load_accumulate(const dsk_exec* ex, const DLTensor* ids_t, int32_t expert_begin,
                               const DLTensor* load_t) noexcept {
  const TensorInfo ids = tensor_info(ids_t);
  const TensorInfo load = tensor_info(load_t);
  if (!ids_ok(ids) || load.ndim != 1 || load.dtype_id != DSK_DTYPE_INT64 || load.shape[0] < 1) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_load_accumulate: expected ids [T, k] int32/int64 and load [E] int64");
  }
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  const auto stream = static_cast<cudaStream_t>(ex->stream);
  StreamTemp temp(stream);
  unsigned* hist = nullptr;
  DSK_RETURN_IF_FAILED(counters(ex, &temp, load.shape[0], &hist));
  return launch_moe_load_accumulate(moe_ids(ids), expert_begin, load.data, load.strides[0],
                                    load.shape[0], hist, stream);
}

dsk_status moe_bias_update(const dsk_exec* ex, const DLTensor* load_t, const DLTensor* bias_t,
                           float gamma) noexcept {
  const TensorInfo load = tensor_info(load_t);
  const TensorInfo bias = tensor_info(bias_t);
  if (load.ndim != 1 || bias.ndim != 1 || load.shape[0] != bias.shape[0] || load.shape[0] < 1 ||
      (load.dtype_id != DSK_DTYPE_INT64 && load.dtype_id != DSK_DTYPE_F32) ||
      bias.dtype_id != DSK_DTYPE_F32) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_bias_update: expected load [E] int64 or f32 and bias [E] f32, E >= 1");
  }
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  return launch_moe_bias_update(load.data, load.strides[0], load.dtype_id == DSK_DTYPE_F32,
                                bias.data, bias.strides[0], load.shape[0], gamma,
                                static_cast<cudaStream_t>(ex->stream));
}

dsk_status moe_ep_layout(const dsk_exec* ex, const DLTensor* ids_t, int32_t num_experts,
                         int32_t num_ranks, const DLTensor* tokens_per_rank_t,
                         const DLTensor* tokens_per_expert_t,
                         const DLTensor* is_token_in_rank_t) noexcept {
  const TensorInfo ids = tensor_info(ids_t);
  const TensorInfo per_rank = tensor_info(tokens_per_rank_t);
  const TensorInfo per_expert = tensor_info(tokens_per_expert_t);
  const TensorInfo in_rank = tensor_info(is_token_in_rank_t);
  if (!ids_ok(ids) || num_experts < 1 || num_ranks < 1 || num_experts % num_ranks != 0 ||
      per_rank.ndim != 1 || per_rank.shape[0] != num_ranks || per_expert.ndim != 1 ||
      per_expert.shape[0] != num_experts || in_rank.ndim != 2 || in_rank.shape[0] != ids.shape[0] ||
      in_rank.shape[1] != num_ranks || in_rank.elem_size != 1) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_ep_layout: expected ids [T, k], tokens_per_rank [R], tokens_per_expert [E], "
                "is_token_in_rank [T, R] (1-byte elements), E %% R == 0");
  }
  EpLayoutArgs a{};
  a.ids = moe_ids(ids);
  a.num_experts = num_experts;
  a.num_ranks = num_ranks;
  a.per_rank = per_rank.data;
  a.per_rank_s = per_rank.strides[0];
  a.per_expert = per_expert.data;
  a.per_expert_s = per_expert.strides[0];
  a.in_rank = in_rank.data;
  a.in_rank_s0 = in_rank.strides[0];
  a.in_rank_s1 = in_rank.strides[1];
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  DeferredErrorRecord* record = nullptr;
  DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &record));
  const auto stream = static_cast<cudaStream_t>(ex->stream);
  StreamTemp temp(stream);
  unsigned* counts = nullptr;
  DSK_RETURN_IF_FAILED(counters(ex, &temp, int64_t{num_experts} + num_ranks, &counts));
  return launch_moe_ep_layout(a, counts, record, stream);
}

}  // namespace cuda
}  // namespace dsk
