/* dsk_sampling.h - token sampling: seeded, batch-invariant sampling with masks, logit bias,
 * penalties, temperature, top-k / top-p / min-p, logprobs, and speculative (MTP / draft model)
 * verification. The CPU reference defines the results; CUDA returns the same token ids bit for bit.
 *
 * The conventions of dsk_ops.h apply (borrowed DLTensors, one device per call: every tensor,
 * per-row parameters and token lists included, lives on the logits' device; messages name the
 * argument; outputs never overlap inputs). Exact semantics, the RNG layout and the tolerances are
 * also in docs/ops/sampling.md.
 *
 * Names: B rows (requests), V the vocabulary (1 <= V <= INT32_MAX), x the logits row in f32.
 *
 * ---- The processing chain, per row (fixed order) -----------------------------------------------
 *   1. mask: with allowed_mask, token j is allowed when bit (j % 32) of word j / 32 of the row is
 *      1 (xgrammar's layout). A disallowed token is out whatever its logit or bias (NaN too).
 *   2. bias: x_j += each bias value listed for j, in list order (f32 additions).
 *   3. penalties (vLLM's definitions): with c_j = occurrences of j in the row's output ids and
 *      seen_j = (j occurs in the prompt ids or the output ids):
 *        seen_j:  x_j = x_j > 0 ? x_j / repetition : x_j * repetition
 *        c_j > 0: x_j = x_j - frequency * c_j;  then  x_j = x_j - presence
 *   4. temperature: z_j = x_j / T for T > 0. T == 0 is greedy; its row continues with z_j = x_j
 *      (temperature 1) so that its filters and logprobs stay meaningful.
 *   Each step is one correctly rounded f32 operation in the order written (no FMA), so every
 *   backend computes the same z. Tokens with z_j = -inf are out. A row where an allowed token has
 *   z_j NaN or +inf gets status DSK_SAMPLE_NONFINITE; a row with no finite z_j gets
 *   DSK_SAMPLE_ALL_MASKED. Either way its id is 0 and its logprobs are NaN.
 *   5. top-k (k > 0): keep the k first tokens in the order (z descending, id ascending).
 *   6. top-p (p < 1): keep the shortest prefix, in that order, of the top-k survivors whose mass
 *      reaches p (always at least one token). Mass is counted in exact integers (below).
 *   7. min-p (min_p > 0): keep the survivors with exp(z_j - m) >= min_p.
 *   8. sample: the kept token with the largest z_j + g_j (f32 sum), g_j the Gumbel noise of token
 *      j (below); ties go to the lower id. Greedy rows (T == 0) take the largest z_j instead (ties
 *      to the lower id), which no filter removes.
 *   Where a filter is off (k = 0 or k >= V, p = 1, min_p = 0) it keeps every finite token.
 *   m is the z of the first token in that order (the row's max; its sign decides -0 vs +0).
 *
 * Weights and mass (exact, so CPU and CUDA agree on every threshold): with
 * s = 63 - bit_length(V) (46 for V = 129280), a token's weight is the integer
 *   W_j = trunc(exp(z_j - m) * 2^s)                    (exp: the library's det_exp, f32)
 * A row's total over any token set is then exact in uint64 whatever the summation order. Top-p
 * keeps the shortest prefix whose sum of W reaches ceil(p * total), total being the sum over the
 * top-k survivors (p and total multiplied exactly). The probabilities and logprobs of the
 * processed distribution, over the final kept set K with S = float(sum of W over K) * 2^-s:
 *   prob_j = exp(z_j - m) / S,   logprob_j = (z_j - m) - log(S)   (j in K; prob 0, logprob -inf
 *   outside K). The truncation drops less than 2^-s of each token's weight: logprobs are within
 *   V * 2^-s (3e-9 at V = 129280) of the exact softmax of the kept z. Raw logprobs use the same
 *   formulas over the unprocessed x (all tokens; M its first max); when x holds a NaN or +inf
 *   they are NaN (the raw top list then gives the finite tokens in order, values NaN, padding
 *   -1 and NaN).
 *
 * ---- Random numbers ----------------------------------------------------------------------------
 * Philox4x32-10 with key (lo32(seed), hi32(seed)) and counter (c0, c1, c2, c3) =
 * (index / 4, stream, lo32(offset), hi32(offset)); the draw for `index` is word index % 4 of the
 * output.
 *   Stream 0, index = token j: the Gumbel noise of token j,
 *     u = (2 * (word >> 9) + 1) * 2^-24   (in [2^-24, 1 - 2^-24], exact in f32),
 *     g = -log(-log(u))                   (det_log, f32, so g lies in [-2.812, 16.636]).
 *   Stream 1, index = draft position i: the acceptance uniform of speculative verification,
 *     u = (word >> 8) * 2^-24, at the row's own offset.
 * A row's draws depend only on its own (seed, offset), never on its position in the batch or on
 * other rows: advance offset by one per decode step (by n + 1 after a speculative step of n
 * drafts, see dsk_speculative_verify) so no two draws of a request share noise.
 */
#ifndef DSK_SAMPLING_H_
#define DSK_SAMPLING_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_context.h"
#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-row status values (dsk_sampling_outputs.status). */
#define DSK_SAMPLE_OK 0
#define DSK_SAMPLE_ALL_MASKED 1 /* no allowed token has a finite processed logit: id 0 */
#define DSK_SAMPLE_NONFINITE 2  /* an allowed token's processed logit is NaN or +inf: id 0 */
/* A per-row parameter or token id of the row is out of range (CUDA only; the CPU rejects the call
 * instead): id 0. */
#define DSK_SAMPLE_INVALID 3

/* Which distribution top_ids / top_logprobs describe (dsk_sampling_outputs.top_source). */
#define DSK_LOGPROBS_PROCESSED 0 /* the distribution the token was drawn from (after step 7) */
#define DSK_LOGPROBS_RAW 1       /* log_softmax of the unprocessed logits */

/* The most top logprobs per row (top_ids.shape[1]). */
#define DSK_SAMPLE_MAX_TOP_LOGPROBS 64

/* Parameters of a batch. Each per-row tensor [B] replaces its scalar when not NULL. Value ranges
 * (checked for scalars and, on the CPU, for per-row values; CUDA marks such a row
 * DSK_SAMPLE_INVALID and reports DSK_ERR_INVALID_ARGUMENT at the next dsk_context_synchronize):
 * temperature finite >= 0; top_k >= 0; top_p in (0, 1]; min_p in [0, 1]; repetition finite > 0;
 * frequency and presence finite. */
typedef struct dsk_sampling_params {
  uint32_t struct_size;         /* sizeof(dsk_sampling_params), set by dsk_sampling_params_init */
  float temperature;            /* 1; 0 = greedy */
  int32_t top_k;                /* 0 = off */
  float top_p;                  /* 1 = off */
  float min_p;                  /* 0 = off */
  float repetition_penalty;     /* 1 = off */
  float frequency_penalty;      /* 0 = off */
  float presence_penalty;       /* 0 = off */
  uint64_t seed;                /* Philox key */
  uint64_t offset;              /* Philox counter words 2-3 (the decode step) */
  const DLTensor* temperatures; /* [B] f32 or NULL */
  const DLTensor* top_ks;       /* [B] int32 or NULL */
  const DLTensor* top_ps;       /* [B] f32 or NULL */
  const DLTensor* min_ps;       /* [B] f32 or NULL */
  const DLTensor* repetition_penalties; /* [B] f32 or NULL */
  const DLTensor* frequency_penalties;  /* [B] f32 or NULL */
  const DLTensor* presence_penalties;   /* [B] f32 or NULL */
  const DLTensor* seeds;                /* [B] int64 (read as uint64) or NULL */
  const DLTensor* offsets;              /* [B] int64 (read as uint64) or NULL */
  /* Token lists in CSR form: row b owns ids[offs[b] .. offs[b + 1]). offs [B + 1] and ids [N] are
   * int32 or int64, 1-D; 0 <= offs[0] <= ... <= offs[B] <= N; ids in [0, V). Each pair is given
   * together or not at all. The CPU rejects a call that breaks these; CUDA marks the row of a bad
   * id DSK_SAMPLE_INVALID, and every row when an offsets array is out of order. */
  const DLTensor* output_offsets; /* the ids generated so far (frequency, presence, repetition) */
  const DLTensor* output_ids;
  const DLTensor* prompt_offsets; /* the prompt (repetition only) */
  const DLTensor* prompt_ids;
  const DLTensor* bias_offsets; /* sparse logit bias: bias_values [N] f32 added to bias_ids */
  const DLTensor* bias_ids;
  const DLTensor* bias_values;
  const DLTensor* allowed_mask; /* [B, ceil(V / 32)] int32 bitmask or NULL (all allowed) */
} dsk_sampling_params;

/* Fills *params with the defaults above (plain sampling at temperature 1, seed 0, offset 0, every
 * tensor NULL). Errors: NULL params. */
DSK_API dsk_status dsk_sampling_params_init(dsk_sampling_params* params);

/* Outputs of dsk_sample. Only ids is required. */
typedef struct dsk_sampling_outputs {
  uint32_t struct_size;     /* sizeof(dsk_sampling_outputs), set by dsk_sampling_outputs_init */
  int32_t top_source;       /* DSK_LOGPROBS_PROCESSED (default) or DSK_LOGPROBS_RAW */
  const DLTensor* ids;      /* [B] int32: the sampled token, always in [0, V) */
  const DLTensor* logprobs; /* [B] f32 or NULL: the processed logprob of the sampled token */
  const DLTensor* top_ids;  /* [B, n] int32 or NULL, 1 <= n <= DSK_SAMPLE_MAX_TOP_LOGPROBS: the n
                               most likely tokens of top_source's distribution in the order (logprob
                               descending, id ascending); -1 past the tokens it has */
  const DLTensor* top_logprobs; /* [B, n] f32, given with top_ids: their logprobs (-inf past the
                                   end) */
  const DLTensor* raw_logprobs; /* [B] f32 or NULL: the sampled token's logprob under
                                   log_softmax(x), x unprocessed (NaN when x has NaN or +inf) */
  const DLTensor* status;       /* [B] uint8 or NULL: DSK_SAMPLE_* */
} dsk_sampling_outputs;

/* Sets struct_size, top_source PROCESSED and every tensor to NULL. Errors: NULL outputs. */
DSK_API dsk_status dsk_sampling_outputs_init(dsk_sampling_outputs* outputs);

/* Samples one token per row of logits [B, V] (f32, f16 or bf16, any strides; B may be 0).
 * The raw distribution's top list holds finite logits only. Rows that are not DSK_SAMPLE_OK get
 * id 0, NaN logprobs (raw ones too), top_ids -1 and NaN top_logprobs. Runs asynchronously; no
 * synchronization, so it can be captured in a CUDA graph (seeds and offsets as device tensors). */
DSK_API dsk_status dsk_sample(dsk_context* ctx, const dsk_sampling_params* params,
                              const DLTensor* logits, const dsk_sampling_outputs* outputs);

/* The processed logits after step 7: out[b, j] = z_j for kept tokens, -inf for the others (rows
 * that are not OK: all NaN). out [B, V] f32, f16 or bf16 (rounded once). The seed and offset
 * are not used. status [B] uint8 or NULL as in dsk_sample. */
DSK_API dsk_status dsk_sampling_logits(dsk_context* ctx, const dsk_sampling_params* params,
                                       const DLTensor* logits, const DLTensor* out,
                                       const DLTensor* status);

/* The processed distribution after step 7: probs [B, V] f32 with prob_j as defined above (0 for
 * removed tokens; rows that are not OK: all NaN). status [B] uint8 or NULL. */
DSK_API dsk_status dsk_sampling_probs(dsk_context* ctx, const dsk_sampling_params* params,
                                      const DLTensor* logits, const DLTensor* probs,
                                      const DLTensor* status);

/* ---- Speculative verification -----------------------------------------------------------------
 *
 * Chain verification of n draft tokens per row (Leviathan et al. 2023; Chen et al. 2023), for MTP
 * and draft models. Row b's drafts t_0 .. t_{n-1} = draft_ids[b, :] (int32 or int64; a draft id
 * of -1 ends the row's chain: the positions from there on are not verified), draft probabilities
 * q_i = draft_probs[b, i, :] and target probabilities p_i = target[b, i, :] for i = 0 .. n.
 * Mode SAMPLE, for i = 0, 1, ...:
 *   accept t_i when u_i * q_i(t_i) < p_i(t_i) (f32), u_i the stream-1 uniform of index i;
 *   on the first rejection emit a sample from max(p_i - q_i, 0) (from p_i when that has no
 *   positive entry) and stop; at a -1 draft or after all n, emit a sample from p_i (the bonus).
 *   A sample from weights r is the token with the largest log(r_j) + g_j over r_j > 0, g_j the
 *   Gumbel noise of token j at offset + i (so the bonus equals dsk_sample at offset + i on a row
 *   whose processed probabilities are p_i); ties to the lower id; id 0 when no r_j > 0.
 *   draft_probs NULL means a deterministic draft (q_i one-hot at t_i, as greedy MTP): accept with
 *   probability p_i(t_i), resample from p_i without t_i. The emitted tokens are distributed exactly
 *   as tokens sampled from the target one by one.
 * Mode GREEDY: accept t_i while it equals the argmax of target[b, i, :] (ties to the lower id,
 *   NaN never the max; 0 for an all-NaN row); emit that argmax at the first mismatch; as the
 *   bonus, the argmax of target row i where the chain ends (i = n, or a -1 draft's position).
 *   target may then hold logits; draft_probs is not read.
 * Outputs: out_ids [B, n + 1] int32: the accepted drafts, then the emitted token, then -1;
 *   accepted [B] int32: the accepted drafts (0 .. n); emitted [B] int32 or NULL: accepted + 1.
 * Shapes: draft_ids [B, n] (n >= 0), draft_probs [B, n, V] or NULL, target [B, n + 1, V]; probs
 *   f32, f16 or bf16, any strides. A draft id outside [-1, V) is DSK_ERR_INVALID_ARGUMENT (CPU:
 *   before writing; CUDA: at the next synchronize, and that row gets out_ids all -1, accepted 0
 *   and emitted 0). */
#define DSK_VERIFY_SAMPLE 0
#define DSK_VERIFY_GREEDY 1

typedef struct dsk_verify_params {
  uint32_t struct_size; /* sizeof(dsk_verify_params), set by dsk_verify_params_init */
  int32_t mode;         /* DSK_VERIFY_SAMPLE (default) or DSK_VERIFY_GREEDY */
  uint64_t seed;
  uint64_t offset;
  const DLTensor* seeds;   /* [B] int64 or NULL */
  const DLTensor* offsets; /* [B] int64 or NULL */
} dsk_verify_params;

/* Sets struct_size, mode SAMPLE, seed and offset 0, tensors NULL. Errors: NULL params. */
DSK_API dsk_status dsk_verify_params_init(dsk_verify_params* params);

DSK_API dsk_status dsk_speculative_verify(dsk_context* ctx, const dsk_verify_params* params,
                                          const DLTensor* draft_ids, const DLTensor* draft_probs,
                                          const DLTensor* target, const DLTensor* out_ids,
                                          const DLTensor* accepted, const DLTensor* emitted);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_SAMPLING_H_ */
