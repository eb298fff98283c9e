// gemm_epilogue.h - the elementwise tail of the CUDA GEMM for what cuBLASLt cannot do itself:
// D = T + beta * C + bias, rounded once to D's dtype, with T an f32 product computed by cuBLASLt
// (or absent when K == 0) and C, bias, D of any float dtype and strides.
#ifndef DSK_CUDA_OPS_GEMM_EPILOGUE_H_
#define DSK_CUDA_OPS_GEMM_EPILOGUE_H_

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

struct GemmEpilogue {
  const float* t = nullptr;  // [batch, m, n] compact row-major, or NULL for 0
  const char* c = nullptr;   // NULL when beta is not applied
  int32_t c_dtype = 0;
  int64_t c_strides[3] = {};
  const char* bias = nullptr;  // [n] or NULL
  int32_t bias_dtype = 0;
  int64_t bias_stride = 0;
  char* d = nullptr;
  int32_t d_dtype = 0;
  int64_t d_strides[3] = {};
  int64_t batch = 0, m = 0, n = 0;
  float beta = 0.0f;
};

// Queues the epilogue on `stream` (the device must be current). batch * m * n >= 1.
dsk_status launch_gemm_epilogue(const GemmEpilogue& e, cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_GEMM_EPILOGUE_H_
