/* dsk_mla.h - Multi-head Latent Attention (DeepSeek-V2/V3): absorbed decode over a paged latent
 * cache (plan/run), cache append, weight absorption, latent decompression and MHA-form prefill.
 *
 * The conventions of dsk_ops.h apply (borrowed DLTensors, one device per call, messages that name
 * the argument, outputs never overlap inputs). The math and the layouts are in docs/ops/mla.md;
 * the CPU reference defines the results and CUDA agrees within FlashMLA's tolerances (out: abs
 * 8e-4 or rel 2/128; lse: abs 1e-6 or rel 8/65536).
 *
 * Shapes use DeepSeek-V3's names: D = kv_lora_rank + qk_rope_head_dim (576) is the width of a
 * cached token, Dv = kv_lora_rank (512) the latent, Dr = qk_rope_head_dim (64); a per-head
 * projection wkv_b [H * (dn + dv), Dc] holds, for head h, W_UK (rows h*(dn+dv) .. +dn, latent ->
 * k_nope) followed by W_UV (the next dv rows, latent -> v), with dn = qk_nope_head_dim (128),
 * dv = v_head_dim (128), Dc = kv_lora_rank (512).
 *
 * The latent cache: kv_cache [num_pages, page_size, h_kv, D] bf16 or f16; a token's row is
 * kv_norm(c_kv) (Dv values) followed by RoPE(k_pe) (D - Dv values). K is the whole row, V its
 * first Dv values. page_size is a multiple of 16 (64 is FlashMLA's). Request b's token t lives in
 * page block_table[b, t / page_size] at offset t % page_size. The last dimension of kv_cache, q
 * and out must be contiguous (stride 1); other strides are free.
 */
#ifndef DSK_MLA_H_
#define DSK_MLA_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_context.h"
#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Softmax scale ----------------------------------------------------------------------------
 */

/* DeepSeek-V3's softmax scale (inference/model.py): qk_head_dim^-0.5 (qk_head_dim = qk_nope +
 * qk_rope = 192, the pre-absorption width, also for absorbed decode), times m^2 with
 * m = 0.1 * mscale * ln(rope_factor) + 1 when use_yarn != 0 and rope_factor > 1 (the reference's
 * max_seq_len > original_seq_len), else m = 1. Computed in double, rounded once to f32.
 * V3: (192, 40, 1, 1) -> 0.1352338. Errors: qk_head_dim < 1, rope_factor or mscale not finite,
 * rope_factor <= 0, NULL scale. */
DSK_API dsk_status dsk_mla_softmax_scale(int64_t qk_head_dim, double rope_factor, double mscale,
                                         int32_t use_yarn, float* scale);

/* ---- Absorbed decode over the paged latent cache ----------------------------------------------

 * Tensors (B = batch, S = s_q query tokens per request, Hq query heads, Hkv cached heads):
 *   q             [B, S, Hq, D]   bf16 or f16: per head the absorbed q_nope (q_nope @ W_UK, Dv
 *                                 values) followed by the rotated q_pe (D - Dv values)
 *   kv_cache      [num_pages, page_size, Hkv, D], the dtype of q
 *   block_table   [B, max_pages] int32; entries past a request's last page are never read
 *   cache_seqlens [B] int32, 0 <= seqlen <= max_pages * page_size
 *   out           [B, S, Hq, Dv]  the dtype of q
 *   lse           [B, Hq, S] f32, or NULL: natural log of the sum of exp(scaled scores)
 * Hq must be a multiple of Hkv (1 <= Hkv <= 8); query head h reads cached head h / (Hq / Hkv).
 * 1 <= Dv <= D. The CUDA kernels support D = 576, Dv = 512 (other widths: DSK_ERR_UNSUPPORTED).
 *
 * For request b with n = cache_seqlens[b], query j (0 <= j < S) attends to the first
 *   n - S + j + 1 tokens when causal (MTP, speculative verification, chunked prefill: the S
 *   queries are the last S tokens of the sequence), and to all n tokens when not.
 * scores = (q . k) * softmax_scale in f32; out = softmax(scores) @ V, accumulated in f32 and
 * rounded once; a query that attends to no token gets out = 0 and lse = -inf. Cache positions at
 * or past seqlen are never read (they may hold NaN), nor are pages not named by block_table.
 *
 * Plan/run: a plan fixes the shapes (B, S, Hq, Hkv, D, Dv, page_size, max_pages), the dtype and
 * the device (the context's) and chooses the split-KV schedule for them; it does not depend on the
 * values of cache_seqlens, so one plan serves every layer and every step with the same batch
 * shape. dsk_mla_decode_run needs dsk_mla_decode_plan_workspace_size bytes of scratch: when the
 * context's workspace (dsk_context_reserve_workspace / _set_workspace) is at least that large, run
 * neither allocates nor synchronizes, so it can be captured in a CUDA graph; otherwise it allocates
 * stream-ordered scratch itself.
 *
 * Out-of-range data: on the CPU a block_table entry outside [0, num_pages) that the request needs,
 * or a seqlen outside [0, max_pages * page_size], is DSK_ERR_INVALID_ARGUMENT before anything is
 * written. On CUDA those values live on the device, so the kernel skips the bad page or request
 * (never reading out of bounds), records the error on the device and the next
 * dsk_context_synchronize of a context on that device returns DSK_ERR_INVALID_ARGUMENT naming it
 * (the outputs of that call are then unspecified). */

typedef struct dsk_mla_decode_plan dsk_mla_decode_plan;

/* Creates a plan for run calls with tensors of these shapes, dtypes and device (their contents
 * are not read; they may be the very tensors later passed to run). *plan is set to NULL on error.
 * The plan is immutable, may be used from any thread and by any context on the same device (it
 * does not keep ctx), and must be released with dsk_mla_decode_plan_release. */
DSK_API dsk_status dsk_mla_decode_plan_create(dsk_context* ctx, const DLTensor* q,
                                              const DLTensor* kv_cache, const DLTensor* block_table,
                                              const DLTensor* cache_seqlens, const DLTensor* out,
                                              dsk_mla_decode_plan** plan);

/* Releases a plan (NULL is a no-op). */
DSK_API void dsk_mla_decode_plan_release(dsk_mla_decode_plan* plan);

/* Bytes of scratch dsk_mla_decode_run uses (0 when it needs none). */
DSK_API dsk_status dsk_mla_decode_plan_workspace_size(const dsk_mla_decode_plan* plan,
                                                      size_t* bytes);

/* The number of pieces each request's keys are split into (1 = no split, no combine step). */
DSK_API dsk_status dsk_mla_decode_plan_num_splits(const dsk_mla_decode_plan* plan,
                                                  int32_t* num_splits);

/* Runs the decode attention described above. The tensors must match the plan's shapes, dtypes
 * and device (the number of pages may differ); softmax_scale finite and > 0 (see
 * dsk_mla_softmax_scale); causal 0 or 1. */
DSK_API dsk_status dsk_mla_decode_run(dsk_context* ctx, const dsk_mla_decode_plan* plan,
                                      const DLTensor* q, const DLTensor* kv_cache,
                                      const DLTensor* block_table, const DLTensor* cache_seqlens,
                                      float softmax_scale, int32_t causal, const DLTensor* out,
                                      const DLTensor* lse);

/* Plan, run and release in one call, for callers that decode once per shape. */
DSK_API dsk_status dsk_mla_decode(dsk_context* ctx, const DLTensor* q, const DLTensor* kv_cache,
                                  const DLTensor* block_table, const DLTensor* cache_seqlens,
                                  float softmax_scale, int32_t causal, const DLTensor* out,
                                  const DLTensor* lse);

/* ---- Cache append ------------------------------------------------------------------------------

 * Writes T new tokens into the latent cache: for token t with s = slot_mapping[t] >= 0,
 *   kv_cache[s / page_size, s % page_size, h, :Dv] = c_kv[t, h, :]  (already kv_norm'ed)
 *   kv_cache[s / page_size, s % page_size, h, Dv:] = k_pe[t, h, :]  (already rotated)
 * converted to the cache dtype (round to nearest even); slot -1 skips the token (padding).
 * c_kv [T, Hkv, Dv] or [T, Dv] (Hkv = 1), k_pe [T, Hkv, D - Dv] or [T, D - Dv], any float dtypes;
 * slot_mapping [T] int64; kv_cache as above. Slots must be distinct. A slot outside
 * [-1, num_pages * page_size) is DSK_ERR_INVALID_ARGUMENT: on the CPU before anything is written,
 * on CUDA at the next dsk_context_synchronize (the bad token is skipped, the others are written).
 * Runs asynchronously without allocating (capturable). */
DSK_API dsk_status dsk_mla_cache_append(dsk_context* ctx, const DLTensor* c_kv,
                                        const DLTensor* k_pe, const DLTensor* slot_mapping,
                                        const DLTensor* kv_cache);

/* ---- Weight absorption --------------------------------------------------------------------------

 * wkv_b [H * (dn + dv), Dc]: bf16, f16, f32, or fp8 e4m3fn with wkv_b_scale
 * [ceil(H * (dn + dv) / 128), ceil(Dc / 128)] f32 (DeepSeek-V3's 128 x 128 block scales,
 * dequantized on the fly: w = q * scale, see dsk_dequant_fp8_weight); wkv_b_scale must be NULL for
 * the float dtypes. H comes from the activations; dn and dv from the activations and the number of
 * rows per head (rows / H). Batched per-head GEMMs in f32 (cuBLASLt strided-batched on CUDA),
 * output rounded once; activations any float dtypes and any strides, so q_latent may be the
 * first Dc columns of the decode q buffer. */

/* q_latent[t, h, :] = q_nope[t, h, :] @ W_UK[h]: q_nope [T, H, dn] -> q_latent [T, H, Dc]. */
DSK_API dsk_status dsk_mla_absorb_q(dsk_context* ctx, const DLTensor* q_nope, const DLTensor* wkv_b,
                                    const DLTensor* wkv_b_scale, const DLTensor* q_latent);

/* o[t, h, :] = o_latent[t, h, :] @ W_UV[h]^T: o_latent [T, H, Dc] -> o [T, H, dv]. */
DSK_API dsk_status dsk_mla_absorb_out(dsk_context* ctx, const DLTensor* o_latent,
                                      const DLTensor* wkv_b, const DLTensor* wkv_b_scale,
                                      const DLTensor* o);

/* Decompresses latents to per-head keys and values for the MHA (prefill) form:
 *   k[t, h, :dn] = c_kv[t, :] @ W_UK[h]^T,  v[t, h, :] = c_kv[t, :] @ W_UV[h]^T,
 *   and when k_pe is given, k[t, h, dn:] = k_pe[t, :] (the shared rotated key, every head).
 * c_kv [T, Dc], k_pe [T, Dr] or NULL, k [T, H, dn + Dr] (dn without k_pe), v [T, H, dv]; any
 * float dtypes and strides (c_kv may be a view of a contiguous latent cache). */
DSK_API dsk_status dsk_mla_decompress_kv(dsk_context* ctx, const DLTensor* c_kv,
                                         const DLTensor* k_pe, const DLTensor* wkv_b,
                                         const DLTensor* wkv_b_scale, const DLTensor* k,
                                         const DLTensor* v);

/* ---- Prefill (MHA form) ------------------------------------------------------------------------

 * Variable-length attention over B requests packed along the token dimension:
 *   q [Tq, H, Dqk], k [Tk, Hk, Dqk], v [Tk, Hk, Dv] bf16 or f16 (one dtype), out [Tq, H, Dv] in
 *   that dtype, lse [H, Tq] f32 or NULL; H a multiple of Hk; request b owns query rows
 *   cu_seqlens_q[b] .. cu_seqlens_q[b+1] and key rows cu_seqlens_k[b] .. cu_seqlens_k[b+1]
 *   (cu_seqlens_* [B + 1] int32, starting at 0, non-decreasing, ending at Tq / Tk;
 *   cu_seqlens_k NULL = cu_seqlens_q). With n_q and n_k the request's lengths, query j attends to
 *   keys 0 .. n_k - n_q + j when causal (the queries are the last n_q positions), all n_k when not.
 * DeepSeek's prefill: Dqk = 192 (128 nope + 64 rope), Dv = 128, Hk = H; the CUDA kernels support
 * Dqk and Dv multiples of 8 up to 256. Softmax and accumulation in f32; a query with no key gets
 * out = 0 and lse = -inf. Bad cu_seqlens are DSK_ERR_INVALID_ARGUMENT, on CUDA at the next
 * dsk_context_synchronize (the affected requests are skipped); with Tq = 0 nothing runs and they
 * are not read. Runs asynchronously. */
DSK_API dsk_status dsk_mla_prefill(dsk_context* ctx, const DLTensor* q, const DLTensor* k,
                                   const DLTensor* v, const DLTensor* cu_seqlens_q,
                                   const DLTensor* cu_seqlens_k, float softmax_scale,
                                   int32_t causal, const DLTensor* out, const DLTensor* lse);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_MLA_H_ */
