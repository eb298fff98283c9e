// sample_row.h - the per-row engine of the CPU sampler (lib/cpu/sample.cpp): one row of
// dsk_sampling.h's chain, computed with the shared numerics of lib/common/sampling_math.h.
//
// A row is split into a dense part (every token whose logit only goes through mask and
// temperature) and a sparse list of "special" tokens (those named by the bias, output or prompt
// lists), whose processed z is computed one by one. The dense part is scanned in blocks of 64
// tokens by the kernels below (scalar definitions in sample_row.cpp, AVX-512 versions in
// sample_avx512.cpp that give the same results): pass 1 finds the largest x and each block's
// largest key; later passes skip blocks whose largest z cannot matter (exact prunes: the rounding
// of z + c and z - m is monotone in z).
#ifndef DSK_LIB_CPU_SAMPLE_ROW_H_
#define DSK_LIB_CPU_SAMPLE_ROW_H_

#include <stdint.h>

#include <limits>
#include <vector>

namespace dsk {
namespace cpu {
namespace sampling {

constexpr int64_t kBlock = 64;  // tokens per dense block

// A dense row: logits x (dtype, byte step between elements), the effective mask (bit j set: token
// j is allowed and not special; NULL: every token), the temperature and the Philox key.
struct DenseRow {
  const char* x = nullptr;
  int64_t step = 0;  // bytes
  int32_t dtype = 0;
  int64_t vocab = 0;
  const uint32_t* mask = nullptr;
  float temperature = 0.0f;
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// Pass 1 over blocks [b0, b1): bmax[b] = the largest sample_key(x) over the allowed tokens of
// block b (0 when none; every real key is above 0), and bad = some allowed x is NaN or +inf (then
// bmax is unspecified: the row is not sampled).
// The race's best (score, id): larger score, then lower id.
struct RaceBest {
  float score;
  int64_t id;
  float z;  // the token's z
};

inline bool race_better(float s, int64_t id, const RaceBest& b) {
  return s > b.score || (s == b.score && id < b.id);
}

// Which tokens a race counts: min_ord != 0: cand_ord(sample_key(z), j) >= min_ord (a top-k or
// top-p boundary); min_p > 0: sample_min_p_keeps(sample_rel_exp(z, m), min_p). thr: a bound that
// every counted token meets, fl(z - m) >= thr (kernels may use it to skip tokens early).
struct RaceFilter {
  uint64_t min_ord = 0;
  float m = 0.0f;
  float min_p = 0.0f;
  float thr = -std::numeric_limits<float>::infinity();
};

// A candidate token: ord = (sample_key(z) << 32) | (0xFFFFFFFF - id), so that a larger ord comes
// first in the order (z descending, id ascending); w its weight when computed.
struct Cand {
  uint64_t ord;
  uint64_t w;
  float z;
  int32_t id;
};

inline uint64_t cand_ord(uint32_t key, int64_t id) {
  return (static_cast<uint64_t>(key) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(id));
}

// The dense kernels (one implementation per instruction set; all give the same results).
struct DenseKernels {
  void (*pass1)(const DenseRow& r, int64_t b0, int64_t b1, uint32_t* bmax, bool& bad);
  // The race of the allowed dense tokens of blocks [b0, b1) with finite z = temper(x): updates
  // best with (sample_score(z, g), id) where it wins. Rows must not hold bad allowed tokens.
  // Only the kept tokens take part (RaceFilter).
  void (*race)(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax, const RaceFilter& f,
               RaceBest& best);
  // Appends the allowed dense tokens of blocks [b0, b1) with finite z, fl(z - m) >= thr and
  // min_key <= sample_key(z) <= max_key.
  void (*collect)(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax, float m,
                  float thr, uint32_t min_key, uint32_t max_key, std::vector<Cand>& out);
  // The mass histogram: for each allowed dense token of blocks [b0, b1) with finite z and
  // fl(z - m) >= thr (m >= every such z), adds W = sample_weight_of(sample_rel_exp(z, m), shift)
  // to hist[c * kHistBuckets + (sample_key(z) >> kHistShift)] for some copy c < kHistCopies
  // (the caller sums the copies; integer sums, so the result is exact in any order).
  void (*mass)(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax, float m, float thr,
               int32_t shift, uint64_t* hist);
  // The count histogram of the raw logits: adds 1 per allowed dense token of blocks [b0, b1) to
  // hist[c * kHistBuckets + (sample_key(x) >> kHistShift)] (some copy c; rows without bad
  // allowed tokens).
  void (*count)(const DenseRow& r, int64_t b0, int64_t b1, uint64_t* hist);
};

constexpr int kHistShift = 20;
constexpr int64_t kHistBuckets = int64_t{1} << (32 - kHistShift);
constexpr int64_t kHistCopies = 4;  // (the AVX-512 kernels spread lanes over 4)

const DenseKernels& dense_kernels_scalar();
// NULL when the CPU lacks AVX-512 or the row's layout is not one the kernels handle.
const DenseKernels* dense_kernels_avx512(const DenseRow& r);
const DenseKernels& dense_kernels_for(const DenseRow& r);
// Tests: when true, dense_kernels_for picks the scalar kernels.
extern bool g_force_scalar_kernels;

// Special token: its processed z (after bias, penalties, temperature) and whether it is allowed.
struct Special {
  int32_t id;
  float z;
  bool allowed;
};

// Per-thread scratch of the engine.
struct Scratch {
  std::vector<uint32_t> bmax;
  std::vector<Cand> cand;
  std::vector<Special> special;
  std::vector<uint32_t> mask;
  std::vector<int32_t> slot;  // token -> index into special, -1 when none (kept all -1)
  std::vector<float> value;   // pre-temperature value of the specials under construction
  std::vector<int32_t> count;
  std::vector<uint8_t> seen;
  std::vector<uint64_t> hist;  // kHistCopies * kHistBuckets
  std::vector<uint32_t> keys;
  std::vector<uint64_t> share_hist;  // the histograms of shares 1 .. of a split row
};

Scratch& thread_scratch();

// The parameters of one row.
struct RowParams {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  float repetition;
  float frequency;
  float presence;
  uint64_t seed;
  uint64_t offset;
};

// One row's slice of a token-id list: n ids (int32 or int64 per dtype), id i at data + i * step.
struct RowIds {
  int32_t dtype = 0;
  const char* data = nullptr;
  int64_t step = 0;
  int64_t n = 0;
};

// The token lists of one row (ids already validated).
struct RowLists {
  RowIds out, prompt, bias;           // output ids, prompt ids, bias ids
  const char* bias_values = nullptr;  // f32, value i beside bias id i
  int64_t bias_value_step = 0;
  const char* mask = nullptr;  // int32 words, step mask_step bytes; NULL = all allowed
  int64_t mask_step = 0;
};

// What a caller needs from a row beyond its status and id.
struct RowNeeds {
  bool logprob = false;     // processed logprob of the sampled token
  int32_t top_n = 0;        // processed top list length
  bool membership = false;  // the kept set of every token (sampling_transform)
  bool total = false;       // the kept set's total weight (probs)
  bool sample = true;       // run the race (else only filters)
  // Threads the row may use (its race and mass passes split into contiguous block ranges; the
  // merges are exact: integer sums, the (score, id) argmax), so results do not depend on it.
  int64_t threads = 1;
};

// Tokens a thread of a split row gets at least (waking a worker costs 1-15 microseconds; the race
// and the mass pass cost about a nanosecond per token).
constexpr int64_t kMinTokensPerShare = int64_t{1} << 15;
constexpr int64_t kMaxShares = 64;

// The row after the engine ran.
struct RowResult {
  uint8_t status = 0;
  int32_t id = 0;
  float m = 0.0f;  // z of the argmax token
  int32_t shift = 0;
  uint64_t total = 0;  // sum of W over the kept set (when asked)
  float log_s = 0.0f;  // sample_log_normalizer(total, shift)
  bool has_boundary = false;
  uint64_t boundary = 0;  // kept tokens have ord >= boundary
  bool min_p_on = false;
  float min_p = 0.0f;
  float logprob = 0.0f;  // of id
  // scratch.cand[0 .. n_kept): kept tokens, among them the first min(needs.top_n, kept set
  // size) of the order (the whole kept set in some cases; possibly nothing when top_n == 0: the
  // race, total and boundary do not need it).
  int64_t n_kept = 0;
};

// Runs the chain for one row. Leaves the kept set in scratch.cand as RowResult says.
void run_row(const DenseRow& dense_in, const RowParams& p, const RowLists& lists,
             const RowNeeds& needs, Scratch& s, RowResult& res, DenseRow& dense_out);

}  // namespace sampling
}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_SAMPLE_ROW_H_
