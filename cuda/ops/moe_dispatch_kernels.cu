// MoE dispatch kernels: the stable counting sort of lib/cpu/moe_dispatch.cpp, on the device.
//
// Every assignment i = t * k + j gets its local expert e (E when skipped). The sorted order is the
// unique order of the pairs (e, i), so no step depends on thread timing:
//  - small problems (T * k <= 2048, E <= 2048, capacity <= 65536; decode batches): one block of
//    1024 threads sorts the composite keys (e << 11) | i in shared memory with a bitonic network,
//    then does everything below itself: one launch, no scratch.
//  - otherwise: cub::DeviceRadixSort::SortPairs of (e, i) over the bits of E (LSD radix sort is
//    stable, so equal experts keep the order of i), then the kernels below over the sorted pairs.
// From the sorted order: expert e's assignments are the positions [st[e], en[e]) (found at the
// boundaries between different keys; absent experts keep 0, 0), counts[e] = en[e] - st[e], the
// padded offsets come from one block-wide prefix sum, and the assignment at sorted position p of
// expert e goes to row offsets[e] + p - st[e]. Padding rows, rows at or past offsets[E] and
// block_experts are filled by a binary search of the row in the offsets; every row is written
// exactly once. Counting never uses atomics, so there is nothing order-dependent anywhere.
#include <cuda_runtime.h>
#include <stdint.h>

#include <cub/device/device_radix_sort.cuh>

#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/moe_dispatch_kernels.h"
#include "cuda/ops/moe_index_io.cuh"

namespace dsk {
namespace cuda {
namespace {

constexpr int kScanThreads = 1024;  // the scan block, and the single-block path
constexpr int kThreads = 256;       // grid-stride kernels
constexpr int64_t kSmallMaxN = 2048;
constexpr int kSmallIdxBits = 11;  // 2^11 = kSmallMaxN
constexpr uint32_t kSmallIdxMask = (1u << kSmallIdxBits) - 1u;
constexpr int32_t kSmallMaxE = 2048;
constexpr int64_t kSmallMaxRows = int64_t{1} << 16;
constexpr size_t kAlign = 256;

size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// The local expert of assignment i; E when the id is outside [expert_begin, expert_begin + E).
template <bool A>
__device__ __forceinline__ int32_t local_expert(const DispatchArgs& a, int64_t i) {
  const int64_t t = i / a.k;
  const int64_t j = i - t * a.k;
  const int64_t id = load_id_at<A>(a.ids, a.ids64 != 0, a.ids_s0, a.ids_s1, t, j);
  const int64_t lo = a.expert_begin;
  return id >= lo && id < lo + a.num_experts ? static_cast<int32_t>(id - lo) : a.num_experts;
}

// Exclusive prefix sum of v over the block (every thread calls it; blockDim.x a multiple of 32);
// *total gets the sum of all. warp_sums: 32 ints of shared memory, free again on return.
__device__ int block_exclusive_scan(int v, int* warp_sums, int* total) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int warps = static_cast<int>(blockDim.x) >> 5;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xFFFFFFFFu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) warp_sums[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int w = lane < warps ? warp_sums[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xFFFFFFFFu, w, o);
      if (lane >= o) w += y;
    }
    warp_sums[lane] = w;  // inclusive sums over the warps
  }
  __syncthreads();
  const int base = warp > 0 ? warp_sums[warp - 1] : 0;
  *total = warp_sums[warps - 1];
  __syncthreads();
  return base + x - v;
}

// The largest e in [0, E) with off[e] <= r (off[0] = 0 <= r): the segment holding row r < off[E].
__device__ __forceinline__ int32_t segment_of(const int* off, int32_t num_experts, int64_t r) {
  int32_t lo = 0;
  int32_t hi = num_experts - 1;
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo + 1) / 2;
    if (off[mid] <= r) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// counts, offsets (outputs) and off[0..E] (scratch) from the segments [st[e], en[e]). Called by
// every thread of one block of kScanThreads threads; off is complete after a __syncthreads().
template <bool A>
__device__ void scan_offsets(const DispatchArgs& a, const int* st, const int* en, int* off,
                             int* warp_sums) {
  const int32_t E = a.num_experts;
  const int64_t b = a.block_size;
  const int32_t per = (E + kScanThreads - 1) / kScanThreads;
  const int32_t e0 = min(static_cast<int32_t>(threadIdx.x) * per, E);
  const int32_t e1 = min(e0 + per, E);
  int64_t sum = 0;
  for (int32_t e = e0; e < e1; ++e) sum += (en[e] - st[e] + b - 1) / b * b;
  // Every partial sum is at most offsets[E] <= capacity <= INT32_MAX.
  int total = 0;
  int run = block_exclusive_scan(static_cast<int>(sum), warp_sums, &total);
  for (int32_t e = e0; e < e1; ++e) {
    const int c = en[e] - st[e];
    off[e] = run;
    store_i32<A>(a.counts + e * a.counts_s * 4, c);
    store_i32<A>(a.offsets + e * a.offsets_s * 4, run);
    run += static_cast<int>((c + b - 1) / b * b);
  }
  if (threadIdx.x == 0) {
    off[E] = total;
    store_i32<A>(a.offsets + static_cast<int64_t>(E) * a.offsets_s * 4, total);
  }
}

// Row r of sorted_rows when it is padding (the sentinel T * k), and block_experts[r].
template <bool A>
__device__ __forceinline__ void fill_unit(const DispatchArgs& a, const int* off, const int* st,
                                          const int* en, int64_t r) {
  const int32_t E = a.num_experts;
  const int64_t used = off[E];
  if (r < a.capacity) {
    bool pad = r >= used;
    if (!pad) {
      const int32_t e = segment_of(off, E, r);
      pad = r - off[e] >= en[e] - st[e];
    }
    if (pad) store_i32<A>(a.sorted + r * a.sorted_s * 4, static_cast<int32_t>(a.n));
  }
  if (a.blocks != nullptr && r < a.num_blocks) {
    const int64_t first = r * a.block_size;
    const int32_t e = first < used ? segment_of(off, E, first) : -1;
    store_i32<A>(a.blocks + r * a.blocks_s * 4, e);
  }
}

// The assignment i at sorted position p of local expert e (E or more: skipped).
template <bool A>
__device__ __forceinline__ void scatter_one(const DispatchArgs& a, const int* off, const int* st,
                                            int64_t p, uint32_t e, int32_t i) {
  int32_t row = -1;
  if (e < static_cast<uint32_t>(a.num_experts)) {
    row = off[e] + (static_cast<int32_t>(p) - st[e]);  // no int32 overflow on the way
    store_i32<A>(a.sorted + row * a.sorted_s * 4, i);
  }
  if (a.dest != nullptr) {
    const int64_t t = i / a.k;
    const int64_t j = i - t * a.k;
    store_i32<A>(a.dest + (t * a.dest_s0 + j * a.dest_s1) * 4, row);
  }
}

// Ascending bitonic sort of n (a power of two) keys in shared memory by the whole block.
__device__ void bitonic_sort_ascending(uint32_t* s, int32_t n) {
  for (int32_t size = 2; size <= n; size <<= 1) {
    for (int32_t stride = size >> 1; stride > 0; stride >>= 1) {
      for (int32_t p = static_cast<int32_t>(threadIdx.x); p < n / 2;
           p += static_cast<int32_t>(blockDim.x)) {
        const int32_t i = 2 * p - (p & (stride - 1));
        const int32_t j = i + stride;
        const bool ascending = (i & size) == 0;
        const uint32_t u = s[i];
        const uint32_t v = s[j];
        if ((u > v) == ascending && u != v) {
          s[i] = v;
          s[j] = u;
        }
      }
      __syncthreads();
    }
  }
}

// The whole dispatch in one block (see the file comment); sort_size: a power of two >= n.
template <bool A>
__global__ void __launch_bounds__(kScanThreads)
    dispatch_small_kernel(DispatchArgs a, int32_t sort_size) {
  __shared__ uint32_t keys[kSmallMaxN];
  __shared__ int st[kSmallMaxE];
  __shared__ int en[kSmallMaxE];
  __shared__ int off[kSmallMaxE + 1];
  __shared__ int warp_sums[32];
  const int32_t E = a.num_experts;
  const auto n = static_cast<int32_t>(a.n);
  const auto tid = static_cast<int32_t>(threadIdx.x);
  const auto step = static_cast<int32_t>(blockDim.x);
  for (int32_t e = tid; e < E; e += step) {
    st[e] = 0;
    en[e] = 0;
  }
  for (int32_t i = tid; i < sort_size; i += step) {
    keys[i] = i < n ? (static_cast<uint32_t>(local_expert<A>(a, i)) << kSmallIdxBits) |
                          static_cast<uint32_t>(i)
                    : 0xFFFFFFFFu;
  }
  __syncthreads();
  bitonic_sort_ascending(keys, sort_size);
  for (int32_t p = tid; p < n; p += step) {
    const uint32_t e = keys[p] >> kSmallIdxBits;
    if (e < static_cast<uint32_t>(E)) {
      if (p == 0 || (keys[p - 1] >> kSmallIdxBits) != e) st[e] = p;
      if (p == n - 1 || (keys[p + 1] >> kSmallIdxBits) != e) en[e] = p + 1;
    }
  }
  __syncthreads();
  scan_offsets<A>(a, st, en, off, warp_sums);
  __syncthreads();
  for (int64_t r = tid; r < a.capacity; r += step) fill_unit<A>(a, off, st, en, r);
  for (int32_t p = tid; p < n; p += step) {
    const uint32_t key = keys[p];
    scatter_one<A>(a, off, st, p, key >> kSmallIdxBits, static_cast<int32_t>(key & kSmallIdxMask));
  }
}

template <bool A>
__global__ void keys_kernel(DispatchArgs a, uint32_t* keys, int32_t* vals) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    keys[i] = static_cast<uint32_t>(local_expert<A>(a, i));
    vals[i] = static_cast<int32_t>(i);
  }
}

// Segment boundaries of the sorted keys: st[e] at the first position of e, en[e] past its last.
__global__ void bounds_kernel(const uint32_t* keys, int64_t n, uint32_t num_experts, int* st,
                              int* en) {
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t e = keys[p];
    if (e >= num_experts) continue;
    if (p == 0 || keys[p - 1] != e) st[e] = static_cast<int>(p);
    if (p == n - 1 || keys[p + 1] != e) en[e] = static_cast<int>(p + 1);
  }
}

template <bool A>
__global__ void __launch_bounds__(kScanThreads)
    scan_kernel(DispatchArgs a, const int* st, const int* en, int* off) {
  __shared__ int warp_sums[32];
  scan_offsets<A>(a, st, en, off, warp_sums);
}

template <bool A>
__global__ void fill_kernel(DispatchArgs a, const int* off, const int* st, const int* en) {
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < a.capacity;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    fill_unit<A>(a, off, st, en, r);
  }
}

template <bool A>
__global__ void scatter_kernel(DispatchArgs a, const int* off, const int* st, const uint32_t* keys,
                               const int32_t* vals) {
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < a.n;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    scatter_one<A>(a, off, st, p, keys[p], vals[p]);
  }
}

bool small_path(const DispatchArgs& a) {
  return a.n <= kSmallMaxN && a.num_experts <= kSmallMaxE && a.capacity <= kSmallMaxRows;
}

// Bits of the largest key, E (skipped assignments).
int key_bits(int32_t num_experts) {
  int bits = 1;
  while (bits < 31 && (int64_t{1} << bits) <= num_experts) ++bits;
  return bits;
}

// The scratch pieces of the multi-kernel path, each kAlign-aligned.
struct Layout {
  size_t st, en, off, keys_in, keys_out, vals_in, vals_out, temp, temp_bytes, total;
};

dsk_status layout_of(const DispatchArgs& a, Layout* l) {
  const auto e = static_cast<size_t>(a.num_experts);
  const auto n = static_cast<size_t>(a.n);
  l->temp_bytes = 0;
  if (a.n > 0) {
    DSK_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
        nullptr, l->temp_bytes, static_cast<const uint32_t*>(nullptr),
        static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
        static_cast<int32_t*>(nullptr), static_cast<int>(a.n), 0, key_bits(a.num_experts)));
  }
  size_t at = 0;
  l->st = at;
  at += align_up(e * 4);
  l->en = at;
  at += align_up(e * 4);
  l->off = at;
  at += align_up((e + 1) * 4);
  l->keys_in = at;
  at += align_up(n * 4);
  l->keys_out = at;
  at += align_up(n * 4);
  l->vals_in = at;
  at += align_up(n * 4);
  l->vals_out = at;
  at += align_up(n * 4);
  l->temp = at;
  at += align_up(l->temp_bytes);
  l->total = at;
  return DSK_OK;
}

unsigned grid_for(int64_t n) {
  int32_t sms = 1;
  if (current_multiprocessor_count(&sms) != DSK_OK) sms = 1;
  const int64_t need = (n + kThreads - 1) / kThreads;
  const int64_t cap = static_cast<int64_t>(sms) * 8;
  return static_cast<unsigned>(need < 1 ? 1 : need < cap ? need : cap);
}

int32_t pow2_at_least(int64_t n) {
  int32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

template <bool A>
dsk_status run(const DispatchArgs& a, char* scratch, cudaStream_t stream) {
  if (small_path(a)) {
    dispatch_small_kernel<A><<<1, kScanThreads, 0, stream>>>(a, pow2_at_least(a.n));
    return check_launch("moe_dispatch");
  }
  Layout l{};
  DSK_RETURN_IF_FAILED(layout_of(a, &l));
  int* st = reinterpret_cast<int*>(scratch + l.st);
  int* en = reinterpret_cast<int*>(scratch + l.en);
  int* off = reinterpret_cast<int*>(scratch + l.off);
  auto* keys_in = reinterpret_cast<uint32_t*>(scratch + l.keys_in);
  auto* keys_out = reinterpret_cast<uint32_t*>(scratch + l.keys_out);
  auto* vals_in = reinterpret_cast<int32_t*>(scratch + l.vals_in);
  auto* vals_out = reinterpret_cast<int32_t*>(scratch + l.vals_out);
  // st and en are adjacent: one memset clears both (absent experts stay [0, 0)).
  DSK_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(st, 0, l.off - l.st, stream));
  if (a.n > 0) {
    keys_kernel<A><<<grid_for(a.n), kThreads, 0, stream>>>(a, keys_in, vals_in);
    DSK_RETURN_IF_FAILED(check_launch("moe_dispatch"));
    size_t temp_bytes = l.temp_bytes;
    DSK_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
        scratch + l.temp, temp_bytes, keys_in, keys_out, vals_in, vals_out, static_cast<int>(a.n),
        0, key_bits(a.num_experts), stream));
    bounds_kernel<<<grid_for(a.n), kThreads, 0, stream>>>(
        keys_out, a.n, static_cast<uint32_t>(a.num_experts), st, en);
    DSK_RETURN_IF_FAILED(check_launch("moe_dispatch"));
  }
  scan_kernel<A><<<1, kScanThreads, 0, stream>>>(a, st, en, off);
  DSK_RETURN_IF_FAILED(check_launch("moe_dispatch"));
  if (a.capacity > 0) {
    fill_kernel<A><<<grid_for(a.capacity), kThreads, 0, stream>>>(a, off, st, en);
    DSK_RETURN_IF_FAILED(check_launch("moe_dispatch"));
  }
  if (a.n > 0) {
    scatter_kernel<A><<<grid_for(a.n), kThreads, 0, stream>>>(a, off, st, keys_out, vals_out);
    DSK_RETURN_IF_FAILED(check_launch("moe_dispatch"));
  }
  return DSK_OK;
}

bool aligned(const void* p, size_t to) { return reinterpret_cast<uintptr_t>(p) % to == 0; }

}  // namespace

dsk_status moe_dispatch_scratch_bytes(const DispatchArgs& a, size_t* bytes) noexcept {
  *bytes = 0;
  if (small_path(a)) return DSK_OK;
  Layout l{};
  DSK_RETURN_IF_FAILED(layout_of(a, &l));
  *bytes = l.total;
  return DSK_OK;
}

dsk_status launch_moe_dispatch(const DispatchArgs& a, char* scratch, cudaStream_t stream) noexcept {
  const bool all_aligned = aligned(a.ids, a.ids64 != 0 ? 8 : 4) && aligned(a.counts, 4) &&
                           aligned(a.offsets, 4) && aligned(a.sorted, 4) && aligned(a.blocks, 4) &&
                           aligned(a.dest, 4);
  return all_aligned ? run<true>(a, scratch, stream) : run<false>(a, scratch, stream);
}

}  // namespace cuda
}  // namespace dsk
