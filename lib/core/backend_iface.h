// backend_iface.h - the table of functions a backend module provides to libdsk.
//
// Plain C types only: the CUDA module is a separate shared object (libdsk-cuda.so) and this table
// is the whole contract between it and libdsk. libdsk checks api_version and struct_size before
// using a table, so a stale module is refused (logged), never called. Not a public header.
#ifndef DSK_LIB_CORE_BACKEND_IFACE_H_
#define DSK_LIB_CORE_BACKEND_IFACE_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk/dsk_backend.h"
#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_sampling.h"
#include "dsk/dsk_status.h"
#include "dsk/dsk_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// Bump whenever a field of dsk_backend_iface changes meaning or position.
#define DSK_BACKEND_IFACE_VERSION 6

// Directions for dsk_backend_iface::memcpy.
#define DSK_MEMCPY_HOST_TO_DEVICE 1
#define DSK_MEMCPY_DEVICE_TO_HOST 2
#define DSK_MEMCPY_DEVICE_TO_DEVICE 3

// Shapes of an MLA decode plan (dsk_mla.h): q [batch, s_q, h_q, head_dim], kv_cache
// [*, page_size, h_kv, head_dim], block_table [batch, max_pages], out [..., head_dim_v].
typedef struct dsk_mla_decode_shape {
  int64_t batch;
  int64_t s_q;
  int64_t h_q;
  int64_t h_kv;
  int64_t head_dim;
  int64_t head_dim_v;
  int64_t page_size;
  int64_t max_pages;
  int32_t dtype_id;  // DSK_DTYPE_BF16 or DSK_DTYPE_F16 (q, kv_cache and out)
  int32_t reserved;
} dsk_mla_decode_shape;

// A backend's schedule for one decode shape, chosen by mla_decode_plan and handed back to every
// mla_decode call of that plan.
typedef struct dsk_mla_decode_work {
  int32_t num_splits;  // pieces the keys of one request are split into, >= 1
  int32_t reserved;
  size_t workspace_bytes;  // scratch mla_decode needs (partial outputs and lse), 0 for none
} dsk_mla_decode_work;

// The gate's parameters (dsk_moe.h) after validation: group_rule resolved, n_group == 1 when there
// is no group limit.
typedef struct dsk_moe_gate_params {
  int32_t num_experts;  // E
  int32_t top_k;        // k <= topk_group * E / n_group
  int32_t n_group;      // G, E % G == 0
  int32_t topk_group;   // 1 <= topk_group <= G
  int32_t score_func;   // DSK_MOE_SCORE_SOFTMAX / SIGMOID / NONE
  int32_t top2sum;      // group score: 1 = sum of the two largest (E / G >= 2), 0 = max
  int32_t renormalize;  // 0 or 1
  int32_t score_bf16;   // 1 = the reference's bf16 rounding points (score_dtype BF16)
  float scale;          // routed_scaling_factor, finite
  int32_t reserved;
} dsk_moe_gate_params;

// A sampling call (dsk_sampling.h) after validation. Every present tensor has explicit strides and
// lives on the backend's device; per-row tensors are 1-D [B]; a NULL per-row tensor means the
// scalar beside it for every row. Scalars are in range; per-row VALUES and token ids are not
// checked by libdsk (see the sample entry).
typedef struct dsk_sampling_args {
  const DLTensor* logits;       // [B, V] f32/f16/bf16, B >= 1
  const DLTensor* temperature;  // f32 [B] or NULL
  const DLTensor* top_k;        // int32
  const DLTensor* top_p;        // f32
  const DLTensor* min_p;        // f32
  const DLTensor* repetition;   // f32
  const DLTensor* frequency;    // f32
  const DLTensor* presence;     // f32
  const DLTensor* seed;         // int64 (bits read as uint64)
  const DLTensor* offset;       // int64 (bits read as uint64)
  float temperature_value;
  int32_t top_k_value;
  float top_p_value;
  float min_p_value;
  float repetition_value;
  float frequency_value;
  float presence_value;
  int32_t reserved0;
  uint64_t seed_value;
  uint64_t offset_value;
  // CSR lists (offsets [B + 1], ids [N]; int32 or int64; each pair both present or both NULL).
  const DLTensor* output_offsets;
  const DLTensor* output_ids;
  const DLTensor* prompt_offsets;
  const DLTensor* prompt_ids;
  const DLTensor* bias_offsets;
  const DLTensor* bias_ids;
  const DLTensor* bias_values;   // f32 [N], with bias_ids
  const DLTensor* allowed_mask;  // int32 [B, ceil(V / 32)] or NULL
  // Outputs of the sample entry (NULL where not wanted; ids always present there).
  const DLTensor* ids;           // int32 [B]
  const DLTensor* logprobs;      // f32 [B]
  const DLTensor* top_ids;       // int32 [B, n], 1 <= n <= DSK_SAMPLE_MAX_TOP_LOGPROBS
  const DLTensor* top_logprobs;  // f32 [B, n], present exactly with top_ids
  const DLTensor* raw_logprobs;  // f32 [B]
  const DLTensor* status;        // uint8 [B] (also written by sampling_transform)
  int32_t top_source;            // DSK_LOGPROBS_PROCESSED or DSK_LOGPROBS_RAW
  int32_t reserved1;
} dsk_sampling_args;

// A speculative verification (dsk_speculative_verify) after validation.
typedef struct dsk_verify_args {
  int32_t mode;  // DSK_VERIFY_SAMPLE or DSK_VERIFY_GREEDY
  int32_t reserved;
  const DLTensor* seed;    // int64 [B] or NULL
  const DLTensor* offset;  // int64 [B] or NULL
  uint64_t seed_value;
  uint64_t offset_value;
  const DLTensor* draft_ids;    // [B, n] int32/int64, n >= 0 (values not checked by libdsk)
  const DLTensor* draft_probs;  // [B, n, V] float dtype or NULL (always NULL in GREEDY mode)
  const DLTensor* target;       // [B, n + 1, V] float dtype
  const DLTensor* out_ids;      // [B, n + 1] int32
  const DLTensor* accepted;     // [B] int32
  const DLTensor* emitted;      // [B] int32 or NULL
} dsk_verify_args;

// Where an op runs and the scratch memory it may use. workspace is the context's device workspace
// (may be NULL/0); ops needing more scratch allocate stream-ordered memory themselves.
typedef struct dsk_exec {
  int32_t device;
  void* stream;
  void* workspace;
  size_t workspace_bytes;
} dsk_exec;

// Every function returning dsk_status leaves a message for last_error() on failure. All tensor
// arguments have already been validated by libdsk (supported dtype, ndim <= 8, lanes 1, no
// overflow, dst not overlapping itself) and live on `device` of this backend; they may still have
// NULL strides (row-major), a nonzero byte_offset and any alignment. `stream` is the context's
// stream (NULL = default stream).
typedef struct dsk_backend_iface {
  uint32_t api_version;  // DSK_BACKEND_IFACE_VERSION
  uint32_t struct_size;  // sizeof(dsk_backend_iface)
  const char* name;      // "cuda"

  // Message of the last failure on the calling thread ("" if none).
  const char* (*last_error)(void);

  int32_t (*device_count)(void);
  // Fills every field of *props except struct_size (which libdsk set to sizeof).
  dsk_status (*device_props)(int32_t device, dsk_device_props* props);

  // Device memory, aligned to at least 256 bytes. bytes may be 0 (then *ptr may be NULL).
  // Must return DSK_ERR_OUT_OF_MEMORY when the device is out of memory.
  dsk_status (*malloc)(int32_t device, size_t bytes, void* stream, void** ptr);
  // free must accept NULL (a no-op).
  void (*free)(int32_t device, void* ptr, void* stream);

  // Copies bytes between host memory and device memory (or within the device) in stream order.
  // Returns only when host memory involved may be reused/read (the stream is synchronized for
  // DEVICE_TO_HOST; HOST_TO_DEVICE may return once the source has been consumed).
  dsk_status (*memcpy)(int32_t device, void* dst, const void* src, size_t bytes, int32_t direction,
                       void* stream);

  dsk_status (*synchronize)(int32_t device, void* stream);

  // Element-wise strided copy with dtype conversion (lib/common/convert.h rules); src and dst have
  // equal shapes and are both on `device`.
  dsk_status (*copy)(int32_t device, const DLTensor* src, const DLTensor* dst, void* stream);

  // Sets every element of dst to value (store_from_f64 rules of lib/common/convert.h).
  dsk_status (*fill)(int32_t device, const DLTensor* dst, double value, void* stream);

  // Seeded random fill; identical values to the CPU reference (lib/common/random_value.h).
  dsk_status (*fill_random)(int32_t device, const DLTensor* dst, const dsk_random_params* params,
                            void* stream);

  // ---- Core ops (dsk_ops.h). libdsk has validated shapes, dtypes, devices and overlaps and has
  // normalized the arguments as each entry states; a backend may leave an entry NULL, which
  // libdsk reports as DSK_ERR_UNSUPPORTED. Tensors are 2-D/3-D views with explicit strides.

  // D[b] = alpha * A[b] @ B[b] + beta * C[b] + bias for A [B, M, K], B [B, K, N], C/D [B, M, N]
  // (transposes already applied as stride swaps; a broadcast operand has batch stride 0). c is
  // NULL when beta is 0; c may equal d (same data and strides). bias is [N] (stride any) or NULL.
  dsk_status (*gemm)(const dsk_exec* ex, const DLTensor* a, const DLTensor* b, const DLTensor* c,
                     const DLTensor* bias, const DLTensor* d, float alpha, float beta);

  // FP8 block quantization with DSK_FP8_BLOCK tiles: x/q [M, K], act scales [M, ceil(K/128)],
  // weight scales [ceil(M/128), ceil(K/128)]. is_weight selects 128x128 blocks.
  dsk_status (*quant_fp8)(const dsk_exec* ex, const DLTensor* x, const DLTensor* q,
                          const DLTensor* scales, int32_t is_weight, uint32_t flags);
  dsk_status (*dequant_fp8)(const dsk_exec* ex, const DLTensor* q, const DLTensor* scales,
                            const DLTensor* x, int32_t is_weight);
  // y [M, N] = x [M, K] @ w [N, K]^T with block scales; x_scales NULL = quantize x (float dtype)
  // per 1x128 tile with `flags` first.
  dsk_status (*linear_fp8)(const dsk_exec* ex, const DLTensor* x, const DLTensor* x_scales,
                           const DLTensor* w, const DLTensor* w_scales, const DLTensor* y,
                           uint32_t flags);
  // DSK_FP8_KERNEL_* that linear_fp8 runs on `device`, or -status (< 0) with a message for
  // last_error() when the device cannot be queried.
  int32_t (*linear_fp8_kernel)(int32_t device);
  // D[b] = A[b] @ B[b] as the gemm entry computes it (alpha 1, beta 0, no bias), for A [Bt, M, K]
  // and D [Bt, M, N] of float dtypes and an fp8 e4m3fn B [Bt, K, N] that is a strided view into a
  // weight W with 128 x 128 block scales `scales` [ceil(R / 128), ceil(C / 128)] f32: B[b, k, n]
  // is W's element (row, col) with row = row0 + b * row_step + (k_is_row ? k : n) and
  // col = (k_is_row ? n : k), taken as e4m3fn_to_f32(q) * scales[row / 128, col / 128] rounded to
  // f32 (dsk_dequant_fp8_weight's value): the bits of dequantizing W first and calling gemm. May
  // be NULL; libdsk then dequantizes W into scratch (the MLA absorb ops' per-head weights).
  dsk_status (*gemm_fp8_weight)(const dsk_exec* ex, const DLTensor* a, const DLTensor* b,
                                const DLTensor* scales, int64_t row0, int64_t row_step,
                                int32_t k_is_row, const DLTensor* d);

  // RMSNorm over rows [R, D]; residual/residual_out NULL for the plain form.
  dsk_status (*rmsnorm)(const dsk_exec* ex, const DLTensor* x, const DLTensor* residual,
                        const DLTensor* weight, const DLTensor* y, const DLTensor* residual_out,
                        float eps);
  // y [R, I] = silu(gate [R, I]) * up [R, I].
  dsk_status (*swiglu)(const dsk_exec* ex, const DLTensor* gate, const DLTensor* up,
                       const DLTensor* y);
  // x/y [T, H, D], positions [T] int32/int64, cos/sin [P, D/2] f32. Positions out of [0, P) give
  // DSK_ERR_INVALID_ARGUMENT.
  dsk_status (*rope)(const dsk_exec* ex, const DLTensor* x, const DLTensor* positions,
                     const DLTensor* cos, const DLTensor* sin, const DLTensor* y, int32_t layout);
  // Rows [R, N]: softmax (log_softmax when is_log) of x * inv_temperature.
  dsk_status (*softmax)(const dsk_exec* ex, const DLTensor* x, const DLTensor* y,
                        float inv_temperature, int32_t is_log);
  // Rows [R, N]: k largest, descending, ties to the lower index, NaN largest; values may be NULL.
  dsk_status (*topk)(const dsk_exec* ex, const DLTensor* x, int32_t k, const DLTensor* values,
                     const DLTensor* indices);
  // out [T, D] = table [V, D] rows at ids [T]; ids out of [0, V) give DSK_ERR_INVALID_ARGUMENT.
  dsk_status (*embedding)(const dsk_exec* ex, const DLTensor* table, const DLTensor* ids,
                          const DLTensor* out);

  // ---- MLA (dsk_mla.h). Tensors keep the ranks the header gives (up to 4-D), always with
  // explicit strides; the last dimension of q, kv_cache and out has stride 1. Errors in data that
  // lives on the device (block_table entries, seqlens, slots, cu_seqlens) are checked by the CPU
  // backend before it writes anything; a device backend skips the bad item without reading out of
  // bounds and reports the error from its next synchronize.

  // Chooses the split-KV schedule for `shape` on `device` (shape already validated).
  dsk_status (*mla_decode_plan)(int32_t device, const dsk_mla_decode_shape* shape,
                                dsk_mla_decode_work* work);
  // q [B, S, Hq, D], kv_cache [P, page, Hkv, D], block_table [B, max_pages] int32, seqlens [B]
  // int32, out [B, S, Hq, Dv], lse [B, Hq, S] f32 or NULL; `work` from mla_decode_plan for these
  // shapes. Uses ex->workspace when ex->workspace_bytes >= work->workspace_bytes (then it must
  // neither allocate nor synchronize), else allocates its scratch.
  dsk_status (*mla_decode)(const dsk_exec* ex, const DLTensor* q, const DLTensor* kv_cache,
                           const DLTensor* block_table, const DLTensor* seqlens,
                           const DLTensor* out, const DLTensor* lse, float scale, int32_t causal,
                           const dsk_mla_decode_work* work);
  // c_kv [T, Hkv, Dv], k_pe [T, Hkv, D - Dv] (any float dtypes), slots [T] int64,
  // kv_cache [P, page, Hkv, D].
  dsk_status (*mla_cache_append)(const dsk_exec* ex, const DLTensor* c_kv, const DLTensor* k_pe,
                                 const DLTensor* slots, const DLTensor* kv_cache);
  // q [Tq, H, Dqk], k [Tk, Hk, Dqk], v [Tk, Hk, Dv], cu_q/cu_k [B + 1] int32 (cu_k may be the same
  // tensor as cu_q), out [Tq, H, Dv], lse [H, Tq] f32 or NULL.
  dsk_status (*mla_prefill)(const dsk_exec* ex, const DLTensor* q, const DLTensor* k,
                            const DLTensor* v, const DLTensor* cu_q, const DLTensor* cu_k,
                            const DLTensor* out, const DLTensor* lse, float scale, int32_t causal);

  // ---- MoE (dsk_moe.h). Tensors keep the ranks the header gives, with explicit strides. T may be
  // 0 only where stated. Index values that live on the device (sorted_rows, dest, EP ids) are
  // checked by the CPU backend before it writes anything; a device backend skips the bad item and
  // reports it from its next synchronize (cuda/deferred_error.h).

  // logits [T, E] float dtype, bias [E] f32 or NULL, ids [T, k] int32/int64, weights [T, k] f32,
  // row_flags [T] uint8 or NULL; T >= 1.
  dsk_status (*moe_gate)(const dsk_exec* ex, const dsk_moe_gate_params* p, const DLTensor* logits,
                         const DLTensor* bias, const DLTensor* ids, const DLTensor* weights,
                         const DLTensor* row_flags);
  // ids [T, k] int32/int64 (T may be 0); counts [E], offsets [E + 1], sorted_rows [capacity]
  // (capacity >= the dsk_moe_dispatch_capacity bound), block_experts [ceil(capacity / block)] or
  // NULL, dest [T, k] or NULL: all int32.
  dsk_status (*moe_dispatch)(const dsk_exec* ex, const DLTensor* ids, int32_t num_experts,
                             int32_t expert_begin, int32_t block_size, const DLTensor* counts,
                             const DLTensor* offsets, const DLTensor* sorted_rows,
                             const DLTensor* block_experts, const DLTensor* dest);
  // x [T, D] float dtype, sorted_rows [R] int32 (values in [0, T * top_k]), out [R, D] float dtype
  // or fp8_e4m3fn with out_scales [R, ceil(D / 128)] f32 (NULL for float out); R >= 1.
  dsk_status (*moe_permute)(const dsk_exec* ex, const DLTensor* x, const DLTensor* sorted_rows,
                            int32_t top_k, const DLTensor* out, const DLTensor* out_scales,
                            uint32_t flags);
  // y [R, D], dest [T, k] int32 (values in [-1, R)), weights [T, k] f32, shared [T, D] or NULL
  // (may be the same view as out), out [T, D]; T >= 1 (R may be 0: then every dest is -1).
  dsk_status (*moe_combine)(const dsk_exec* ex, const DLTensor* y, const DLTensor* dest,
                            const DLTensor* weights, const DLTensor* shared, const DLTensor* out);
  // y[offsets[g] .. offsets[g+1]) = x[same rows] @ w[g]^T for x [R, K], w [G, N, K] (float dtype of
  // x), y [R, N] float dtype; offsets: G + 1 host values, 0 <= offsets[0] <= ... <= offsets[G] <=
  // R. Rows outside [offsets[0], offsets[G]) are not written. May be NULL (libdsk then runs one
  // gemm per group).
  dsk_status (*moe_grouped_gemm)(const dsk_exec* ex, const DLTensor* x, const DLTensor* w,
                                 const int64_t* offsets, const DLTensor* y);
  // load [E] int64 += histogram of ids [T, k] (int32/int64) at e = id - expert_begin in [0, E).
  dsk_status (*moe_load_accumulate)(const dsk_exec* ex, const DLTensor* ids, int32_t expert_begin,
                                    const DLTensor* load);
  // bias [E] f32 += gamma * sign(mean(load) - load[e]), load [E] int64 or f32.
  dsk_status (*moe_bias_update)(const dsk_exec* ex, const DLTensor* load, const DLTensor* bias,
                                float gamma);
  // ids [T, k] int32/int64 in [-1, E) (T may be 0), tokens_per_rank [R] int32, tokens_per_expert
  // [E] int32, is_token_in_rank [T, R] bool/uint8; E % R == 0.
  dsk_status (*moe_ep_layout)(const dsk_exec* ex, const DLTensor* ids, int32_t num_experts,
                              int32_t num_ranks, const DLTensor* tokens_per_rank,
                              const DLTensor* tokens_per_expert, const DLTensor* is_token_in_rank);

  // ---- Sampling (dsk_sampling.h). Per-row parameter values and token ids (CSR ids, draft ids)
  // are checked by the CPU backend before it writes anything (DSK_ERR_INVALID_ARGUMENT naming
  // e.g. "params->top_ps[3] = 1.5, expected (0, 1]"); a device backend marks the row
  // DSK_SAMPLE_INVALID (id 0; verify: out_ids -1, accepted 0) and reports it from its next
  // synchronize (cuda/deferred_error.h).

  // Writes a->ids and the other present outputs of a.
  dsk_status (*sample)(const dsk_exec* ex, const dsk_sampling_args* a);
  // out [B, V] f32/f16/bf16: the processed logits (probs == 0) or probabilities (probs == 1,
  // out f32); a->status written when present; the other outputs of a are NULL.
  dsk_status (*sampling_transform)(const dsk_exec* ex, const dsk_sampling_args* a,
                                   const DLTensor* out, int32_t probs);
  dsk_status (*speculative_verify)(const dsk_exec* ex, const dsk_verify_args* a);
} dsk_backend_iface;

// Exported by a backend module (the only two symbols it exports):
//   int32_t dsk_backend_module_score(char* reason, size_t reason_size);
//     0 = unusable here (reason says why, NUL-terminated, truncated to reason_size), > 0 usable.
//   const dsk_backend_iface* dsk_backend_module_init(uint32_t api_version);
//     NULL when the module does not speak api_version.
typedef int32_t (*dsk_backend_module_score_fn)(char* reason, size_t reason_size);
typedef const dsk_backend_iface* (*dsk_backend_module_init_fn)(uint32_t api_version);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // DSK_LIB_CORE_BACKEND_IFACE_H_
