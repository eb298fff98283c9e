// Kernels of the FP8 block quantization family. The scale math and the rounding are
// common/fp8_block.h and common/convert.h, the code the CPU reference runs, and this file is built
// with -fmad=false (cuda/CMakeLists.txt), so q and the scales equal the CPU's bit for bit: the
// amax is a max (order-free; NaN propagates), the scale one IEEE division, q one IEEE division.
#include <cuda_runtime_api.h>
#include <string.h>

#include "common/convert.h"
#include "common/fp8_block.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/fp8_kernels.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kActThreads = 128;     // one thread per element of a 1 x 128 tile
constexpr int kWeightThreads = 256;  // a 128 x 128 block in 64 passes
constexpr int kCopyThreads = 256;

__device__ __forceinline__ const char* at(const Fp8Mat& m, int64_t r, int64_t c, int64_t elem) {
  return m.data + (r * m.s0 + c * m.s1) * elem;
}

__device__ __forceinline__ char* at_mut(const Fp8Mat& m, int64_t r, int64_t c, int64_t elem) {
  return m.data + (r * m.s0 + c * m.s1) * elem;
}

__device__ __forceinline__ float warp_amax(float m) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fp8::nan_max(m, __shfl_xor_sync(0xFFFFFFFFu, m, o));
  return m;
}

// Scale tensors may sit at any byte offset (a borrowed view), so they are accessed by memcpy.
__device__ __forceinline__ void store_f32(const Fp8Mat& s, int64_t r, int64_t c, float v) {
  memcpy(at_mut(s, r, c, 4), &v, sizeof(v));
}

__device__ __forceinline__ float load_f32(const Fp8Mat& s, int64_t r, int64_t c) {
  float v;
  memcpy(&v, at(s, r, c, 4), sizeof(v));
  return v;
}

// The block-wide amax of the per-thread partials m (NaN-propagating), its scale stored at (r, c) of
// s by thread 0 and returned to every thread. Called by all threads of the block (THREADS of them)
// in uniform control flow; the shared slots may be reused as soon as it returns.
template <int THREADS>
__device__ __forceinline__ float block_scale(float m, const Fp8Mat& s, int64_t r, int64_t c,
                                             bool pow2) {
  __shared__ float warp_max[THREADS / 32];
  __shared__ float scale_shared;
  m = warp_amax(m);
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float amax = warp_max[0];
#pragma unroll
    for (int w = 1; w < THREADS / 32; ++w) amax = fp8::nan_max(amax, warp_max[w]);
    const float scale = fp8::tile_scale(amax, pow2);
    scale_shared = scale;
    store_f32(s, r, c, scale);
  }
  __syncthreads();
  const float scale = scale_shared;
  __syncthreads();  // warp_max and scale_shared are reused by the next tile
  return scale;
}

// One 1 x 128 tile per block iteration: thread j holds element kb * 128 + j of row r.
template <int32_t ID>
__global__ void __launch_bounds__(kActThreads)
    quant_act_kernel(Fp8Mat x, Fp8Mat q, Fp8Mat s, int64_t tiles, int64_t kb_n, bool pow2) {
  const int64_t elem = static_cast<int64_t>(dtype_id_size(ID));
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t r = t / kb_n;
    const int64_t kb = t - r * kb_n;
    const int64_t c = kb * fp8::kBlock + threadIdx.x;
    const bool inside = c < x.cols;
    const float v = inside ? load_as_f32(ID, at(x, r, c, elem)) : 0.0f;
    const float scale = block_scale<kActThreads>(fp8::abs_bits(v), s, r, kb, pow2);
    if (inside) *reinterpret_cast<uint8_t*>(at_mut(q, r, c, 1)) = fp8::quantize(v, scale);
  }
}

// One 128 x 128 block per block iteration, read twice (amax, then quantize).
template <int32_t ID>
__global__ void __launch_bounds__(kWeightThreads)
    quant_weight_kernel(Fp8Mat x, Fp8Mat q, Fp8Mat s, int64_t blocks, int64_t kb_n, bool pow2) {
  const int64_t elem = static_cast<int64_t>(dtype_id_size(ID));
  constexpr int kPerBlock = static_cast<int>(fp8::kBlock * fp8::kBlock);
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    const int64_t rb = b / kb_n;
    const int64_t kb = b - rb * kb_n;
    const int64_t r0 = rb * fp8::kBlock;
    const int64_t c0 = kb * fp8::kBlock;
    float m = 0.0f;
    for (int i = threadIdx.x; i < kPerBlock; i += kWeightThreads) {
      const int64_t r = r0 + (i >> 7);
      const int64_t c = c0 + (i & 127);
      if (r < x.rows && c < x.cols) m = fp8::amax_step(m, load_as_f32(ID, at(x, r, c, elem)));
    }
    const float scale = block_scale<kWeightThreads>(m, s, rb, kb, pow2);
    for (int i = threadIdx.x; i < kPerBlock; i += kWeightThreads) {
      const int64_t r = r0 + (i >> 7);
      const int64_t c = c0 + (i & 127);
      if (r < x.rows && c < x.cols) {
        *reinterpret_cast<uint8_t*>(at_mut(q, r, c, 1)) =
            fp8::quantize(load_as_f32(ID, at(x, r, c, elem)), scale);
      }
    }
  }
}

// x = q * scale, one element per grid-stride step.
template <int32_t OUT>
__global__ void dequant_kernel(Fp8Mat q, Fp8Mat s, Fp8Mat x, int64_t n, bool is_weight) {
  const int64_t elem = static_cast<int64_t>(dtype_id_size(OUT));
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / x.cols;
    const int64_t c = i - r * x.cols;
    const float scale = load_f32(s, is_weight ? r / fp8::kBlock : r, c / fp8::kBlock);
    const uint8_t code = *reinterpret_cast<const uint8_t*>(at(q, r, c, 1));
    store_from_f32(OUT, fp8::dequantize(code, scale), at_mut(x, r, c, elem));
  }
}

__global__ void f32_copy2d_kernel(Fp8Mat src, Fp8Mat dst, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / src.cols;
    const int64_t c = i - r * src.cols;
    store_f32(dst, r, c, load_f32(src, r, c));
  }
}

// Blocks for `work` independent units: enough for several waves, never more than needed.
dsk_status grid_for(int64_t work, int per_sm, unsigned* blocks) {
  int32_t sms = 1;
  DSK_RETURN_IF_FAILED(current_multiprocessor_count(&sms));
  const int64_t cap = static_cast<int64_t>(sms) * per_sm;
  *blocks = static_cast<unsigned>(work < cap ? work : cap);
  return DSK_OK;
}

template <int32_t ID>
void launch_quant_typed(unsigned blocks, cudaStream_t stream, const Fp8Mat& x, const Fp8Mat& q,
                        const Fp8Mat& s, bool is_weight, bool pow2, int64_t units, int64_t kb_n) {
  if (is_weight) {
    quant_weight_kernel<ID><<<blocks, kWeightThreads, 0, stream>>>(x, q, s, units, kb_n, pow2);
  } else {
    quant_act_kernel<ID><<<blocks, kActThreads, 0, stream>>>(x, q, s, units, kb_n, pow2);
  }
}

template <int32_t OUT>
void launch_dequant_typed(unsigned blocks, cudaStream_t stream, const Fp8Mat& q, const Fp8Mat& s,
                          const Fp8Mat& x, int64_t n, bool is_weight) {
  dequant_kernel<OUT><<<blocks, kCopyThreads, 0, stream>>>(q, s, x, n, is_weight);
}

}  // namespace

Fp8Mat fp8_mat(const DLTensor* t) noexcept {
  const fp8::View2d v = fp8::view_2d(t);
  return Fp8Mat{static_cast<char*>(t->data) + t->byte_offset,
                dtype_id_of(t->dtype),
                v.rows,
                v.cols,
                v.s0,
                v.s1};
}

dsk_status launch_fp8_quant(const Fp8Mat& x, const Fp8Mat& q, const Fp8Mat& scales, bool is_weight,
                            bool pow2, cudaStream_t stream) noexcept {
  const int64_t kb_n = fp8::blocks(x.cols);
  const int64_t units = (is_weight ? fp8::blocks(x.rows) : x.rows) * kb_n;
  if (units == 0) return DSK_OK;
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(grid_for(units, is_weight ? 8 : 16, &blocks));
  switch (x.dtype) {
    case DSK_DTYPE_F32:
      launch_quant_typed<DSK_DTYPE_F32>(blocks, stream, x, q, scales, is_weight, pow2, units, kb_n);
      break;
    case DSK_DTYPE_F16:
      launch_quant_typed<DSK_DTYPE_F16>(blocks, stream, x, q, scales, is_weight, pow2, units, kb_n);
      break;
    case DSK_DTYPE_BF16:
      launch_quant_typed<DSK_DTYPE_BF16>(blocks, stream, x, q, scales, is_weight, pow2, units,
                                         kb_n);
      break;
    default:
      return fail(DSK_ERR_INTERNAL, "quant_fp8: unexpected input dtype id %d", x.dtype);
  }
  return check_launch("quant_fp8");
}

dsk_status launch_fp8_dequant(const Fp8Mat& q, const Fp8Mat& scales, const Fp8Mat& x,
                              bool is_weight, cudaStream_t stream) noexcept {
  const int64_t n = x.rows * x.cols;
  if (n == 0) return DSK_OK;
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(grid_for((n + kCopyThreads - 1) / kCopyThreads, 32, &blocks));
  switch (x.dtype) {
    case DSK_DTYPE_F32:
      launch_dequant_typed<DSK_DTYPE_F32>(blocks, stream, q, scales, x, n, is_weight);
      break;
    case DSK_DTYPE_F16:
      launch_dequant_typed<DSK_DTYPE_F16>(blocks, stream, q, scales, x, n, is_weight);
      break;
    case DSK_DTYPE_BF16:
      launch_dequant_typed<DSK_DTYPE_BF16>(blocks, stream, q, scales, x, n, is_weight);
      break;
    default:
      return fail(DSK_ERR_INTERNAL, "dequant_fp8: unexpected output dtype id %d", x.dtype);
  }
  return check_launch("dequant_fp8");
}

dsk_status launch_f32_copy2d(const Fp8Mat& src, const Fp8Mat& dst, cudaStream_t stream) noexcept {
  const int64_t n = src.rows * src.cols;
  if (n == 0) return DSK_OK;
  unsigned blocks = 0;
  DSK_RETURN_IF_FAILED(grid_for((n + kCopyThreads - 1) / kCopyThreads, 32, &blocks));
  f32_copy2d_kernel<<<blocks, kCopyThreads, 0, stream>>>(src, dst, n);
  return check_launch("fp8 scale copy");
}

}  // namespace cuda
}  // namespace dsk
