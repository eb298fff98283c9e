// hd.h - markers and bit casts for code compiled both by the host compiler and by nvcc.
//
// Headers in lib/common/ are the single source of numeric truth for the CPU reference and the CUDA
// kernels, so they may only use what both sides have: no exceptions, no std:: algorithms, no libm
// where bitwise agreement matters. memcpy is the bit cast because it is well defined in C++17 and
// nvcc lowers a fixed-size memcpy to a register move on the device.
#ifndef DSK_LIB_COMMON_HD_H_
#define DSK_LIB_COMMON_HD_H_

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#  define DSK_HD __host__ __device__ inline
#  define DSK_HD_CONST __host__ __device__ constexpr
#else
#  define DSK_HD inline
#  define DSK_HD_CONST constexpr
#endif

namespace dsk {

// The IEEE-754 binary32 encoding of x.
DSK_HD uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof(u));
  return u;
}

// The float whose binary32 encoding is u (NaN payloads kept).
DSK_HD float f32_from_bits(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof(x));
  return x;
}

}  // namespace dsk

#endif  // DSK_LIB_COMMON_HD_H_
