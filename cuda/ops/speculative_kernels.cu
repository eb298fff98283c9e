// Speculative verification (dsk_speculative_verify): one block per row. The acceptance chain is
// walked by one thread (n gathered probabilities); the emitted token is an argmax (GREEDY) or a
// Gumbel race over the residual of the stopping row, with the race over the target row alone
// computed in the same pass for the case where the residual has no positive entry. Every float goes
// through common/sampling_math.h, so the tokens equal the CPU reference.
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "common/sampling_math.h"
#include "cuda/error.h"
#include "cuda/ops/elem_io.cuh"
#include "cuda/ops/speculative_kernels.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_sampling.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

template <typename T>
__device__ __forceinline__ T load_bytes(const char* p) {
  T v;
  memcpy(&v, p, sizeof(T));
  return v;
}

__device__ __forceinline__ void store_i32(char* p, int32_t v) { memcpy(p, &v, sizeof(v)); }

__device__ __forceinline__ unsigned long long pack(uint32_t key, uint32_t id) {
  return (static_cast<unsigned long long>(key) << 32) | static_cast<unsigned long long>(~id);
}
__device__ __forceinline__ uint32_t packed_id(unsigned long long p) {
  return ~static_cast<uint32_t>(p & 0xFFFFFFFFull);
}

__device__ unsigned long long block_max(unsigned long long* r64, unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long w = __shfl_xor_sync(0xFFFFFFFFu, v, o);
    v = w > v ? w : v;
  }
  __syncthreads();
  if ((threadIdx.x & 31u) == 0) r64[threadIdx.x >> 5] = v;
  __syncthreads();
  unsigned long long r = 0;
  for (int w = 0; w < kWarps; ++w) r = r64[w] > r ? r64[w] : r;
  return r;
}

template <int32_t ID>
__device__ __forceinline__ float target_at(const VerifyLaunch& a, int64_t b, int64_t i, int64_t j) {
  return load_elem<ID>(a.target, b * a.t_s0 + i * a.t_s1 + j * a.t_s2, a.probs_dtype_id);
}

template <int32_t ID>
__device__ __forceinline__ float draft_at(const VerifyLaunch& a, int64_t b, int64_t i, int64_t j) {
  return load_elem<ID>(a.draft_probs, b * a.q_s0 + i * a.q_s1 + j * a.q_s2, a.draft_dtype_id);
}

__device__ __forceinline__ int64_t draft_id(const VerifyLaunch& a, int64_t b, int64_t i) {
  const char* p = a.draft_ids + (b * a.d_s0 + i * a.d_s1) * (a.draft64 != 0 ? 8 : 4);
  return a.draft64 != 0 ? load_bytes<int64_t>(p) : static_cast<int64_t>(load_bytes<int32_t>(p));
}

// TID: the target's dtype (typed loads) or 0 (any dtype, byte loads); DID likewise for the drafts.
template <int32_t TID, int32_t DID>
__global__ void __launch_bounds__(kThreads) verify_kernel(VerifyLaunch a) {
  __shared__ unsigned long long r64[kWarps];
  __shared__ int s_flag;
  __shared__ int s_stop;
  __shared__ int s_rejected;
  const int64_t b = blockIdx.x;
  const int32_t n = a.n;
  const int64_t vocab = a.vocab;

  // Draft ids outside [-1, V): the row emits nothing.
  if (threadIdx.x == 0) s_flag = 0;
  __syncthreads();
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < n; i += kThreads) {
    const int64_t t = draft_id(a, b, i);
    if (t < -1 || t >= vocab) {
      if (atomicExch(&s_flag, 1) == 0 && a.record != nullptr) {
        report_deferred(a.record, kDeferredVerifyDraftId, b, i, t);
      }
    }
  }
  __syncthreads();
  if (s_flag != 0) {
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i <= n; i += kThreads) {
      store_i32(a.out_ids + (b * a.o_s0 + i * a.o_s1) * 4, -1);
    }
    if (threadIdx.x == 0) {
      store_i32(a.accepted + b * a.a_s0 * 4, 0);
      if (a.emitted != nullptr) store_i32(a.emitted + b * a.e_s0 * 4, 0);
    }
    return;
  }

  const uint64_t seed =
      a.seeds != nullptr ? load_bytes<uint64_t>(a.seeds + b * a.seeds_s * 8) : a.seed_v;
  const uint64_t offset =
      a.offsets != nullptr ? load_bytes<uint64_t>(a.offsets + b * a.offsets_s * 8) : a.offset_v;
  int32_t stop = 0;       // the row the emitted token comes from (= accepted drafts)
  bool rejected = false;  // the emitted token replaces the draft at `stop`
  uint32_t emit = 0;

  if (a.mode == DSK_VERIFY_GREEDY) {
    for (int32_t i = 0; i <= n; ++i) {
      unsigned long long best = 0;
      for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
        const float v = target_at<TID>(a, b, i, j);
        if (v == v) {
          const unsigned long long p = pack(sample_key(v), static_cast<uint32_t>(j));
          best = p > best ? p : best;
        }
      }
      best = block_max(r64, best);
      const uint32_t arg = best == 0ull ? 0u : packed_id(best);
      const int64_t t = i < n ? draft_id(a, b, i) : -1;
      if (t == -1 || t != static_cast<int64_t>(arg)) {
        stop = i;
        emit = arg;
        break;
      }
    }
  } else {
    if (threadIdx.x == 0) {
      int32_t i = 0;
      bool rej = false;
      for (; i < n; ++i) {
        const int64_t t = draft_id(a, b, i);
        if (t == -1) break;
        const float u = sample_accept_uniform(seed, offset, static_cast<uint32_t>(i));
        const float q = a.draft_probs != nullptr ? draft_at<DID>(a, b, i, t) : 1.0f;
        const float p = target_at<TID>(a, b, i, t);
        if (!verify_accepts(u, q, p)) {
          rej = true;
          break;
        }
      }
      s_stop = i;
      s_rejected = rej ? 1 : 0;
    }
    __syncthreads();
    stop = s_stop;
    rejected = s_rejected != 0;
    const int64_t t = rejected ? draft_id(a, b, stop) : -1;
    const uint64_t off = offset + static_cast<uint64_t>(stop);
    // best_r: the race over max(p - q, 0) (rejection only); best_p: over p alone.
    unsigned long long best_r = 0, best_p = 0;
    float top_r = -__builtin_huge_valf(), top_p = -__builtin_huge_valf();
    Philox4 ph{};
    int64_t ph_block = -1;
    for (int64_t g = threadIdx.x; g * 4 < vocab; g += kThreads) {
      const int64_t end = g * 4 + 4 < vocab ? g * 4 + 4 : vocab;
      for (int64_t j = g * 4; j < end; ++j) {
        const float p = target_at<TID>(a, b, stop, j);
        float lr = 0.0f, lp = 0.0f;
        bool use_r = false, use_p = false;
        if (rejected) {
          const float q =
              a.draft_probs != nullptr ? draft_at<DID>(a, b, stop, j) : (j == t ? 1.0f : 0.0f);
          const float r = verify_residual(p, q);
          if (r > 0.0f) {
            lr = det_log(r);
            use_r = !(sample_score(lr, kGumbelUpper) < top_r);
          }
        }
        const float rp = p > 0.0f ? p : 0.0f;  // the target's weight (NaN: none)
        if (rp > 0.0f) {
          lp = det_log(rp);
          use_p = !(sample_score(lp, kGumbelUpper) < top_p);
        }
        if (!use_r && !use_p) continue;
        if ((j >> 2) != ph_block) {
          ph_block = j >> 2;
          ph = sample_philox(seed, off, kSampleStreamGumbel, static_cast<uint32_t>(ph_block));
        }
        const float gj = sample_gumbel(ph.v[j & 3]);
        // sample_score(det_log(r), g) is verify_score(r, g) with the log computed once.
        if (use_r) {
          const float s = sample_score(lr, gj);
          const unsigned long long k = pack(sample_key(s), static_cast<uint32_t>(j));
          if (k > best_r) {
            best_r = k;
            top_r = s;
          }
        }
        if (use_p) {
          const float s = sample_score(lp, gj);
          const unsigned long long k = pack(sample_key(s), static_cast<uint32_t>(j));
          if (k > best_p) {
            best_p = k;
            top_p = s;
          }
        }
      }
    }
    if (rejected) best_r = block_max(r64, best_r);
    best_p = block_max(r64, best_p);
    const unsigned long long best = best_r != 0ull ? best_r : best_p;
    emit = best == 0ull ? 0u : packed_id(best);
  }

  // Outputs: the accepted drafts, the emitted token, then -1.
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i <= n; i += kThreads) {
    int32_t v = -1;
    if (i < stop) {
      v = static_cast<int32_t>(draft_id(a, b, i));
    } else if (i == stop) {
      v = static_cast<int32_t>(emit);
    }
    store_i32(a.out_ids + (b * a.o_s0 + i * a.o_s1) * 4, v);
  }
  if (threadIdx.x == 0) {
    store_i32(a.accepted + b * a.a_s0 * 4, stop);
    if (a.emitted != nullptr) store_i32(a.emitted + b * a.e_s0 * 4, stop + 1);
  }
}

}  // namespace

dsk_status launch_verify(const VerifyLaunch& a, cudaStream_t stream) noexcept {
  if (a.rows == 0) return DSK_OK;
  const auto grid = static_cast<unsigned>(a.rows);
  const size_t es = dtype_id_size(a.probs_dtype_id);
  bool typed = reinterpret_cast<uintptr_t>(a.target) % es == 0;
  if (a.draft_probs != nullptr) {
    typed = typed && a.draft_dtype_id == a.probs_dtype_id &&
            reinterpret_cast<uintptr_t>(a.draft_probs) % es == 0;
  }
  if (typed && a.probs_dtype_id == DSK_DTYPE_F32) {
    verify_kernel<DSK_DTYPE_F32, DSK_DTYPE_F32><<<grid, kThreads, 0, stream>>>(a);
  } else if (typed && a.probs_dtype_id == DSK_DTYPE_BF16) {
    verify_kernel<DSK_DTYPE_BF16, DSK_DTYPE_BF16><<<grid, kThreads, 0, stream>>>(a);
  } else if (typed && a.probs_dtype_id == DSK_DTYPE_F16) {
    verify_kernel<DSK_DTYPE_F16, DSK_DTYPE_F16><<<grid, kThreads, 0, stream>>>(a);
  } else {
    verify_kernel<0, 0><<<grid, kThreads, 0, stream>>>(a);
  }
  return check_launch("speculative_verify");
}

}  // namespace cuda
}  // namespace dsk
