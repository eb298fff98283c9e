// MoE statistics kernels: per-expert histograms (load accumulation and the EP layout's
// tokens_per_expert; integer counts, so atomics give the same result in any order), the bias update
// (one block, the summation order of common/moe_bias.h, which the CPU reference loops through, so
// the bias gets the same bits), and the EP layout's per-token rank flags: slot j of token t marks
// rank r = id / (E / R) when no earlier slot of the token did, so each (t, r) is written once and
// tokens_per_rank counts tokens, not assignments (DeepEP's get_dispatch_layout).
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "common/moe_bias.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/moe_index_io.cuh"
#include "cuda/ops/moe_stats_kernels.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSharedHistMax = 8192;  // experts counted in shared memory first (32 KiB)

unsigned grid_for(int64_t n, int64_t per_sm) {
  int32_t sms = 1;
  if (current_multiprocessor_count(&sms) != DSK_OK) sms = 1;
  const int64_t need = (n + kThreads - 1) / kThreads;
  const int64_t cap = static_cast<int64_t>(sms) * per_sm;
  return static_cast<unsigned>(need < 1 ? 1 : need < cap ? need : cap);
}

template <bool A>
__device__ __forceinline__ int64_t id_of(const MoeIds& ids, int64_t t, int64_t j) {
  return load_id_at<A>(ids.data, ids.is64 != 0, ids.s0, ids.s1, t, j);
}

// hist[e] += assignments with id - lo = e in [0, E). With `record` (the EP layout, lo = 0), ids
// outside [-1, E) are recorded and skipped. SMEM: counted per block in shared memory first.
template <bool A, bool SMEM>
__global__ void hist_kernel(MoeIds ids, int64_t lo, int64_t num_experts, unsigned* hist,
                            DeferredErrorRecord* record) {
  extern __shared__ unsigned local[];
  if constexpr (SMEM) {
    for (int64_t e = threadIdx.x; e < num_experts; e += blockDim.x) local[e] = 0u;
    __syncthreads();
  }
  const int64_t n = ids.tokens * ids.k;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / ids.k;
    const int64_t j = i - t * ids.k;
    const int64_t id = id_of<A>(ids, t, j);
    if (record != nullptr && (id < -1 || id >= num_experts)) {
      report_deferred(record, kDeferredMoeEpId, t, (j << 32) | num_experts, id);
      continue;
    }
    if (id < lo || id >= lo + num_experts) continue;
    if constexpr (SMEM) {
      atomicAdd(&local[id - lo], 1u);
    } else {
      atomicAdd(&hist[id - lo], 1u);
    }
  }
  if constexpr (SMEM) {
    __syncthreads();
    for (int64_t e = threadIdx.x; e < num_experts; e += blockDim.x) {
      if (local[e] != 0u) atomicAdd(&hist[e], local[e]);
    }
  }
}

// load[e] += hist[e] (int64 at any alignment; wraps like the CPU reference).
__global__ void add_load_kernel(char* load, int64_t load_s, const unsigned* hist,
                                int64_t num_experts) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < num_experts;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    char* p = load + e * load_s * 8;
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    v += hist[e];
    memcpy(p, &v, sizeof(v));
  }
}

__device__ __forceinline__ double load_value(const char* load, int64_t load_s, bool load_f32,
                                             int64_t e) {
  if (load_f32) {
    float v;
    memcpy(&v, load + e * load_s * 4, sizeof(v));
    return static_cast<double>(v);
  }
  int64_t v;
  memcpy(&v, load + e * load_s * 8, sizeof(v));
  return static_cast<double>(v);
}

__global__ void __launch_bounds__(moe::kBiasLanes)
    bias_kernel(const char* load, int64_t load_s, bool load_f32, char* bias, int64_t bias_s,
                int64_t num_experts, float gamma) {
  __shared__ double lane[moe::kBiasLanes];
  const int tid = static_cast<int>(threadIdx.x);
  double s = 0.0;
  for (int64_t e = tid; e < num_experts; e += moe::kBiasLanes) {
    s += load_value(load, load_s, load_f32, e);
  }
  lane[tid] = s;
  __syncthreads();
  for (int st = moe::kBiasLanes / 2; st > 0; st >>= 1) {
    if (tid < st) lane[tid] += lane[tid + st];
    __syncthreads();
  }
  const double mean = lane[0] / static_cast<double>(num_experts);
  for (int64_t e = tid; e < num_experts; e += moe::kBiasLanes) {
    char* p = bias + e * bias_s * 4;
    float b;
    memcpy(&b, p, sizeof(b));
    b = moe::bias_step(b, gamma, mean, load_value(load, load_s, load_f32, e));
    memcpy(p, &b, sizeof(b));
  }
}

__global__ void zero_flags_kernel(EpLayoutArgs a) {
  const int64_t n = a.ids.tokens * a.num_ranks;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / a.num_ranks;
    const int64_t r = i - t * a.num_ranks;
    a.in_rank[t * a.in_rank_s0 + r * a.in_rank_s1] = 0;
  }
}

// Slot (t, j) flags rank r of its id unless an earlier slot of token t already did.
template <bool A>
__global__ void rank_kernel(EpLayoutArgs a, unsigned* per_rank) {
  const int64_t n = a.ids.tokens * a.ids.k;
  const int64_t per = a.num_experts / a.num_ranks;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / a.ids.k;
    const int64_t j = i - t * a.ids.k;
    const int64_t id = id_of<A>(a.ids, t, j);
    if (id < 0 || id >= a.num_experts) continue;
    const int64_t r = id / per;
    bool first = true;
    for (int64_t q = 0; q < j && first; ++q) {
      const int64_t other = id_of<A>(a.ids, t, q);
      first = !(other >= 0 && other < a.num_experts && other / per == r);
    }
    if (!first) continue;
    a.in_rank[t * a.in_rank_s0 + r * a.in_rank_s1] = 1;
    atomicAdd(&per_rank[r], 1u);
  }
}

__global__ void write_counts_kernel(EpLayoutArgs a, const unsigned* counts) {
  const int64_t n = a.num_experts + a.num_ranks;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const auto v = static_cast<int32_t>(counts[i]);
    if (i < a.num_experts) {
      store_i32<false>(a.per_expert + i * a.per_expert_s * 4, v);
    } else {
      store_i32<false>(a.per_rank + (i - a.num_experts) * a.per_rank_s * 4, v);
    }
  }
}

template <bool A>
void launch_hist(const MoeIds& ids, int64_t lo, int64_t num_experts, unsigned* hist,
                 DeferredErrorRecord* record, cudaStream_t stream) {
  const int64_t n = ids.tokens * ids.k;
  if (num_experts <= kSharedHistMax) {
    // Few blocks: each one flushes its whole shared histogram.
    const size_t smem = static_cast<size_t>(num_experts) * sizeof(unsigned);
    hist_kernel<A, true>
        <<<grid_for(n, 2), kThreads, smem, stream>>>(ids, lo, num_experts, hist, record);
  } else {
    hist_kernel<A, false>
        <<<grid_for(n, 8), kThreads, 0, stream>>>(ids, lo, num_experts, hist, record);
  }
}

bool ids_aligned(const MoeIds& ids) {
  return reinterpret_cast<uintptr_t>(ids.data) % (ids.is64 != 0 ? 8u : 4u) == 0;
}

}  // namespace

dsk_status launch_moe_load_accumulate(const MoeIds& ids, int32_t expert_begin, char* load,
                                      int64_t load_s, int64_t num_experts, unsigned* hist,
                                      cudaStream_t stream) noexcept {
  DSK_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(hist, 0, static_cast<size_t>(num_experts) * sizeof(unsigned), stream));
  if (ids.tokens * ids.k > 0) {
    if (ids_aligned(ids)) {
      launch_hist<true>(ids, expert_begin, num_experts, hist, nullptr, stream);
    } else {
      launch_hist<false>(ids, expert_begin, num_experts, hist, nullptr, stream);
    }
    DSK_RETURN_IF_FAILED(check_launch("moe_load_accumulate"));
  }
  add_load_kernel<<<grid_for(num_experts, 4), kThreads, 0, stream>>>(load, load_s, hist,
                                                                     num_experts);
  return check_launch("moe_load_accumulate");
}

dsk_status launch_moe_bias_update(const char* load, int64_t load_s, bool load_f32, char* bias,
                                  int64_t bias_s, int64_t num_experts, float gamma,
                                  cudaStream_t stream) noexcept {
  bias_kernel<<<1, moe::kBiasLanes, 0, stream>>>(load, load_s, load_f32, bias, bias_s, num_experts,
                                                 gamma);
  return check_launch("moe_bias_update");
}

dsk_status launch_moe_ep_layout(const EpLayoutArgs& a, unsigned* counts,
                                DeferredErrorRecord* record, cudaStream_t stream) noexcept {
  const int64_t slots = a.num_experts + a.num_ranks;
  DSK_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(counts, 0, static_cast<size_t>(slots) * sizeof(unsigned), stream));
  const int64_t n = a.ids.tokens * a.ids.k;
  const int64_t flags = a.ids.tokens * a.num_ranks;
  if (flags > 0) {
    zero_flags_kernel<<<grid_for(flags, 8), kThreads, 0, stream>>>(a);
    DSK_RETURN_IF_FAILED(check_launch("moe_ep_layout"));
  }
  if (n > 0) {
    const bool al = ids_aligned(a.ids);
    if (al) {
      launch_hist<true>(a.ids, 0, a.num_experts, counts, record, stream);
    } else {
      launch_hist<false>(a.ids, 0, a.num_experts, counts, record, stream);
    }
    DSK_RETURN_IF_FAILED(check_launch("moe_ep_layout"));
    if (al) {
      rank_kernel<true><<<grid_for(n, 8), kThreads, 0, stream>>>(a, counts + a.num_experts);
    } else {
      rank_kernel<false><<<grid_for(n, 8), kThreads, 0, stream>>>(a, counts + a.num_experts);
    }
    DSK_RETURN_IF_FAILED(check_launch("moe_ep_layout"));
  }
  write_counts_kernel<<<grid_for(slots, 4), kThreads, 0, stream>>>(a, counts);
  return check_launch("moe_ep_layout");
}

}  // namespace cuda
}  // namespace dsk
