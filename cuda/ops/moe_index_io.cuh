// moe_index_io.cuh - index loads and stores of the MoE dispatch, permute/combine and statistics
// kernels, and the grid shape they share.
//
// Index tensors arrive with any strides and possibly at any byte offset. ALIGNED = true is for
// data aligned to its element size (one typed access); false moves bytes with memcpy, which is safe
// for any address (a misaligned wide access would be a sticky fault that kills the CUDA context).
#ifndef DSK_CUDA_OPS_MOE_INDEX_IO_CUH_
#define DSK_CUDA_OPS_MOE_INDEX_IO_CUH_

#include <stdint.h>
#include <string.h>

namespace dsk {
namespace cuda {

template <bool ALIGNED>
__device__ __forceinline__ int32_t load_i32(const char* p) {
  if constexpr (ALIGNED) {
    return *reinterpret_cast<const int32_t*>(p);
  } else {
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
  }
}

template <bool ALIGNED>
__device__ __forceinline__ void store_i32(char* p, int32_t v) {
  if constexpr (ALIGNED) {
    *reinterpret_cast<int32_t*>(p) = v;
  } else {
    memcpy(p, &v, sizeof(v));
  }
}

// An int32 or int64 id (is64) as int64.
template <bool ALIGNED>
__device__ __forceinline__ int64_t load_id(const char* p, bool is64) {
  if (!is64) return load_i32<ALIGNED>(p);
  if constexpr (ALIGNED) {
    return *reinterpret_cast<const int64_t*>(p);
  } else {
    int64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
  }
}

// Id (t, j) of ids [T, k] with element strides (s0, s1).
template <bool ALIGNED>
__device__ __forceinline__ int64_t load_id_at(const char* ids, bool is64, int64_t s0, int64_t s1,
                                              int64_t t, int64_t j) {
  return load_id<ALIGNED>(ids + (t * s0 + j * s1) * (is64 ? 8 : 4), is64);
}

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MOE_INDEX_IO_CUH_
