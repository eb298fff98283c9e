// D = T + beta * C + bias for the CUDA GEMM (see gemm_epilogue.h).
#include "common/convert.h"
#include "cuda/error.h"
#include "cuda/ops/gemm_epilogue.h"
#include "cuda/ops/launch.h"

namespace dsk {
namespace cuda {
namespace {

__global__ void gemm_epilogue_kernel(GemmEpilogue e, int64_t total) {
  const int64_t c_elem = e.c != nullptr ? static_cast<int64_t>(dtype_id_size(e.c_dtype)) : 0;
  const int64_t b_elem = e.bias != nullptr ? static_cast<int64_t>(dtype_id_size(e.bias_dtype)) : 0;
  const int64_t d_elem = static_cast<int64_t>(dtype_id_size(e.d_dtype));
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += step) {
    const int64_t j = idx % e.n;
    const int64_t rest = idx / e.n;
    const int64_t i = rest % e.m;
    const int64_t b = rest / e.m;
    float v = e.t != nullptr ? e.t[idx] : 0.0f;
    if (e.c != nullptr) {
      const int64_t off = b * e.c_strides[0] + i * e.c_strides[1] + j * e.c_strides[2];
      v += e.beta * load_as_f32(e.c_dtype, e.c + off * c_elem);
    }
    if (e.bias != nullptr) v += load_as_f32(e.bias_dtype, e.bias + j * e.bias_stride * b_elem);
    const int64_t doff = b * e.d_strides[0] + i * e.d_strides[1] + j * e.d_strides[2];
    store_from_f32(e.d_dtype, v, e.d + doff * d_elem);
  }
}

}  // namespace

dsk_status launch_gemm_epilogue(const GemmEpilogue& e, cudaStream_t stream) noexcept {
  const int64_t total = e.batch * e.m * e.n;
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(elementwise_grid(total, &blocks));
  gemm_epilogue_kernel<<<blocks, kElementwiseBlock, 0, stream>>>(e, total);
  return check_launch("gemm epilogue");
}

}  // namespace cuda
}  // namespace dsk
