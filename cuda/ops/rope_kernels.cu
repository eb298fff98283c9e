// RoPE kernel: grid-stride over the pairs of x [T, H, D] (T * H * D/2 of them), innermost the pair
// index, so neighbouring threads read neighbouring elements. Each thread loads its token's
// position, the table entry (c, s) and the pair (a, b), and writes
//   a' = a * c - b * s,  b' = a * s + b * c
// with explicitly rounded f32 operations (__fmul_rn, __fsub_rn, __fadd_rn: never contracted into
// FMA; this file is also built with -fmad=false), the same operations in the same order as the
// CPU reference, so the results are bitwise equal. A position outside [0, P) leaves its pairs
// unwritten and records the lowest such token in a flag read back after the kernel.
#include <cuda_runtime_api.h>

#include <type_traits>

#include "cuda/error.h"
#include "cuda/ops/index_flag.h"
#include "cuda/ops/launch.h"
#include "cuda/ops/norm_host.h"
#include "cuda/ops/norm_io.cuh"
#include "cuda/ops/norm_kernels.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cuda {
namespace {

template <bool ALIGNED>
__device__ __forceinline__ int64_t load_position(const NormOperand& p, int64_t t) {
  const char* q = p.data + t * p.stride[0] * p.elem_size;
  const uint64_t w = load_element<ALIGNED>(q, p.elem_size);
  if (p.elem_size == 4) return static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(w)));
  return static_cast<int64_t>(w);
}

template <bool ALIGNED, bool NARROW>
__global__ void rope_kernel(RopeArgs a, int64_t count, unsigned long long* bad_token) {
  using Index = typename std::conditional<NARROW, uint32_t, uint64_t>::type;
  const auto half = static_cast<Index>(a.half);
  const auto heads = static_cast<Index>(a.heads);
  for (int64_t k = grid_start(); k < count; k += grid_step()) {
    Index rest = static_cast<Index>(k);
    const Index next = rest / half;
    const auto i = static_cast<int64_t>(rest - next * half);
    rest = next;
    const Index tok = rest / heads;
    const auto h = static_cast<int64_t>(rest - tok * heads);
    const auto t = static_cast<int64_t>(tok);
    const int64_t p = load_position<ALIGNED>(a.positions, t);
    if (p < 0 || p >= a.n_positions) {
      atomicMin(bad_token, static_cast<unsigned long long>(t));
      continue;
    }
    // cos/sin are f32; ALIGNED covers them too.
    const float c = load1<ALIGNED>(a.cos, p * a.cos.stride[0] + i * a.cos.stride[1]);
    const float s = load1<ALIGNED>(a.sin, p * a.sin.stride[0] + i * a.sin.stride[1]);
    const int64_t ia = a.layout == DSK_ROPE_INTERLEAVED ? 2 * i : i;
    const int64_t ib = a.layout == DSK_ROPE_INTERLEAVED ? 2 * i + 1 : i + a.half;
    const int64_t xrow = t * a.x.stride[0] + h * a.x.stride[1];
    const int64_t yrow = t * a.y.stride[0] + h * a.y.stride[1];
    const float va = load1<ALIGNED>(a.x, xrow + ia * a.x.stride[2]);
    const float vb = load1<ALIGNED>(a.x, xrow + ib * a.x.stride[2]);
    const float ra = __fsub_rn(__fmul_rn(va, c), __fmul_rn(vb, s));
    const float rb = __fadd_rn(__fmul_rn(va, s), __fmul_rn(vb, c));
    store1<ALIGNED>(a.y, yrow + ia * a.y.stride[2], ra);
    store1<ALIGNED>(a.y, yrow + ib * a.y.stride[2], rb);
  }
}

}  // namespace

dsk_status launch_rope(const RopeArgs& a, void* stream_ptr) noexcept {
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t count = a.tokens * a.heads * a.half;
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(elementwise_grid(count, &blocks));
  const bool aligned = operand_aligned(a.x) && operand_aligned(a.positions) &&
                       operand_aligned(a.cos) && operand_aligned(a.sin) && operand_aligned(a.y);
  // The lowest token with a bad position (index_flag.h).
  IndexFlag flag(stream);
  DSK_RETURN_IF_FAILED(flag.init());
  if (aligned && narrow_indices(count)) {
    rope_kernel<true, true><<<blocks, kElementwiseBlock, 0, stream>>>(a, count, flag.get());
  } else if (aligned) {
    rope_kernel<true, false><<<blocks, kElementwiseBlock, 0, stream>>>(a, count, flag.get());
  } else if (narrow_indices(count)) {
    rope_kernel<false, true><<<blocks, kElementwiseBlock, 0, stream>>>(a, count, flag.get());
  } else {
    rope_kernel<false, false><<<blocks, kElementwiseBlock, 0, stream>>>(a, count, flag.get());
  }
  DSK_RETURN_IF_FAILED(check_launch("rope"));
  int64_t t = -1;
  DSK_RETURN_IF_FAILED(flag.read(&t));
  if (t < 0) return DSK_OK;
  int64_t value = 0;
  DSK_RETURN_IF_FAILED(
      read_device_index(a.positions.data + t * a.positions.stride[0] * a.positions.elem_size,
                        a.positions.elem_size, stream, &value));
  return fail(DSK_ERR_INVALID_ARGUMENT,
              "positions[%lld] = %lld, expected a position in [0, %lld) (the rows of cos and sin)",
              static_cast<long long>(t), static_cast<long long>(value),
              static_cast<long long>(a.n_positions));
}

}  // namespace cuda
}  // namespace dsk
