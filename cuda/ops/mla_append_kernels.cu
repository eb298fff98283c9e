// MLA latent cache append kernel: one block per token (grid-stride over tokens), the block's
// threads over the token's Hkv * D cache elements. Every element is converted by
// lib/common/convert.h's rules exactly as the CPU reference does (convert_element: equal dtypes
// copy the bits, everything else goes through f32 and rounds to nearest even), so both backends
// write the same bits. A bad slot skips its token and is recorded for the next synchronize.
#include <cuda_runtime_api.h>

#include "common/convert.h"
#include "cuda/error.h"
#include "cuda/ops/mla_append_kernels.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

constexpr unsigned kAppendThreads = 128;

// One element: `src` of SRC (0: the run-time id `src_id`, bytes of any alignment) to `dst` of DST.
template <int32_t SRC, int32_t DST>
__device__ __forceinline__ void convert_one(const char* src, int32_t src_id, char* dst,
                                            int32_t dst_id) {
  if constexpr (SRC == 0 || DST == 0) {
    convert_element(src_id, src, dst_id, dst);
  } else if constexpr (SRC == DST) {
    *reinterpret_cast<uint16_t*>(dst) = *reinterpret_cast<const uint16_t*>(src);
  } else {
    float v;
    if constexpr (SRC == DSK_DTYPE_F32) {
      v = *reinterpret_cast<const float*>(src);
    } else if constexpr (SRC == DSK_DTYPE_BF16) {
      v = bf16_to_f32(*reinterpret_cast<const uint16_t*>(src));
    } else {
      v = f16_to_f32(*reinterpret_cast<const uint16_t*>(src));
    }
    *reinterpret_cast<uint16_t*>(dst) = DST == DSK_DTYPE_BF16 ? f32_to_bf16(v) : f32_to_f16(v);
  }
}

// C and P are the dtypes of c_kv and k_pe, K the cache's; 0 = any (run-time ids, unaligned-safe).
template <int32_t C, int32_t P, int32_t K>
__global__ void __launch_bounds__(kAppendThreads)
    mla_append_kernel(MlaAppendArgs a, DeferredErrorRecord* record) {
  const int64_t per_token = a.heads * a.d;
  const auto csize = static_cast<int64_t>(dtype_id_size(a.c_dtype));
  const auto psize = static_cast<int64_t>(dtype_id_size(a.p_dtype));
  const auto ksize = static_cast<int64_t>(dtype_id_size(a.cache_dtype));
  for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
    int64_t slot;
    memcpy(&slot, a.slots + t * a.slot_stride * 8, 8);
    if (slot < 0 || slot >= a.num_slots) {
      if (slot != -1 && threadIdx.x == 0) {
        report_deferred(record, kDeferredMlaSlot, t, slot, a.num_slots);
      }
      continue;
    }
    const int64_t pg = slot / a.page;
    const int64_t off = slot % a.page;
    char* row = a.cache + (pg * a.cache_stride[0] + off * a.cache_stride[1]) * ksize;
    for (int64_t e = threadIdx.x; e < per_token; e += blockDim.x) {
      const int64_t h = e / a.d;
      const int64_t i = e - h * a.d;
      char* dst = row + (h * a.cache_stride[2] + i * a.cache_stride[3]) * ksize;
      if (i < a.dv) {
        const char* src =
            a.c_kv + (t * a.c_stride[0] + h * a.c_stride[1] + i * a.c_stride[2]) * csize;
        convert_one<C, K>(src, a.c_dtype, dst, a.cache_dtype);
      } else {
        const char* src =
            a.k_pe + (t * a.p_stride[0] + h * a.p_stride[1] + (i - a.dv) * a.p_stride[2]) * psize;
        convert_one<P, K>(src, a.p_dtype, dst, a.cache_dtype);
      }
    }
  }
}

template <int32_t C, int32_t P, int32_t K>
dsk_status launch(const MlaAppendArgs& a, DeferredErrorRecord* record, cudaStream_t stream) {
  const int64_t max_blocks = int64_t{1} << 20;
  const auto blocks = static_cast<unsigned>(a.tokens < max_blocks ? a.tokens : max_blocks);
  mla_append_kernel<C, P, K><<<blocks, kAppendThreads, 0, stream>>>(a, record);
  return check_launch("mla_cache_append");
}

bool aligned_to(const void* p, int32_t dtype) {
  return reinterpret_cast<uintptr_t>(p) % dtype_id_size(dtype) == 0;
}

}  // namespace

dsk_status launch_mla_append(const MlaAppendArgs& a, DeferredErrorRecord* record,
                             cudaStream_t stream) noexcept {
  // Typed paths for the common dtype combinations with naturally aligned data; the generic path
  // (byte-wise, any dtype and alignment) for everything else.
  const bool aligned = aligned_to(a.c_kv, a.c_dtype) && aligned_to(a.k_pe, a.p_dtype) &&
                       aligned_to(a.cache, a.cache_dtype);
  if (aligned && a.c_dtype == a.p_dtype) {
    const int32_t s = a.c_dtype;
    const int32_t k = a.cache_dtype;
    if (k == DSK_DTYPE_BF16) {
      if (s == DSK_DTYPE_BF16) {
        return launch<DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16>(a, record, stream);
      }
      if (s == DSK_DTYPE_F32) {
        return launch<DSK_DTYPE_F32, DSK_DTYPE_F32, DSK_DTYPE_BF16>(a, record, stream);
      }
    } else if (k == DSK_DTYPE_F16) {
      if (s == DSK_DTYPE_F16) {
        return launch<DSK_DTYPE_F16, DSK_DTYPE_F16, DSK_DTYPE_F16>(a, record, stream);
      }
      if (s == DSK_DTYPE_F32) {
        return launch<DSK_DTYPE_F32, DSK_DTYPE_F32, DSK_DTYPE_F16>(a, record, stream);
      }
    }
  }
  return launch<0, 0, 0>(a, record, stream);
}

}  // namespace cuda
}  // namespace dsk
