// The absorbed MLA decode entries of the CUDA backend (kernels in mla_decode_kernels.cu).
//
// mla_decode_plan picks the split-KV factor from the shapes and the device (never from seqlen
// values): CTAs = batch * h_kv * row tiles * splits run one per SM (their shared memory does not
// allow two), and the number of splits minimizes waves * (keys per split + a fixed cost), with the
// capacity max_pages * page_size standing in for the sequence length, then is raised (up to 4) so
// that there are about 4 CTAs per SM, which balances variable lengths. mla_decode checks what the
// kernels need (widths 576/512, 16-byte aligned q and kv_cache rows, 4-byte aligned out rows),
// takes its scratch from the context workspace when it is large enough (no allocation, no
// synchronization: capturable) or from stream-ordered memory, and queues the kernels.
#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/mla_decode_kernels.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/strided.h"
#include "cuda/stream_temp.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

// Fixed cost of one CTA in key-equivalents (Q load, pipeline fill, epilogue, combine share),
// fitted on an H100: b 32 with 4 splits of 1024 keys ran at 0.77x the per-key rate of b 128
// with 1 split of 4096 keys.
constexpr int64_t kSplitOverheadKeys = 460;
// A split covers at least this many keys of the capacity.
constexpr int64_t kMinKeysPerSplit = 256;
// Varlen hedge: the plan cannot see the lengths, and with about one CTA per SM the longest request
// sets the time (H100, b 128, h_q 16, mean 4096 varlen: 0.96 TB/s unsplit, 1.92 TB/s with 4
// splits). So the plan asks for about this many CTAs per SM, adding at most kMaxHedgeSplits
// splits; it costs fixed-length batches 5-15% (2.31 -> 2.07 TB/s in the same case).
constexpr int64_t kHedgeCtasPerSm = 4;
constexpr int64_t kMaxHedgeSplits = 4;

int32_t choose_splits(int64_t base_ctas, int64_t capacity, int32_t sms) {
  if (base_ctas <= 0 || capacity <= kMinKeysPerSplit) return 1;
  int64_t cap = (capacity + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  if (cap > kMlaMaxSplits) cap = kMlaMaxSplits;
  int64_t best = 1;
  double best_cost = 0.0;
  for (int64_t s = 1; s <= cap; ++s) {
    const int64_t waves = (base_ctas * s + sms - 1) / sms;
    const int64_t keys = (capacity + s - 1) / s + kSplitOverheadKeys;
    const double cost = static_cast<double>(waves) * static_cast<double>(keys);
    // A split must win by more than 3% to be worth its combine traffic.
    if (s == 1 || cost < best_cost * 0.97) {
      best = s;
      best_cost = cost;
    }
  }
  int64_t hedge = (kHedgeCtasPerSm * sms + base_ctas - 1) / base_ctas;
  if (hedge > kMaxHedgeSplits) hedge = kMaxHedgeSplits;
  if (hedge > cap) hedge = cap;
  return static_cast<int32_t>(best > hedge ? best : hedge);
}

// True when every stride but the last (which is 1) is a multiple of `elements`; dimensions of
// size 1 are never stepped through, so their strides do not matter.
bool strides_multiple_of(const TensorInfo& t, int64_t elements) {
  for (int32_t d = 0; d + 1 < t.ndim; ++d) {
    if (t.shape[d] > 1 && t.strides[d] % elements != 0) return false;
  }
  return true;
}

dsk_status check_widths(int64_t head_dim, int64_t head_dim_v) {
  if (head_dim != kMlaHeadDim || head_dim_v != kMlaHeadDimV) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_decode: the CUDA kernels support D = %lld and Dv = %lld only (got D = %lld, "
                "Dv = %lld)",
                static_cast<long long>(kMlaHeadDim), static_cast<long long>(kMlaHeadDimV),
                static_cast<long long>(head_dim), static_cast<long long>(head_dim_v));
  }
  return DSK_OK;
}

}  // namespace

dsk_status mla_decode_plan(int32_t device, const dsk_mla_decode_shape* shape,
                           dsk_mla_decode_work* work) noexcept {
  DSK_RETURN_IF_FAILED(check_widths(shape->head_dim, shape->head_dim_v));
  if (shape->dtype_id != DSK_DTYPE_BF16 && shape->dtype_id != DSK_DTYPE_F16) {
    return fail(DSK_ERR_UNSUPPORTED, "mla_decode: the CUDA kernels take bf16 or f16 tensors");
  }
  if (shape->h_kv < 1 || shape->h_q % shape->h_kv != 0) {
    return fail(DSK_ERR_INVALID_ARGUMENT, "mla_decode: h_q = %lld is not a multiple of h_kv = %lld",
                static_cast<long long>(shape->h_q), static_cast<long long>(shape->h_kv));
  }
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(device));
  // The deferred error record is allocated here (synchronously), before any graph capture.
  DeferredErrorRecord* rec = nullptr;
  DSK_RETURN_IF_FAILED(deferred_error_record(device, &rec));
  int32_t sms = 1;
  DSK_RETURN_IF_FAILED(current_multiprocessor_count(&sms));
  const int64_t rows = shape->s_q * (shape->h_q / shape->h_kv);
  MlaDecodeConfig config{};
  DSK_RETURN_IF_FAILED(mla_decode_config(device, rows, &config));
  const int64_t row_tiles = (rows + config.block_m - 1) / config.block_m;
  const int64_t base = shape->batch * shape->h_kv * row_tiles;
  const int32_t splits = choose_splits(base, shape->max_pages * shape->page_size, sms);
  work->num_splits = splits;
  work->reserved = 0;
  work->workspace_bytes = mla_decode_partial_bytes(shape->batch, shape->s_q, shape->h_q, splits);
  return DSK_OK;
}

dsk_status mla_decode(const dsk_exec* ex, const DLTensor* q_t, const DLTensor* kv_t,
                      const DLTensor* bt_t, const DLTensor* sl_t, const DLTensor* out_t,
                      const DLTensor* lse_t, float scale, int32_t causal,
                      const dsk_mla_decode_work* work) noexcept {
  const TensorInfo q = tensor_info(q_t);
  const TensorInfo kv = tensor_info(kv_t);
  const TensorInfo bt = tensor_info(bt_t);
  const TensorInfo sl = tensor_info(sl_t);
  const TensorInfo out = tensor_info(out_t);
  if (q.ndim != 4 || kv.ndim != 4 || bt.ndim != 2 || sl.ndim != 1 || out.ndim != 4 ||
      (lse_t != nullptr && lse_t->ndim != 3)) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "mla_decode: expected q [B, S, Hq, D], kv_cache [P, page, Hkv, D], block_table "
                "[B, max_pages], cache_seqlens [B], out [B, S, Hq, Dv], lse [B, Hq, S]");
  }
  DSK_RETURN_IF_FAILED(check_widths(q.shape[3], out.shape[3]));
  if ((q.dtype_id != DSK_DTYPE_BF16 && q.dtype_id != DSK_DTYPE_F16) || kv.dtype_id != q.dtype_id ||
      out.dtype_id != q.dtype_id || bt.dtype_id != DSK_DTYPE_INT32 ||
      sl.dtype_id != DSK_DTYPE_INT32) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_decode: the CUDA kernels take bf16 or f16 q/kv_cache/out of one dtype and "
                "int32 block_table/cache_seqlens");
  }
  const int64_t batch = q.shape[0];
  const int64_t s_q = q.shape[1];
  const int64_t h_q = q.shape[2];
  const int64_t h_kv = kv.shape[2];
  if (h_kv < 1 || h_q % h_kv != 0 || kv.shape[3] != kMlaHeadDim) {
    return fail(DSK_ERR_INVALID_ARGUMENT, "mla_decode: kv_cache shape does not match q");
  }
  if (batch == 0 || s_q == 0 || h_q == 0) return DSK_OK;
  if (q.strides[3] != 1 || kv.strides[3] != 1 || out.strides[3] != 1) {
    return fail(DSK_ERR_INVALID_ARGUMENT,
                "mla_decode: the last dimension of q, kv_cache and out must be contiguous");
  }
  // cp.async moves 16-byte chunks of q and kv_cache rows; out is written two elements at a time.
  if (!is_aligned(q.data, 16) || !strides_multiple_of(q, 8)) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_decode: the CUDA kernels need 16-byte aligned q rows (data address and "
                "strides in bytes multiples of 16)");
  }
  if (!is_aligned(kv.data, 16) || !strides_multiple_of(kv, 8)) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_decode: the CUDA kernels need 16-byte aligned kv_cache rows (data address "
                "and strides in bytes multiples of 16)");
  }
  if (!is_aligned(out.data, 4) || !strides_multiple_of(out, 2)) {
    return fail(DSK_ERR_UNSUPPORTED,
                "mla_decode: the CUDA kernels need 4-byte aligned out rows (data address and "
                "strides in bytes multiples of 4)");
  }
  TensorInfo lse{};
  if (lse_t != nullptr) {
    lse = tensor_info(lse_t);
    if (lse.dtype_id != DSK_DTYPE_F32 || !is_aligned(lse.data, 4)) {
      return fail(DSK_ERR_UNSUPPORTED, "mla_decode: lse must be 4-byte aligned f32");
    }
  }
  const int32_t splits = work != nullptr && work->num_splits > 1 ? work->num_splits : 1;
  if (splits > kMlaMaxSplits) {
    return fail(DSK_ERR_INTERNAL, "mla_decode: plan with %d splits (at most %d)",
                static_cast<int>(splits), static_cast<int>(kMlaMaxSplits));
  }

  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  DeferredErrorRecord* rec = nullptr;
  DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &rec));
  const int64_t hg = h_q / h_kv;
  const int64_t rows = s_q * hg;
  MlaDecodeConfig config{};
  DSK_RETURN_IF_FAILED(mla_decode_config(ex->device, rows, &config));
  auto stream = static_cast<cudaStream_t>(ex->stream);

  // Scratch for the split partials: the context workspace when large enough, else stream-ordered.
  const size_t need = mla_decode_partial_bytes(batch, s_q, h_q, splits);
  StreamTemp temp(stream);
  char* scratch = nullptr;
  if (need > 0) {
    if (ex->workspace != nullptr && ex->workspace_bytes >= need && is_aligned(ex->workspace, 16)) {
      scratch = static_cast<char*>(ex->workspace);
    } else {
      DSK_RETURN_IF_FAILED(temp.alloc(need));
      scratch = temp.get();
    }
  }

  MlaDecodeArgs a{};
  a.q = reinterpret_cast<const uint16_t*>(q.data);
  a.q_s0 = q.strides[0];
  a.q_s1 = q.strides[1];
  a.q_s2 = q.strides[2];
  a.kv = reinterpret_cast<const uint16_t*>(kv.data);
  a.kv_s0 = kv.strides[0];
  a.kv_s1 = kv.strides[1];
  a.kv_s2 = kv.strides[2];
  a.num_pages = kv.shape[0];
  a.page_size = kv.shape[1];
  a.block_table = reinterpret_cast<const int32_t*>(bt.data);
  a.bt_s0 = bt.strides[0];
  a.bt_s1 = bt.strides[1];
  a.seqlens = reinterpret_cast<const int32_t*>(sl.data);
  a.sl_s0 = sl.strides[0];
  a.max_tokens = bt.shape[1] * kv.shape[1];
  a.out = reinterpret_cast<uint16_t*>(out.data);
  a.o_s0 = out.strides[0];
  a.o_s1 = out.strides[1];
  a.o_s2 = out.strides[2];
  if (lse_t != nullptr) {
    a.lse = reinterpret_cast<float*>(lse.data);
    a.lse_s0 = lse.strides[0];
    a.lse_s1 = lse.strides[1];
    a.lse_s2 = lse.strides[2];
  }
  if (need > 0) {
    const size_t partial_rows = static_cast<size_t>(batch) * static_cast<size_t>(s_q) *
                                static_cast<size_t>(h_q) * static_cast<size_t>(splits);
    a.o_part = reinterpret_cast<float*>(scratch);
    a.lse_part = reinterpret_cast<float*>(scratch + partial_rows * kMlaHeadDimV * sizeof(float));
  }
  a.batch = batch;
  a.s_q = s_q;
  a.h_q = h_q;
  a.h_kv = h_kv;
  a.hg = hg;
  a.rows = rows;
  a.num_splits = splits;
  a.causal = causal != 0 ? 1 : 0;
  a.dtype_id = q.dtype_id;
  a.scale_log2 = scale * 1.44269504088896341f;
  a.rec = rec;
  return launch_mla_decode(a, config, stream);
}

}  // namespace cuda
}  // namespace dsk
