// norm_kernels.h - launchers of the RMSNorm, SwiGLU and RoPE kernels (defined in *_kernels.cu),
// called by the table entries in rmsnorm.cpp, swiglu.cpp and rope.cpp. Plain C++: the host side
// fills these argument structs from validated DLTensors and the kernels receive them by value.
#ifndef DSK_CUDA_OPS_NORM_KERNELS_H_
#define DSK_CUDA_OPS_NORM_KERNELS_H_

#include <stdint.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// One strided operand of up to 3 dims (element strides; unused dims have stride 0).
struct NormOperand {
  char* data;
  int32_t dtype;      // DSK_DTYPE_*
  int32_t elem_size;  // bytes
  int64_t stride[3];
};

// Rows [rows, d]; residual/residual_out have data NULL for the plain form. weight [d] uses
// stride[0].
struct RmsnormArgs {
  NormOperand x, residual, weight, y, residual_out;
  int64_t rows;
  int64_t d;
  float eps;
};

// y [rows, n] = silu(gate) * up.
struct SwigluArgs {
  NormOperand gate, up, y;
  int64_t rows;
  int64_t n;
};

// x/y [tokens, heads, d], positions [tokens], cos/sin [n_positions, d/2] f32.
struct RopeArgs {
  NormOperand x, positions, cos, sin, y;
  int64_t tokens;
  int64_t heads;
  int64_t half;  // d / 2
  int64_t n_positions;
  int32_t layout;  // DSK_ROPE_*
};

// The current device is already set; stream is a cudaStream_t. Errors are recorded (cuda/error.h).
dsk_status launch_rmsnorm(const RmsnormArgs& args, void* stream) noexcept;
dsk_status launch_swiglu(const SwigluArgs& args, void* stream) noexcept;
// Rotates, then reads back the out-of-range flag (synchronizes the stream).
dsk_status launch_rope(const RopeArgs& args, void* stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_NORM_KERNELS_H_
