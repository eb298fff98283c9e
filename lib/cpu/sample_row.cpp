// The per-row engine of the CPU sampler (sample_row.h): scalar dense kernels (the definitions the
// AVX-512 versions match) and the chain of one row.
#include "cpu/sample_row.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>

#include "common/convert.h"
#include "common/sampling_math.h"
#include "cpu/index_io.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_sampling.h"

namespace dsk {
namespace cpu {
namespace sampling {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
const uint32_t kKeyNegInf = sample_key(-std::numeric_limits<float>::infinity());

inline bool allowed_bit(const uint32_t* mask, int64_t j) {
  return mask == nullptr || ((mask[j >> 5] >> (j & 31)) & 1u) != 0;
}

// Id i of a row's token list.
inline int64_t id_at(const RowIds& r, int64_t i) {
  return load_index(r.dtype, r.data + i * r.step);
}

inline bool is_nan(float x) { return (f32_bits(x) & 0x7FFFFFFFu) > 0x7F800000u; }

struct LoadGeneric {
  const char* x;
  int64_t step;
  int32_t dtype;
  float operator()(int64_t j) const { return load_as_f32(dtype, x + j * step); }
};
struct LoadF32 {
  const char* x;
  float operator()(int64_t j) const {
    float v;
    std::memcpy(&v, x + 4 * j, 4);
    return v;
  }
};
struct LoadBF16 {
  const char* x;
  float operator()(int64_t j) const {
    uint16_t b;
    std::memcpy(&b, x + 2 * j, 2);
    return f32_from_bits(static_cast<uint32_t>(b) << 16);
  }
};

template <typename L>
void pass1_t(const DenseRow& r, L ld, int64_t b0, int64_t b1, uint32_t* bmax, bool& bad) {
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lo = b * kBlock;
    const int64_t hi = std::min(r.vocab, lo + kBlock);
    uint32_t bk = 0;
    for (int64_t j = lo; j < hi; ++j) {
      if (!allowed_bit(r.mask, j)) continue;
      const float x = ld(j);
      if (sample_bad_logit(x)) {
        bad = true;
        continue;
      }
      bk = std::max(bk, sample_key(x));
    }
    bmax[b] = bk;
  }
}

template <typename L>
void race_t(const DenseRow& r, L ld, int64_t b0, int64_t b1, const uint32_t* bmax,
            const RaceFilter& f, RaceBest& best) {
  const float t = r.temperature;
  const uint64_t min_ord = f.min_ord;
  const auto min_key = static_cast<uint32_t>(min_ord >> 32);
  for (int64_t b = b0; b < b1; ++b) {
    if (bmax[b] == 0) continue;
    const float zb = sample_temper(sample_key_value(bmax[b]), t);
    if (sample_score(zb, kGumbelUpper) < best.score) continue;
    if (sample_key(zb) < min_key) continue;
    const int64_t lo = b * kBlock;
    const int64_t hi = std::min(r.vocab, lo + kBlock);
    Philox4 ph{};
    int64_t have = -1;
    for (int64_t j = lo; j < hi; ++j) {
      if (!allowed_bit(r.mask, j)) continue;
      const float z = sample_temper(ld(j), t);
      if (z == kNegInf) continue;
      if (sample_score(z, kGumbelUpper) < best.score) continue;
      if (min_ord != 0 && cand_ord(sample_key(z), j) < min_ord) continue;
      if (f.min_p > 0.0f && !sample_min_p_keeps(sample_rel_exp(z, f.m), f.min_p)) continue;
      if ((j >> 2) != have) {
        have = j >> 2;
        ph = sample_philox(r.seed, r.offset, kSampleStreamGumbel, static_cast<uint32_t>(have));
      }
      const float s = sample_score(z, sample_gumbel(ph.v[j & 3]));
      if (race_better(s, j, best)) best = RaceBest{s, j, z};
    }
  }
}

template <typename L>
void collect_t(const DenseRow& r, L ld, int64_t b0, int64_t b1, const uint32_t* bmax, float m,
               float thr, uint32_t min_key, uint32_t max_key, std::vector<Cand>& out) {
  const float t = r.temperature;
  for (int64_t b = b0; b < b1; ++b) {
    if (bmax[b] == 0) continue;
    const float zb = sample_temper(sample_key_value(bmax[b]), t);
    if (zb == kNegInf || (StrictF32{zb} - StrictF32{m}).v < thr || sample_key(zb) < min_key)
      continue;
    const int64_t lo = b * kBlock;
    const int64_t hi = std::min(r.vocab, lo + kBlock);
    for (int64_t j = lo; j < hi; ++j) {
      if (!allowed_bit(r.mask, j)) continue;
      const float z = sample_temper(ld(j), t);
      if (z == kNegInf || (StrictF32{z} - StrictF32{m}).v < thr) continue;
      const uint32_t k = sample_key(z);
      if (k < min_key || k > max_key) continue;
      out.push_back(Cand{cand_ord(sample_key(z), j), 0, z, static_cast<int32_t>(j)});
    }
  }
}

template <typename L>
void mass_t(const DenseRow& r, L ld, int64_t b0, int64_t b1, const uint32_t* bmax, float m,
            float thr, int32_t shift, uint64_t* hist) {
  const float t = r.temperature;
  for (int64_t b = b0; b < b1; ++b) {
    if (bmax[b] == 0) continue;
    const float zb = sample_temper(sample_key_value(bmax[b]), t);
    if (zb == kNegInf || (StrictF32{zb} - StrictF32{m}).v < thr) continue;
    const int64_t lo = b * kBlock;
    const int64_t hi = std::min(r.vocab, lo + kBlock);
    for (int64_t j = lo; j < hi; ++j) {
      if (!allowed_bit(r.mask, j)) continue;
      const float z = sample_temper(ld(j), t);
      if (z == kNegInf || (StrictF32{z} - StrictF32{m}).v < thr) continue;
      hist[sample_key(z) >> kHistShift] += sample_weight_of(sample_rel_exp(z, m), shift);
    }
  }
}

template <typename L>
void count_t(const DenseRow& r, L ld, int64_t b0, int64_t b1, uint64_t* hist) {
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lo = b * kBlock;
    const int64_t hi = std::min(r.vocab, lo + kBlock);
    for (int64_t j = lo; j < hi; ++j) {
      if (allowed_bit(r.mask, j)) ++hist[sample_key(ld(j)) >> kHistShift];
    }
  }
}

template <typename L>
struct ScalarKernels {
  static L loader(const DenseRow& r);
  static void pass1(const DenseRow& r, int64_t b0, int64_t b1, uint32_t* bmax, bool& bad) {
    pass1_t(r, loader(r), b0, b1, bmax, bad);
  }
  static void race(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax,
                   const RaceFilter& f, RaceBest& best) {
    race_t(r, loader(r), b0, b1, bmax, f, best);
  }
  static void collect(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax, float m,
                      float thr, uint32_t min_key, uint32_t max_key, std::vector<Cand>& out) {
    collect_t(r, loader(r), b0, b1, bmax, m, thr, min_key, max_key, out);
  }
  static void mass(const DenseRow& r, int64_t b0, int64_t b1, const uint32_t* bmax, float m,
                   float thr, int32_t shift, uint64_t* hist) {
    mass_t(r, loader(r), b0, b1, bmax, m, thr, shift, hist);
  }
  static void count(const DenseRow& r, int64_t b0, int64_t b1, uint64_t* hist) {
    count_t(r, loader(r), b0, b1, hist);
  }
  static constexpr DenseKernels table{&pass1, &race, &collect, &mass, &count};
};

template <>
LoadGeneric ScalarKernels<LoadGeneric>::loader(const DenseRow& r) {
  return LoadGeneric{r.x, r.step, r.dtype};
}
template <>
LoadF32 ScalarKernels<LoadF32>::loader(const DenseRow& r) {
  return LoadF32{r.x};
}
template <>
LoadBF16 ScalarKernels<LoadBF16>::loader(const DenseRow& r) {
  return LoadBF16{r.x};
}

const DenseKernels& scalar_for(const DenseRow& r) {
  if (r.dtype == DSK_DTYPE_F32 && r.step == 4) return ScalarKernels<LoadF32>::table;
  if (r.dtype == DSK_DTYPE_BF16 && r.step == 2) return ScalarKernels<LoadBF16>::table;
  return ScalarKernels<LoadGeneric>::table;
}

// The first dense token with key(z) == zkey (exists: pass 1 saw it).
int64_t first_equal(const DenseRow& r, const uint32_t* bmax, int64_t nb, uint32_t zkey) {
  const LoadGeneric ld{r.x, r.step, r.dtype};
  for (int64_t b = 0; b < nb; ++b) {
    if (bmax[b] == 0) continue;
    if (sample_key(sample_temper(sample_key_value(bmax[b]), r.temperature)) != zkey) continue;
    const int64_t hi = std::min(r.vocab, (b + 1) * kBlock);
    for (int64_t j = b * kBlock; j < hi; ++j) {
      if (!allowed_bit(r.mask, j)) continue;
      const float x = ld(j);
      if (is_nan(x)) continue;
      if (sample_key(sample_temper(x, r.temperature)) == zkey) return j;
    }
  }
  return -1;
}

// The order as a function object (inlined by the std algorithms, unlike a function pointer).
struct CandBefore {
  bool operator()(const Cand& a, const Cand& b) const { return a.ord > b.ord; }
};
constexpr CandBefore cand_before{};

// The shortest prefix (in order) of a[0 .. n) whose weight reaches target (1 <= target <= the
// total): returns its length L and leaves a[0 .. L) as that prefix with a[L - 1] its last token.
int64_t weighted_prefix(Cand* a, int64_t n, uint64_t target) {
  int64_t lo = 0;
  int64_t hi = n;
  uint64_t need = target;
  while (hi - lo > 16) {
    const int64_t mid = lo + (hi - lo) / 2;
    std::nth_element(a + lo, a + mid, a + hi, cand_before);
    uint64_t mass = 0;
    for (int64_t i = lo; i <= mid; ++i) mass += a[i].w;
    if (mass >= need) {
      hi = mid + 1;
    } else {
      need -= mass;
      lo = mid + 1;
    }
  }
  std::sort(a + lo, a + hi, cand_before);
  uint64_t acc = 0;
  for (int64_t i = lo; i < hi; ++i) {
    acc += a[i].w;
    if (acc >= need) return i + 1;
  }
  return hi;
}

// Calls fn(t, b0, b1) for `shares` contiguous ranges of the blocks [0, nb), share 0 on the
// calling thread (run_shares).
template <typename F>
void for_shares(int64_t shares, int64_t nb, const F& fn) {
  if (shares <= 1) {
    fn(int64_t{0}, int64_t{0}, nb);
    return;
  }
  run_shares(shares, [&](int64_t t) { fn(t, nb * t / shares, nb * (t + 1) / shares); });
}

}  // namespace

const DenseKernels& dense_kernels_scalar() { return ScalarKernels<LoadGeneric>::table; }

bool g_force_scalar_kernels = false;

const DenseKernels& dense_kernels_for(const DenseRow& r) {
  if (!g_force_scalar_kernels) {
    if (const DenseKernels* k = dense_kernels_avx512(r)) return *k;
  }
  return scalar_for(r);
}

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

void run_row(const DenseRow& dense_in, const RowParams& p, const RowLists& lists,
             const RowNeeds& needs, Scratch& s, RowResult& res, DenseRow& dense) {
  const int64_t vocab = dense_in.vocab;
  dense = dense_in;
  dense.temperature = p.temperature;
  dense.seed = p.seed;
  dense.offset = p.offset;
  dense.mask = nullptr;
  const float t = p.temperature;
  const LoadGeneric ld{dense.x, dense.step, dense.dtype};
  auto mask_allows = [&](int64_t j) {
    if (lists.mask == nullptr) return true;
    int32_t w;
    std::memcpy(&w, lists.mask + (j >> 5) * lists.mask_step, 4);
    return ((static_cast<uint32_t>(w) >> (j & 31)) & 1u) != 0;
  };

  // Special tokens: mask, bias in list order, penalties, temperature.
  s.special.clear();
  const bool any_list = lists.bias.n > 0 || lists.out.n > 0 || lists.prompt.n > 0;
  if (any_list) {
    if (static_cast<int64_t>(s.slot.size()) < vocab) s.slot.resize(static_cast<size_t>(vocab), -1);
    s.value.clear();
    s.count.clear();
    s.seen.clear();
    auto touch = [&](int64_t id) -> size_t {
      int32_t& sl = s.slot[static_cast<size_t>(id)];
      if (sl < 0) {
        sl = static_cast<int32_t>(s.special.size());
        const bool al = mask_allows(id);
        s.special.push_back(Special{static_cast<int32_t>(id), 0.0f, al});
        s.value.push_back(al ? ld(id) : kNegInf);
        s.count.push_back(0);
        s.seen.push_back(0);
      }
      return static_cast<size_t>(sl);
    };
    for (int64_t i = 0; i < lists.bias.n; ++i) {
      const size_t k = touch(id_at(lists.bias, i));
      float b;
      std::memcpy(&b, lists.bias_values + i * lists.bias_value_step, 4);
      s.value[k] = sample_add_bias(s.value[k], b);
    }
    for (int64_t i = 0; i < lists.out.n; ++i) {
      const size_t k = touch(id_at(lists.out, i));
      if (s.count[k] < std::numeric_limits<int32_t>::max()) ++s.count[k];
      s.seen[k] = 1;
    }
    for (int64_t i = 0; i < lists.prompt.n; ++i) {
      const size_t k = touch(id_at(lists.prompt, i));
      s.seen[k] = 1;
    }
    for (size_t k = 0; k < s.special.size(); ++k) {
      const float x = sample_penalize(s.value[k], s.seen[k] != 0, s.count[k], p.repetition,
                                      p.frequency, p.presence);
      s.special[k].z = sample_temper(x, t);
      s.slot[static_cast<size_t>(s.special[k].id)] = -1;
    }
  }
  const int64_t nw = (vocab + 31) / 32;
  if (lists.mask != nullptr || !s.special.empty()) {
    s.mask.resize(static_cast<size_t>(nw));
    for (int64_t w = 0; w < nw; ++w) {
      int32_t v = -1;
      if (lists.mask != nullptr) std::memcpy(&v, lists.mask + w * lists.mask_step, 4);
      s.mask[static_cast<size_t>(w)] = static_cast<uint32_t>(v);
    }
    for (const Special& sp : s.special)
      s.mask[static_cast<size_t>(sp.id >> 5)] &= ~(1u << (sp.id & 31));
    dense.mask = s.mask.data();
  }

  const DenseKernels& kern = dense_kernels_for(dense);
  const int64_t nb = (vocab + kBlock - 1) / kBlock;
  if (static_cast<int64_t>(s.bmax.size()) < nb) s.bmax.resize(static_cast<size_t>(nb));
  uint32_t* bmax = s.bmax.data();
  // Threads for every pass over the row (pass 1, the race, the mass histogram): each share takes
  // a contiguous range of blocks and the merges are exact.
  const int64_t shares = std::max<int64_t>(
      1, std::min<int64_t>({needs.threads, vocab / kMinTokensPerShare, nb, kMaxShares}));
  bool bad = false;
  {
    bool bads[kMaxShares] = {};
    for_shares(shares, nb, [&](int64_t i, int64_t b0, int64_t b1) {
      kern.pass1(dense, b0, b1, bmax, bads[i]);
    });
    for (int64_t i = 0; i < shares; ++i) bad = bad || bads[i];
  }

  res = RowResult{};
  res.shift = sample_weight_shift(vocab);
  uint32_t bk = 0;
  int64_t bid = -1;
  float bz = kNegInf;
  uint32_t gk = 0;
  if (!bad) {
    for (int64_t b = 0; b < nb; ++b) gk = std::max(gk, bmax[b]);
  }
  if (gk != 0) {
    // The dense argmax: the first token whose z has the key of temper(max x) (division by T > 0
    // is monotone, so that is the largest z).
    const float mz = sample_temper(sample_key_value(gk), t);
    if (sample_bad_logit(mz)) {
      bad = true;
    } else {
      bk = sample_key(mz);
      bid = first_equal(dense, bmax, nb, bk);
      bz = sample_temper(ld(bid), t);
    }
  }
  for (const Special& sp : s.special) {
    if (!sp.allowed) continue;
    if (sample_bad_logit(sp.z)) {
      bad = true;
      continue;
    }
    const uint32_t k = sample_key(sp.z);
    if (k > bk || (k == bk && sp.id < bid)) {
      bk = k;
      bid = sp.id;
      bz = sp.z;
    }
  }
  if (bad) {
    res.status = DSK_SAMPLE_NONFINITE;
    return;
  }
  if (bid < 0 || bk <= kKeyNegInf) {
    res.status = DSK_SAMPLE_ALL_MASKED;
    return;
  }
  res.status = DSK_SAMPLE_OK;
  const float m = bz;
  const int64_t am = bid;
  res.m = m;
  res.id = static_cast<int32_t>(am);

  const bool greedy = !(t > 0.0f);
  const bool k_on = p.top_k > 0 && p.top_k < vocab;
  const bool p_on = p.top_p < 1.0f;
  const bool mp_on = p.min_p > 0.0f;
  const bool filtered = k_on || p_on || mp_on;
  res.min_p_on = mp_on;
  res.min_p = p.min_p;
  const bool race = needs.sample && !greedy;
  const RaceBest start{
      sample_score(m, sample_gumbel_at(p.seed, p.offset, static_cast<uint32_t>(am))), am, m};

  // The race over the kept tokens (dense and special). Tokens outside the candidate set C
  // (fl(z - m) < thr_w, below) that a filter would drop cannot win anyway: their z + g is at
  // most fl(z + kGumbelUpper) < m + kGumbelLower <= the argmax token's score.
  // (That needs thr_w <= kGumbelLower - kGumbelUpper: shift >= 27, any vocabulary below 2^36.)
  auto run_race = [&](const RaceFilter& f) {
    RaceBest best = start;
    {
      const int64_t sh = shares;
      RaceBest bests[kMaxShares];
      for_shares(sh, nb, [&](int64_t i, int64_t b0, int64_t b1) {
        bests[i] = start;
        kern.race(dense, b0, b1, bmax, f, bests[i]);
      });
      for (int64_t i = 0; i < sh; ++i)
        if (race_better(bests[i].score, bests[i].id, best)) best = bests[i];
    }
    for (const Special& sp : s.special) {
      if (!sp.allowed || sp.z == kNegInf) continue;
      if (sample_score(sp.z, kGumbelUpper) < best.score) continue;
      if (f.min_ord != 0 && cand_ord(sample_key(sp.z), sp.id) < f.min_ord) continue;
      if (f.min_p > 0.0f && !sample_min_p_keeps(sample_rel_exp(sp.z, m), f.min_p)) continue;
      const float sc =
          sample_score(sp.z, sample_gumbel_at(p.seed, p.offset, static_cast<uint32_t>(sp.id)));
      if (race_better(sc, sp.id, best)) best = RaceBest{sc, sp.id, sp.z};
    }
    return best;
  };
  RaceFilter filter;
  filter.m = m;
  filter.min_p = mp_on ? p.min_p : 0.0f;
  // Tokens below thr_m (as below) fail min-p.
  if (mp_on) filter.thr = std::max((StrictF32{det_log(p.min_p)} - StrictF32{1.0f}).v, -104.0f);

  // Min-p alone needs no selection before the race (its filter is per token).
  const bool need_k = (race && (k_on || p_on)) || needs.logprob || needs.top_n > 0 || needs.total ||
                      (needs.membership && filtered);
  if (!need_k) {
    if (race) res.id = static_cast<int32_t>(run_race(filter).id);
    return;
  }

  // The candidate set C: finite z with fl(z - m) >= thr, a prefix of the order holding every
  // token of nonzero weight (thr_w) and, with min-p, every token min-p can keep (thr_m).
  const StrictF32 ln2{0.6931472f};
  const float thr_w = -(StrictF32{static_cast<float>(res.shift)} * ln2 + StrictF32{1.0f}).v;
  float thr_m = kNegInf;
  if (mp_on) thr_m = std::max((StrictF32{det_log(p.min_p)} - StrictF32{1.0f}).v, -104.0f);
  // Top-p counts the mass of every top-k survivor, min-p's removals included: min-p's bound
  // only narrows C without top-p.
  const bool restrictive = mp_on && !p_on && thr_m >= thr_w;
  const float thr = restrictive ? thr_m : thr_w;
  auto weight = [&](float z) { return sample_weight_of(sample_rel_exp(z, m), res.shift); };
  // A key floor for the first k tokens of the order (k <= nb) from the block maxima: when k
  // blocks hold a token with x >= x_k (the k-th largest block maximum), k tokens have
  // z >= temper(x_k) (monotone), so the k-th key is at least key(temper(x_k)).
  auto bmax_floor = [&](int64_t k) -> uint32_t {
    s.keys.assign(bmax, bmax + nb);
    std::nth_element(s.keys.begin(), s.keys.begin() + (k - 1), s.keys.end(),
                     std::greater<uint32_t>());
    const uint32_t kb = s.keys[static_cast<size_t>(k - 1)];
    return kb == 0 ? 0 : sample_key(sample_temper(sample_key_value(kb), t));
  };
  std::vector<Cand>& cand = s.cand;
  bool full = false;
  int64_t n_kept = 0;
  if (p_on && !k_on) {
    // Top-p without top-k: the exact total from a mass histogram over the top bits of the keys,
    // the bucket where the prefix mass from the top reaches the target, and the shortest prefix
    // inside that bucket (collected alone). Buckets are key ranges, so the order (key
    // descending, id ascending) visits them from the top bucket down.
    s.hist.assign(static_cast<size_t>(kHistCopies * kHistBuckets), 0);
    uint64_t* hist = s.hist.data();
    {
      const int64_t sh = shares;
      constexpr int64_t kLen = kHistCopies * kHistBuckets;
      if (sh > 1) s.share_hist.assign(static_cast<size_t>((sh - 1) * kLen), 0);
      for_shares(sh, nb, [&](int64_t i, int64_t b0, int64_t b1) {
        kern.mass(dense, b0, b1, bmax, m, thr_w, res.shift,
                  i == 0 ? hist : s.share_hist.data() + (i - 1) * kLen);
      });
      for (int64_t i = 0; i < (sh - 1) * kLen; ++i)
        hist[i % kLen] += s.share_hist[static_cast<size_t>(i)];
    }
    auto in_c = [&](const Special& sp, float th) {
      return sp.allowed && sp.z != kNegInf && (StrictF32{sp.z} - StrictF32{m}).v >= th;
    };
    for (const Special& sp : s.special)
      if (in_c(sp, thr_w)) hist[sample_key(sp.z) >> kHistShift] += weight(sp.z);
    for (int64_t c = 1; c < kHistCopies; ++c)
      for (int64_t i = 0; i < kHistBuckets; ++i) hist[i] += hist[c * kHistBuckets + i];
    uint64_t total = 0;
    for (int64_t i = 0; i < kHistBuckets; ++i) total += hist[i];
    const uint64_t target = sample_top_p_target(p.top_p, total);  // in [1, total]
    uint64_t above = 0;
    int64_t bkt = kHistBuckets - 1;
    while (bkt > 0 && above + hist[bkt] < target) above += hist[bkt--];
    const uint32_t key_lo = static_cast<uint32_t>(bkt) << kHistShift;
    const uint32_t key_hi = key_lo | ((1u << kHistShift) - 1u);
    cand.clear();
    for (const Special& sp : s.special) {
      const uint32_t k = sample_key(sp.z);
      if (in_c(sp, thr_w) && k >= key_lo && k <= key_hi)
        cand.push_back(Cand{cand_ord(k, sp.id), 0, sp.z, sp.id});
    }
    kern.collect(dense, 0, nb, bmax, m, thr_w, key_lo, key_hi, cand);
    for (Cand& c : cand) c.w = weight(c.z);
    const int64_t nin =
        weighted_prefix(cand.data(), static_cast<int64_t>(cand.size()), target - above);
    uint64_t kept = above;
    for (int64_t i = 0; i < nin; ++i) kept += cand[static_cast<size_t>(i)].w;
    const uint64_t boundary = cand[static_cast<size_t>(nin - 1)].ord;
    res.has_boundary = true;
    res.boundary = boundary;
    if (needs.top_n > 0 || (mp_on && (needs.logprob || needs.total))) {
      // The kept set itself: the prefix, less what min-p removes (its mass is the total).
      // Without min-p only the top-n list needs it: its first top_n tokens do (floor).
      const float th = mp_on ? std::max(thr_w, thr_m) : thr_w;
      auto bkey = static_cast<uint32_t>(boundary >> 32);
      if (!mp_on && needs.top_n <= nb) bkey = std::max(bkey, bmax_floor(needs.top_n));
      cand.clear();
      for (const Special& sp : s.special) {
        if (in_c(sp, th) && cand_ord(sample_key(sp.z), sp.id) >= boundary)
          cand.push_back(Cand{cand_ord(sample_key(sp.z), sp.id), 0, sp.z, sp.id});
      }
      kern.collect(dense, 0, nb, bmax, m, th, bkey, 0xFFFFFFFFu, cand);
      uint64_t mp_total = 0;
      for (const Cand& c : cand) {
        if (c.ord < boundary) continue;
        if (mp_on) {
          if (!sample_min_p_keeps(sample_rel_exp(c.z, m), p.min_p)) continue;
          mp_total += weight(c.z);
        }
        cand[static_cast<size_t>(n_kept++)] = c;
      }
      if (mp_on) kept = mp_total;
    } else {
      cand.clear();
    }
    res.total = kept;
    res.log_s = sample_log_normalizer(kept, res.shift);
  } else {
    for (;;) {
      const float th = full ? kNegInf : thr;
      cand.clear();
      for (const Special& sp : s.special) {
        if (!sp.allowed || sp.z == kNegInf || (StrictF32{sp.z} - StrictF32{m}).v < th) continue;
        cand.push_back(Cand{cand_ord(sample_key(sp.z), sp.id), 0, sp.z, sp.id});
      }
      if (k_on) {
        // Top-k: collect in chunks, and whenever the set grows past 2k + 4096 keep its first k and
        // raise the key floor to the k-th key (a lower bound of the row's k-th: exact).
        const int64_t k = p.top_k;
        const auto cap = static_cast<size_t>(2 * k + 4096);
        uint32_t floor_key = 0;
        if (k <= nb) {
          floor_key = bmax_floor(k);
        } else {
          // Large k: likewise from a count histogram of the top bits of the dense tokens' x keys:
          // k dense tokens have x >= the low end x_k of the bucket where the count from the top
          // reaches k (when none does, x_k = the lowest key: no floor).
          s.hist.assign(static_cast<size_t>(kHistCopies * kHistBuckets), 0);
          uint64_t* hist = s.hist.data();
          kern.count(dense, 0, nb, hist);
          for (int64_t c = 1; c < kHistCopies; ++c)
            for (int64_t i = 0; i < kHistBuckets; ++i) hist[i] += hist[c * kHistBuckets + i];
          uint64_t above = 0;
          int64_t bkt = kHistBuckets - 1;
          while (bkt > 0 && above + hist[bkt] < static_cast<uint64_t>(k)) above += hist[bkt--];
          const uint32_t kx = static_cast<uint32_t>(bkt) << kHistShift;
          if (bkt > 0 && kx > kKeyNegInf)
            floor_key = sample_key(sample_temper(sample_key_value(kx), t));
        }
        constexpr int64_t kChunk = 64;  // blocks
        for (int64_t b = 0; b < nb; b += kChunk) {
          kern.collect(dense, b, std::min(nb, b + kChunk), bmax, m, th, floor_key, 0xFFFFFFFFu,
                       cand);
          if (cand.size() > cap) {
            std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), cand_before);
            cand.resize(static_cast<size_t>(k));
            floor_key = static_cast<uint32_t>(cand[static_cast<size_t>(k - 1)].ord >> 32);
          }
        }
      } else {
        kern.collect(dense, 0, nb, bmax, m, th, 0, 0xFFFFFFFFu, cand);
      }
      const auto n = static_cast<int64_t>(cand.size());
      bool has_b = false;
      uint64_t boundary = 0;
      bool beyond = false;
      int64_t nt = n;
      if (k_on) {
        const int64_t k = p.top_k;
        if (k < n) {
          std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), cand_before);
          nt = k;
          has_b = true;
          boundary = cand[static_cast<size_t>(k - 1)].ord;
        } else if (k == n) {
          has_b = true;
          boundary = ~uint64_t{0};
          for (const Cand& c : cand) boundary = std::min(boundary, c.ord);
        } else if (!full && !restrictive) {
          beyond = true;
        }
      }
      bool have_w = false;
      if (p_on) {
        uint64_t total = 0;
        for (int64_t i = 0; i < nt; ++i) {
          Cand& c = cand[static_cast<size_t>(i)];
          c.w = weight(c.z);
          total += c.w;
        }
        have_w = true;
        const uint64_t target = sample_top_p_target(p.top_p, total);
        nt = weighted_prefix(cand.data(), nt, target);
        has_b = true;
        boundary = cand[static_cast<size_t>(nt - 1)].ord;
        beyond = false;
      }
      n_kept = 0;
      for (int64_t i = 0; i < nt; ++i) {
        const Cand& c = cand[static_cast<size_t>(i)];
        if (mp_on && !sample_min_p_keeps(sample_rel_exp(c.z, m), p.min_p)) continue;
        cand[static_cast<size_t>(n_kept++)] = c;
      }
      const bool complete = p_on || restrictive || full || has_b;
      if (!complete && ((needs.membership && beyond) || needs.top_n > n_kept)) {
        full = true;
        continue;
      }
      res.has_boundary = has_b;
      res.boundary = boundary;
      uint64_t total = 0;
      for (int64_t i = 0; i < n_kept; ++i) {
        Cand& c = cand[static_cast<size_t>(i)];
        if (!have_w) c.w = weight(c.z);
        total += c.w;
      }
      res.total = total;
      res.log_s = sample_log_normalizer(total, res.shift);
      break;
    }
  }
  res.n_kept = n_kept;

  float zid = m;
  if (race) {
    if (res.has_boundary) filter.min_ord = res.boundary;
    const RaceBest best = run_race(filter);
    res.id = static_cast<int32_t>(best.id);
    zid = best.z;
  }
  res.logprob = sample_logprob(zid, m, res.log_s);
}

}  // namespace sampling
}  // namespace cpu
}  // namespace dsk
