// elem_io.cuh - element loads/stores of float dtypes for the softmax, top-k and embedding kernels.
//
// ID is a DSK_DTYPE_* float id known at compile time, for data naturally aligned to its element
// size (typed loads, converted with lib/common/convert.h). ID 0 takes the dtype at run time and
// moves bytes with memcpy, so it is safe for misaligned data (a DLTensor with an odd byte_offset):
// a misaligned wide access would be a sticky fault that kills the CUDA context.
#ifndef DSK_CUDA_OPS_ELEM_IO_CUH_
#define DSK_CUDA_OPS_ELEM_IO_CUH_

#include <stdint.h>

#include "common/convert.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {

// Element `i` (an element offset) of `base` as f32.
template <int32_t ID>
__device__ __forceinline__ float load_elem(const char* base, int64_t i, int32_t rt_id) {
  if constexpr (ID == DSK_DTYPE_F32) {
    return reinterpret_cast<const float*>(base)[i];
  } else if constexpr (ID == DSK_DTYPE_F16) {
    return f16_to_f32(reinterpret_cast<const uint16_t*>(base)[i]);
  } else if constexpr (ID == DSK_DTYPE_BF16) {
    return bf16_to_f32(reinterpret_cast<const uint16_t*>(base)[i]);
  } else {
    return load_as_f32(rt_id, base + i * static_cast<int64_t>(dtype_id_size(rt_id)));
  }
}

// Stores v rounded to the dtype (store_from_f32 rules) at element `i` of `base`.
template <int32_t ID>
__device__ __forceinline__ void store_elem(char* base, int64_t i, float v, int32_t rt_id) {
  if constexpr (ID == DSK_DTYPE_F32) {
    reinterpret_cast<float*>(base)[i] = v;
  } else if constexpr (ID == DSK_DTYPE_F16) {
    reinterpret_cast<uint16_t*>(base)[i] = f32_to_f16(v);
  } else if constexpr (ID == DSK_DTYPE_BF16) {
    reinterpret_cast<uint16_t*>(base)[i] = f32_to_bf16(v);
  } else {
    store_from_f32(rt_id, v, base + i * static_cast<int64_t>(dtype_id_size(rt_id)));
  }
}

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_ELEM_IO_CUH_
