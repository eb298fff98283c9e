// Softmax / log_softmax over rows [R, N] (launch_softmax in softmax_kernels.h).
//
// Two passes over each row. Pass 1 reads z = f32(x) * inv_temperature once and keeps an online
// (max m, sum s of exp(z - m)) pair per thread, merged across the warp / block in a fixed order
// (so results are deterministic run to run). Pass 2 reads z again and writes
//   softmax:     expf(z - m) / s          log_softmax: (z - m) - logf(s)
// rounded once to y's dtype (lib/common/convert.h). Rows whose maximum is not finite (NaN, +inf,
// or all -inf) are written as NaN, which is what the CPU reference's formulas give there.
// The summation order differs from the CPU's (index order) and expf is not std::exp, so results
// agree within a tolerance, not bitwise (docs/ops/softmax.md).
//
// Thread mapping: rows of N <= kWarpRowMax use one warp per row (8 rows per 256-thread block);
// longer rows one block per row (256 or 1024 threads). Grids stride over rows. Misaligned data
// (an odd byte_offset) runs one generic instantiation with byte-wise element access.
#include <cuda_runtime.h>
#include <math_constants.h>
#include <stdint.h>

#include "common/convert.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/elem_io.cuh"
#include "cuda/ops/softmax_kernels.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int64_t kWarpRowMax = 2048;

struct SoftmaxArgs {
  const char* x;
  char* y;
  int64_t rows;
  int64_t n;
  int64_t x_row;  // strides in elements
  int64_t x_col;
  int64_t y_row;
  int64_t y_col;
  float inv_temperature;
  int32_t is_log;
  int32_t x_id;  // run-time dtypes, used by the <0, 0> (misaligned) instantiation
  int32_t y_id;
};

template <int32_t XID>
__device__ __forceinline__ float load_z(const SoftmaxArgs& a, int64_t r, int64_t j) {
  return load_elem<XID>(a.x, r * a.x_row + j * a.x_col, a.x_id) * a.inv_temperature;
}

// Adds z to a thread's (m, s): s = sum of exp(z_i - m) over what it has seen. -inf adds nothing;
// NaN makes m NaN for good. Sums of rows whose final m is not finite are never used.
__device__ __forceinline__ void online_add(float& m, float& s, float z) {
  if (z > m) {
    s = s * expf(m - z) + 1.0f;  // m == -inf: expf(-inf) == 0
    m = z;
  } else if (z != z) {
    m = z;
  } else if (z > -CUDART_INF_F) {
    s += expf(z - m);
  }
}

// Merges (m2, s2) into (m, s). A side whose max is the merged max keeps its sum as is, which also
// keeps (-inf, 0) + (-inf, 0) at (-inf, 0) instead of 0 * expf(NaN).
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  float mm;
  if (m != m || m2 != m2) {
    mm = CUDART_NAN_F;
  } else {
    mm = m > m2 ? m : m2;
  }
  const float a = m == mm ? s : s * expf(m - mm);
  const float b = m2 == mm ? s2 : s2 * expf(m2 - mm);
  m = mm;
  s = a + b;
}

__device__ __forceinline__ void warp_merge(float& m, float& s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m2 = __shfl_down_sync(0xFFFFFFFFu, m, offset);
    const float s2 = __shfl_down_sync(0xFFFFFFFFu, s, offset);
    merge(m, s, m2, s2);
  }
}

// Pass 2 over the columns [first, n) stepping `step`, given the row's (m, s).
template <int32_t XID, int32_t YID>
__device__ __forceinline__ void write_row(const SoftmaxArgs& a, int64_t r, int64_t first,
                                          int64_t step, float m, float s) {
  const bool finite = isfinite(m);
  const float log_s = logf(s);
  for (int64_t j = first; j < a.n; j += step) {
    float v = CUDART_NAN_F;
    if (finite) {
      const float z = load_z<XID>(a, r, j);
      v = a.is_log ? (z - m) - log_s : expf(z - m) / s;
    }
    store_elem<YID>(a.y, r * a.y_row + j * a.y_col, v, a.y_id);
  }
}

template <int32_t XID, int32_t YID>
__global__ void softmax_warp_kernel(SoftmaxArgs a) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int64_t lane = threadIdx.x % 32;
  for (int64_t r = warp; r < a.rows; r += warps) {
    float m = -CUDART_INF_F;
    float s = 0.0f;
    for (int64_t j = lane; j < a.n; j += 32) online_add(m, s, load_z<XID>(a, r, j));
    warp_merge(m, s);
    m = __shfl_sync(0xFFFFFFFFu, m, 0);
    s = __shfl_sync(0xFFFFFFFFu, s, 0);
    write_row<XID, YID>(a, r, lane, 32, m, s);
  }
}

template <int32_t XID, int32_t YID, int BLOCK>
__global__ void __launch_bounds__(BLOCK) softmax_block_kernel(SoftmaxArgs a) {
  constexpr int kWarps = BLOCK / 32;
  __shared__ float part_m[kWarps];
  __shared__ float part_s[kWarps];
  __shared__ float row_m;
  __shared__ float row_s;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    float m = -CUDART_INF_F;
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < a.n; j += BLOCK) {
      online_add(m, s, load_z<XID>(a, r, j));
    }
    warp_merge(m, s);
    if (lane == 0) {
      part_m[warp] = m;
      part_s[warp] = s;
    }
    __syncthreads();
    if (warp == 0) {
      m = lane < kWarps ? part_m[lane] : -CUDART_INF_F;
      s = lane < kWarps ? part_s[lane] : 0.0f;
      warp_merge(m, s);
      if (lane == 0) {
        row_m = m;
        row_s = s;
      }
    }
    __syncthreads();
    m = row_m;
    s = row_s;
    write_row<XID, YID>(a, r, threadIdx.x, BLOCK, m, s);
    // The next row's partials must not overwrite these before every thread has read them.
    __syncthreads();
  }
}

unsigned grid_for(int64_t units, int64_t per_sm_cap) {
  int32_t sms = 1;
  if (current_multiprocessor_count(&sms) != DSK_OK) sms = 1;
  const int64_t cap = static_cast<int64_t>(sms) * per_sm_cap;
  return static_cast<unsigned>(units < cap ? units : cap);
}

template <int32_t XID, int32_t YID>
void launch_typed(const SoftmaxArgs& a, cudaStream_t stream) {
  if (a.n <= kWarpRowMax) {
    constexpr int kThreads = 256;
    const int64_t blocks = (a.rows + kThreads / 32 - 1) / (kThreads / 32);
    softmax_warp_kernel<XID, YID><<<grid_for(blocks, 8), kThreads, 0, stream>>>(a);
  } else if (a.n < 16384) {
    softmax_block_kernel<XID, YID, 256><<<grid_for(a.rows, 8), 256, 0, stream>>>(a);
  } else {
    softmax_block_kernel<XID, YID, 1024><<<grid_for(a.rows, 2), 1024, 0, stream>>>(a);
  }
}

template <int32_t XID>
void launch_y(int32_t y_id, const SoftmaxArgs& a, cudaStream_t stream) {
  switch (y_id) {
    case DSK_DTYPE_F16:
      launch_typed<XID, DSK_DTYPE_F16>(a, stream);
      break;
    case DSK_DTYPE_BF16:
      launch_typed<XID, DSK_DTYPE_BF16>(a, stream);
      break;
    default:
      launch_typed<XID, DSK_DTYPE_F32>(a, stream);
      break;
  }
}

}  // namespace

dsk_status launch_softmax(const TensorInfo& x, const TensorInfo& y, float inv_temperature,
                          bool is_log, cudaStream_t stream) noexcept {
  if (!dtype_id_is_float(x.dtype_id) || x.elem_size < 2 || !dtype_id_is_float(y.dtype_id) ||
      y.elem_size < 2) {
    return fail(DSK_ERR_UNSUPPORTED, "softmax: x and y must be f32, f16 or bf16");
  }
  SoftmaxArgs a{};
  a.x = x.data;
  a.y = y.data;
  a.rows = x.shape[0];
  a.n = x.shape[1];
  a.x_row = x.strides[0];
  a.x_col = x.strides[1];
  a.y_row = y.strides[0];
  a.y_col = y.strides[1];
  a.inv_temperature = inv_temperature;
  a.is_log = is_log ? 1 : 0;
  a.x_id = x.dtype_id;
  a.y_id = y.dtype_id;
  if (!is_aligned(x.data, static_cast<size_t>(x.elem_size)) ||
      !is_aligned(y.data, static_cast<size_t>(y.elem_size))) {
    softmax_block_kernel<0, 0, 256><<<grid_for(a.rows, 8), 256, 0, stream>>>(a);
    return check_launch("softmax");
  }
  switch (x.dtype_id) {
    case DSK_DTYPE_F16:
      launch_y<DSK_DTYPE_F16>(y.dtype_id, a, stream);
      break;
    case DSK_DTYPE_BF16:
      launch_y<DSK_DTYPE_BF16>(y.dtype_id, a, stream);
      break;
    default:
      launch_y<DSK_DTYPE_F32>(y.dtype_id, a, stream);
      break;
  }
  return check_launch("softmax");
}

}  // namespace cuda
}  // namespace dsk
