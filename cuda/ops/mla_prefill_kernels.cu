// MLA prefill kernels: varlen multi-head attention forward in the flash-attention-2 style, with
// tensor-core mma.sync.m16n8k16 (bf16/f16 inputs, f32 accumulation; sm_80 and later).
//
// Grid: x = floor(Tq / 64) + B work tiles, y = heads; 128 threads (4 warps). The grid needs no
// host knowledge of the request lengths (nothing is read back, so the launch is asynchronous and
// capturable): request b's query tiles are numbered ts(b) .. ts(b) + ceil(n_q / 64) - 1 with
// ts(b) = floor(cu_q[b] / 64) + b, which is strictly increasing and leaves no overlap, and the last
// tile of the last request is below floor(Tq / 64) + B. A CTA finds its request by a binary search
// of ts over cu_seqlens_q on the device; CTAs past the end of their request exit. The highest tile
// index runs first (the tail of a causal request has the most keys).
//
// A CTA owns 64 queries of one request and head (warp w: rows 16w .. 16w + 15) and walks the
// request's visible keys in tiles of 64:
//   Q tile  [64, Dqk]  in shared memory for the whole CTA life (zero rows past the request);
//   K tile  [64, Dqk]  and V^T [Dv, 64] reloaded per key tile (zero rows past the visible keys);
//   S = Q K^T by mma (fragments read from shared memory with 32-bit loads; rows padded by 8
//   elements so the 8 rows a fragment touches fall in distinct banks), scaled in f32, masked
//   (key past the query's causal limit or past the visible keys -> -inf), online softmax in f32
//   (running max m, rescale alpha = e^(m_old - m_new), partial row sums per thread reduced over
//   the 4 threads of a row at the end), then O += P V by mma with P rounded to the input dtype
//   (as FlashAttention and FlashMLA do; the CPU reference keeps P in f32, the difference is within
//   the documented tolerance).
//   Fully masked key tiles are never visited: the loop stops at the last key the CTA's last query
//   sees. Keys and queries outside the request are never read.
// Finally out = O / l rounded once to the output dtype (lib/common/convert.h rounding), staged
// through the warp's own Q rows in shared memory and written in 16-byte chunks; lse = m + ln l;
// a query without keys gets out = 0 and lse = -inf.
//
// Bad cu_seqlens: CTA (0, 0) checks every entry (0 first, non-decreasing, at most the token
// count, the token count last) and records the lowest bad index (cu_seqlens_q before _k) in the
// device's deferred error record. Every CTA reads only a request whose own bounds are sane
// (0 <= start <= end <= T for both q and k), so bad values never cause an out-of-bounds access.
//
// Instances: bf16/f16 x {Dqk 192 / Dv 128 with compile-time dims, any Dqk <= 256 with Dv <= 64,
// <= 128, <= 256} x {16-byte chunks, single elements (any strides/alignment)}.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <string.h>

#include "common/convert.h"
#include "cuda/error.h"
#include "cuda/kernels/mma.cuh"
#include "cuda/ops/mla_prefill_kernels.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kBlockM = 64;        // queries per CTA
constexpr int kBlockN = 64;        // keys per tile
constexpr int kThreads = 128;      // 4 warps x 16 query rows
constexpr int kLdV = kBlockN + 8;  // row stride (elements) of V^T in shared memory
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float neg_inf() { return -__int_as_float(0x7f800000); }

// Two probabilities as an A-fragment register of the input dtype (lo in the low half).
template <bool BF16>
__device__ __forceinline__ uint32_t pack_p(float lo, float hi) {
  uint32_t r;
  if constexpr (BF16) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&r, &v, 4);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&r, &v, 4);
  }
  return r;
}

// Two output values rounded by lib/common/convert.h's rules (lo in the low half).
template <bool BF16>
__device__ __forceinline__ uint32_t pack_out(float lo, float hi) {
  if constexpr (BF16) {
    return static_cast<uint32_t>(f32_to_bf16(lo)) | (static_cast<uint32_t>(f32_to_bf16(hi)) << 16);
  } else {
    return static_cast<uint32_t>(f32_to_f16(lo)) | (static_cast<uint32_t>(f32_to_f16(hi)) << 16);
  }
}

__device__ __forceinline__ uint32_t lds32(const uint16_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

__device__ __forceinline__ void sts32(uint16_t* p, uint32_t v) {
  *reinterpret_cast<uint32_t*>(p) = v;
}

// ---- global memory: 8 consecutive (step-apart) 2-byte elements starting at element `e`.
__device__ __forceinline__ uint32_t ldg_u16(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8);
}

template <bool VEC>
__device__ __forceinline__ uint4 load8(const char* base, int64_t e, int64_t step) {
  if constexpr (VEC) {
    return *reinterpret_cast<const uint4*>(base + e * 2);
  } else {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[i] = ldg_u16(base + (e + 2 * i * step) * 2) |
             (ldg_u16(base + (e + (2 * i + 1) * step) * 2) << 16);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
}

template <bool VEC>
__device__ __forceinline__ void store8(char* base, int64_t e, int64_t step, uint4 v) {
  if constexpr (VEC) {
    *reinterpret_cast<uint4*>(base + e * 2) = v;
  } else {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t h = (w[i / 2] >> (16 * (i % 2))) & 0xffffu;
      auto* b = reinterpret_cast<unsigned char*>(base + (e + i * step) * 2);
      b[0] = static_cast<unsigned char>(h & 0xffu);
      b[1] = static_cast<unsigned char>(h >> 8);
    }
  }
}

__device__ __forceinline__ void store_f32(char* p, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  if ((reinterpret_cast<uintptr_t>(p) & 3u) == 0) {
    *reinterpret_cast<uint32_t*>(p) = u;
  } else {
    auto* b = reinterpret_cast<unsigned char*>(p);
    for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>((u >> (8 * i)) & 0xffu);
  }
}

// cu_seqlens[i] (int32, any alignment).
__device__ __forceinline__ int64_t load_cu(const char* cu, int64_t stride, int64_t i) {
  const auto* b = reinterpret_cast<const unsigned char*>(cu + i * stride * 4);
  const uint32_t u = static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
                     (static_cast<uint32_t>(b[2]) << 16) | (static_cast<uint32_t>(b[3]) << 24);
  return static_cast<int32_t>(u);
}

// CTA (0, 0): records the lowest bad entry of cu_seqlens_q, else of cu_seqlens_k. All threads of
// the CTA call it.
__device__ void check_cu_seqlens(const MlaPrefillArgs& a) {
  __shared__ unsigned long long bad[2];
  if (threadIdx.x < 2) bad[threadIdx.x] = ~0ull;
  __syncthreads();
  for (int which = 0; which < 2; ++which) {
    const char* cu = which == 0 ? a.cu_q : a.cu_k;
    const int64_t stride = which == 0 ? a.cu_q_stride : a.cu_k_stride;
    const int64_t total = which == 0 ? a.tq : a.tk;
    for (int64_t i = threadIdx.x; i <= a.batch; i += blockDim.x) {
      const int64_t x = load_cu(cu, stride, i);
      bool ok = i == 0 ? x == 0 : (x >= load_cu(cu, stride, i - 1) && x <= total);
      if (i == a.batch && x != total) ok = false;
      if (!ok) atomicMin(&bad[which], static_cast<unsigned long long>(i));
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int which = 0; which < 2; ++which) {
      if (bad[which] == ~0ull) continue;
      const auto i = static_cast<int64_t>(bad[which]);
      const int64_t x =
          load_cu(which == 0 ? a.cu_q : a.cu_k, which == 0 ? a.cu_q_stride : a.cu_k_stride, i);
      report_deferred(a.record, kDeferredMlaCuSeqlens, i, x, which);
      break;
    }
  }
}

struct Tile {
  int64_t q_start, k_start;  // first token rows of the request
  int64_t n_q, n_k;
  int64_t q0;  // first query of the tile within the request
};

__device__ __forceinline__ int64_t tile_start(const MlaPrefillArgs& a, int64_t b) {
  int64_t c = load_cu(a.cu_q, a.cu_q_stride, b);
  c = c < 0 ? 0 : (c > a.tq ? a.tq : c);
  return c / kBlockM + b;
}

// The request and query tile of work tile w; false when w has no work (past its request's tiles,
// or a request whose bounds are bad). Uniform over the CTA.
__device__ bool find_tile(const MlaPrefillArgs& a, int64_t w, Tile* tile) {
  if (a.batch <= 0 || tile_start(a, 0) > w) return false;
  int64_t lo = 0;
  int64_t hi = a.batch - 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (tile_start(a, mid) <= w) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int64_t b = lo;
  const int64_t qs = load_cu(a.cu_q, a.cu_q_stride, b);
  const int64_t qe = load_cu(a.cu_q, a.cu_q_stride, b + 1);
  const int64_t ks = load_cu(a.cu_k, a.cu_k_stride, b);
  const int64_t ke = load_cu(a.cu_k, a.cu_k_stride, b + 1);
  if (!(0 <= qs && qs <= qe && qe <= a.tq && 0 <= ks && ks <= ke && ke <= a.tk)) return false;
  const int64_t local = w - tile_start(a, b);
  if (local * kBlockM >= qe - qs) return false;
  tile->q_start = qs;
  tile->k_start = ks;
  tile->n_q = qe - qs;
  tile->n_k = ke - ks;
  tile->q0 = local * kBlockM;
  return true;
}

// DQK_C: compile-time Dqk (0: a.dqk at run time, <= 256); DV_C: compile-time Dv when DQK_C > 0,
// else the largest Dv the instance takes (a.dv <= DV_C).
template <bool BF16, int DQK_C, int DV_C, bool VEC>
__global__ void __launch_bounds__(kThreads) mla_prefill_kernel(const MlaPrefillArgs a) {
  extern __shared__ uint4 smem_u4[];
  uint16_t* const smem = reinterpret_cast<uint16_t*>(smem_u4);
  const int tid = static_cast<int>(threadIdx.x);

  if (blockIdx.x == 0 && blockIdx.y == 0) check_cu_seqlens(a);

  Tile tile;
  const int64_t w = static_cast<int64_t>(gridDim.x) - 1 - static_cast<int64_t>(blockIdx.x);
  if (!find_tile(a, w, &tile)) return;
  const int h = static_cast<int>(blockIdx.y);
  const int kvh = h / a.group;

  const int dqk = DQK_C > 0 ? DQK_C : a.dqk;
  const int dv = DQK_C > 0 ? DV_C : a.dv;
  const int dqkp = (dqk + 15) / 16 * 16;  // Dqk padded to the mma k width (zero columns)
  const int ldq = (dqkp > dv ? dqkp : dv) + 8;
  const int ldk = dqkp + 8;
  uint16_t* const sq = smem;                 // [kBlockM, ldq]: Q, then the output staging
  uint16_t* const sk = sq + kBlockM * ldq;   // [kBlockN, ldk]
  uint16_t* const svt = sk + kBlockN * ldk;  // [dv, kLdV]: V^T

  const int64_t n_q = tile.n_q;
  const int64_t n_k = tile.n_k;
  const int64_t q0 = tile.q0;
  const int mrows = static_cast<int>(n_q - q0 < kBlockM ? n_q - q0 : kBlockM);
  int64_t kv_end = n_k;  // keys the tile's queries see, together
  if (a.causal != 0) {
    kv_end = n_k - n_q + q0 + mrows;
    kv_end = kv_end < 0 ? 0 : (kv_end > n_k ? n_k : kv_end);
  }

  // Q tile.
  const int qchunks = dqkp / 8;
  const int64_t q_row0 = (tile.q_start + q0) * a.q_stride[0] + h * a.q_stride[1];
  for (int c = tid; c < kBlockM * qchunks; c += kThreads) {
    const int r = c / qchunks;
    const int c8 = c - r * qchunks;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r < mrows && c8 * 8 < dqk) {
      val = load8<VEC>(a.q, q_row0 + r * a.q_stride[0] + c8 * 8 * a.q_stride[2], a.q_stride[2]);
    }
    *reinterpret_cast<uint4*>(sq + r * ldq + c8 * 8) = val;
  }
  __syncthreads();

  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;
  const int r0 = warp * 16 + g;  // this thread's two query rows in the tile
  const int r1 = r0 + 8;
  const int64_t lim0 = a.causal != 0 ? n_k - n_q + q0 + r0 : n_k - 1;  // last visible key
  const int64_t lim1 = a.causal != 0 ? n_k - n_q + q0 + r1 : n_k - 1;

  constexpr int kNv = DV_C / 8;  // output n-tiles (compile-time bound)
  const int nv = dv / 8;
  float o[kNv][4];
#pragma unroll
  for (int j = 0; j < kNv; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float m0 = neg_inf();
  float m1 = neg_inf();
  float l0 = 0.0f;  // partial sums of this thread's columns, reduced over the quad at the end
  float l1 = 0.0f;

  const int64_t k_row0 = tile.k_start * a.k_stride[0] + kvh * a.k_stride[1];
  const int64_t v_row0 = tile.k_start * a.v_stride[0] + kvh * a.v_stride[1];
  const int vchunks = dv / 8;

  for (int64_t kb = 0; kb < kv_end; kb += kBlockN) {
    const int nk = static_cast<int>(kv_end - kb < kBlockN ? kv_end - kb : kBlockN);
    __syncthreads();  // the previous tile's K and V are no longer read
    for (int c = tid; c < kBlockN * qchunks; c += kThreads) {
      const int r = c / qchunks;
      const int c8 = c - r * qchunks;
      uint4 val = make_uint4(0u, 0u, 0u, 0u);
      if (r < nk && c8 * 8 < dqk) {
        val = load8<VEC>(a.k, k_row0 + (kb + r) * a.k_stride[0] + c8 * 8 * a.k_stride[2],
                         a.k_stride[2]);
      }
      *reinterpret_cast<uint4*>(sk + r * ldk + c8 * 8) = val;
    }
    // V transposed; consecutive threads take consecutive keys (conflict-free 16-bit stores).
    for (int c = tid; c < kBlockN * vchunks; c += kThreads) {
      const int r = c % kBlockN;
      const int c8 = c / kBlockN;
      uint4 val = make_uint4(0u, 0u, 0u, 0u);
      if (r < nk) {
        val = load8<VEC>(a.v, v_row0 + (kb + r) * a.v_stride[0] + c8 * 8 * a.v_stride[2],
                         a.v_stride[2]);
      }
      const uint32_t wv[4] = {val.x, val.y, val.z, val.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        svt[(c8 * 8 + 2 * i) * kLdV + r] = static_cast<uint16_t>(wv[i] & 0xffffu);
        svt[(c8 * 8 + 2 * i + 1) * kLdV + r] = static_cast<uint16_t>(wv[i] >> 16);
      }
    }
    __syncthreads();

    // S = Q K^T: this warp's 16 rows x 64 keys (8 n-tiles).
    float s[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
    const int kcs = dqkp / 16;
#pragma unroll 4
    for (int kc = 0; kc < kcs; ++kc) {
      const uint16_t* qa = sq + kc * 16 + 2 * t4;
      const uint32_t af[4] = {lds32(qa + r0 * ldq), lds32(qa + r1 * ldq), lds32(qa + r0 * ldq + 8),
                              lds32(qa + r1 * ldq + 8)};
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const uint16_t* kp = sk + (j * 8 + g) * ldk + kc * 16 + 2 * t4;
        mma16816<BF16>(s[j], af, lds32(kp), lds32(kp + 8));
      }
    }

    // Scale, mask, row maxima over the quad (the 4 threads sharing a row).
    float mx0 = neg_inf();
    float mx1 = neg_inf();
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = kb + j * 8 + 2 * t4 + (e & 1);
        const int64_t lim = e < 2 ? lim0 : lim1;
        const float x = (key <= lim && key < kv_end) ? s[j][e] * a.scale : neg_inf();
        s[j][e] = x;
        if (e < 2) {
          mx0 = fmaxf(mx0, x);
        } else {
          mx1 = fmaxf(mx1, x);
        }
      }
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(kFull, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(kFull, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(kFull, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(kFull, mx1, 2));
    const float mn0 = fmaxf(m0, mx0);
    const float mn1 = fmaxf(m1, mx1);
    // Subtract 0 while a row has seen no key yet (-inf - -inf would be NaN).
    const float mu0 = mn0 == neg_inf() ? 0.0f : mn0;
    const float mu1 = mn1 == neg_inf() ? 0.0f : mn1;
    const float al0 = __expf(m0 - mu0);  // 0 while m0 is -inf
    const float al1 = __expf(m1 - mu1);
    m0 = mn0;
    m1 = mn1;
    l0 *= al0;
    l1 *= al1;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      s[j][0] = __expf(s[j][0] - mu0);
      s[j][1] = __expf(s[j][1] - mu0);
      s[j][2] = __expf(s[j][2] - mu1);
      s[j][3] = __expf(s[j][3] - mu1);
      l0 += s[j][0] + s[j][1];
      l1 += s[j][2] + s[j][3];
    }
#pragma unroll
    for (int j = 0; j < kNv; ++j) {
      o[j][0] *= al0;
      o[j][1] *= al0;
      o[j][2] *= al1;
      o[j][3] *= al1;
    }

    // O += P V: the S accumulators of n-tiles 2kc, 2kc + 1 are the A fragment of keys
    // 16kc .. 16kc + 15. Key chunks past the visible keys hold p = 0 only: skipped.
#pragma unroll
    for (int kc = 0; kc < kBlockN / 16; ++kc) {
      if (kc * 16 < nk) {
        const uint32_t pa[4] = {pack_p<BF16>(s[2 * kc][0], s[2 * kc][1]),
                                pack_p<BF16>(s[2 * kc][2], s[2 * kc][3]),
                                pack_p<BF16>(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                                pack_p<BF16>(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
        for (int j = 0; j < kNv; ++j) {
          if (j < nv) {
            const uint16_t* vp = svt + (j * 8 + g) * kLdV + kc * 16 + 2 * t4;
            mma16816<BF16>(o[j], pa, lds32(vp), lds32(vp + 8));
          }
        }
      }
    }
  }

  // Row sums over the quad; out = O / l (0 without keys).
  l0 += __shfl_xor_sync(kFull, l0, 1);
  l0 += __shfl_xor_sync(kFull, l0, 2);
  l1 += __shfl_xor_sync(kFull, l1, 1);
  l1 += __shfl_xor_sync(kFull, l1, 2);
  const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f;
  const float inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
  // Stage the warp's rows in its own Q rows (no other warp reads them), then 16-byte stores.
  __syncwarp();
#pragma unroll
  for (int j = 0; j < kNv; ++j) {
    if (j < nv) {
      sts32(sq + r0 * ldq + j * 8 + 2 * t4, pack_out<BF16>(o[j][0] * inv0, o[j][1] * inv0));
      sts32(sq + r1 * ldq + j * 8 + 2 * t4, pack_out<BF16>(o[j][2] * inv1, o[j][3] * inv1));
    }
  }
  __syncwarp();
  const int64_t o_row0 = (tile.q_start + q0) * a.out_stride[0] + h * a.out_stride[1];
  for (int c = lane; c < 16 * vchunks; c += 32) {
    const int rr = c / vchunks;
    const int c8 = c - rr * vchunks;
    const int r = warp * 16 + rr;
    if (r < mrows) {
      store8<VEC>(a.out, o_row0 + r * a.out_stride[0] + c8 * 8 * a.out_stride[2], a.out_stride[2],
                  *reinterpret_cast<const uint4*>(sq + r * ldq + c8 * 8));
    }
  }
  if (a.lse != nullptr && t4 == 0) {
    const int64_t tok = tile.q_start + q0;
    if (r0 < mrows) {
      store_f32(a.lse + (h * a.lse_stride[0] + (tok + r0) * a.lse_stride[1]) * 4,
                l0 > 0.0f ? m0 + logf(l0) : neg_inf());
    }
    if (r1 < mrows) {
      store_f32(a.lse + (h * a.lse_stride[0] + (tok + r1) * a.lse_stride[1]) * 4,
                l1 > 0.0f ? m1 + logf(l1) : neg_inf());
    }
  }
}

template <bool BF16, int DQK_C, int DV_C, bool VEC>
dsk_status launch_one(const MlaPrefillArgs& a, cudaStream_t stream) {
  const int dqkp = (a.dqk + 15) / 16 * 16;
  const int ldq = (dqkp > a.dv ? dqkp : a.dv) + 8;
  const int ldk = dqkp + 8;
  const size_t smem =
      static_cast<size_t>(kBlockM * ldq + kBlockN * ldk + a.dv * kLdV) * sizeof(uint16_t);
  int device = 0;
  DSK_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  int max_smem = 0;
  DSK_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  // + 16: the static shared memory of check_cu_seqlens.
  if (smem + 16 > static_cast<size_t>(max_smem)) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_prefill: Dqk = %d, Dv = %d need %zu bytes of shared memory per block, the "
                "device allows %d",
                a.dqk, a.dv, smem, max_smem);
  }
  auto* kernel = &mla_prefill_kernel<BF16, DQK_C, DV_C, VEC>;
  if (smem > 48 * 1024) {
    DSK_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  // At least one CTA: CTA (0, 0) checks cu_seqlens even when there is no work.
  const int64_t tiles = a.tq / kBlockM + a.batch > 0 ? a.tq / kBlockM + a.batch : 1;
  if (tiles > 0x7fffffff) {
    return fail(DSK_ERR_UNSUPPORTED, "mla_prefill: %lld work tiles exceed the CUDA grid",
                static_cast<long long>(tiles));
  }
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(a.heads));
  kernel<<<grid, kThreads, smem, stream>>>(a);
  return check_launch("mla_prefill");
}

template <bool BF16, bool VEC>
dsk_status launch_dims(const MlaPrefillArgs& a, cudaStream_t stream) {
  if (a.dqk == 192 && a.dv == 128) return launch_one<BF16, 192, 128, VEC>(a, stream);
  if (a.dv <= 64) return launch_one<BF16, 0, 64, VEC>(a, stream);
  if (a.dv <= 128) return launch_one<BF16, 0, 128, VEC>(a, stream);
  return launch_one<BF16, 0, 256, VEC>(a, stream);
}

}  // namespace

dsk_status launch_mla_prefill(const MlaPrefillArgs& a, int32_t dtype, bool vectorized,
                              cudaStream_t stream) noexcept {
  const bool bf16 = dtype == DSK_DTYPE_BF16;
  if (bf16) {
    return vectorized ? launch_dims<true, true>(a, stream) : launch_dims<true, false>(a, stream);
  }
  return vectorized ? launch_dims<false, true>(a, stream) : launch_dims<false, false>(a, stream);
}

}  // namespace cuda
}  // namespace dsk
