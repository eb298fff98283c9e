// SwiGLU kernel: grid-stride over the elements of [rows, n] (or over groups of four consecutive
// elements of a row when every operand allows vector access), each y = g / (1 + expf(-g)) * u in
// f32 (expf: CUDA's full-precision exp, within 2 ulp; the CPU uses std::exp, hence the tolerance
// in docs/ops/norm.md).
#include <cuda_runtime_api.h>

#include <type_traits>

#include "cuda/error.h"
#include "cuda/ops/launch.h"
#include "cuda/ops/norm_host.h"
#include "cuda/ops/norm_io.cuh"
#include "cuda/ops/norm_kernels.h"

namespace dsk {
namespace cuda {
namespace {

__device__ __forceinline__ float swiglu_value(float g, float u) {
  const float silu = __fdiv_rn(g, __fadd_rn(1.0f, expf(-g)));
  return __fmul_rn(silu, u);
}

// VEC: each index k covers elements 4k .. 4k + 3 of the row-major order (n % 4 == 0).
template <bool VEC, bool ALIGNED, bool NARROW>
__global__ void swiglu_kernel(SwigluArgs a, int64_t count) {
  using Index = typename std::conditional<NARROW, uint32_t, uint64_t>::type;
  const Index cols = static_cast<Index>(VEC ? a.n / 4 : a.n);
  for (int64_t k = grid_start(); k < count; k += grid_step()) {
    const Index row = static_cast<Index>(k) / cols;
    const auto col = static_cast<int64_t>(static_cast<Index>(k) - row * cols);
    const auto r = static_cast<int64_t>(row);
    if (VEC) {
      float g[4];
      float u[4];
      load4(a.gate, r * a.gate.stride[0] + col * 4, g);
      load4(a.up, r * a.up.stride[0] + col * 4, u);
#pragma unroll
      for (int j = 0; j < 4; ++j) g[j] = swiglu_value(g[j], u[j]);
      store4(a.y, r * a.y.stride[0] + col * 4, g);
    } else {
      const float g = load1<ALIGNED>(a.gate, r * a.gate.stride[0] + col * a.gate.stride[1]);
      const float u = load1<ALIGNED>(a.up, r * a.up.stride[0] + col * a.up.stride[1]);
      store1<ALIGNED>(a.y, r * a.y.stride[0] + col * a.y.stride[1], swiglu_value(g, u));
    }
  }
}

template <bool VEC, bool ALIGNED>
dsk_status launch(const SwigluArgs& a, int64_t count, cudaStream_t stream) {
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(elementwise_grid(count, &blocks));
  if (narrow_indices(count)) {
    swiglu_kernel<VEC, ALIGNED, true><<<blocks, kElementwiseBlock, 0, stream>>>(a, count);
  } else {
    swiglu_kernel<VEC, ALIGNED, false><<<blocks, kElementwiseBlock, 0, stream>>>(a, count);
  }
  return check_launch("swiglu");
}

}  // namespace

dsk_status launch_swiglu(const SwigluArgs& a, void* stream_ptr) noexcept {
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t count = a.rows * a.n;
  const bool vec = a.n % 4 == 0 && rows_vectorizable(a.gate, a.rows, a.n) &&
                   rows_vectorizable(a.up, a.rows, a.n) && rows_vectorizable(a.y, a.rows, a.n);
  if (vec) return launch<true, true>(a, count / 4, stream);
  if (operand_aligned(a.gate) && operand_aligned(a.up) && operand_aligned(a.y)) {
    return launch<false, true>(a, count, stream);
  }
  return launch<false, false>(a, count, stream);
}

}  // namespace cuda
}  // namespace dsk
