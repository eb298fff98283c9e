// Speculative verification on CUDA (kernels in speculative_kernels.cu). Draft ids stay on the
// device: one outside [-1, V) makes its row emit nothing and is reported by the next synchronize
// (cuda/deferred_error.h). No scratch, no synchronization: capturable in a CUDA graph.
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/speculative_kernels.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {

dsk_status speculative_verify(const dsk_exec* ex, const dsk_verify_args* a) noexcept {
  const TensorInfo ids = tensor_info(a->draft_ids);
  const TensorInfo tg = tensor_info(a->target);
  const TensorInfo out = tensor_info(a->out_ids);
  const TensorInfo acc = tensor_info(a->accepted);
  if (ids.ndim != 2 || tg.ndim != 3 || out.ndim != 2 || acc.ndim != 1 ||
      tg.shape[0] != ids.shape[0] || tg.shape[1] != ids.shape[1] + 1 ||
      out.shape[1] != ids.shape[1] + 1 || tg.shape[2] < 1 || tg.shape[2] > INT32_MAX ||
      ids.shape[1] > INT32_MAX || ids.shape[0] > INT32_MAX) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "speculative_verify: expected draft_ids [B, n], target [B, n + 1, V], out_ids "
                "[B, n + 1], accepted [B]");
  }
  VerifyLaunch v{};
  v.mode = a->mode;
  v.n = static_cast<int32_t>(ids.shape[1]);
  v.rows = ids.shape[0];
  v.vocab = tg.shape[2];
  v.draft_ids = ids.data;
  v.d_s0 = ids.strides[0];
  v.d_s1 = ids.strides[1];
  v.draft64 = ids.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  v.probs_dtype_id = tg.dtype_id;
  v.target = tg.data;
  v.t_s0 = tg.strides[0];
  v.t_s1 = tg.strides[1];
  v.t_s2 = tg.strides[2];
  if (a->draft_probs != nullptr && a->mode == DSK_VERIFY_SAMPLE) {
    const TensorInfo dp = tensor_info(a->draft_probs);
    if (dp.ndim != 3) {
      return fail(DSK_ERR_INVALID_ARGUMENT, "speculative_verify: expected draft_probs [B, n, V]");
    }
    v.draft_probs = dp.data;
    v.q_s0 = dp.strides[0];
    v.q_s1 = dp.strides[1];
    v.q_s2 = dp.strides[2];
    v.draft_dtype_id = dp.dtype_id;
  }
  if (a->seed != nullptr) {
    const TensorInfo s = tensor_info(a->seed);
    v.seeds = s.data;
    v.seeds_s = s.strides[0];
  }
  if (a->offset != nullptr) {
    const TensorInfo s = tensor_info(a->offset);
    v.offsets = s.data;
    v.offsets_s = s.strides[0];
  }
  v.seed_v = a->seed_value;
  v.offset_v = a->offset_value;
  v.out_ids = out.data;
  v.o_s0 = out.strides[0];
  v.o_s1 = out.strides[1];
  v.accepted = acc.data;
  v.a_s0 = acc.strides[0];
  if (a->emitted != nullptr) {
    const TensorInfo e = tensor_info(a->emitted);
    v.emitted = e.data;
    v.e_s0 = e.strides[0];
  }
  if (v.rows == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  if (v.n > 0) DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &v.record));
  return launch_verify(v, static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
