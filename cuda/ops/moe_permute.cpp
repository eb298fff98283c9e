// The MoE permute and combine entries of the CUDA backend (kernels in moe_permute_kernels.cu).
// Index values are checked on the device and reported by the next synchronize
// (cuda/deferred_error.h); nothing here synchronizes or allocates.
#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/moe_permute_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {

dsk_status moe_permute(const dsk_exec* ex, const DLTensor* x_t, const DLTensor* sorted_rows_t,
                       int32_t top_k, const DLTensor* out_t, const DLTensor* out_scales_t,
                       uint32_t flags) noexcept {
  const TensorInfo x = tensor_info(x_t);
  const TensorInfo rows = tensor_info(sorted_rows_t);
  const TensorInfo out = tensor_info(out_t);
  if (x.ndim != 2 || rows.ndim != 1 || out.ndim != 2 || out.shape[0] != rows.shape[0] ||
      out.shape[1] != x.shape[1] || rows.dtype_id != DSK_DTYPE_INT32 || top_k < 1) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_permute: expected x [T, D], sorted_rows [R] int32, out [R, D], top_k >= 1");
  }
  PermuteArgs a{};
  a.x = x.data;
  a.x_s0 = x.strides[0];
  a.x_s1 = x.strides[1];
  a.x_dtype = x.dtype_id;
  a.out_dtype = out.dtype_id;
  a.rows = rows.data;
  a.rows_s = rows.strides[0];
  a.out = out.data;
  a.out_s0 = out.strides[0];
  a.out_s1 = out.strides[1];
  a.tokens = x.shape[0];
  a.top_k = top_k;
  a.pad = x.shape[0] * top_k;
  a.rows_n = rows.shape[0];
  a.d = x.shape[1];
  a.pow2 = (flags & DSK_QUANT_SCALE_POW2) != 0u ? 1 : 0;
  if (out_scales_t != nullptr) {
    const TensorInfo s = tensor_info(out_scales_t);
    if (out.dtype_id != DSK_DTYPE_FP8_E4M3FN || s.ndim != 2 || s.shape[0] != a.rows_n ||
        s.shape[1] != (a.d + 127) / 128 || s.dtype_id != DSK_DTYPE_F32) {
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "moe_permute: expected an fp8_e4m3fn out with out_scales [R, ceil(D / 128)] "
                  "f32");
    }
    a.scales = s.data;
    a.scales_s0 = s.strides[0];
    a.scales_s1 = s.strides[1];
  }
  if (a.rows_n == 0 || a.d == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  DeferredErrorRecord* record = nullptr;
  DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &record));
  return launch_moe_permute(a, record, static_cast<cudaStream_t>(ex->stream));
}

dsk_status moe_combine(const dsk_exec* ex, const DLTensor* y_t, const DLTensor* dest_t,
                       const DLTensor* weights_t, const DLTensor* shared_t,
                       const DLTensor* out_t) noexcept {
  const TensorInfo y = tensor_info(y_t);
  const TensorInfo dest = tensor_info(dest_t);
  const TensorInfo w = tensor_info(weights_t);
  const TensorInfo out = tensor_info(out_t);
  if (y.ndim != 2 || dest.ndim != 2 || w.ndim != 2 || out.ndim != 2 ||
      w.shape[0] != dest.shape[0] || w.shape[1] != dest.shape[1] || out.shape[0] != dest.shape[0] ||
      out.shape[1] != y.shape[1] || dest.dtype_id != DSK_DTYPE_INT32 ||
      w.dtype_id != DSK_DTYPE_F32) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "moe_combine: expected y [R, D], dest [T, k] int32, weights [T, k] f32, "
                "out [T, D]");
  }
  CombineArgs a{};
  a.y = y.data;
  a.y_s0 = y.strides[0];
  a.y_s1 = y.strides[1];
  a.y_dtype = y.dtype_id;
  a.out = out.data;
  a.out_s0 = out.strides[0];
  a.out_s1 = out.strides[1];
  a.out_dtype = out.dtype_id;
  a.dest = dest.data;
  a.dest_s0 = dest.strides[0];
  a.dest_s1 = dest.strides[1];
  a.weights = w.data;
  a.weights_s0 = w.strides[0];
  a.weights_s1 = w.strides[1];
  a.y_rows = y.shape[0];
  a.tokens = out.shape[0];
  a.k = dest.shape[1];
  a.d = out.shape[1];
  if (shared_t != nullptr) {
    const TensorInfo s = tensor_info(shared_t);
    if (s.ndim != 2 || s.shape[0] != a.tokens || s.shape[1] != a.d) {
      return fail(DSK_ERR_INVALID_ARGUMENT, "moe_combine: expected shared [T, D] like out");
    }
    a.shared = s.data;
    a.shared_s0 = s.strides[0];
    a.shared_s1 = s.strides[1];
    a.shared_dtype = s.dtype_id;
  }
  if (a.tokens == 0 || a.d == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  DeferredErrorRecord* record = nullptr;
  DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &record));
  return launch_moe_combine(a, record, static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
