// Top-k and argmax over rows [R, N] (launch_topk in softmax_kernels.h).
//
// Every element becomes a unique 64-bit composite key
//   (order_key(f32(x)) << 32) | (0xFFFFFFFF - j)
// whose unsigned order is exactly the selection order of the CPU reference (lib/cpu/topk.cpp):
// order_key maps every NaN to the largest key and -0.0 to +0.0's key, and for equal keys the lower
// index j gives the larger composite. Since all composites of a row are distinct, "the k largest
// composites, descending" is one well-defined answer, computed here without any dependence on
// thread timing:
//  - k == 1 (argmax, the decode hot path): a max-reduction of composites, one warp per row for
//    N <= 2048, else one block per row.
//  - k <= 2048: chunked bitonic selection. Each block sorts one chunk of up to 4096 composites in
//    shared memory (a bitonic network, descending) and keeps its k largest; passes repeat over the
//    candidates until one chunk per row remains, whose k largest are the result (k <= chunk / 2,
//    so every pass shrinks the candidates at least by half).
//  - k > 2048: cub::DeviceSegmentedRadixSort::SortKeysDescending of the composites per row.
// Rows longer than 2^32 elements do not fit the composite and are DSK_ERR_UNSUPPORTED.
// Temporaries are stream-ordered (cudaMallocAsync / cudaFreeAsync); nothing synchronizes.
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "common/convert.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/elem_io.cuh"
#include "cuda/ops/softmax_kernels.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int64_t kWarpRowMax = 2048;
constexpr int64_t kChunk = 4096;  // composites per block in the bitonic passes
constexpr int32_t kBitonicMaxK = kChunk / 2;
constexpr int kSortThreads = 512;

struct TopkArgs {
  const char* x;
  int64_t rows;
  int64_t n;
  int64_t x_row;  // strides in elements
  int64_t x_col;
  int32_t x_id;
  int32_t k;
  char* indices;
  int64_t i_row;
  int64_t i_col;
  int32_t index64;
  char* values;  // NULL: no values
  int64_t v_row;
  int64_t v_col;
  int32_t v_id;
};

// The same mapping as lib/cpu/topk.cpp's order_key.
__device__ __forceinline__ uint32_t order_key(float v) {
  uint32_t b = f32_bits(v);
  const uint32_t mag = b & 0x7FFFFFFFu;
  if (mag > 0x7F800000u) return 0xFFFFFFFFu;
  if (mag == 0) b = 0;
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}

// Every real composite is > 0 (the smallest key, -inf's, is 0x007FFFFF), so 0 pads.
__device__ __forceinline__ uint64_t composite(float v, int64_t j) {
  return (static_cast<uint64_t>(order_key(v)) << 32) |
         static_cast<uint64_t>(0xFFFFFFFFu - static_cast<uint32_t>(j));
}

__device__ __forceinline__ int64_t index_of(uint64_t c) {
  return static_cast<int64_t>(0xFFFFFFFFu - static_cast<uint32_t>(c & 0xFFFFFFFFu));
}

template <int32_t XID>
__device__ __forceinline__ uint64_t composite_at(const TopkArgs& a, int64_t r, int64_t j) {
  return composite(load_elem<XID>(a.x, r * a.x_row + j * a.x_col, a.x_id), j);
}

// Writes rank i of row r: index j, and the value x[r, j] converted to values' dtype. Byte-wise
// (memcpy) so that any alignment works; only k elements per row go through here.
__device__ void emit(const TopkArgs& a, int64_t r, int64_t i, int64_t j) {
  char* ip = a.indices + (r * a.i_row + i * a.i_col) * (a.index64 ? 8 : 4);
  if (a.index64) {
    memcpy(ip, &j, 8);
  } else {
    const auto j32 = static_cast<int32_t>(j);
    memcpy(ip, &j32, 4);
  }
  if (a.values != nullptr) {
    const float v = load_elem<0>(a.x, r * a.x_row + j * a.x_col, a.x_id);
    store_elem<0>(a.values, r * a.v_row + i * a.v_col, v, a.v_id);
  }
}

__device__ __forceinline__ uint64_t umax64(uint64_t a, uint64_t b) { return a > b ? a : b; }

__device__ __forceinline__ uint64_t warp_max(uint64_t v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = umax64(v, __shfl_down_sync(0xFFFFFFFFu, v, offset));
  }
  return v;
}

template <int32_t XID>
__global__ void argmax_warp_kernel(TopkArgs a) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int64_t lane = threadIdx.x % 32;
  for (int64_t r = warp; r < a.rows; r += warps) {
    uint64_t best = 0;
    for (int64_t j = lane; j < a.n; j += 32) best = umax64(best, composite_at<XID>(a, r, j));
    best = warp_max(best);
    if (lane == 0) emit(a, r, 0, index_of(best));
  }
}

template <int32_t XID, int BLOCK>
__global__ void __launch_bounds__(BLOCK) argmax_block_kernel(TopkArgs a) {
  __shared__ uint64_t part[BLOCK / 32];
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    uint64_t best = 0;
    for (int64_t j = threadIdx.x; j < a.n; j += BLOCK) {
      best = umax64(best, composite_at<XID>(a, r, j));
    }
    best = warp_max(best);
    if (lane == 0) part[warp] = best;
    __syncthreads();
    if (warp == 0) {
      best = lane < BLOCK / 32 ? part[lane] : 0;
      best = warp_max(best);
      if (lane == 0) emit(a, r, 0, index_of(best));
    }
    __syncthreads();
  }
}

// One pass of the chunked bitonic selection: rows of in_len elements (x itself when cand_in is
// NULL, else composites) are cut into chunks of `chunk`; each chunk's k largest go to cand_out
// [rows, chunks, k] (padded with 0), or, in the final pass (chunks == 1, cand_out NULL), to the
// outputs.
struct ChunkArgs {
  TopkArgs a;
  const uint64_t* cand_in;
  int64_t in_len;
  int64_t chunk;
  int64_t chunks;
  uint64_t* cand_out;
  int32_t sort_size;  // power of two >= min(in_len, chunk)
};

__device__ void bitonic_sort_descending(uint64_t* s, int32_t size_total) {
  for (int32_t size = 2; size <= size_total; size <<= 1) {
    for (int32_t stride = size >> 1; stride > 0; stride >>= 1) {
      for (int32_t p = static_cast<int32_t>(threadIdx.x); p < size_total / 2;
           p += static_cast<int32_t>(blockDim.x)) {
        const int32_t i = 2 * p - (p & (stride - 1));
        const int32_t j = i + stride;
        const bool descending = (i & size) == 0;
        const uint64_t u = s[i];
        const uint64_t v = s[j];
        if ((u < v) == descending && u != v) {
          s[i] = v;
          s[j] = u;
        }
      }
      __syncthreads();
    }
  }
}

template <int32_t XID>
__global__ void topk_chunk_kernel(ChunkArgs c) {
  extern __shared__ uint64_t keys[];
  const TopkArgs& a = c.a;
  const int64_t units = a.rows * c.chunks;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t r = u / c.chunks;
    const int64_t q = u - r * c.chunks;
    const int64_t begin = q * c.chunk;
    const int64_t left = c.in_len - begin;
    const int64_t len = left < c.chunk ? left : c.chunk;
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < c.sort_size;
         i += static_cast<int32_t>(blockDim.x)) {
      uint64_t key = 0;
      if (i < len) {
        const int64_t j = begin + i;
        key = c.cand_in != nullptr ? c.cand_in[r * c.in_len + j] : composite_at<XID>(a, r, j);
      }
      keys[i] = key;
    }
    __syncthreads();
    bitonic_sort_descending(keys, c.sort_size);
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < a.k;
         i += static_cast<int32_t>(blockDim.x)) {
      if (c.cand_out != nullptr) {
        c.cand_out[(r * c.chunks + q) * a.k + i] = i < c.sort_size ? keys[i] : 0;
      } else {
        emit(a, r, i, index_of(keys[i]));
      }
    }
    __syncthreads();
  }
}

// CUB path: composites of rows [first, first + count) into keys.
template <int32_t XID>
__global__ void composite_kernel(TopkArgs a, int64_t first, int64_t count, uint64_t* keys) {
  const int64_t total = count * a.n;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / a.n;
    const int64_t j = e - r * a.n;
    keys[e] = composite_at<XID>(a, first + r, j);
  }
}

__global__ void offsets_kernel(int* offsets, int64_t count, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i <= count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    offsets[i] = static_cast<int>(i * n);
  }
}

__global__ void emit_sorted_kernel(TopkArgs a, int64_t first, int64_t count,
                                   const uint64_t* sorted) {
  const int64_t total = count * a.k;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / a.k;
    const int64_t i = e - r * a.k;
    emit(a, first + r, i, index_of(sorted[r * a.n + i]));
  }
}

unsigned grid_for(int64_t units, int64_t per_sm_cap) {
  int32_t sms = 1;
  if (current_multiprocessor_count(&sms) != DSK_OK) sms = 1;
  const int64_t cap = static_cast<int64_t>(sms) * per_sm_cap;
  return static_cast<unsigned>(units < 1 ? 1 : units < cap ? units : cap);
}

int32_t pow2_at_least(int64_t n) {
  int32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

template <int32_t XID>
dsk_status argmax(const TopkArgs& a, cudaStream_t stream) {
  if (a.n <= kWarpRowMax) {
    constexpr int kThreads = 256;
    const int64_t blocks = (a.rows + kThreads / 32 - 1) / (kThreads / 32);
    argmax_warp_kernel<XID><<<grid_for(blocks, 8), kThreads, 0, stream>>>(a);
  } else {
    argmax_block_kernel<XID, 1024><<<grid_for(a.rows, 2), 1024, 0, stream>>>(a);
  }
  return check_launch("argmax");
}

// Frees stream-ordered temporaries when it goes out of scope.
struct AsyncBuffers {
  cudaStream_t stream;
  void* p[4] = {nullptr, nullptr, nullptr, nullptr};
  explicit AsyncBuffers(cudaStream_t s) : stream(s) {}
  AsyncBuffers(const AsyncBuffers&) = delete;
  AsyncBuffers& operator=(const AsyncBuffers&) = delete;
  ~AsyncBuffers() {
    for (void* q : p) {
      if (q != nullptr) cudaFreeAsync(q, stream);
    }
  }
};

template <int32_t XID>
dsk_status bitonic(const TopkArgs& a, cudaStream_t stream) {
  // Fewer rows than SMs: smaller chunks give more blocks per row (still >= 2k per chunk).
  int32_t sms = 1;
  DSK_RETURN_IF_FAILED(current_multiprocessor_count(&sms));
  int64_t chunk = kChunk;
  if (a.rows * ((a.n + kChunk - 1) / kChunk) < sms) {
    chunk = pow2_at_least(2 * static_cast<int64_t>(a.k));
    if (chunk < 1024) chunk = 1024;
  }
  AsyncBuffers buffers(stream);
  const int64_t chunks0 = (a.n + chunk - 1) / chunk;
  if (chunks0 > 1) {
    const int64_t len1 = chunks0 * a.k;
    const int64_t chunks1 = (len1 + chunk - 1) / chunk;
    const size_t bytes0 = static_cast<size_t>(a.rows * len1) * sizeof(uint64_t);
    const size_t bytes1 = static_cast<size_t>(a.rows * chunks1 * a.k) * sizeof(uint64_t);
    DSK_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&buffers.p[0], bytes0, stream));
    if (chunks1 > 1) DSK_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&buffers.p[1], bytes1, stream));
  }
  ChunkArgs c{};
  c.a = a;
  c.cand_in = nullptr;
  c.in_len = a.n;
  c.chunk = chunk;
  for (int pass = 0;; ++pass) {
    c.chunks = (c.in_len + chunk - 1) / chunk;
    c.sort_size = c.chunks == 1 ? pow2_at_least(c.in_len) : static_cast<int32_t>(chunk);
    c.cand_out = c.chunks == 1 ? nullptr : static_cast<uint64_t*>(buffers.p[pass % 2]);
    int threads = c.sort_size / 2;
    if (threads < 32) threads = 32;
    if (threads > kSortThreads) threads = kSortThreads;
    const size_t smem = static_cast<size_t>(c.sort_size) * sizeof(uint64_t);
    topk_chunk_kernel<XID>
        <<<grid_for(a.rows * c.chunks, 16), static_cast<unsigned>(threads), smem, stream>>>(c);
    DSK_RETURN_IF_FAILED(check_launch("topk"));
    if (c.chunks == 1) break;
    c.cand_in = c.cand_out;
    c.in_len = c.chunks * a.k;
  }
  return DSK_OK;
}

template <int32_t XID>
dsk_status radix_sort(const TopkArgs& a, cudaStream_t stream) {
  // Rows per batch: CUB counts items in int, and the key buffers stay below ~512 MiB.
  constexpr int64_t kMaxKeys = int64_t{1} << 25;
  if (a.n > INT32_MAX) {
    return fail(DSK_ERR_UNSUPPORTED,
                "topk: rows of %lld elements with k = %d > %d are not supported on CUDA",
                static_cast<long long>(a.n), a.k, kBitonicMaxK);
  }
  int64_t batch = kMaxKeys / a.n;
  if (batch < 1) batch = 1;
  if (batch > a.rows) batch = a.rows;
  if (batch * a.n > INT32_MAX) batch = INT32_MAX / a.n;
  AsyncBuffers buffers(stream);
  const size_t key_bytes = static_cast<size_t>(batch * a.n) * sizeof(uint64_t);
  DSK_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&buffers.p[0], key_bytes, stream));
  DSK_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&buffers.p[1], key_bytes, stream));
  DSK_CUDA_RETURN_IF_ERROR(
      cudaMallocAsync(&buffers.p[2], static_cast<size_t>(batch + 1) * sizeof(int), stream));
  auto* keys_in = static_cast<uint64_t*>(buffers.p[0]);
  auto* keys_out = static_cast<uint64_t*>(buffers.p[1]);
  auto* offsets = static_cast<int*>(buffers.p[2]);
  size_t temp_bytes = 0;
  DSK_CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeysDescending(
      nullptr, temp_bytes, keys_in, keys_out, static_cast<int>(batch * a.n),
      static_cast<int>(batch), offsets, offsets + 1, 0, 64, stream));
  DSK_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&buffers.p[3], temp_bytes, stream));
  offsets_kernel<<<grid_for((batch + 256) / 256, 4), 256, 0, stream>>>(offsets, batch, a.n);
  DSK_RETURN_IF_FAILED(check_launch("topk"));
  for (int64_t first = 0; first < a.rows; first += batch) {
    const int64_t count = a.rows - first < batch ? a.rows - first : batch;
    composite_kernel<XID>
        <<<grid_for((count * a.n + 255) / 256, 8), 256, 0, stream>>>(a, first, count, keys_in);
    DSK_RETURN_IF_FAILED(check_launch("topk"));
    DSK_CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeysDescending(
        buffers.p[3], temp_bytes, keys_in, keys_out, static_cast<int>(count * a.n),
        static_cast<int>(count), offsets, offsets + 1, 0, 64, stream));
    emit_sorted_kernel<<<grid_for((count * a.k + 255) / 256, 8), 256, 0, stream>>>(a, first, count,
                                                                                   keys_out);
    DSK_RETURN_IF_FAILED(check_launch("topk"));
  }
  return DSK_OK;
}

template <int32_t XID>
dsk_status run(const TopkArgs& a, cudaStream_t stream) {
  if (a.k == 1) return argmax<XID>(a, stream);
  if (a.k <= kBitonicMaxK) return bitonic<XID>(a, stream);
  return radix_sort<XID>(a, stream);
}

}  // namespace

dsk_status launch_topk(const TensorInfo& x, int32_t k, const TensorInfo* values,
                       const TensorInfo& indices, cudaStream_t stream) noexcept {
  if (!dtype_id_is_float(x.dtype_id) || x.elem_size < 2 ||
      (values != nullptr && (!dtype_id_is_float(values->dtype_id) || values->elem_size < 2)) ||
      (indices.dtype_id != DSK_DTYPE_INT32 && indices.dtype_id != DSK_DTYPE_INT64)) {
    return fail(DSK_ERR_UNSUPPORTED, "topk: unsupported dtypes");
  }
  if (x.shape[1] > (int64_t{1} << 32)) {
    return fail(DSK_ERR_UNSUPPORTED,
                "topk: rows of %lld elements are not supported on CUDA, expected at most 2^32",
                static_cast<long long>(x.shape[1]));
  }
  TopkArgs a{};
  a.x = x.data;
  a.rows = x.shape[0];
  a.n = x.shape[1];
  a.x_row = x.strides[0];
  a.x_col = x.strides[1];
  a.x_id = x.dtype_id;
  a.k = k;
  a.indices = indices.data;
  a.i_row = indices.strides[0];
  a.i_col = indices.strides[1];
  a.index64 = indices.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  if (values != nullptr) {
    a.values = values->data;
    a.v_row = values->strides[0];
    a.v_col = values->strides[1];
    a.v_id = values->dtype_id;
  }
  if (!is_aligned(x.data, static_cast<size_t>(x.elem_size))) return run<0>(a, stream);
  switch (x.dtype_id) {
    case DSK_DTYPE_F16:
      return run<DSK_DTYPE_F16>(a, stream);
    case DSK_DTYPE_BF16:
      return run<DSK_DTYPE_BF16>(a, stream);
    default:
      return run<DSK_DTYPE_F32>(a, stream);
  }
}

}  // namespace cuda
}  // namespace dsk
