// Absorbed MLA decode over the paged latent cache (sm80+: cp.async, ldmatrix, mma.sync m16n8k16
// with bf16/f16 inputs and f32 accumulation).
//
// One CTA (256 threads, 8 warps) owns BM query rows of one (request b, kv head g) and one split
// of the request's keys. Rows are r = j * hg + i (query j, head g * hg + i), so all S * hg rows of
// a kv head share the cached keys; BM is 16, 32 or 64 (the smallest tile holding the rows, or
// several tiles of 64).
//
// Keys are walked in tiles of 32 tokens, each token's 576-wide row found through block_table and
// copied with cp.async into a ring of `stages` shared-memory buffers (tile t + stages - 1 is in
// flight while tile t is computed). A token at or past the CTA's key limit, or on a page whose
// block_table entry is out of range, is never read: its shared row is zero-filled by plain
// stores (so NaN in unused cache slots cannot reach an output: 0 * NaN would be NaN), and its
// score is masked to -inf. Bad entries and seqlens are recorded in the deferred error record.
//
// Per tile, three phases separated by __syncthreads:
//   A. S = Q K^T: the BM x 32 score tile as m16n8 mma tiles spread over the 8 warps (for BM = 16
//      the 576-deep dot is split in two halves whose partial sums are added in phase B), written
//      to shared memory in f32.
//   B. Online softmax, one warp per row (lane = key): scale (log2 domain), causal/length mask,
//      running max and sum (f32, kept in shared memory), P = exp2(s - m) rounded to the input
//      dtype into shared memory, and the rescale factor of the row.
//   C. O = O * alpha + P V: each warp owns 16 rows x (512 / (8 / (BM / 16))) output columns in
//      registers (32..128 f32 per thread); V is the first 512 values of the same cached rows,
//      read with ldmatrix.trans.
// Shared rows are padded to 1168 bytes so that the 8 row addresses of an ldmatrix hit 8
// different 16-byte bank groups.
//
// Split-KV: split s of a request with n keys takes keys [s * chunk, min((s + 1) * chunk, n)),
// chunk = ceil(n / num_splits) rounded up to 32. With one split the CTA writes out (rounded once)
// and lse directly; otherwise it writes its normalized f32 partial output and natural-log lse to
// the workspace and a combine kernel merges the splits in a fixed order (no atomics).
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include <mutex>

#include "cuda/deferred_error.h"
#include "cuda/error.h"
#include "cuda/kernels/mma.cuh"
#include "cuda/ops/mla_decode_kernels.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kD = static_cast<int>(kMlaHeadDim);
constexpr int kDv = static_cast<int>(kMlaHeadDimV);
constexpr int kBN = 32;  // keys per tile (= warp size: phase B maps a key to a lane)
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowStride = kD + 8;  // halves per shared row of Q and K (1168 bytes)
constexpr int kChunks = kD / 8;     // 16-byte chunks per row (72)
constexpr int kSStride = kBN + 8;   // floats per shared row of S
constexpr int kPStride = kBN + 8;   // halves per shared row of P (80 bytes)
constexpr int kMaxStages = 4;
constexpr int kCombineThreads = kDv / 4;  // 4 output columns per thread
constexpr float kLn2 = 0.693147180559945309f;

static_assert(kChunks % 8 == 0, "8 threads per K row load 16-byte chunks");
static_assert(kThreads == kBN * 8, "one K row per 8 threads");

// Warp roles for a row tile of BM rows.
template <int BM>
struct Tile {
  static constexpr int kWM = BM / 16;                                    // row groups in P.V
  static constexpr int kWN = kWarps / kWM;                               // column groups in P.V
  static constexpr int kCW = kDv / kWN;                                  // output columns per warp
  static constexpr int kONT = kCW / 8;                                   // n8 tiles of O per warp
  static constexpr int kSTiles = kWM * (kBN / 8);                        // m16n8 tiles of S
  static constexpr int kKS = kSTiles >= kWarps ? 1 : kWarps / kSTiles;   // depth parts of Q.K
  static constexpr int kSNT = kSTiles >= kWarps ? kSTiles / kWarps : 1;  // S n-tiles per warp
  static constexpr int kNG = (kBN / 8) / kSNT;                           // S column groups
  static constexpr int kSteps = kD / 16 / kKS;                           // k16 steps per warp
  static_assert(kWM * kNG * kKS == kWarps, "every warp has one S job");
  static_assert(kSNT == 1 || kSNT == 2, "S n-tiles per warp");
  static_assert(kSteps % 2 == 0, "k16 steps are taken in pairs when kSNT == 1");
  static_assert(kONT % 2 == 0, "V is read 16 columns at a time");
  static_assert(BM % kWarps == 0, "phase B rows per warp");
};

__host__ __device__ constexpr int depth_parts(int bm) {
  return (bm / 16) * (kBN / 8) >= kWarps ? 1 : kWarps / ((bm / 16) * (kBN / 8));
}

// Dynamic shared memory of a CTA: Q, the K ring, S (per depth part), P, then per row the key
// limit (int64), alpha, running max and running sum (f32).
__host__ __device__ constexpr size_t smem_bytes(int bm, int stages) {
  return static_cast<size_t>(bm) * kRowStride * 2 +
         static_cast<size_t>(stages) * kBN * kRowStride * 2 +
         static_cast<size_t>(depth_parts(bm)) * bm * kSStride * 4 +
         static_cast<size_t>(bm) * kPStride * 2 + static_cast<size_t>(bm) * (8 + 4 + 4 + 4);
}

// ---- PTX wrappers -------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Waits until at most `pending` (clamped to 0..2) groups are in flight.
__device__ __forceinline__ void cp_async_wait_dyn(int pending) {
  if (pending >= 2) {
    cp_async_wait<2>();
  } else if (pending == 1) {
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
}

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Two f32 rounded to nearest even into the input dtype, `lo` in the low half.
template <bool IS_BF16>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t r;
  if constexpr (IS_BF16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  }
  return r;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

// ---- Decode kernel ------------------------------------------------------------------------------

template <int BM, bool IS_BF16>
__global__ void __launch_bounds__(kThreads, 1) mla_decode_kernel(MlaDecodeArgs a, int stages) {
  using T = Tile<BM>;
  extern __shared__ __align__(16) unsigned char smem[];
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);
  uint16_t* k_s = q_s + BM * kRowStride;
  float* s_s = reinterpret_cast<float*>(k_s + stages * kBN * kRowStride);
  uint16_t* p_s = reinterpret_cast<uint16_t*>(s_s + T::kKS * BM * kSStride);
  long long* lim_s = reinterpret_cast<long long*>(p_s + BM * kPStride);
  float* alpha_s = reinterpret_cast<float*>(lim_s + BM);
  float* m_s = alpha_s + BM;
  float* l_s = m_s + BM;

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31;
  const int warp = tid >> 5;

  // blockIdx.x = ((b * Hkv + g) * num_splits + split) * row_tiles + tile: the row tiles of one
  // (request, head, split) run side by side and share the keys through L2.
  const int64_t row_tiles = (a.rows + BM - 1) / BM;
  int64_t idx = blockIdx.x;
  const int64_t tile = idx % row_tiles;
  idx /= row_tiles;
  const int32_t split = static_cast<int32_t>(idx % a.num_splits);
  idx /= a.num_splits;
  const int64_t g = idx % a.h_kv;
  const int64_t b = idx / a.h_kv;

  int64_t n = a.seqlens[b * a.sl_s0];
  if (n < 0 || n > a.max_tokens) {
    if (split == 0 && tile == 0 && g == 0 && tid == 0) {
      report_deferred(a.rec, kDeferredMlaSeqlen, b, n, a.max_tokens);
    }
    n = 0;  // skipped: nothing is read for this request
  }
  const int64_t row0 = tile * BM;
  const int64_t rows_here = a.rows - row0 < BM ? a.rows - row0 : BM;
  // Keys of query j: the first n - S + j + 1 when causal (at least 0), else all n.
  auto key_limit = [&](int64_t j) -> int64_t {
    if (!a.causal) return n;
    const int64_t lim = n - a.s_q + j + 1;
    return lim < 0 ? 0 : lim;
  };
  int64_t chunk = (n + a.num_splits - 1) / a.num_splits;
  chunk = (chunk + kBN - 1) / kBN * kBN;
  const int64_t k_begin = static_cast<int64_t>(split) * chunk;
  int64_t k_end = k_begin + chunk < n ? k_begin + chunk : n;
  const int64_t last_limit = key_limit((row0 + rows_here - 1) / a.hg);
  if (last_limit < k_end) k_end = last_limit;
  const int ntiles = k_end > k_begin ? static_cast<int>((k_end - k_begin + kBN - 1) / kBN) : 0;

  if (tid < BM) {
    const int64_t gr = row0 + tid;
    long long lim = 0;
    if (tid < rows_here) {
      const int64_t l = key_limit(gr / a.hg);
      lim = l < k_end ? l : k_end;
    }
    lim_s[tid] = lim;
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.0f;
  }

  // K tile `t` into ring buffer `buf`: 8 threads per token row, 9 16-byte chunks each.
  auto load_k = [&](int t, int buf) {
    const int r = tid >> 3;
    const int part = tid & 7;
    const int64_t key = k_begin + static_cast<int64_t>(t) * kBN + r;
    uint16_t* dst = k_s + (buf * kBN + r) * kRowStride;
    const uint16_t* src = nullptr;
    if (key < k_end) {
      // key < n <= max_pages * page_size and n is an int32, so 32-bit division is exact and the
      // page column is a valid block_table column.
      const int32_t key32 = static_cast<int32_t>(key);
      const int32_t page = static_cast<int32_t>(a.page_size);
      const int64_t col = key32 / page;
      const int64_t off = key32 - static_cast<int32_t>(col) * page;
      const int64_t entry = a.block_table[b * a.bt_s0 + col * a.bt_s1];
      if (entry >= 0 && entry < a.num_pages) {
        src = a.kv + entry * a.kv_s0 + off * a.kv_s1 + g * a.kv_s2;
      } else {
        report_deferred(a.rec, kDeferredMlaBlockTable, b, col, entry);
      }
    }
#pragma unroll
    for (int i = 0; i < kChunks / 8; ++i) {
      const int c = part + 8 * i;
      if (src != nullptr) {
        cp_async16(smem_u32(dst + c * 8), src + c * 8);
      } else {
        *reinterpret_cast<uint4*>(dst + c * 8) = make_uint4(0u, 0u, 0u, 0u);
      }
    }
  };

  float o[T::kONT][4];
#pragma unroll
  for (int i = 0; i < T::kONT; ++i) {
    o[i][0] = 0.0f;
    o[i][1] = 0.0f;
    o[i][2] = 0.0f;
    o[i][3] = 0.0f;
  }

  if (ntiles > 0) {
    // Q rows of this tile (rows past a.rows are zero), in the first commit group.
    for (int c = tid; c < BM * kChunks; c += kThreads) {
      const int r = c / kChunks;
      const int ch = c - r * kChunks;
      uint16_t* dst = q_s + r * kRowStride + ch * 8;
      const int64_t gr = row0 + r;
      if (gr < a.rows) {
        const int64_t j = gr / a.hg;
        const int64_t h = g * a.hg + (gr - j * a.hg);
        cp_async16(smem_u32(dst), a.q + b * a.q_s0 + j * a.q_s1 + h * a.q_s2 + ch * 8);
      } else {
        *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
      }
    }
    for (int st = 0; st < stages - 1; ++st) {
      if (st < ntiles) load_k(st, st);
      cp_async_commit();
    }
  }
  __syncthreads();

  // Warp roles (fixed for the whole kernel).
  const int s_ng = warp % T::kNG;
  const int s_mt = (warp / T::kNG) % T::kWM;
  const int s_kp = warp / (T::kNG * T::kWM);
  const int o_rw = warp / T::kWN;
  const int o_cw = warp % T::kWN;
  const uint32_t q_addr = smem_u32(q_s + (s_mt * 16 + (lane & 15)) * kRowStride + (lane >> 4) * 8);
  const uint32_t p_addr = smem_u32(p_s + (o_rw * 16 + (lane & 15)) * kPStride + (lane >> 4) * 8);

  for (int t = 0; t < ntiles; ++t) {
    // Tile t has landed (groups complete in order) and every warp is done with tile t - 1, so
    // its buffer may be refilled.
    cp_async_wait_dyn(stages - 2);
    __syncthreads();
    {
      const int next = t + stages - 1;
      if (next < ntiles) load_k(next, next % stages);
      cp_async_commit();
    }
    const uint16_t* kb = k_s + (t % stages) * kBN * kRowStride;
    const int64_t k0 = k_begin + static_cast<int64_t>(t) * kBN;

    // ---- Phase A: raw scores S = Q K^T into s_s.
    {
      float sacc[T::kSNT][4];
#pragma unroll
      for (int i = 0; i < T::kSNT; ++i) {
        sacc[i][0] = 0.0f;
        sacc[i][1] = 0.0f;
        sacc[i][2] = 0.0f;
        sacc[i][3] = 0.0f;
      }
      const int d0 = s_kp * T::kSteps * 16;
      if constexpr (T::kSNT == 2) {
        // ldmatrix x4: keys +0..7 / +8..15 (lanes 16..31) x depth +0 / +8 (lanes 8..15, 24..31).
        const uint32_t k_addr = smem_u32(
            kb + (s_ng * 16 + (lane & 7) + (lane >> 4) * 8) * kRowStride + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int st = 0; st < T::kSteps; ++st) {
          const int d = d0 + st * 16;
          uint32_t af[4];
          uint32_t bf[4];
          ldsm_x4(q_addr + d * 2, af);
          ldsm_x4(k_addr + d * 2, bf);
          mma16816<IS_BF16>(sacc[0], af, bf[0], bf[1]);
          mma16816<IS_BF16>(sacc[1], af, bf[2], bf[3]);
        }
      } else {
        // ldmatrix x4: 8 keys x depth +0, +8, +16, +24 (two k16 steps).
        const uint32_t k_addr =
            smem_u32(kb + (s_ng * 8 + (lane & 7)) * kRowStride + (lane >> 3) * 8);
#pragma unroll
        for (int st = 0; st < T::kSteps; st += 2) {
          const int d = d0 + st * 16;
          uint32_t bf[4];
          uint32_t af[4];
          ldsm_x4(k_addr + d * 2, bf);
          ldsm_x4(q_addr + d * 2, af);
          mma16816<IS_BF16>(sacc[0], af, bf[0], bf[1]);
          ldsm_x4(q_addr + (d + 16) * 2, af);
          mma16816<IS_BF16>(sacc[0], af, bf[2], bf[3]);
        }
      }
      float* srow = s_s + (s_kp * BM + s_mt * 16 + (lane >> 2)) * kSStride;
#pragma unroll
      for (int i = 0; i < T::kSNT; ++i) {
        const int col = (s_ng * T::kSNT + i) * 8 + (lane & 3) * 2;
        *reinterpret_cast<float2*>(srow + col) = make_float2(sacc[i][0], sacc[i][1]);
        *reinterpret_cast<float2*>(srow + 8 * kSStride + col) = make_float2(sacc[i][2], sacc[i][3]);
      }
    }
    __syncthreads();

    // ---- Phase B: online softmax, one warp per row, lane = key. The rows of a warp are
    // independent (their shuffle chains interleave); lane 0 updates the row state afterwards.
    {
      constexpr int kRows = BM / kWarps;
      float m_new[kRows];
      float alpha[kRows];
      float psum[kRows];
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        const int r = warp * kRows + i;
        float s = s_s[r * kSStride + lane];
        if constexpr (T::kKS == 2) s += s_s[(BM + r) * kSStride + lane];
        const float x = k0 + lane < lim_s[r] ? s * a.scale_log2 : -INFINITY;
        const float m_old = m_s[r];
        m_new[i] = fmaxf(m_old, warp_max(x));
        const float m_use = m_new[i] == -INFINITY ? 0.0f : m_new[i];
        const float p = exp2f(x - m_use);  // 0 for masked keys
        alpha[i] = exp2f(m_old - m_use);   // 0 while nothing was seen
        psum[i] = warp_sum(p);
        p_s[r * kPStride + lane] = static_cast<uint16_t>(pack2<IS_BF16>(p, 0.0f) & 0xFFFFu);
      }
      __syncwarp();  // every lane has read m_s before lane 0 overwrites it
      if (lane == 0) {
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          const int r = warp * kRows + i;
          alpha_s[r] = alpha[i];
          l_s[r] = l_s[r] * alpha[i] + psum[i];
          m_s[r] = m_new[i];
        }
      }
    }
    __syncthreads();

    // ---- Phase C: O = O * alpha + P V.
    {
      const float a0 = alpha_s[o_rw * 16 + (lane >> 2)];
      const float a1 = alpha_s[o_rw * 16 + (lane >> 2) + 8];
#pragma unroll
      for (int i = 0; i < T::kONT; ++i) {
        o[i][0] *= a0;
        o[i][1] *= a0;
        o[i][2] *= a1;
        o[i][3] *= a1;
      }
      // ldmatrix x4 trans: keys +0..7 / +8..15 (lanes 8..15, 24..31) x columns +0 / +8 (16..31).
      const uint32_t v_addr = smem_u32(kb + ((lane & 7) + ((lane >> 3) & 1) * 8) * kRowStride +
                                       o_cw * T::kCW + (lane >> 4) * 8);
#pragma unroll
      for (int ks = 0; ks < kBN / 16; ++ks) {
        uint32_t af[4];
        ldsm_x4(p_addr + ks * 16 * 2, af);
#pragma unroll
        for (int np = 0; np < T::kONT / 2; ++np) {
          uint32_t bf[4];
          ldsm_x4_trans(v_addr + (ks * 16 * kRowStride + np * 16) * 2, bf);
          mma16816<IS_BF16>(o[2 * np], af, bf[0], bf[1]);
          mma16816<IS_BF16>(o[2 * np + 1], af, bf[2], bf[3]);
        }
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();

  // ---- Epilogue: normalize and write out (one split) or the f32 partials.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = o_rw * 16 + (lane >> 2) + half * 8;
    const int64_t gr = row0 + r;
    if (gr >= a.rows) continue;
    const float l = l_s[r];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int64_t j = gr / a.hg;
    const int64_t h = g * a.hg + (gr - j * a.hg);
    if (a.num_splits == 1) {
      uint16_t* orow = a.out + b * a.o_s0 + j * a.o_s1 + h * a.o_s2;
#pragma unroll
      for (int i = 0; i < T::kONT; ++i) {
        const int col = o_cw * T::kCW + i * 8 + (lane & 3) * 2;
        *reinterpret_cast<uint32_t*>(orow + col) =
            pack2<IS_BF16>(o[i][2 * half] * inv, o[i][2 * half + 1] * inv);
      }
    } else {
      float* prow = a.o_part + (((b * a.s_q + j) * a.h_q + h) * a.num_splits + split) * kDv;
#pragma unroll
      for (int i = 0; i < T::kONT; ++i) {
        const int col = o_cw * T::kCW + i * 8 + (lane & 3) * 2;
        *reinterpret_cast<float2*>(prow + col) =
            make_float2(o[i][2 * half] * inv, o[i][2 * half + 1] * inv);
      }
    }
  }
  if (tid < rows_here) {
    const int64_t gr = row0 + tid;
    const float l = l_s[tid];
    const float lse = l > 0.0f ? (m_s[tid] + log2f(l)) * kLn2 : -INFINITY;
    const int64_t j = gr / a.hg;
    const int64_t h = g * a.hg + (gr - j * a.hg);
    if (a.num_splits == 1) {
      if (a.lse != nullptr) a.lse[b * a.lse_s0 + h * a.lse_s1 + j * a.lse_s2] = lse;
    } else {
      a.lse_part[((b * a.s_q + j) * a.h_q + h) * a.num_splits + split] = lse;
    }
  }
}

// ---- Combine kernel -----------------------------------------------------------------------------

// One block per output row (b, j, h): merges the num_splits partials in split order.
template <bool IS_BF16>
__global__ void __launch_bounds__(kCombineThreads) mla_combine_kernel(MlaDecodeArgs a) {
  const int64_t total = a.batch * a.s_q * a.h_q;
  const int col = static_cast<int>(threadIdx.x) * 4;
  for (int64_t row = blockIdx.x; row < total; row += gridDim.x) {
    const int64_t h = row % a.h_q;
    const int64_t bj = row / a.h_q;
    const int64_t j = bj % a.s_q;
    const int64_t b = bj / a.s_q;
    const float* lp = a.lse_part + row * a.num_splits;
    float m = -INFINITY;
    for (int i = 0; i < a.num_splits; ++i) m = fmaxf(m, lp[i]);
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float lse = -INFINITY;
    if (m != -INFINITY) {
      float sum = 0.0f;
      for (int i = 0; i < a.num_splits; ++i) {
        const float li = lp[i];
        if (li == -INFINITY) continue;  // an empty split: its partial is not read
        const float w = expf(li - m);
        sum += w;
        const float4 v =
            *reinterpret_cast<const float4*>(a.o_part + (row * a.num_splits + i) * kDv + col);
        acc[0] += w * v.x;
        acc[1] += w * v.y;
        acc[2] += w * v.z;
        acc[3] += w * v.w;
      }
      const float inv = 1.0f / sum;
      acc[0] *= inv;
      acc[1] *= inv;
      acc[2] *= inv;
      acc[3] *= inv;
      lse = m + logf(sum);
    }
    uint16_t* orow = a.out + b * a.o_s0 + j * a.o_s1 + h * a.o_s2 + col;
    reinterpret_cast<uint32_t*>(orow)[0] = pack2<IS_BF16>(acc[0], acc[1]);
    reinterpret_cast<uint32_t*>(orow)[1] = pack2<IS_BF16>(acc[2], acc[3]);
    if (threadIdx.x == 0 && a.lse != nullptr) {
      a.lse[b * a.lse_s0 + h * a.lse_s1 + j * a.lse_s2] = lse;
    }
  }
}

// ---- Per-device preparation ---------------------------------------------------------------------

constexpr int kMaxDevices = 64;

struct DeviceState {
  bool ready;
  int smem_optin;
};

std::mutex g_mutex;
DeviceState g_states[kMaxDevices] = {};

template <typename Kernel>
dsk_status allow_smem(Kernel kernel, int bytes) {
  DSK_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  return DSK_OK;
}

dsk_status prepare_device(int32_t device, int* smem_optin) {
  if (device < 0 || device >= kMaxDevices) {
    return fail(DSK_ERR_UNSUPPORTED, "mla_decode: device %d: at most %d CUDA devices are supported",
                static_cast<int>(device), kMaxDevices);
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceState& st = g_states[device];
  if (!st.ready) {
    int optin = 0;
    DSK_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (optin >= static_cast<int>(smem_bytes(16, 2))) {
      DSK_RETURN_IF_FAILED(allow_smem(mla_decode_kernel<16, true>, optin));
      DSK_RETURN_IF_FAILED(allow_smem(mla_decode_kernel<16, false>, optin));
      DSK_RETURN_IF_FAILED(allow_smem(mla_decode_kernel<32, true>, optin));
      DSK_RETURN_IF_FAILED(allow_smem(mla_decode_kernel<32, false>, optin));
      DSK_RETURN_IF_FAILED(allow_smem(mla_decode_kernel<64, true>, optin));
      DSK_RETURN_IF_FAILED(allow_smem(mla_decode_kernel<64, false>, optin));
    }
    st.smem_optin = optin;
    st.ready = true;
  }
  *smem_optin = st.smem_optin;
  return DSK_OK;
}

template <int BM, bool IS_BF16>
void launch_main(const MlaDecodeArgs& a, int stages, unsigned blocks, cudaStream_t stream) {
  mla_decode_kernel<BM, IS_BF16><<<blocks, kThreads, smem_bytes(BM, stages), stream>>>(a, stages);
}

}  // namespace

dsk_status mla_decode_config(int32_t device, int64_t rows, MlaDecodeConfig* config) noexcept {
  int optin = 0;
  DSK_RETURN_IF_FAILED(prepare_device(device, &optin));
  const size_t limit = optin > 0 ? static_cast<size_t>(optin) : 0;
  if (smem_bytes(16, 2) > limit) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_decode: the CUDA kernels need %zu bytes of shared memory per block, the "
                "device allows %zu",
                smem_bytes(16, 2), limit);
  }
  int bm = rows <= 16 ? 16 : rows <= 32 ? 32 : 64;
  while (bm > 16 && smem_bytes(bm, 2) > limit) bm /= 2;
  int stages = 2;
  while (stages < kMaxStages && smem_bytes(bm, stages + 1) <= limit) ++stages;
  config->block_m = bm;
  config->stages = stages;
  return DSK_OK;
}

size_t mla_decode_partial_bytes(int64_t batch, int64_t s_q, int64_t h_q,
                                int32_t num_splits) noexcept {
  if (num_splits <= 1) return 0;
  const size_t rows = static_cast<size_t>(batch) * static_cast<size_t>(s_q) *
                      static_cast<size_t>(h_q) * static_cast<size_t>(num_splits);
  return rows * (static_cast<size_t>(kDv) + 1) * sizeof(float);
}

dsk_status launch_mla_decode(const MlaDecodeArgs& a, const MlaDecodeConfig& config,
                             cudaStream_t stream) noexcept {
  const int64_t row_tiles = (a.rows + config.block_m - 1) / config.block_m;
  const int64_t blocks = a.batch * a.h_kv * a.num_splits * row_tiles;
  if (blocks <= 0) return DSK_OK;
  if (blocks > 0x7FFFFFFF) {
    return fail(DSK_ERR_UNSUPPORTED, "mla_decode: %lld thread blocks exceed the CUDA grid limit",
                static_cast<long long>(blocks));
  }
  const auto grid = static_cast<unsigned>(blocks);
  const bool bf16 = a.dtype_id == DSK_DTYPE_BF16;
  switch (config.block_m) {
    case 16:
      bf16 ? launch_main<16, true>(a, config.stages, grid, stream)
           : launch_main<16, false>(a, config.stages, grid, stream);
      break;
    case 32:
      bf16 ? launch_main<32, true>(a, config.stages, grid, stream)
           : launch_main<32, false>(a, config.stages, grid, stream);
      break;
    default:
      bf16 ? launch_main<64, true>(a, config.stages, grid, stream)
           : launch_main<64, false>(a, config.stages, grid, stream);
      break;
  }
  DSK_RETURN_IF_FAILED(check_launch("mla_decode"));
  if (a.num_splits > 1) {
    const int64_t total = a.batch * a.s_q * a.h_q;
    const auto cblocks = static_cast<unsigned>(total < (1 << 30) ? total : (1 << 30));
    if (bf16) {
      mla_combine_kernel<true><<<cblocks, kCombineThreads, 0, stream>>>(a);
    } else {
      mla_combine_kernel<false><<<cblocks, kCombineThreads, 0, stream>>>(a);
    }
    DSK_RETURN_IF_FAILED(check_launch("mla_decode combine"));
  }
  return DSK_OK;
}

}  // namespace cuda
}  // namespace dsk
