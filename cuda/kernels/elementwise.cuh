// elementwise.cuh - device code of the tensor plumbing ops: strided copy with dtype conversion,
// constant fill and seeded random fill.
//
// Thread mapping: a 1-D grid-stride loop over the row-major element index i in [0, n) (64-bit, so
// any element count works with any grid). Each thread decodes i into a multi-index over the
// coalesced shape (innermost dim fastest, so consecutive threads touch consecutive elements of a
// row-major operand) and from it the element offset of each operand. Values come from
// lib/common/ (convert_element, store_from_f32, random_value), the same code the CPU reference
// runs, which is what makes results bitwise equal to it.
#ifndef DSK_CUDA_KERNELS_ELEMENTWISE_CUH_
#define DSK_CUDA_KERNELS_ELEMENTWISE_CUH_

#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "common/convert.h"
#include "common/random_value.h"
#include "cuda/ops/strided.h"

namespace dsk {
namespace cuda {

// Element offsets of row-major index i for the first N operands of `index`. NARROW (every index
// below 2^32) does the decoding divisions in 32 bits, which the GPU does natively; 64-bit
// division is a long software sequence. Dims are walked with compile-time bounds so the shape and
// strides are read straight from parameter space instead of being copied to local memory.
template <bool NARROW, int N>
__device__ __forceinline__ void element_offsets(const StridedIndex& index, int64_t i,
                                                int64_t (&offset)[N]) {
  if (index.ndim == 1) {
#pragma unroll
    for (int k = 0; k < N; ++k) offset[k] = i * index.strides[k][0];
    return;
  }
  using Index = typename std::conditional<NARROW, uint32_t, uint64_t>::type;
  Index rest = static_cast<Index>(i);
#pragma unroll
  for (int k = 0; k < N; ++k) offset[k] = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 1; --d) {
    if (d < index.ndim) {
      const Index size = static_cast<Index>(index.shape[d]);
      const Index next = rest / size;
      const int64_t position = static_cast<int64_t>(rest - next * size);
      rest = next;
#pragma unroll
      for (int k = 0; k < N; ++k) offset[k] += position * index.strides[k][d];
    }
  }
  // The outermost dim needs no division: what is left is its position.
#pragma unroll
  for (int k = 0; k < N; ++k) offset[k] += static_cast<int64_t>(rest) * index.strides[k][0];
}

__device__ __forceinline__ int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_step() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// Reads one element of `size` bytes (1, 2, 4 or 8) into the low bytes of a word. ALIGNED: p is a
// multiple of size, so one load of that width; otherwise byte by byte (DLPack allows any
// byte_offset, and a misaligned wide access would be a sticky fault that kills the context).
template <bool ALIGNED>
__device__ __forceinline__ uint64_t load_element(const char* p, int32_t size) {
  uint64_t word = 0;
  if (ALIGNED) {
    switch (size) {
      case 1:
        word = *reinterpret_cast<const uint8_t*>(p);
        break;
      case 2:
        word = *reinterpret_cast<const uint16_t*>(p);
        break;
      case 4:
        word = *reinterpret_cast<const uint32_t*>(p);
        break;
      default:
        word = *reinterpret_cast<const uint64_t*>(p);
        break;
    }
  } else {
    for (int32_t b = 0; b < size; ++b) {
      word |= static_cast<uint64_t>(static_cast<uint8_t>(p[b])) << (8 * b);
    }
  }
  return word;
}

// Writes the low `size` bytes of `word` to p (see load_element for ALIGNED).
template <bool ALIGNED>
__device__ __forceinline__ void store_element(char* p, int32_t size, uint64_t word) {
  if (ALIGNED) {
    switch (size) {
      case 1:
        *reinterpret_cast<uint8_t*>(p) = static_cast<uint8_t>(word);
        break;
      case 2:
        *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(word);
        break;
      case 4:
        *reinterpret_cast<uint32_t*>(p) = static_cast<uint32_t>(word);
        break;
      default:
        *reinterpret_cast<uint64_t*>(p) = word;
        break;
    }
  } else {
    for (int32_t b = 0; b < size; ++b) p[b] = static_cast<char>(word >> (8 * b));
  }
}

// Copy between equal dtypes: moves T-sized words (T = uint8/16/32/64_t), so it needs aligned
// operands. Operand 0 is src, 1 is dst.
template <typename T, bool NARROW>
__global__ void copy_same_kernel(StridedIndex index, const T* __restrict__ src, T* __restrict__ dst,
                                 int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_step()) {
    int64_t offset[2];
    element_offsets<NARROW>(index, i, offset);
    dst[offset[1]] = src[offset[0]];
  }
}

// Copy with conversion between any two dtype ids, by convert_element. Also serves equal dtypes
// whose operands are misaligned (ALIGNED = false). Elements are moved through a register word in
// little-endian order, which is the byte order convert_element reads and writes on both the host
// and the device.
template <bool NARROW, bool ALIGNED>
__global__ void convert_kernel(StridedIndex index, const char* __restrict__ src, int32_t src_id,
                               int32_t src_size, char* __restrict__ dst, int32_t dst_id,
                               int32_t dst_size, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_step()) {
    int64_t offset[2];
    element_offsets<NARROW>(index, i, offset);
    const uint64_t in = load_element<ALIGNED>(src + offset[0] * src_size, src_size);
    uint64_t out = 0;
    convert_element(src_id, &in, dst_id, &out);
    store_element<ALIGNED>(dst + offset[1] * dst_size, dst_size, out);
  }
}

// Stores one precomputed element value (the host converted it with store_from_f64, as the CPU
// fill does) at every element of an aligned destination.
template <typename T, bool NARROW>
__global__ void fill_kernel(StridedIndex index, T* __restrict__ dst, T value, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_step()) {
    int64_t offset[1];
    element_offsets<NARROW>(index, i, offset);
    dst[offset[0]] = value;
  }
}

// fill_kernel for a misaligned destination: `size` bytes of `pattern` per element.
template <bool NARROW>
__global__ void fill_bytes_kernel(StridedIndex index, char* __restrict__ dst, int32_t size,
                                  uint64_t pattern, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_step()) {
    int64_t offset[1];
    element_offsets<NARROW>(index, i, offset);
    store_element<false>(dst + offset[0] * size, size, pattern);
  }
}

// Element i gets random_value(..., i) converted by store_from_f32: exactly the CPU reference's
// per-element formula, independent of dst's strides and of the launch shape.
template <bool NARROW, bool ALIGNED>
__global__ void fill_random_kernel(StridedIndex index, char* __restrict__ dst, int32_t dst_id,
                                   int32_t dst_size, int32_t distribution, uint64_t seed,
                                   uint64_t counter_offset, float a, float b, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_step()) {
    int64_t offset[1];
    element_offsets<NARROW>(index, i, offset);
    const float v =
        random_value(distribution, seed, counter_offset, a, b, static_cast<uint64_t>(i));
    uint64_t word = 0;
    store_from_f32(dst_id, v, &word);
    store_element<ALIGNED>(dst + offset[0] * dst_size, dst_size, word);
  }
}

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_KERNELS_ELEMENTWISE_CUH_
