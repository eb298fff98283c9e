// sampling_math.h - every numeric step of token sampling (dsk_sampling.h), shared by the CPU
// reference and the CUDA kernels so both give the same token ids bit for bit.
//
// The header of dsk_sampling.h states the semantics; these functions are their executable form.
// Float steps go through StrictF32 / det_exp / det_log (detmath.h: same build rules — no FMA
// contraction, no fast math). Mass comparisons use exact integers (weights below), so any
// summation order gives the same thresholds. Selections (top-k order, argmax of z + g) compare
// (value, id) pairs, which is exact in any reduction order.
#ifndef DSK_LIB_COMMON_SAMPLING_MATH_H_
#define DSK_LIB_COMMON_SAMPLING_MATH_H_

#include <stdint.h>

#include "common/detmath.h"
#include "common/hd.h"
#include "common/philox.h"

namespace dsk {

// Which per-row parameter a validity report names (also CUDA's deferred error payload).
enum SampleParamId : int32_t {
  kSampleParamTemperature = 0,
  kSampleParamTopK = 1,
  kSampleParamTopP = 2,
  kSampleParamMinP = 3,
  kSampleParamRepetition = 4,
  kSampleParamFrequency = 5,
  kSampleParamPresence = 6,
};

// Which token list a bad id or offset belongs to.
enum SampleListId : int32_t {
  kSampleListOutput = 0,
  kSampleListPrompt = 1,
  kSampleListBias = 2,
};

// Philox streams (counter word 1).
constexpr uint32_t kSampleStreamGumbel = 0;
constexpr uint32_t kSampleStreamAccept = 1;

// ---- Parameter ranges ---------------------------------------------------------------------------

DSK_HD bool sample_finite(float x) { return (f32_bits(x) & 0x7F800000u) != 0x7F800000u; }

// True when `value` (the f32 parameter `id`; top_k passes its int32 value converted exactly via
// sample_top_k_ok instead) is in its documented range.
DSK_HD bool sample_param_ok(int32_t id, float value) {
  switch (id) {
    case kSampleParamTemperature:
      return sample_finite(value) && value >= 0.0f;
    case kSampleParamTopP:
      return value > 0.0f && value <= 1.0f;
    case kSampleParamMinP:
      return value >= 0.0f && value <= 1.0f;
    case kSampleParamRepetition:
      return sample_finite(value) && value > 0.0f;
    case kSampleParamFrequency:
    case kSampleParamPresence:
      return sample_finite(value);
    default:
      return false;
  }
}

DSK_HD bool sample_top_k_ok(int32_t k) { return k >= 0; }

// ---- Random numbers -----------------------------------------------------------------------------

// The Philox block `block` of `stream` for a row keyed by (seed, offset): key (lo32(seed),
// hi32(seed)), counter (block, stream, lo32(offset), hi32(offset)). Draw `index` is word index % 4
// of block index / 4.
DSK_HD Philox4 sample_philox(uint64_t seed, uint64_t offset, uint32_t stream, uint32_t block) {
  return philox4x32_10(block, stream, static_cast<uint32_t>(offset),
                       static_cast<uint32_t>(offset >> 32), static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32));
}

// Gumbel noise from one word: u = (2 (word >> 9) + 1) 2^-24 (exact; in [2^-24, 1 - 2^-24]),
// g = -log(-log(u)).
DSK_HD float sample_gumbel(uint32_t word) {
  const float u = static_cast<float>(((word >> 9) << 1) | 1u) * 0x1p-24f;
  return -det_log(-det_log(u));
}

// Bounds of sample_gumbel over every word (tests/core/test_sampling_math.cpp checks them at the
// extreme words, and the function is monotone in u there): a token j with fl(z_j + kGumbelUpper)
// below the best z + g found so far can never win, since rounding is monotone.
constexpr float kGumbelUpper = 16.64f;
constexpr float kGumbelLower = -2.82f;

// The Gumbel noise of token j of a row (stream 0). Loops over consecutive tokens call
// sample_philox once per 4 tokens and sample_gumbel per word instead.
DSK_HD float sample_gumbel_at(uint64_t seed, uint64_t offset, uint32_t token) {
  return sample_gumbel(sample_philox(seed, offset, kSampleStreamGumbel, token >> 2).v[token & 3u]);
}

// Acceptance uniform of speculative verification at draft position i (stream 1): (word >> 8)
// 2^-24 in [0, 1).
DSK_HD float sample_accept_uniform(uint64_t seed, uint64_t offset, uint32_t position) {
  const uint32_t word =
      sample_philox(seed, offset, kSampleStreamAccept, position >> 2).v[position & 3u];
  return static_cast<float>(word >> 8) * 0x1p-24f;
}

// ---- The processing chain (steps 2-4) ----------------------------------------------------------

DSK_HD float sample_add_bias(float x, float bias) { return (StrictF32{x} + StrictF32{bias}).v; }

// Step 3. seen: the token occurs in the prompt or the output ids; count: occurrences in the output
// ids. Skipping a penalty at its neutral value (1 or 0) gives the same bits as applying it.
DSK_HD float sample_penalize(float x, bool seen, int32_t count, float repetition, float frequency,
                             float presence) {
  using S = StrictF32;
  if (seen && repetition != 1.0f)
    x = x > 0.0f ? (S{x} / S{repetition}).v : (S{x} * S{repetition}).v;
  if (count > 0) {
    x = (S{x} - S{frequency} * S{static_cast<float>(count)}).v;
    x = (S{x} - S{presence}).v;
  }
  return x;
}

// Step 4: z = x / T; greedy rows (T == 0) keep x.
DSK_HD float sample_temper(float x, float temperature) {
  return temperature > 0.0f ? (StrictF32{x} / StrictF32{temperature}).v : x;
}

// A processed logit that makes the row DSK_SAMPLE_NONFINITE when its token is allowed.
DSK_HD bool sample_bad_logit(float z) {
  const uint32_t b = f32_bits(z);
  return (b & 0x7FFFFFFFu) > 0x7F800000u || b == 0x7F800000u;  // NaN or +inf
}

// ---- Order, weights and thresholds (steps 5-7) --------------------------------------------------

// A key whose unsigned order is the order of z (finite or +-inf, never NaN); -0 and +0 share the
// key of +0 so that equal values tie. Larger key = larger z. (z, id) pairs then order as
// (key descending, id ascending).
DSK_HD uint32_t sample_key(float z) {
  uint32_t b = f32_bits(z);
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}

// The float whose sample_key is `key` (-0 comes back as +0).
DSK_HD float sample_key_value(uint32_t key) {
  return f32_from_bits((key & 0x80000000u) != 0 ? (key & 0x7FFFFFFFu) : ~key);
}

// True when (za, a) comes before (zb, b) in the order (z descending, id ascending).
DSK_HD bool sample_before(float za, int64_t a, float zb, int64_t b) {
  const uint32_t ka = sample_key(za);
  const uint32_t kb = sample_key(zb);
  return ka > kb || (ka == kb && a < b);
}

// s = 63 - bit_length(V): the fraction bits of the weights, so that V * 2^s < 2^63.
DSK_HD int32_t sample_weight_shift(int64_t vocab) {
  int32_t bits = 0;
  while (bits < 63 && (vocab >> bits) != 0) ++bits;
  return 63 - bits;
}

// exp(z - m) in f32 (in [0, 1] for z <= m; 1 at z == m).
DSK_HD float sample_rel_exp(float z, float m) { return det_exp((StrictF32{z} - StrictF32{m}).v); }

// W = trunc(w 2^s) for w = sample_rel_exp(z, m) in [0, 1]: w 2^s is exact (a power-of-two scale
// of a float below 2^63), the conversion truncates on both sides.
DSK_HD uint64_t sample_weight_of(float w, int32_t shift) {
  const float scaled =
      (StrictF32{w} * StrictF32{f32_from_bits(static_cast<uint32_t>(127 + shift) << 23)}).v;
  return static_cast<uint64_t>(scaled);
}

// ceil(p * total) for p in (0, 1) (f32, taken exactly) and total < 2^63: the mass a top-p prefix
// must reach. p = mp 2^-sh with mp a 24-bit integer (sh in [24, 149]); mp * total < 2^87 is formed
// in two 64-bit words and shifted right with the remainder rounding up.
DSK_HD uint64_t sample_top_p_target(float p, uint64_t total) {
  const uint32_t bits = f32_bits(p);
  const uint32_t exp_field = (bits >> 23) & 0xFFu;
  const uint64_t mp = exp_field == 0 ? (bits & 0x7FFFFFu) : ((bits & 0x7FFFFFu) | 0x800000u);
  const int32_t sh = exp_field == 0 ? 149 : 150 - static_cast<int32_t>(exp_field);
  // P = mp * total = hi_part * 2^32 + lo_part, as (p_hi, p_lo).
  const uint64_t lo_part = (total & 0xFFFFFFFFu) * mp;  // < 2^56
  const uint64_t hi_part = (total >> 32) * mp;          // < 2^55
  const uint64_t p_lo = lo_part + (hi_part << 32);
  const uint64_t carry = p_lo < lo_part ? 1u : 0u;
  const uint64_t p_hi = (hi_part >> 32) + carry;
  uint64_t q = 0;
  bool rem = false;
  if (sh >= 128) {
    rem = (p_hi | p_lo) != 0;
  } else if (sh >= 64) {
    const int32_t r = sh - 64;
    q = r == 0 ? p_hi : (p_hi >> r);
    rem = p_lo != 0 || (r != 0 && (p_hi & ((uint64_t{1} << r) - 1u)) != 0);
  } else {
    q = (p_lo >> sh) | (p_hi << (64 - sh));
    rem = (p_lo & ((uint64_t{1} << sh) - 1u)) != 0;
  }
  return q + (rem ? 1u : 0u);
}

// Step 7: min-p keeps w >= min_p (w = sample_rel_exp(z, m)).
DSK_HD bool sample_min_p_keeps(float w, float min_p) { return w >= min_p; }

// S = float(total) 2^-s (>= 1 once the max token is counted): the kept set's normalizer.
DSK_HD float sample_normalizer(uint64_t total, int32_t shift) {
  const float t = static_cast<float>(total);  // round to nearest, as __ull2float_rn
  return (StrictF32{t} * StrictF32{f32_from_bits(static_cast<uint32_t>(127 - shift) << 23)}).v;
}

// log(S), the term every processed logprob of the row subtracts.
DSK_HD float sample_log_normalizer(uint64_t total, int32_t shift) {
  return det_log(sample_normalizer(total, shift));
}

// logprob_j = (z_j - m) - log(S).
DSK_HD float sample_logprob(float z, float m, float log_s) {
  using S = StrictF32;
  return ((S{z} - S{m}) - S{log_s}).v;
}

// prob_j = w_j / S.
DSK_HD float sample_prob(float w, float normalizer) {
  return (StrictF32{w} / StrictF32{normalizer}).v;
}

// ---- Speculative verification -----------------------------------------------------------------

// Accept the draft when u q < p (q = 1 for a deterministic draft).
DSK_HD bool verify_accepts(float u, float q, float p) {
  return (StrictF32{u} * StrictF32{q}).v < p;
}

// The residual weight max(p - q, 0) (0 also for NaN).
DSK_HD float verify_residual(float p, float q) {
  const float r = (StrictF32{p} - StrictF32{q}).v;
  return r > 0.0f ? r : 0.0f;
}

// The race score of a token with weight r > 0 and Gumbel noise g: log(r) + g.
DSK_HD float verify_score(float r, float g) { return (StrictF32{det_log(r)} + StrictF32{g}).v; }

// z + g, the race score of the sampler.
DSK_HD float sample_score(float z, float g) { return (StrictF32{z} + StrictF32{g}).v; }

}  // namespace dsk

#endif  // DSK_LIB_COMMON_SAMPLING_MATH_H_
