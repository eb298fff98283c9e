// RMSNorm kernels: a group of GROUP threads (one warp, or the whole 256-thread block for wide
// rows) per row, grid-stride over rows.
//
// Pass 1: each thread walks its elements (lane, lane + GROUP, ... or groups of four with VEC),
// forms h = x (or x + residual, stored to residual_out rounded to its dtype and used rounded), and
// sums h^2 in f32; the partial sums are added by a shuffle tree within each warp, then warp by warp
// in order. Pass 2: y = h * (1 / sqrt(mean + eps)) * w, re-reading h (the thread's own elements,
// L1/L2-resident). The sum's order differs from the CPU's (16 lanes), hence the tolerance in
// docs/ops/norm.md; everything else is the same f32 operations.
#include <cuda_runtime_api.h>

#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/norm_host.h"
#include "cuda/ops/norm_io.cuh"
#include "cuda/ops/norm_kernels.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kBlock = 256;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

// h for element i of row `row`: x, or x + residual rounded to residual_out's dtype (stored).
template <bool ALIGNED>
__device__ __forceinline__ float pass1_element(const RmsnormArgs& a, int64_t row, int64_t i) {
  float h = load1<ALIGNED>(a.x, row * a.x.stride[0] + i * a.x.stride[1]);
  if (a.residual.data != nullptr) {
    h = __fadd_rn(
        h, load1<ALIGNED>(a.residual, row * a.residual.stride[0] + i * a.residual.stride[1]));
    store1<ALIGNED>(a.residual_out, row * a.residual_out.stride[0] + i * a.residual_out.stride[1],
                    h);
    h = round_to(a.residual_out.dtype, h);
  }
  return h;
}

template <int GROUP, bool VEC, bool ALIGNED>
__global__ void __launch_bounds__(kBlock) rmsnorm_kernel(RmsnormArgs a) {
  constexpr int kGroups = kBlock / GROUP;
  __shared__ float partial[kBlock / 32];
  const int lane = static_cast<int>(threadIdx.x) % GROUP;
  const int group = static_cast<int>(threadIdx.x) / GROUP;
  const bool has_residual = a.residual.data != nullptr;
  const float fd = static_cast<float>(a.d);
  // Every thread of a group runs the same rows, so the block-wide barriers below are uniform.
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kGroups + group; row < a.rows;
       row += static_cast<int64_t>(gridDim.x) * kGroups) {
    float acc = 0.0f;
    if (VEC) {
      for (int64_t i = static_cast<int64_t>(lane) * 4; i < a.d; i += GROUP * 4) {
        float h[4];
        load4(a.x, row * a.x.stride[0] + i, h);
        if (has_residual) {
          float r[4];
          load4(a.residual, row * a.residual.stride[0] + i, r);
#pragma unroll
          for (int k = 0; k < 4; ++k) h[k] = __fadd_rn(h[k], r[k]);
          store4(a.residual_out, row * a.residual_out.stride[0] + i, h);
#pragma unroll
          for (int k = 0; k < 4; ++k) h[k] = round_to(a.residual_out.dtype, h[k]);
        }
#pragma unroll
        for (int k = 0; k < 4; ++k) acc = __fadd_rn(acc, __fmul_rn(h[k], h[k]));
      }
    } else {
      for (int64_t i = lane; i < a.d; i += GROUP) {
        const float h = pass1_element<ALIGNED>(a, row, i);
        acc = __fadd_rn(acc, __fmul_rn(h, h));
      }
    }
    acc = warp_sum(acc);
    if (GROUP > 32) {
      const int warp = static_cast<int>(threadIdx.x) / 32;
      if (threadIdx.x % 32 == 0) partial[warp] = acc;
      __syncthreads();
      acc = partial[0];
#pragma unroll
      for (int w = 1; w < GROUP / 32; ++w) acc = __fadd_rn(acc, partial[w]);
      __syncthreads();  // partial is reused by the next row
    }
    const float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(acc, fd), a.eps)));
    const NormOperand& src = has_residual ? a.residual_out : a.x;
    if (VEC) {
      for (int64_t i = static_cast<int64_t>(lane) * 4; i < a.d; i += GROUP * 4) {
        float h[4];
        float w[4];
        load4(src, row * src.stride[0] + i, h);
        load4(a.weight, i, w);
#pragma unroll
        for (int k = 0; k < 4; ++k) h[k] = __fmul_rn(__fmul_rn(h[k], inv), w[k]);
        store4(a.y, row * a.y.stride[0] + i, h);
      }
    } else {
      for (int64_t i = lane; i < a.d; i += GROUP) {
        const float h = load1<ALIGNED>(src, row * src.stride[0] + i * src.stride[1]);
        const float w = load1<ALIGNED>(a.weight, i * a.weight.stride[0]);
        store1<ALIGNED>(a.y, row * a.y.stride[0] + i * a.y.stride[1],
                        __fmul_rn(__fmul_rn(h, inv), w));
      }
    }
  }
}

template <int GROUP, bool VEC, bool ALIGNED>
void launch(const RmsnormArgs& a, unsigned blocks, cudaStream_t stream) {
  rmsnorm_kernel<GROUP, VEC, ALIGNED><<<blocks, kBlock, 0, stream>>>(a);
}

}  // namespace

dsk_status launch_rmsnorm(const RmsnormArgs& a, void* stream_ptr) noexcept {
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const bool wide = a.d > 1024;
  const int64_t groups = wide ? 1 : kBlock / 32;
  int32_t sms = 1;
  DSK_RETURN_IF_FAILED(current_multiprocessor_count(&sms));
  const int64_t needed = (a.rows + groups - 1) / groups;
  const int64_t cap = static_cast<int64_t>(sms) * 16;
  const auto blocks = static_cast<unsigned>(needed < cap ? needed : cap);
  // The vector path: unit column strides, rows starting on 4-element boundaries, d % 4 == 0.
  const bool vec = a.d % 4 == 0 && rows_vectorizable(a.x, a.rows, a.d) &&
                   rows_vectorizable(a.residual, a.rows, a.d) &&
                   rows_vectorizable(a.y, a.rows, a.d) &&
                   rows_vectorizable(a.residual_out, a.rows, a.d) && a.weight.stride[0] == 1 &&
                   operand_aligned(a.weight, 4);
  const bool all_aligned = operand_aligned(a.x) && operand_aligned(a.residual) &&
                           operand_aligned(a.weight) && operand_aligned(a.y) &&
                           operand_aligned(a.residual_out);
  if (wide) {
    if (vec) {
      launch<kBlock, true, true>(a, blocks, stream);
    } else if (all_aligned) {
      launch<kBlock, false, true>(a, blocks, stream);
    } else {
      launch<kBlock, false, false>(a, blocks, stream);
    }
  } else {
    if (vec) {
      launch<32, true, true>(a, blocks, stream);
    } else if (all_aligned) {
      launch<32, false, true>(a, blocks, stream);
    } else {
      launch<32, false, false>(a, blocks, stream);
    }
  }
  return check_launch("rmsnorm");
}

}  // namespace cuda
}  // namespace dsk
