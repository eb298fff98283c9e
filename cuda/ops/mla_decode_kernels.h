// mla_decode_kernels.h - host side of the absorbed MLA decode kernels (mla_decode_kernels.cu),
// called by the backend entries in mla_decode.cpp after the device has been made current.
//
// Plain C++ (no CUDA types beyond cudaStream_t): the arguments are the normalized views of
// lib/core/backend_iface.h (q [B, S, Hq, 576], kv_cache [P, page, Hkv, 576], block_table [B,
// max_pages], seqlens [B], out [B, S, Hq, 512], lse [B, Hq, S]) as raw pointers with element
// strides.
#ifndef DSK_CUDA_OPS_MLA_DECODE_KERNELS_H_
#define DSK_CUDA_OPS_MLA_DECODE_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// The only widths the CUDA kernels handle (DeepSeek's kv_lora_rank 512 + rope 64).
constexpr int64_t kMlaHeadDim = 576;
constexpr int64_t kMlaHeadDimV = 512;
// Upper bound of the split-KV factor chosen by the plan.
constexpr int32_t kMlaMaxSplits = 64;

// Tiling chosen for one decode shape on one device.
struct MlaDecodeConfig {
  int32_t block_m;  // query rows per CTA: 16, 32 or 64
  int32_t stages;   // K tiles in the cp.async ring, 2..4
};

// Chooses the tiling for `rows` = S * Hq / Hkv query rows per (request, kv head) on `device`
// (which must be current). The first call per device reads the device's shared-memory limit and
// raises the kernels' dynamic shared-memory attribute (host-side only, no stream work), so call
// it once outside graph capture; later calls only read the cached limit.
dsk_status mla_decode_config(int32_t device, int64_t rows, MlaDecodeConfig* config) noexcept;

// Bytes of the f32 partial outputs and lse for `num_splits` > 1 (0 when num_splits <= 1).
size_t mla_decode_partial_bytes(int64_t batch, int64_t s_q, int64_t h_q,
                                int32_t num_splits) noexcept;

struct MlaDecodeArgs {
  const uint16_t* q;  // bf16 or f16 bits; strides in elements, last dimension contiguous
  int64_t q_s0, q_s1, q_s2;
  const uint16_t* kv;
  int64_t kv_s0, kv_s1, kv_s2;
  int64_t num_pages;
  int64_t page_size;
  const int32_t* block_table;
  int64_t bt_s0, bt_s1;
  const int32_t* seqlens;
  int64_t sl_s0;
  int64_t max_tokens;  // max_pages * page_size
  uint16_t* out;
  int64_t o_s0, o_s1, o_s2;
  float* lse;  // NULL: not wanted
  int64_t lse_s0, lse_s1, lse_s2;
  float* o_part;    // [B * S * Hq, num_splits, 512] f32 when num_splits > 1
  float* lse_part;  // [B * S * Hq, num_splits] f32 (natural log) when num_splits > 1
  int64_t batch, s_q, h_q, h_kv;
  int64_t hg;    // Hq / Hkv
  int64_t rows;  // S * hg, row r = (query j = r / hg, head g * hg + r % hg)
  int32_t num_splits;
  int32_t causal;
  int32_t dtype_id;  // DSK_DTYPE_BF16 or DSK_DTYPE_F16
  float scale_log2;  // softmax_scale * log2(e)
  DeferredErrorRecord* rec;
};

// Queues the decode (and the combine kernel when num_splits > 1). o_part/lse_part must point to
// mla_decode_partial_bytes of scratch when num_splits > 1.
dsk_status launch_mla_decode(const MlaDecodeArgs& args, const MlaDecodeConfig& config,
                             cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_MLA_DECODE_KERNELS_H_
