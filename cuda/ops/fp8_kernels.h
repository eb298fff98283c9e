// fp8_kernels.h - host launchers of the FP8 block quantization kernels (fp8_kernels.cu), used by
// the quant_fp8 / dequant_fp8 / linear_fp8 entries (fp8.cpp). Plain C++: no CUDA types beyond the
// stream handle.
#ifndef DSK_CUDA_OPS_FP8_KERNELS_H_
#define DSK_CUDA_OPS_FP8_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// A 2-D strided matrix on the device: element (r, c) at data + (r * s0 + c * s1) * elem size.
struct Fp8Mat {
  char* data;
  int32_t dtype;  // DSK_DTYPE_*
  int64_t rows;
  int64_t cols;
  int64_t s0;
  int64_t s1;
};

// The 2-D view of a normalized backend argument (a 1-D tensor is one row).
Fp8Mat fp8_mat(const DLTensor* t) noexcept;

// Quantizes x (float dtype) into q (fp8_e4m3fn) with scales (f32), per 1 x 128 tile or, with
// is_weight, per 128 x 128 block (common/fp8_block.h). The current device must be set.
dsk_status launch_fp8_quant(const Fp8Mat& x, const Fp8Mat& q, const Fp8Mat& scales, bool is_weight,
                            bool pow2, cudaStream_t stream) noexcept;

// x (float dtype) = q * scale, per tile or block.
dsk_status launch_fp8_dequant(const Fp8Mat& q, const Fp8Mat& scales, const Fp8Mat& x,
                              bool is_weight, cudaStream_t stream) noexcept;

// dst = src for two f32 matrices of the same shape (scale repacking).
dsk_status launch_f32_copy2d(const Fp8Mat& src, const Fp8Mat& dst, cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_FP8_KERNELS_H_
