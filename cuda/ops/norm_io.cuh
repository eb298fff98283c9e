// norm_io.cuh - element loads and stores of the RMSNorm, SwiGLU and RoPE kernels: one element of
// any float dtype as f32 (lib/common/convert.h, the CPU reference's own conversions), or four
// consecutive elements with one vector access.
#ifndef DSK_CUDA_OPS_NORM_IO_CUH_
#define DSK_CUDA_OPS_NORM_IO_CUH_

#include <stdint.h>

#include "common/convert.h"
#include "cuda/kernels/elementwise.cuh"
#include "cuda/ops/norm_kernels.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {

__device__ __forceinline__ float bits_to_f32(int32_t dtype, uint32_t bits) {
  switch (dtype) {
    case DSK_DTYPE_F16:
      return f16_to_f32(static_cast<uint16_t>(bits));
    case DSK_DTYPE_BF16:
      return bf16_to_f32(static_cast<uint16_t>(bits));
    default:
      return f32_from_bits(bits);
  }
}

__device__ __forceinline__ uint32_t f32_to_bits(int32_t dtype, float v) {
  switch (dtype) {
    case DSK_DTYPE_F16:
      return f32_to_f16(v);
    case DSK_DTYPE_BF16:
      return f32_to_bf16(v);
    default:
      return f32_bits(v);
  }
}

// v rounded to `dtype` and widened back (what storing and reloading it gives).
__device__ __forceinline__ float round_to(int32_t dtype, float v) {
  return dtype == DSK_DTYPE_F32 ? v : bits_to_f32(dtype, f32_to_bits(dtype, v));
}

// Element at element offset `offset` of `op`. ALIGNED: every operand's base is a multiple of its
// element size (then so is every element), else bytes are moved one by one.
template <bool ALIGNED>
__device__ __forceinline__ float load1(const NormOperand& op, int64_t offset) {
  const char* p = op.data + offset * op.elem_size;
  return bits_to_f32(op.dtype, static_cast<uint32_t>(load_element<ALIGNED>(p, op.elem_size)));
}

template <bool ALIGNED>
__device__ __forceinline__ void store1(const NormOperand& op, int64_t offset, float v) {
  char* p = op.data + offset * op.elem_size;
  store_element<ALIGNED>(p, op.elem_size, f32_to_bits(op.dtype, v));
}

// Four consecutive elements starting at element offset `offset`; the address must be a multiple
// of 4 * elem_size (16 bytes for f32, 8 for f16/bf16).
__device__ __forceinline__ void load4(const NormOperand& op, int64_t offset, float (&v)[4]) {
  const char* p = op.data + offset * op.elem_size;
  if (op.elem_size == 4) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    v[0] = f32_from_bits(u.x);
    v[1] = f32_from_bits(u.y);
    v[2] = f32_from_bits(u.z);
    v[3] = f32_from_bits(u.w);
  } else {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    v[0] = bits_to_f32(op.dtype, u.x & 0xFFFFu);
    v[1] = bits_to_f32(op.dtype, u.x >> 16);
    v[2] = bits_to_f32(op.dtype, u.y & 0xFFFFu);
    v[3] = bits_to_f32(op.dtype, u.y >> 16);
  }
}

__device__ __forceinline__ void store4(const NormOperand& op, int64_t offset, const float (&v)[4]) {
  char* p = op.data + offset * op.elem_size;
  if (op.elem_size == 4) {
    *reinterpret_cast<uint4*>(p) =
        make_uint4(f32_bits(v[0]), f32_bits(v[1]), f32_bits(v[2]), f32_bits(v[3]));
  } else {
    const uint32_t lo = f32_to_bits(op.dtype, v[0]) | (f32_to_bits(op.dtype, v[1]) << 16);
    const uint32_t hi = f32_to_bits(op.dtype, v[2]) | (f32_to_bits(op.dtype, v[3]) << 16);
    *reinterpret_cast<uint2*>(p) = make_uint2(lo, hi);
  }
}

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_NORM_IO_CUH_
