// The MLA latent cache append entry of the CUDA backend (kernel in mla_append_kernels.cu).
#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/mla_append_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {

dsk_status mla_cache_append(const dsk_exec* ex, const DLTensor* c_kv_t, const DLTensor* k_pe_t,
                            const DLTensor* slots_t, const DLTensor* kv_cache_t) noexcept {
  const TensorInfo c_kv = tensor_info(c_kv_t);
  const TensorInfo k_pe = tensor_info(k_pe_t);
  const TensorInfo slots = tensor_info(slots_t);
  const TensorInfo kv = tensor_info(kv_cache_t);
  if (c_kv.ndim != 3 || k_pe.ndim != 3 || slots.ndim != 1 || kv.ndim != 4 ||
      c_kv.shape[0] != slots.shape[0] || k_pe.shape[0] != slots.shape[0] ||
      c_kv.shape[1] != kv.shape[2] || k_pe.shape[1] != kv.shape[2] || c_kv.shape[2] > kv.shape[3] ||
      k_pe.shape[2] != kv.shape[3] - c_kv.shape[2]) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "mla_cache_append: expected c_kv [T, Hkv, Dv], k_pe [T, Hkv, D - Dv], "
                "slot_mapping [T] and kv_cache [P, page, Hkv, D]");
  }
  if (slots.dtype_id != DSK_DTYPE_INT64 ||
      (kv.dtype_id != DSK_DTYPE_BF16 && kv.dtype_id != DSK_DTYPE_F16)) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "mla_cache_append: expected int64 slot_mapping and a bf16 or f16 kv_cache");
  }
  if (slots.shape[0] == 0 || kv.shape[2] == 0 || kv.shape[3] == 0) return DSK_OK;
  MlaAppendArgs a{};
  a.c_kv = c_kv.data;
  a.k_pe = k_pe.data;
  a.slots = slots.data;
  a.cache = kv.data;
  a.c_dtype = c_kv.dtype_id;
  a.p_dtype = k_pe.dtype_id;
  a.cache_dtype = kv.dtype_id;
  for (int i = 0; i < 3; ++i) {
    a.c_stride[i] = c_kv.strides[i];
    a.p_stride[i] = k_pe.strides[i];
  }
  a.slot_stride = slots.strides[0];
  for (int i = 0; i < 4; ++i) a.cache_stride[i] = kv.strides[i];
  a.tokens = slots.shape[0];
  a.heads = kv.shape[2];
  a.d = kv.shape[3];
  a.dv = c_kv.shape[2];
  a.page = kv.shape[1];
  a.num_slots = kv.shape[0] * kv.shape[1];
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  DeferredErrorRecord* record = nullptr;
  DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &record));
  return launch_mla_append(a, record, static_cast<cudaStream_t>(ex->stream));
}

}  // namespace cuda
}  // namespace dsk
