// The MLA prefill entry of the CUDA backend (kernels in mla_prefill_kernels.cu).
#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/mla_prefill_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

// 16-byte chunks of a [T, H, D] operand start at 16-byte boundaries: aligned data, contiguous
// last dim, token and head strides multiples of 8 elements (a size-1 dim's stride is never used).
bool chunk_aligned(const TensorInfo& t) {
  return is_aligned(t.data, 16) && (t.shape[2] == 1 || t.strides[2] == 1) &&
         (t.shape[0] <= 1 || t.strides[0] % 8 == 0) && (t.shape[1] <= 1 || t.strides[1] % 8 == 0);
}

}  // namespace

dsk_status mla_prefill(const dsk_exec* ex, const DLTensor* q_t, const DLTensor* k_t,
                       const DLTensor* v_t, const DLTensor* cu_q_t, const DLTensor* cu_k_t,
                       const DLTensor* out_t, const DLTensor* lse_t, float scale,
                       int32_t causal) noexcept {
  const TensorInfo q = tensor_info(q_t);
  const TensorInfo k = tensor_info(k_t);
  const TensorInfo v = tensor_info(v_t);
  const TensorInfo cu_q = tensor_info(cu_q_t);
  const TensorInfo cu_k = tensor_info(cu_k_t != nullptr ? cu_k_t : cu_q_t);
  const TensorInfo out = tensor_info(out_t);
  TensorInfo lse{};
  if (lse_t != nullptr) lse = tensor_info(lse_t);
  if (q.ndim != 3 || k.ndim != 3 || v.ndim != 3 || out.ndim != 3 || cu_q.ndim != 1 ||
      cu_k.ndim != 1 || cu_q.shape[0] < 1 || cu_k.shape[0] != cu_q.shape[0] || q.shape[1] < 1 ||
      k.shape[1] < 1 || q.shape[1] % k.shape[1] != 0 || k.shape[2] != q.shape[2] ||
      v.shape[0] != k.shape[0] || v.shape[1] != k.shape[1] || out.shape[0] != q.shape[0] ||
      out.shape[1] != q.shape[1] || out.shape[2] != v.shape[2] ||
      (lse_t != nullptr &&
       (lse.ndim != 2 || lse.shape[0] != q.shape[1] || lse.shape[1] != q.shape[0]))) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "mla_prefill: expected q [Tq, H, Dqk], k [Tk, Hk, Dqk], v [Tk, Hk, Dv], "
                "cu_seqlens [B + 1], out [Tq, H, Dv] and lse [H, Tq]");
  }
  const int32_t dtype = q.dtype_id;
  if ((dtype != DSK_DTYPE_BF16 && dtype != DSK_DTYPE_F16) || k.dtype_id != dtype ||
      v.dtype_id != dtype || out.dtype_id != dtype || cu_q.dtype_id != DSK_DTYPE_INT32 ||
      cu_k.dtype_id != DSK_DTYPE_INT32 || (lse_t != nullptr && lse.dtype_id != DSK_DTYPE_F32)) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "mla_prefill: expected bf16 or f16 q, k, v, out of one dtype, int32 cu_seqlens "
                "and f32 lse");
  }
  const int64_t dqk = q.shape[2];
  const int64_t dv = v.shape[2];
  if (dqk % 8 != 0 || dv % 8 != 0 || dqk > kMlaPrefillMaxDim || dv > kMlaPrefillMaxDim) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_prefill: the CUDA kernels take Dqk and Dv multiples of 8 up to %lld, got "
                "Dqk = %lld, Dv = %lld",
                static_cast<long long>(kMlaPrefillMaxDim), static_cast<long long>(dqk),
                static_cast<long long>(dv));
  }
  if (q.shape[1] > 65535) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_prefill: the CUDA kernels take at most 65535 heads, got %lld",
                static_cast<long long>(q.shape[1]));
  }
  MlaPrefillArgs a{};
  a.q = q.data;
  a.k = k.data;
  a.v = v.data;
  a.out = out.data;
  a.lse = lse_t != nullptr ? lse.data : nullptr;
  a.cu_q = cu_q.data;
  a.cu_k = cu_k.data;
  for (int i = 0; i < 3; ++i) {
    a.q_stride[i] = q.strides[i];
    a.k_stride[i] = k.strides[i];
    a.v_stride[i] = v.strides[i];
    a.out_stride[i] = out.strides[i];
  }
  if (lse_t != nullptr) {
    a.lse_stride[0] = lse.strides[0];
    a.lse_stride[1] = lse.strides[1];
  }
  a.cu_q_stride = cu_q.strides[0];
  a.cu_k_stride = cu_k.strides[0];
  a.tq = q.shape[0];
  a.tk = k.shape[0];
  a.batch = cu_q.shape[0] - 1;
  a.heads = static_cast<int32_t>(q.shape[1]);
  a.group = static_cast<int32_t>(q.shape[1] / k.shape[1]);
  a.dqk = static_cast<int32_t>(dqk);
  a.dv = static_cast<int32_t>(dv);
  a.scale = scale;
  a.causal = causal != 0 ? 1 : 0;
  const bool vectorized =
      chunk_aligned(q) && chunk_aligned(k) && chunk_aligned(v) && chunk_aligned(out);
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &a.record));
  return launch_mla_prefill(a, dtype, vectorized, static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
