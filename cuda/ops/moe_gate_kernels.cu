// The MoE gate kernel (launch_moe_gate in moe_gate_kernels.h): bitwise equal to the CPU reference
// (lib/cpu/moe_gate.cpp) because every float step is a function of lib/common/moe_gate_row.h, and
// this file is built with -fmad=false (cuda/CMakeLists.txt).
//
// One warp per token (a grid-stride loop over tokens), up to 8 warps per block. Lane l holds the
// experts e = l, l + 32, ... (so every load instruction of the warp reads 32 consecutive logits)
// and keeps the token's state in its warp's slice of shared memory:
//   s [E] f32      the scores (first the cleaned logits on the softmax path)
//   key [E] u32    the selection keys gate_key(s'), kKeyTaken once picked
//   gkey [G] u32   group score keys, kKeyTaken for the kept groups
//   pick_id [k], pick_w [k]   the picks in order and their raw weights
// and the bias [E] is staged once per block. Steps:
//  1. scores: softmax takes the row max with a butterfly of compares (exact), then each lane sums
//     its exp values in index order and the xor-shuffle tree p += shfl_xor(p, o), o = 16 .. 1,
//     reproduces gate_softmax_sum's canonical order bit for bit;
//  2. groups: groups of >= 32 experts are scanned by the whole warp, one group at a time (lane
//     top-2, merged with __reduce_max_sync / __ballot_sync); smaller groups by one lane each
//     (g = lane, lane + 32, ...), serially over the members. Then topk_group rounds of (max key,
//     then lowest group index) with __reduce_max_sync / __reduce_min_sync; experts of the other
//     groups get the -inf key (the group of e walked without division, GateGroupWalk);
//  3. top-k: each lane caches its best two (key, lowest index); k rounds of warp max key, then
//     the lowest index among the lanes holding it; the owner marks the pick kKeyTaken and moves
//     its second up (rescanning its own experts only when the second is gone too). The pick's raw
//     weight is read from shared memory by every lane, so every lane adds the renormalization sum
//     in pick order;
//  4. lanes j = lane, lane + 32, ... finish and store pick j; lane 0 stores the row flags.
// Nothing depends on other tokens or on the launch shape. Needs sm_80+ (__reduce_*_sync).
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "common/convert.h"
#include "common/moe_gate_row.h"
#include "cuda/error.h"
#include "cuda/ops/elem_io.cuh"
#include "cuda/ops/moe_gate_kernels.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_moe.h"

namespace dsk {
namespace cuda {
namespace {

constexpr unsigned kFull = 0xFFFFFFFFu;
constexpr int kMaxWarps = 8;
constexpr size_t kDefaultSmem = 48 * 1024;

// 4-byte words of one warp's slice of shared memory.
__host__ __device__ inline int64_t warp_words(int32_t e, int32_t g, int32_t k) {
  return 2 * static_cast<int64_t>(e) + g + 2 * static_cast<int64_t>(k);
}

// Lane-local best (largest key, then lowest index) over the lane's entries e = lane, lane + 32, ...
__device__ __forceinline__ void lane_best(const uint32_t* key, int32_t n, int32_t lane,
                                          uint32_t& best_key, uint32_t& best_index) {
  best_key = moe::kKeyTaken;
  best_index = 0xFFFFFFFFu;
  for (int32_t e = lane; e < n; e += 32) {
    const uint32_t v = key[e];
    if (v > best_key) {
      best_key = v;
      best_index = static_cast<uint32_t>(e);
    }
  }
}

// The lane's best two (key, index) in selection order; kKeyTaken / ~0 where the lane has fewer.
struct LaneTop2 {
  uint32_t k1, e1, k2, e2;
};

__device__ __forceinline__ LaneTop2 lane_top2(const uint32_t* key, int32_t n, int32_t lane) {
  LaneTop2 b{moe::kKeyTaken, 0xFFFFFFFFu, moe::kKeyTaken, 0xFFFFFFFFu};
  for (int32_t e = lane; e < n; e += 32) {
    const uint32_t v = key[e];
    if (v > b.k1) {
      b.k2 = b.k1;
      b.e2 = b.e1;
      b.k1 = v;
      b.e1 = static_cast<uint32_t>(e);
    } else if (v > b.k2) {
      b.k2 = v;
      b.e2 = static_cast<uint32_t>(e);
    }
  }
  return b;
}

// The warp's winner of (largest key, lowest index) from each lane's best; every lane gets it.
__device__ __forceinline__ uint32_t warp_winner(uint32_t best_key, uint32_t best_index,
                                                uint32_t& top_key) {
  top_key = __reduce_max_sync(kFull, best_key);
  return __reduce_min_sync(kFull, best_key == top_key ? best_index : 0xFFFFFFFFu);
}

__device__ __forceinline__ float load_bias(const char* bias, int64_t stride, int32_t e) {
  float v;
  memcpy(&v, bias + static_cast<int64_t>(e) * stride * 4, 4);
  return v;
}

__device__ __forceinline__ void store_out(const MoeGateArgs& a, int64_t t, int32_t j, int32_t id,
                                          float w) {
  const int64_t ioff = t * a.ids_stride[0] + static_cast<int64_t>(j) * a.ids_stride[1];
  const int64_t woff = t * a.weights_stride[0] + static_cast<int64_t>(j) * a.weights_stride[1];
  if (a.outputs_aligned != 0) {
    if (a.ids64 != 0) {
      reinterpret_cast<int64_t*>(a.ids)[ioff] = id;
    } else {
      reinterpret_cast<int32_t*>(a.ids)[ioff] = id;
    }
    reinterpret_cast<float*>(a.weights)[woff] = w;
  } else {
    if (a.ids64 != 0) {
      const int64_t v = id;
      memcpy(a.ids + ioff * 8, &v, 8);
    } else {
      memcpy(a.ids + ioff * 4, &id, 4);
    }
    memcpy(a.weights + woff * 4, &w, 4);
  }
}

// LD: the logits' dtype for naturally aligned data, 0 for any alignment (run-time dtype).
template <int32_t LD>
__global__ void __launch_bounds__(kMaxWarps * 32) moe_gate_kernel(MoeGateArgs a) {
  extern __shared__ __align__(16) uint32_t smem[];
  const int32_t n = a.num_experts;
  const int32_t k = a.top_k;
  const int32_t groups = a.n_group;
  const bool has_bias = a.bias != nullptr;
  const bool grouped = groups > 1 && a.topk_group < groups;
  const int32_t group_size = n / groups;

  float* bias = reinterpret_cast<float*>(smem);
  if (has_bias) {
    for (int32_t e = static_cast<int32_t>(threadIdx.x); e < n;
         e += static_cast<int32_t>(blockDim.x)) {
      bias[e] = load_bias(a.bias, a.bias_stride, e);
    }
    __syncthreads();
  }
  const auto lane = static_cast<int32_t>(threadIdx.x & 31u);
  const auto warp = static_cast<int32_t>(threadIdx.x >> 5);
  const auto warps = static_cast<int32_t>(blockDim.x >> 5);
  uint32_t* base = smem + (has_bias ? n : 0) + warp * warp_words(n, groups, k);
  float* s = reinterpret_cast<float*>(base);
  uint32_t* key = base + n;
  uint32_t* gkey = key + n;
  int32_t* pick_id = reinterpret_cast<int32_t*>(gkey + groups);
  float* pick_w = reinterpret_cast<float*>(pick_id + k);

  moe::GateGroupWalk walk0{};
  if (grouped) walk0.start(lane, 32, group_size);
  const moe::GateWeightMode mode =
      moe::gate_weight_mode(a.score_func, a.renormalize, a.score_bf16, a.scale);
  const int64_t lrow = a.logits_stride[0];
  const int64_t lcol = a.logits_stride[1];

  for (int64_t t = static_cast<int64_t>(blockIdx.x) * warps + warp; t < a.tokens;
       t += static_cast<int64_t>(gridDim.x) * warps) {
    // ---- 1. scores and selection keys
    bool any_finite = false;
    if (a.score_func == DSK_MOE_SCORE_SOFTMAX) {
      float m = moe::gate_neg_inf();
#pragma unroll 4
      for (int32_t e = lane; e < n; e += 32) {
        const float x = moe::gate_clean_logit(
            load_elem<LD>(a.logits, t * lrow + static_cast<int64_t>(e) * lcol, a.logits_dtype));
        s[e] = x;
        m = x > m ? x : m;
      }
#pragma unroll
      for (int o = 16; o >= 1; o >>= 1) {
        const float other = __shfl_xor_sync(kFull, m, o);
        m = other > m ? other : m;
      }
      m = moe::gate_softmax_max(m);
      float part = 0.0f;
      for (int32_t e = lane; e < n; e += 32) {
        const float ev = moe::gate_softmax_exp(s[e], m);
        part = moe::gate_add(part, ev);
        key[e] = f32_bits(ev);  // parked until the sum is known
      }
#pragma unroll
      for (int o = 16; o >= 1; o >>= 1) part = moe::gate_add(part, __shfl_xor_sync(kFull, part, o));
      for (int32_t e = lane; e < n; e += 32) {
        const bool valid = s[e] != moe::gate_neg_inf();
        const float se = moe::gate_softmax_score(f32_from_bits(key[e]), part);
        s[e] = se;
        key[e] = moe::gate_key(moe::gate_biased(se, valid, has_bias, has_bias ? bias[e] : 0.0f));
        any_finite = any_finite || key[e] > moe::kKeyNegInf;
      }
    } else {
#pragma unroll 4
      for (int32_t e = lane; e < n; e += 32) {
        const float x = moe::gate_clean_logit(
            load_elem<LD>(a.logits, t * lrow + static_cast<int64_t>(e) * lcol, a.logits_dtype));
        const float se = moe::gate_point_score(a.score_func, a.score_bf16, x);
        s[e] = se;
        const uint32_t kv = moe::gate_key(
            moe::gate_biased(se, x != moe::gate_neg_inf(), has_bias, has_bias ? bias[e] : 0.0f));
        key[e] = kv;
        any_finite = any_finite || kv > moe::kKeyNegInf;
      }
    }
    any_finite = __any_sync(kFull, any_finite);
    __syncwarp();

    // ---- 2. group-limited routing
    if (grouped) {
      if (group_size >= 32) {
        // The warp scans one group at a time (consecutive keys per lane), then merges the lanes'
        // two largest: the second of the group is the top again when two lanes hold it, else the
        // largest of the others' firsts and the top lane's second.
        for (int32_t g = 0; g < groups; ++g) {
          const uint32_t* kg = key + static_cast<int64_t>(g) * group_size;
          uint32_t hi = moe::kKeyTaken;
          uint32_t lo = moe::kKeyTaken;
          for (int32_t i = lane; i < group_size; i += 32) moe::gate_top2_push(kg[i], hi, lo);
          const uint32_t top = __reduce_max_sync(kFull, hi);
          uint32_t gk = top;
          if (a.top2sum != 0) {
            const unsigned holders = __ballot_sync(kFull, hi == top);
            const uint32_t second =
                __popc(holders) >= 2 ? top : __reduce_max_sync(kFull, hi == top ? lo : hi);
            gk = moe::gate_top2_key(top, second);
          }
          if (lane == 0) gkey[g] = gk;
        }
      } else {
        for (int32_t g = lane; g < groups; g += 32) {
          const uint32_t* kg = key + static_cast<int64_t>(g) * group_size;
          if (a.top2sum != 0) {
            uint32_t hi = moe::kKeyTaken;
            uint32_t lo = moe::kKeyTaken;
            for (int32_t i = 0; i < group_size; ++i) moe::gate_top2_push(kg[i], hi, lo);
            gkey[g] = moe::gate_top2_key(hi, lo);
          } else {
            uint32_t hi = kg[0];
            for (int32_t i = 1; i < group_size; ++i) hi = kg[i] > hi ? kg[i] : hi;
            gkey[g] = hi;
          }
        }
      }
      __syncwarp();
      for (int32_t round = 0; round < a.topk_group; ++round) {
        uint32_t bk;
        uint32_t bg;
        lane_best(gkey, groups, lane, bk, bg);
        uint32_t top;
        const uint32_t win = warp_winner(bk, bg, top);
        if (lane == static_cast<int32_t>(win & 31u)) gkey[win] = moe::kKeyTaken;
        __syncwarp();
      }
      moe::GateGroupWalk walk = walk0;
      for (int32_t e = lane; e < n; e += 32) {
        if (gkey[walk.group] != moe::kKeyTaken) key[e] = moe::kKeyNegInf;
        walk.advance();
      }
      __syncwarp();
    }

    // ---- 3. top-k. Each lane caches its best two; when its best is picked the second moves up,
    // and only when that one is picked too does the lane rescan.
    LaneTop2 best = lane_top2(key, n, lane);
    bool second_known = true;
    float sum = 0.0f;
    int32_t finite_picks = 0;
    for (int32_t j = 0; j < k; ++j) {
      uint32_t top;
      const uint32_t win = warp_winner(best.k1, best.e1, top);
      const bool finite = top > moe::kKeyNegInf;
      const float w = finite ? s[win] : 0.0f;
      sum = moe::gate_add(sum, w);
      finite_picks += finite ? 1 : 0;
      if (lane == 0) {
        pick_id[j] = static_cast<int32_t>(win);
        pick_w[j] = w;
      }
      if (lane == static_cast<int32_t>(win & 31u)) {
        key[win] = moe::kKeyTaken;
        if (second_known) {
          best.k1 = best.k2;
          best.e1 = best.e2;
          second_known = false;
        } else {
          best = lane_top2(key, n, lane);
          second_known = true;
        }
      }
    }
    __syncwarp();

    // ---- 4. weights, ids, flags
    const float divisor = moe::gate_renorm_divisor(mode, sum);
    for (int32_t j = lane; j < k; j += 32) {
      store_out(a, t, j, pick_id[j], moe::gate_finish_weight(mode, pick_w[j], divisor));
    }
    if (lane == 0 && a.flags != nullptr) {
      a.flags[t * a.flags_stride] =
          static_cast<char>(moe::gate_row_flags(any_finite, finite_picks, k));
    }
    __syncwarp();  // the next token reuses this warp's shared memory
  }
}

template <int32_t LD>
dsk_status launch_ld(const MoeGateArgs& a, cudaStream_t stream) {
  const int64_t bias_words = a.bias != nullptr ? a.num_experts : 0;
  const int64_t per_warp = warp_words(a.num_experts, a.n_group, a.top_k);
  int warps = kMaxWarps;
  while (warps > 1 && static_cast<size_t>(4 * (bias_words + warps * per_warp)) > kDefaultSmem) {
    warps /= 2;
  }
  // Fewer warps than tokens would only leave warps idle.
  while (warps > 1 && warps / 2 >= a.tokens) warps /= 2;
  const auto smem = static_cast<size_t>(4 * (bias_words + warps * per_warp));
  if (smem > kDefaultSmem) {
    int device = 0;
    DSK_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    int optin = 0;
    DSK_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (smem > static_cast<size_t>(optin)) {
      return fail(DSK_ERR_UNSUPPORTED,
                  "moe_gate: %d experts (n_group %d, top_k %d) need %zu bytes of shared memory per "
                  "token, more than the %d this device allows",
                  static_cast<int>(a.num_experts), static_cast<int>(a.n_group),
                  static_cast<int>(a.top_k), smem, optin);
    }
    // The device's limit, not smem: the attribute belongs to the kernel, so a value that depends
    // on this call's shape could be lowered by another thread between its set and our launch.
    DSK_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
        moe_gate_kernel<LD>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
  }
  const int64_t blocks_needed = (a.tokens + warps - 1) / warps;
  const auto blocks = static_cast<unsigned>(
      blocks_needed < (int64_t{1} << 20) ? blocks_needed : (int64_t{1} << 20));
  moe_gate_kernel<LD><<<blocks, static_cast<unsigned>(warps * 32), smem, stream>>>(a);
  return check_launch("moe_gate");
}

}  // namespace

dsk_status launch_moe_gate(const MoeGateArgs& a, cudaStream_t stream) noexcept {
  const auto esize = static_cast<uintptr_t>(dtype_id_size(a.logits_dtype));
  const bool aligned = reinterpret_cast<uintptr_t>(a.logits) % esize == 0;
  if (aligned) {
    switch (a.logits_dtype) {
      case DSK_DTYPE_F32:
        return launch_ld<DSK_DTYPE_F32>(a, stream);
      case DSK_DTYPE_F16:
        return launch_ld<DSK_DTYPE_F16>(a, stream);
      case DSK_DTYPE_BF16:
        return launch_ld<DSK_DTYPE_BF16>(a, stream);
      default:
        break;
    }
  }
  return launch_ld<0>(a, stream);
}

}  // namespace cuda
}  // namespace dsk
