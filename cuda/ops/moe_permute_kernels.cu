// MoE permute and combine kernels. Built with -fmad=false (cuda/CMakeLists.txt) so that every f32
// operation is the CPU reference's (lib/cpu/moe_permute.cpp) and the results are the same bits:
//  - permute to fp8: per 1 x 128 tile of a gathered row, amax (order-free, NaN-propagating), the
//    scale and q from common/fp8_block.h, as dsk_quant_fp8_act; padding rows quantize a zero row
//    (q = 0, scale 0). Float outputs: a plain copy (16-byte vectors when aligned) or convert.h's
//    element conversion.
//  - combine: one thread per output element (8 consecutive elements per thread on the vector
//    path): acc = 0, acc += w[t, j] * y[dest[t, j], c] for j = 0 .. k-1 in order (the product
//    rounded, then the sum), then shared + acc, rounded once to out's dtype.
// One block column per row or token (grid x, grid-stride), the row's columns spread over grid y.
// Index values are read on the device: a bad sorted_rows value zeroes its row and a bad dest value
// skips its slot; the first is recorded for the next synchronize (cuda/deferred_error.h).
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "common/convert.h"
#include "common/fp8_block.h"
#include "cuda/error.h"
#include "cuda/ops/elem_io.cuh"
#include "cuda/ops/moe_index_io.cuh"
#include "cuda/ops/moe_permute_kernels.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kCopyThreads = 128;
constexpr int64_t kCopyUnitsPerThread = 4;  // 16-byte units
constexpr int kConvertThreads = 256;
constexpr int kQuantWarps = 8;  // one 1 x 128 tile per warp
constexpr int kQuantThreads = kQuantWarps * 32;
constexpr int kCombineThreads = 128;
constexpr int64_t kCombineVec = 8;  // elements per thread on the vector path
constexpr int64_t kMaxGridX = int64_t{1} << 20;

// The source row of sorted_rows[r]: its token's row of x, NULL for padding and for a bad value
// (recorded once, by the block column's first block).
__device__ __forceinline__ const char* source_row(const PermuteArgs& a, int64_t r, int64_t x_elem,
                                                  DeferredErrorRecord* record) {
  const int64_t s = load_i32<false>(a.rows + r * a.rows_s * 4);
  if (s < 0 || s > a.pad) {
    if (threadIdx.x == 0 && blockIdx.y == 0) {
      report_deferred(record, kDeferredMoeSortedRow, r, s, a.pad);
    }
    return nullptr;
  }
  return s == a.pad ? nullptr : a.x + (s / a.top_k) * a.x_s0 * x_elem;
}

// ---- float out ------------------------------------------------------------------------------

// Same dtype, unit column strides, every row 16-byte aligned with a multiple of 16 bytes.
__global__ void __launch_bounds__(kCopyThreads)
    permute_copy16_kernel(PermuteArgs a, int64_t units, int64_t elem, DeferredErrorRecord* record) {
  const int64_t chunk = kCopyThreads * kCopyUnitsPerThread;
  const int64_t u0 = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t u1 = u0 + chunk < units ? u0 + chunk : units;
  for (int64_t r = blockIdx.x; r < a.rows_n; r += gridDim.x) {
    const auto* src = reinterpret_cast<const uint4*>(source_row(a, r, elem, record));
    auto* dst = reinterpret_cast<uint4*>(a.out + r * a.out_s0 * elem);
    for (int64_t u = u0 + threadIdx.x; u < u1; u += kCopyThreads) {
      dst[u] = src != nullptr ? src[u] : make_uint4(0u, 0u, 0u, 0u);
    }
  }
}

// Element-wise: typed for two different naturally aligned dtypes of f32/f16/bf16 (through f32,
// as convert_element), SRC = DST = 0 for anything else (convert_element itself: equal dtypes copy
// the bytes). Zero rows are +0 (all bits clear) in every float dtype.
template <int32_t SRC, int32_t DST>
__global__ void __launch_bounds__(kConvertThreads)
    permute_convert_kernel(PermuteArgs a, DeferredErrorRecord* record) {
  const auto xe = static_cast<int64_t>(dtype_id_size(a.x_dtype));
  const auto oe = static_cast<int64_t>(dtype_id_size(a.out_dtype));
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kConvertThreads + threadIdx.x;
  for (int64_t r = blockIdx.x; r < a.rows_n; r += gridDim.x) {
    const char* src = source_row(a, r, xe, record);
    if (c >= a.d) continue;
    char* dst = a.out + r * a.out_s0 * oe;
    if constexpr (SRC == 0) {
      char* p = dst + c * a.out_s1 * oe;
      if (src != nullptr) {
        convert_element(a.x_dtype, src + c * a.x_s1 * xe, a.out_dtype, p);
      } else {
        store_from_f32(a.out_dtype, 0.0f, p);
      }
    } else {
      const float v = src != nullptr ? load_elem<SRC>(src, c * a.x_s1, a.x_dtype) : 0.0f;
      store_elem<DST>(dst, c * a.out_s1, v, a.out_dtype);
    }
  }
}

// ---- fp8 out --------------------------------------------------------------------------------

// Four consecutive elements at p (aligned to 4 elements) as f32.
template <int32_t ID>
__device__ __forceinline__ void load4(const char* p, float* v) {
  if constexpr (ID == DSK_DTYPE_F32) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    v[0] = f.x;
    v[1] = f.y;
    v[2] = f.z;
    v[3] = f.w;
  } else {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const uint16_t h[4] = {static_cast<uint16_t>(u.x & 0xFFFFu), static_cast<uint16_t>(u.x >> 16),
                           static_cast<uint16_t>(u.y & 0xFFFFu), static_cast<uint16_t>(u.y >> 16)};
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = ID == DSK_DTYPE_BF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
  }
}

__device__ __forceinline__ float warp_amax(float m) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fp8::nan_max(m, __shfl_xor_sync(0xFFFFFFFFu, m, o));
  return m;
}

// Warp w of block (x, y) quantizes tile y * kQuantWarps + w of its rows; lane l holds columns
// tile * 128 + 4 l .. + 3. XID = 0: any float dtype or alignment of x, element by element (typed
// XID: x aligned to its element size). VEC: x and q have unit column strides and 4-element aligned
// rows (vector loads of x, one 4-byte store of q).
template <int32_t XID, bool VEC>
__global__ void __launch_bounds__(kQuantThreads)
    permute_quant_kernel(PermuteArgs a, int64_t tiles, DeferredErrorRecord* record) {
  const auto xe = static_cast<int64_t>(dtype_id_size(XID == 0 ? a.x_dtype : XID));
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t tile = static_cast<int64_t>(blockIdx.y) * kQuantWarps + (threadIdx.x >> 5);
  const int64_t c0 = tile * fp8::kBlock + 4 * lane;
  const bool whole = VEC && c0 + 4 <= a.d;
  for (int64_t r = blockIdx.x; r < a.rows_n; r += gridDim.x) {
    const char* src = source_row(a, r, xe, record);
    if (tile >= tiles) continue;  // the same for the whole warp
    float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (src != nullptr) {
      if (whole) {
        load4<XID>(src + c0 * xe, v);
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          if (c0 + i < a.d) v[i] = load_elem<XID>(src, (c0 + i) * a.x_s1, a.x_dtype);
        }
      }
    }
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) m = fp8::amax_step(m, v[i]);
    const float scale = fp8::tile_scale(warp_amax(m), a.pow2 != 0);
    if (lane == 0) {
      memcpy(a.scales + (r * a.scales_s0 + tile * a.scales_s1) * 4, &scale, sizeof(scale));
    }
    uint8_t q[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) q[i] = fp8::quantize(v[i], scale);
    char* qrow = a.out + r * a.out_s0;
    if (whole) {
      const uint32_t packed = static_cast<uint32_t>(q[0]) | (static_cast<uint32_t>(q[1]) << 8) |
                              (static_cast<uint32_t>(q[2]) << 16) |
                              (static_cast<uint32_t>(q[3]) << 24);
      *reinterpret_cast<uint32_t*>(qrow + c0) = packed;
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (c0 + i < a.d) *reinterpret_cast<uint8_t*>(qrow + (c0 + i) * a.out_s1) = q[i];
      }
    }
  }
}

// ---- combine ----------------------------------------------------------------------------------

// Eight consecutive elements at p (16-byte aligned) as f32, and back.
template <int32_t ID>
__device__ __forceinline__ void load8(const char* p, float* v) {
  if constexpr (ID == DSK_DTYPE_F32) {
    const float4 f0 = reinterpret_cast<const float4*>(p)[0];
    const float4 f1 = reinterpret_cast<const float4*>(p)[1];
    v[0] = f0.x;
    v[1] = f0.y;
    v[2] = f0.z;
    v[3] = f0.w;
    v[4] = f1.x;
    v[5] = f1.y;
    v[6] = f1.z;
    v[7] = f1.w;
  } else {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const auto h = static_cast<uint16_t>((w[i / 2] >> (16 * (i % 2))) & 0xFFFFu);
      v[i] = ID == DSK_DTYPE_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
}

template <int32_t ID>
__device__ __forceinline__ void store8(char* p, const float* v) {
  if constexpr (ID == DSK_DTYPE_F32) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t lo = ID == DSK_DTYPE_BF16 ? f32_to_bf16(v[2 * i]) : f32_to_f16(v[2 * i]);
      const uint16_t hi =
          ID == DSK_DTYPE_BF16 ? f32_to_bf16(v[2 * i + 1]) : f32_to_f16(v[2 * i + 1]);
      w[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
    }
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

__device__ __forceinline__ float load_f32_any(const char* p) {
  float v;
  memcpy(&v, p, sizeof(v));
  return v;
}

// The row of y of slot (t, j), or -1 to skip it (dest -1, or a bad value: recorded once).
__device__ __forceinline__ int64_t slot_row(const CombineArgs& a, int64_t t, int64_t j,
                                            DeferredErrorRecord* record) {
  const int64_t row = load_i32<false>(a.dest + (t * a.dest_s0 + j * a.dest_s1) * 4);
  if (row < -1 || row >= a.y_rows) {
    if (threadIdx.x == 0 && blockIdx.y == 0) {
      report_deferred(record, kDeferredMoeDest, t, (j << 32) | a.y_rows, row);
    }
    return -1;
  }
  return row;
}

// Vector path: y, shared (out's dtype) and out with unit column strides and 16-byte aligned rows;
// thread g of the token handles columns 8 g .. 8 g + 7 (a partial group element by element).
template <int32_t YID, int32_t OID>
__global__ void __launch_bounds__(kCombineThreads)
    combine_vec_kernel(CombineArgs a, DeferredErrorRecord* record) {
  constexpr int64_t ye = YID == DSK_DTYPE_F32 ? 4 : 2;
  constexpr int64_t oe = OID == DSK_DTYPE_F32 ? 4 : 2;
  const int64_t c0 =
      (static_cast<int64_t>(blockIdx.y) * kCombineThreads + threadIdx.x) * kCombineVec;
  const bool whole = c0 + kCombineVec <= a.d;
  for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
    float acc[kCombineVec];
#pragma unroll
    for (int i = 0; i < kCombineVec; ++i) acc[i] = 0.0f;
    for (int64_t j = 0; j < a.k; ++j) {
      const int64_t row = slot_row(a, t, j, record);
      if (row < 0 || c0 >= a.d) continue;
      const float w = load_f32_any(a.weights + (t * a.weights_s0 + j * a.weights_s1) * 4);
      const char* yrow = a.y + row * a.y_s0 * ye;
      float v[kCombineVec];
      if (whole) {
        load8<YID>(yrow + c0 * ye, v);
      } else {
#pragma unroll
        for (int i = 0; i < kCombineVec; ++i) {
          v[i] = c0 + i < a.d ? load_elem<YID>(yrow, c0 + i, YID) : 0.0f;
        }
      }
#pragma unroll
      for (int i = 0; i < kCombineVec; ++i) acc[i] += w * v[i];
    }
    if (c0 >= a.d) continue;
    char* orow = a.out + t * a.out_s0 * oe;
    if (a.shared != nullptr) {
      const char* srow = a.shared + t * a.shared_s0 * oe;
      float s[kCombineVec];
      if (whole) {
        load8<OID>(srow + c0 * oe, s);
      } else {
#pragma unroll
        for (int i = 0; i < kCombineVec; ++i) {
          s[i] = c0 + i < a.d ? load_elem<OID>(srow, c0 + i, OID) : 0.0f;
        }
      }
#pragma unroll
      for (int i = 0; i < kCombineVec; ++i) acc[i] = s[i] + acc[i];
    }
    if (whole) {
      store8<OID>(orow + c0 * oe, acc);
    } else {
#pragma unroll
      for (int i = 0; i < kCombineVec; ++i) {
        if (c0 + i < a.d) store_elem<OID>(orow, c0 + i, acc[i], OID);
      }
    }
  }
}

// Any float dtypes, strides and alignment: one element per thread.
__global__ void __launch_bounds__(kCombineThreads)
    combine_generic_kernel(CombineArgs a, DeferredErrorRecord* record) {
  const auto ye = static_cast<int64_t>(dtype_id_size(a.y_dtype));
  const auto se = static_cast<int64_t>(dtype_id_size(a.shared_dtype));
  const auto oe = static_cast<int64_t>(dtype_id_size(a.out_dtype));
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kCombineThreads + threadIdx.x;
  for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < a.k; ++j) {
      const int64_t row = slot_row(a, t, j, record);
      if (row < 0 || c >= a.d) continue;
      const float w = load_f32_any(a.weights + (t * a.weights_s0 + j * a.weights_s1) * 4);
      acc += w * load_as_f32(a.y_dtype, a.y + (row * a.y_s0 + c * a.y_s1) * ye);
    }
    if (c >= a.d) continue;
    if (a.shared != nullptr) {
      acc = load_as_f32(a.shared_dtype, a.shared + (t * a.shared_s0 + c * a.shared_s1) * se) + acc;
    }
    store_from_f32(a.out_dtype, acc, a.out + (t * a.out_s0 + c * a.out_s1) * oe);
  }
}

// ---- launch -----------------------------------------------------------------------------------

bool aligned(const void* p, int64_t to) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(to) == 0;
}

// Rows of a [rows, cols] matrix all start `to`-byte aligned (a single row: its start only).
bool rows_aligned(const void* p, int64_t rows, int64_t s0_bytes, int64_t to) {
  return aligned(p, to) && (rows <= 1 || s0_bytes % to == 0);
}

bool typed(int32_t dtype) {
  return dtype == DSK_DTYPE_F32 || dtype == DSK_DTYPE_F16 || dtype == DSK_DTYPE_BF16;
}

dim3 grid_2d(int64_t rows, int64_t cols_blocks) {
  return dim3(static_cast<unsigned>(rows < kMaxGridX ? rows : kMaxGridX),
              static_cast<unsigned>(cols_blocks));
}

template <int32_t SRC, int32_t DST>
void launch_convert(const PermuteArgs& a, DeferredErrorRecord* record, cudaStream_t stream) {
  const dim3 grid = grid_2d(a.rows_n, (a.d + kConvertThreads - 1) / kConvertThreads);
  permute_convert_kernel<SRC, DST><<<grid, kConvertThreads, 0, stream>>>(a, record);
}

template <int32_t SRC>
void launch_convert_to(const PermuteArgs& a, DeferredErrorRecord* record, cudaStream_t stream) {
  switch (a.out_dtype) {
    case DSK_DTYPE_F32:
      launch_convert<SRC, DSK_DTYPE_F32>(a, record, stream);
      break;
    case DSK_DTYPE_F16:
      launch_convert<SRC, DSK_DTYPE_F16>(a, record, stream);
      break;
    default:
      launch_convert<SRC, DSK_DTYPE_BF16>(a, record, stream);
      break;
  }
}

template <int32_t XID, bool VEC>
void launch_quant(const PermuteArgs& a, int64_t tiles, DeferredErrorRecord* record,
                  cudaStream_t stream) {
  const dim3 grid = grid_2d(a.rows_n, (tiles + kQuantWarps - 1) / kQuantWarps);
  permute_quant_kernel<XID, VEC><<<grid, kQuantThreads, 0, stream>>>(a, tiles, record);
}

template <int32_t XID>
void launch_quant_typed(const PermuteArgs& a, int64_t tiles, bool vec, DeferredErrorRecord* record,
                        cudaStream_t stream) {
  if (vec) {
    launch_quant<XID, true>(a, tiles, record, stream);
  } else {
    launch_quant<XID, false>(a, tiles, record, stream);
  }
}

template <int32_t YID, int32_t OID>
void launch_combine_vec(const CombineArgs& a, DeferredErrorRecord* record, cudaStream_t stream) {
  const int64_t groups = (a.d + kCombineVec - 1) / kCombineVec;
  const dim3 grid = grid_2d(a.tokens, (groups + kCombineThreads - 1) / kCombineThreads);
  combine_vec_kernel<YID, OID><<<grid, kCombineThreads, 0, stream>>>(a, record);
}

template <int32_t YID>
void launch_combine_vec_to(const CombineArgs& a, DeferredErrorRecord* record, cudaStream_t stream) {
  switch (a.out_dtype) {
    case DSK_DTYPE_F32:
      launch_combine_vec<YID, DSK_DTYPE_F32>(a, record, stream);
      break;
    case DSK_DTYPE_F16:
      launch_combine_vec<YID, DSK_DTYPE_F16>(a, record, stream);
      break;
    default:
      launch_combine_vec<YID, DSK_DTYPE_BF16>(a, record, stream);
      break;
  }
}

}  // namespace

dsk_status launch_moe_permute(const PermuteArgs& a, DeferredErrorRecord* record,
                              cudaStream_t stream) noexcept {
  if (a.rows_n <= 0 || a.d <= 0) return DSK_OK;
  const auto xe = static_cast<int64_t>(dtype_id_size(a.x_dtype));
  const auto oe = static_cast<int64_t>(dtype_id_size(a.out_dtype));
  if (a.scales != nullptr) {
    const int64_t tiles = fp8::blocks(a.d);
    const bool vec = a.x_s1 == 1 && a.out_s1 == 1 &&
                     rows_aligned(a.x, a.tokens, a.x_s0 * xe, 4 * xe) &&
                     rows_aligned(a.out, a.rows_n, a.out_s0, 4);
    switch (aligned(a.x, xe) ? a.x_dtype : 0) {
      case DSK_DTYPE_F32:
        launch_quant_typed<DSK_DTYPE_F32>(a, tiles, vec, record, stream);
        break;
      case DSK_DTYPE_F16:
        launch_quant_typed<DSK_DTYPE_F16>(a, tiles, vec, record, stream);
        break;
      case DSK_DTYPE_BF16:
        launch_quant_typed<DSK_DTYPE_BF16>(a, tiles, vec, record, stream);
        break;
      default:
        launch_quant<0, false>(a, tiles, record, stream);
        break;
    }
    return check_launch("moe_permute");
  }
  const int64_t row_bytes = a.d * xe;
  if (a.x_dtype == a.out_dtype && a.x_s1 == 1 && a.out_s1 == 1 && row_bytes % 16 == 0 &&
      rows_aligned(a.x, a.tokens, a.x_s0 * xe, 16) &&
      rows_aligned(a.out, a.rows_n, a.out_s0 * oe, 16)) {
    const int64_t units = row_bytes / 16;
    const int64_t chunk = kCopyThreads * kCopyUnitsPerThread;
    const dim3 grid = grid_2d(a.rows_n, (units + chunk - 1) / chunk);
    permute_copy16_kernel<<<grid, kCopyThreads, 0, stream>>>(a, units, xe, record);
    return check_launch("moe_permute");
  }
  const bool typed_pair = a.x_dtype != a.out_dtype && typed(a.x_dtype) && typed(a.out_dtype) &&
                          aligned(a.x, xe) && aligned(a.out, oe);
  if (!typed_pair) {
    launch_convert<0, 0>(a, record, stream);
  } else if (a.x_dtype == DSK_DTYPE_F32) {
    launch_convert_to<DSK_DTYPE_F32>(a, record, stream);
  } else if (a.x_dtype == DSK_DTYPE_F16) {
    launch_convert_to<DSK_DTYPE_F16>(a, record, stream);
  } else {
    launch_convert_to<DSK_DTYPE_BF16>(a, record, stream);
  }
  return check_launch("moe_permute");
}

dsk_status launch_moe_combine(const CombineArgs& a, DeferredErrorRecord* record,
                              cudaStream_t stream) noexcept {
  if (a.tokens <= 0 || a.d <= 0) return DSK_OK;
  const auto ye = static_cast<int64_t>(dtype_id_size(a.y_dtype));
  const auto oe = static_cast<int64_t>(dtype_id_size(a.out_dtype));
  const bool vec =
      typed(a.y_dtype) && typed(a.out_dtype) && a.y_s1 == 1 && a.out_s1 == 1 &&
      rows_aligned(a.y, a.y_rows, a.y_s0 * ye, 16) &&
      rows_aligned(a.out, a.tokens, a.out_s0 * oe, 16) &&
      (a.shared == nullptr || (a.shared_dtype == a.out_dtype && a.shared_s1 == 1 &&
                               rows_aligned(a.shared, a.tokens, a.shared_s0 * oe, 16)));
  if (!vec) {
    const dim3 grid = grid_2d(a.tokens, (a.d + kCombineThreads - 1) / kCombineThreads);
    combine_generic_kernel<<<grid, kCombineThreads, 0, stream>>>(a, record);
  } else if (a.y_dtype == DSK_DTYPE_F32) {
    launch_combine_vec_to<DSK_DTYPE_F32>(a, record, stream);
  } else if (a.y_dtype == DSK_DTYPE_F16) {
    launch_combine_vec_to<DSK_DTYPE_F16>(a, record, stream);
  } else {
    launch_combine_vec_to<DSK_DTYPE_BF16>(a, record, stream);
  }
  return check_launch("moe_combine");
}

}  // namespace cuda
}  // namespace dsk
