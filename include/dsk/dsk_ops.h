/* dsk_ops.h - core ops: GEMM and linear layers, FP8 block quantization and the FP8 block-scaled
 * linear layer, RMSNorm, RoPE with YaRN, SwiGLU, softmax, top-k and embedding gather.
 *
 * Conventions shared by every op in this header:
 * - Tensors are borrowed `const DLTensor*` (see dsk_tensor.h for the limits on any tensor). Inputs
 *   are only read; outputs are only written. Any strides are accepted unless a function says
 *   otherwise; leading dimensions marked "..." are any number of dimensions (0 included) that
 *   must be the same in every tensor of the call.
 * - Where ops run: all tensors of one call must be on one device. Host memory runs on the CPU
 *   reference under any context; CUDA memory must be on the context's device and runs on the
 *   context's stream (asynchronously unless a function says otherwise). A tensor on another device
 *   is DSK_ERR_INVALID_ARGUMENT naming it.
 * - "float dtypes" are DSK_DTYPE_F32, F16 and BF16. Math is done in f32; an output is rounded once
 *   to its dtype (round to nearest even) unless a function documents an intermediate rounding.
 * - An output must not overlap any input unless the function allows it (in-place forms are named);
 *   outputs must not overlap each other.
 * - Errors: DSK_ERR_INVALID_ARGUMENT (NULL ctx or required tensor, wrong shape, dtype, device or
 *   range; the message names the argument and what was expected), DSK_ERR_UNSUPPORTED (a valid
 *   combination this backend does not implement), DSK_ERR_OUT_OF_MEMORY, DSK_ERR_DEVICE_ERROR.
 *   On error nothing is guaranteed about the outputs' contents, but nothing else is touched.
 * - Thread safety: as for the context (one thread at a time per context).
 * - CPU == CUDA: results agree within the tolerances documented per op family in
 *   docs/ops/<family>.md; ops whose result is an index (argmax, top-k, embedding) agree exactly.
 */
#ifndef DSK_OPS_H_
#define DSK_OPS_H_

#include <stdint.h>

#include "dsk_context.h"
#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM ------------------------------------------------------------------------------------ */

/* D = alpha * op(A) @ op(B) + beta * C, where op(X) is X or X^T (trans_x != 0).
 * Shapes: op(A) is [M, K], op(B) is [K, N], C and D are [M, N]; with a leading batch dimension,
 * [batch, ...] (strided-batched): D must be 3-D when any operand is, and a 2-D A or B is used for
 * every batch (broadcast). Any strides, so leading dimensions and batch strides come from the
 * tensors themselves (a transposed view works as well as the flag).
 * Dtypes: A and B the same float dtype; C and D one float dtype (any of the three); accumulation
 * in f32. C may be NULL (then beta is ignored, treated as 0) and may be D itself (same data and
 * strides: D += ...); otherwise C must not overlap D. K == 0 gives beta * C. */
DSK_API dsk_status dsk_gemm(dsk_context* ctx, const DLTensor* a, const DLTensor* b,
                            const DLTensor* c, const DLTensor* d, int32_t trans_a, int32_t trans_b,
                            float alpha, float beta);

/* y = x @ w^T + bias for checkpoint-layout weights: x [..., in], w [out, in], bias [out] or NULL,
 * y [..., out]. x and w the same float dtype; bias and y any float dtype. */
DSK_API dsk_status dsk_linear(dsk_context* ctx, const DLTensor* x, const DLTensor* w,
                              const DLTensor* bias, const DLTensor* y);

/* ---- FP8 block quantization (e4m3fn, DeepSeek-V3) ---------------------------------------------
 * Activations are scaled per 1 x 128 tile of a row, weights per 128 x 128 block; the last tile or
 * block of a ragged dimension is partial. For each tile, amax = max |x| (f32) and
 *   scale = amax / 448                (f32 division, rounded to nearest)
 *   scale = 2^ceil(log2(scale))        additionally, with DSK_QUANT_SCALE_POW2 (UE8M0, V3.1)
 *   q     = fp8_e4m3fn(x / scale)      (f32 division, round to nearest even, saturating to +-448)
 * A tile whose amax is 0 gets scale 0 and q = 0 (no NaN). A tile holding NaN or +-Inf is
 * DSK_ERR_INVALID_ARGUMENT on the CPU; on CUDA it produces a NaN or Inf scale (checking would need
 * a synchronization). Scales are dequantization multipliers: x ~= q * scale (the weight scales are
 * what checkpoints call weight_scale_inv). Scale tensors are f32 with any strides (a column-major
 * activation-scale view, as DeepGEMM wants, works). */
#define DSK_FP8_BLOCK 128
/* Round every scale up to a power of two (UE8M0 scales). */
#define DSK_QUANT_SCALE_POW2 1u

/* x [..., K] float dtype -> q [..., K] fp8_e4m3fn and scales [..., ceil(K / 128)] f32. */
DSK_API dsk_status dsk_quant_fp8_act(dsk_context* ctx, const DLTensor* x, const DLTensor* q,
                                     const DLTensor* scales, uint32_t flags);
/* q [..., K] fp8_e4m3fn, scales [..., ceil(K / 128)] f32 -> x [..., K] float dtype (x = q * s). */
DSK_API dsk_status dsk_dequant_fp8_act(dsk_context* ctx, const DLTensor* q, const DLTensor* scales,
                                       const DLTensor* x);
/* w [N, K] float dtype -> q [N, K] fp8_e4m3fn and scales [ceil(N / 128), ceil(K / 128)] f32. */
DSK_API dsk_status dsk_quant_fp8_weight(dsk_context* ctx, const DLTensor* w, const DLTensor* q,
                                        const DLTensor* scales, uint32_t flags);
/* q [N, K] fp8_e4m3fn, scales [ceil(N / 128), ceil(K / 128)] f32 -> w [N, K] float dtype. */
DSK_API dsk_status dsk_dequant_fp8_weight(dsk_context* ctx, const DLTensor* q,
                                          const DLTensor* scales, const DLTensor* w);

/* FP8 block-scaled linear layer: y = x @ w^T with w [N, K] fp8_e4m3fn and w_scales
 * [ceil(N / 128), ceil(K / 128)] f32. Either x [..., K] is a float dtype and x_scales is NULL (x is
 * quantized per 1 x 128 tile first, with `flags` as in dsk_quant_fp8_act), or x is fp8_e4m3fn and
 * x_scales [..., ceil(K / 128)] f32 holds its tile scales (flags must be 0). y [..., N] is F32,
 * F16 or BF16. The CPU reference dequantizes both operands to f32 (q * scale, rounded to f32) and
 * runs an f32 GEMM; see dsk_linear_fp8_kernel for what CUDA runs. */
DSK_API dsk_status dsk_linear_fp8(dsk_context* ctx, const DLTensor* x, const DLTensor* x_scales,
                                  const DLTensor* w, const DLTensor* w_scales, const DLTensor* y,
                                  uint32_t flags);

/* Kernels dsk_linear_fp8 can run. */
#define DSK_FP8_KERNEL_CPU_REFERENCE 1 /* host tensors: dequantize, then f32 GEMM */
#define DSK_FP8_KERNEL_BLOCK_SCALED 2  /* cuBLASLt FP8 GEMM with 1x128 / 128x128 block scales */
#define DSK_FP8_KERNEL_DEQUANT_GEMM 3  /* CUDA: dequantize to bf16, then a bf16 GEMM */
/* Which kernel dsk_linear_fp8 runs for tensors on the context's device (decided at run time from
 * the device's compute capability and the cuBLASLt version; DSK_FP8_KERNEL_CPU_REFERENCE for a
 * CPU context). */
DSK_API dsk_status dsk_linear_fp8_kernel(dsk_context* ctx, int32_t* kernel);

/* ---- Normalization and activations ----------------------------------------------------------- */

/* RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) * weight, with x [..., D],
 * weight [D], y [..., D], each any float dtype; eps >= 0. y may be x itself (in place). */
DSK_API dsk_status dsk_rmsnorm(dsk_context* ctx, const DLTensor* x, const DLTensor* weight,
                               const DLTensor* y, float eps);

/* Fused residual add + RMSNorm, as a transformer block does it:
 *   h = x + residual, rounded to residual_out's dtype;  residual_out = h;  y = rmsnorm(h) * weight.
 * x, residual, residual_out, y [..., D]; weight [D]; any float dtypes. residual_out may be
 * residual itself and y may be x itself (in place); other overlaps are rejected. */
DSK_API dsk_status dsk_add_rmsnorm(dsk_context* ctx, const DLTensor* x, const DLTensor* residual,
                                   const DLTensor* weight, const DLTensor* y,
                                   const DLTensor* residual_out, float eps);

/* y = silu(gate) * up with silu(g) = g / (1 + exp(-g)), in f32, rounded once. gate, up, y
 * [..., I], any float dtypes. */
DSK_API dsk_status dsk_swiglu(dsk_context* ctx, const DLTensor* gate, const DLTensor* up,
                              const DLTensor* y);
/* The same from a fused projection: gate_up [..., 2I] holds gate in [..., :I] and up in [..., I:];
 * y [..., I]. */
DSK_API dsk_status dsk_swiglu_fused(dsk_context* ctx, const DLTensor* gate_up, const DLTensor* y);

/* ---- Rotary position embedding (RoPE) with YaRN ---------------------------------------------- */

/* Layouts of the rotated pairs in the last dimension (D = config.dim). */
#define DSK_ROPE_INTERLEAVED 0 /* pairs (2i, 2i+1): DeepSeek's reference model */
#define DSK_ROPE_HALF_SPLIT 1  /* pairs (i, i + D/2): Hugging Face / GPT-NeoX checkpoints */

/* The frequency table of DeepSeek-V3's precompute_freqs_cis (and Hugging Face's
 * DeepseekV3YarnRotaryEmbedding), with f32 steps in the reference's order:
 *   freq[i] = 1 / theta^(2i / dim), i < dim/2
 *   with YaRN (factor > 1): low = max(floor(cd(beta_fast)), 0), high = min(ceil(cd(beta_slow)),
 *     dim - 1), cd(r) = dim * ln(original_seq_len / (r * 2 pi)) / (2 ln theta);
 *     smooth[i] = 1 - clamp((i - low) / (high - low), 0, 1)  (high += 0.001 when equal);
 *     freq[i] = freq[i] / factor * (1 - smooth[i]) + freq[i] * smooth[i]
 *   angle(p, i) = f32(p * freq[i]);  cos/sin of the angle scaled by attn = m(mscale) /
 *   m(mscale_all_dim), m(s) = 0.1 * s * ln(factor) + 1 (1 when factor <= 1 or s == 0).
 * DeepSeek's reference applies YaRN only when max_seq_len > original_seq_len: pass factor = 1 to
 * get its table for shorter contexts. */
typedef struct dsk_rope_config {
  uint32_t struct_size;     /* sizeof(dsk_rope_config), set by dsk_rope_config_init */
  int32_t dim;              /* rotated dimensions, even, >= 2 (qk_rope_head_dim: 64) */
  double theta;             /* rope_theta (10000), > 1 */
  double factor;            /* rope_factor (40); <= 1 disables YaRN */
  int64_t original_seq_len; /* original_max_position_embeddings (4096), > 0 */
  double beta_fast;         /* 32 */
  double beta_slow;         /* 1 */
  double mscale;            /* Hugging Face yarn mscale (1.0) */
  double mscale_all_dim;    /* Hugging Face mscale_all_dim (1.0) */
} dsk_rope_config;

/* Fills *config with DeepSeek-V3's values (dim 64, theta 10000, factor 40, original_seq_len 4096,
 * beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 1).
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL config). */
DSK_API dsk_status dsk_rope_config_init(dsk_rope_config* config);

/* Writes the table for positions 0..P-1: cos and sin are [P, dim / 2] f32 (any device; computed
 * on the host and copied). */
DSK_API dsk_status dsk_rope_table(dsk_context* ctx, const dsk_rope_config* config,
                                  const DLTensor* cos, const DLTensor* sin);

/* Rotates x [T, H, D] or [T, D] (D = 2 * cos.shape[1]) by the angles of positions [T] (int32 or
 * int64, each in [0, P)) taken from cos/sin [P, D/2] f32, in `layout` (DSK_ROPE_*), into y (same
 * shape; y may be x itself). Per pair (a, b) and table entry (c, s), in f32:
 *   a' = a * c - b * s,  b' = a * s + b * c   (the complex product of the reference).
 * x and y any float dtypes. A position outside [0, P) is DSK_ERR_INVALID_ARGUMENT; on CUDA that
 * check reads a flag back, so the call synchronizes the stream. */
DSK_API dsk_status dsk_rope_apply(dsk_context* ctx, const DLTensor* x, const DLTensor* positions,
                                  const DLTensor* cos, const DLTensor* sin, const DLTensor* y,
                                  int32_t layout);

/* ---- Softmax, top-k, embedding --------------------------------------------------------------- */

/* Softmax over the last dimension of x [..., N] at a temperature (finite, > 0, with a finite f32
 * reciprocal; 1 for none), in f32: z = x * f32(1 / temperature), the row maximum subtracted,
 * y = exp(z - max) / sum exp(z - max). Rows of -inf, and rows holding +inf or NaN, give NaN (as in
 * PyTorch). y [..., N]; any float dtypes; y may be x itself. N >= 1. */
DSK_API dsk_status dsk_softmax(dsk_context* ctx, const DLTensor* x, const DLTensor* y,
                               float temperature);
/* log_softmax: y = z - max - log(sum exp(z - max)), same arguments. */
DSK_API dsk_status dsk_log_softmax(dsk_context* ctx, const DLTensor* x, const DLTensor* y,
                                   float temperature);

/* Index of the largest value of each row of x [..., N] (any float dtype, N >= 1) into
 * indices [...] (int32 or int64). Values are compared as f32 (-0.0 equals +0.0); ties go to the
 * lower index; NaN counts as larger than every number (as in torch.argmax). */
DSK_API dsk_status dsk_argmax(dsk_context* ctx, const DLTensor* x, const DLTensor* indices);

/* The k largest values of each row of x [..., N] (1 <= k <= N), in descending order, ties to the
 * lower index, NaN largest: indices [..., k] int32 or int64, values [..., k] any float dtype or
 * NULL. */
DSK_API dsk_status dsk_topk(dsk_context* ctx, const DLTensor* x, int32_t k, const DLTensor* values,
                            const DLTensor* indices);

/* out[..., :] = table[ids[...], :] for table [V, D] and ids [...] int32 or int64 (each in
 * [0, V)); out [..., D]; table and out any float dtypes (converted). An id outside [0, V) is
 * DSK_ERR_INVALID_ARGUMENT; on CUDA that check reads a flag back, so the call synchronizes. */
DSK_API dsk_status dsk_embedding(dsk_context* ctx, const DLTensor* table, const DLTensor* ids,
                                 const DLTensor* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_OPS_H_ */
