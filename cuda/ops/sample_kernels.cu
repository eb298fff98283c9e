// Token sampling kernels (dsk_sampling.h): one block per row, every step of the chain over the
// whole row, every float through common/sampling_math.h, so the ids, logprobs and probabilities
// equal the CPU reference bit for bit. Pass A may run split over several blocks per row first
// (sample_pass_a_kernel, small batches without token lists): its results are maxima, sums and ORs,
// which merge exactly in any order.
//
// The row's processed logit z_j is recomputed from the logits wherever a pass needs it (x, the
// mask bit, and for listed tokens a record found through a per-row bitmap, see build_specials).
// Passes over a row (each one read of it):
//   A: max / greedy argmax / status / finite count (and the Gumbel race when no filter is on and
//      no mass is needed: greedy and temperature-only sampling are one pass).
//   top-k: 4 radix passes on sample_key (8 bits each, counts) + 1 ordered scan for the id among
//      equal keys; top-p: 1 pass for the total mass of the top-k survivors + 4 radix passes with
//      exact uint64 mass histograms + 1 ordered scan; then F: the kept set's mass, count and race.
//   top-n logprobs: the same rank selection again over the kept set (or the raw logits).
// Selections compare (key, id) pairs and masses are integers, so the block's reduction order never
// changes a result.
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "common/sampling_math.h"
#include "cuda/error.h"
#include "cuda/ops/elem_io.cuh"
#include "cuda/ops/sample_kernels.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_sampling.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr float kInf = __builtin_huge_valf();
constexpr uint32_t kNoCutId = 0xFFFFFFFFu;

__device__ __forceinline__ float nan_f32() { return f32_from_bits(0x7FC00000u); }

template <typename T>
__device__ __forceinline__ T load_bytes(const char* p) {
  T v;
  memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
__device__ __forceinline__ void store_bytes(char* p, T v) {
  memcpy(p, &v, sizeof(T));
}

__device__ __forceinline__ int64_t load_index(const char* base, int64_t i, int64_t stride,
                                              int32_t is64) {
  return is64 != 0 ? load_bytes<int64_t>(base + i * stride * 8)
                   : static_cast<int64_t>(load_bytes<int32_t>(base + i * stride * 4));
}

__device__ __forceinline__ float vec_f32(const SampleVec& v, int64_t b, float scalar) {
  return v.data != nullptr ? load_bytes<float>(v.data + b * v.stride * 4) : scalar;
}

// (key, id) packed so that a larger value comes first in the order (key descending, id ascending).
__device__ __forceinline__ unsigned long long pack(uint32_t key, uint32_t id) {
  return (static_cast<unsigned long long>(key) << 32) | static_cast<unsigned long long>(~id);
}
__device__ __forceinline__ uint32_t packed_id(unsigned long long p) {
  return ~static_cast<uint32_t>(p & 0xFFFFFFFFull);
}

// One token of the Gumbel race: unless the exact prune rules it out (z + kGumbelUpper below the
// best score so far), draws its noise (one Philox block per 4 consecutive tokens, cached in
// ph / ph_block) and keeps the best (score, lower id) in best / top.
__device__ __forceinline__ void race_token(uint64_t seed, uint64_t offset, float z, int64_t j,
                                           int64_t& ph_block, Philox4& ph, unsigned long long& best,
                                           float& top) {
  if (sample_score(z, kGumbelUpper) < top) return;
  if ((j >> 2) != ph_block) {
    ph_block = j >> 2;
    ph = sample_philox(seed, offset, kSampleStreamGumbel, static_cast<uint32_t>(ph_block));
  }
  const float s = sample_score(z, sample_gumbel(ph.v[j & 3]));
  const unsigned long long q = pack(sample_key(s), static_cast<uint32_t>(j));
  if (q > best) {
    best = q;
    top = s;
  }
}

// True when (key, id) is at or before the cut (cut_key, cut_id) in the order; the cut (0,
// kNoCutId) admits every finite value.
__device__ __forceinline__ bool within(uint32_t key, uint32_t id, uint32_t cut_key,
                                       uint32_t cut_id) {
  return key > cut_key || (key == cut_key && id <= cut_id);
}

// ---- Block reductions (every thread calls; the result is returned to every thread) -----------

struct Shared {
  unsigned long long r64[kWarps];
  unsigned r32[kWarps];
  unsigned hist_n[256];
  unsigned long long hist_w[256];
  unsigned long long bcast[4];
  unsigned top_key[DSK_SAMPLE_MAX_TOP_LOGPROBS];
  unsigned top_id[DSK_SAMPLE_MAX_TOP_LOGPROBS];
  unsigned top_count;
  int flag;
};

__device__ unsigned long long block_max(Shared& sh, unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long w = __shfl_xor_sync(0xFFFFFFFFu, v, o);
    v = w > v ? w : v;
  }
  __syncthreads();  // r64 may still be read from an earlier call
  if ((threadIdx.x & 31u) == 0) sh.r64[threadIdx.x >> 5] = v;
  __syncthreads();
  unsigned long long r = 0;
  for (int w = 0; w < kWarps; ++w) r = sh.r64[w] > r ? sh.r64[w] : r;
  return r;
}

__device__ unsigned long long block_sum(Shared& sh, unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31u) == 0) sh.r64[threadIdx.x >> 5] = v;
  __syncthreads();
  unsigned long long r = 0;
  for (int w = 0; w < kWarps; ++w) r += sh.r64[w];
  return r;
}

// ---- The row ----------------------------------------------------------------------------------

struct Row {
  const char* x;
  int64_t xs;
  int64_t vocab;
  int32_t dtype_id;
  const char* mask;  // the row's words, or NULL
  int64_t mask_s1;
  float temperature, top_p, min_p, repetition, frequency, presence;
  int32_t top_k;
  uint64_t seed, offset;
  // Listed tokens (specials != NULL when the row has any).
  const uint32_t* bitmap;
  const uint32_t* prefix;
  const SampleSpecial* specials;
  const char* bias_ids;
  int64_t bias_ids_s;
  int32_t bias_ids64;
  const char* bias_values;
  int64_t bias_values_s;
  int64_t bias_end;
  int32_t shift;  // sample_weight_shift(V)
  float m;        // the max z (the greedy token's z)
};

template <int32_t ID>
__device__ __forceinline__ float raw_at(const Row& r, int64_t j) {
  return load_elem<ID>(r.x, j * r.xs, r.dtype_id);
}

// The processed logit z_j; -inf for a disallowed token (never NaN then).
template <int32_t ID>
__device__ float z_at(const Row& r, int64_t j) {
  float x = raw_at<ID>(r, j);
  if (r.mask != nullptr) {
    const uint32_t w = load_bytes<uint32_t>(r.mask + (j >> 5) * r.mask_s1 * 4);
    if (((w >> (j & 31)) & 1u) == 0) return -kInf;
  }
  if (r.specials != nullptr) {
    const uint32_t w = r.bitmap[j >> 5];
    const uint32_t bit = 1u << (j & 31);
    if ((w & bit) != 0) {
      const SampleSpecial& e = r.specials[r.prefix[j >> 5] + __popc(w & (bit - 1u))];
      if (e.bias_n == 1u) {
        const auto i = static_cast<int64_t>(e.bias_first);
        x = sample_add_bias(x, load_bytes<float>(r.bias_values + i * r.bias_values_s * 4));
      } else if (e.bias_n > 1u) {
        for (auto i = static_cast<int64_t>(e.bias_first); i < r.bias_end; ++i) {
          if (load_index(r.bias_ids, i, r.bias_ids_s, r.bias_ids64) == j) {
            x = sample_add_bias(x, load_bytes<float>(r.bias_values + i * r.bias_values_s * 4));
          }
        }
      }
      x = sample_penalize(x, e.seen != 0u, static_cast<int32_t>(e.count), r.repetition, r.frequency,
                          r.presence);
    }
  }
  return sample_temper(x, r.temperature);
}

// Calls f(j) for every token of [begin, end) (begin a multiple of 4), each thread taking runs of 4
// consecutive tokens (one Philox block).
template <typename F>
__device__ __forceinline__ void for_tokens_in(int64_t begin, int64_t end, F&& f) {
  for (int64_t g = begin / 4 + threadIdx.x; g * 4 < end; g += kThreads) {
    const int64_t j0 = g * 4;
    const int64_t stop = j0 + 4 < end ? j0 + 4 : end;
    for (int64_t j = j0; j < stop; ++j) f(j);
  }
}

template <typename F>
__device__ __forceinline__ void for_tokens(int64_t vocab, F&& f) {
  for_tokens_in(0, vocab, static_cast<F&&>(f));
}

// A token source for the selections: value(j, &v) is true when token j takes part (v its value).
template <int32_t ID>
struct Processed {
  const Row* r;
  uint32_t cut_key, cut_id;  // the prefix kept by the earlier filters
  bool min_p_on;
  __device__ bool value(int64_t j, float* v) const {
    const float z = z_at<ID>(*r, j);
    if (!sample_finite(z)) return false;
    if (!within(sample_key(z), static_cast<uint32_t>(j), cut_key, cut_id)) return false;
    if (min_p_on && !sample_min_p_keeps(sample_rel_exp(z, r->m), r->min_p)) return false;
    *v = z;
    return true;
  }
};

template <int32_t ID>
struct Raw {
  const Row* r;
  __device__ bool value(int64_t j, float* v) const {
    const float x = raw_at<ID>(*r, j);
    if (!sample_finite(x)) return false;
    *v = x;
    return true;
  }
};

// The id of the `rank`-th (1-based) token, in id order, among the tokens of `src` whose key is
// `key`; there are at least `rank` of them. One ordered scan that stops at the token.
template <typename Src>
__device__ uint32_t select_id(Shared& sh, const Src& src, int64_t vocab, uint32_t key,
                              unsigned long long rank) {
  const unsigned lane = threadIdx.x & 31u;
  const unsigned warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) sh.flag = 0;
  for (int64_t base = 0; base < vocab; base += kThreads) {
    const int64_t j = base + threadIdx.x;
    float v = 0.0f;
    const bool f = j < vocab && src.value(j, &v) && sample_key(v) == key;
    const unsigned bal = __ballot_sync(0xFFFFFFFFu, f);
    __syncthreads();  // r32 and flag of the previous chunk have been read
    if (lane == 0) sh.r32[warp] = static_cast<unsigned>(__popc(bal));
    __syncthreads();
    unsigned before = 0, total = 0;
    for (unsigned w = 0; w < static_cast<unsigned>(kWarps); ++w) {
      if (w < warp) before += sh.r32[w];
      total += sh.r32[w];
    }
    const unsigned incl =
        before + static_cast<unsigned>(__popc(bal & (0xFFFFFFFFu >> (31u - lane))));
    if (f && incl == rank) {
      sh.bcast[3] = static_cast<unsigned long long>(j);
      sh.flag = 1;
    }
    __syncthreads();
    if (sh.flag != 0) return static_cast<uint32_t>(sh.bcast[3]);
    rank -= total;
  }
  return 0;  // not reached when rank is in range
}

// The cut (key, id) of the token where the order reaches `need`: with by_mass, the first token at
// which the running mass (sum of W, m and shift of the row) is >= need; else the need-th token.
// `need` is in [1, the tokens' count or mass].
template <typename Src>
__device__ void select_cut(Shared& sh, const Src& src, const Row& r, bool by_mass,
                           unsigned long long need, uint32_t* cut_key, uint32_t* cut_id) {
  uint32_t prefix = 0, prefix_mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) {
      sh.hist_n[i] = 0u;
      sh.hist_w[i] = 0ull;
    }
    __syncthreads();
    for_tokens(r.vocab, [&](int64_t j) {
      float v;
      if (!src.value(j, &v)) return;
      const uint32_t k = sample_key(v);
      if ((k & prefix_mask) != prefix) return;
      const uint32_t bin = (k >> shift) & 255u;
      if (by_mass) {
        const unsigned long long w = sample_weight_of(sample_rel_exp(v, r.m), r.shift);
        if (w != 0ull) atomicAdd(&sh.hist_w[bin], w);
      } else {
        atomicAdd(&sh.hist_n[bin], 1u);
      }
    });
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long cum = 0;
      int bin = 255;
      for (; bin > 0; --bin) {
        const unsigned long long h = by_mass ? sh.hist_w[bin] : sh.hist_n[bin];
        if (cum + h >= need) break;
        cum += h;
      }
      sh.bcast[0] = need - cum;
      sh.bcast[1] = static_cast<unsigned long long>(bin);
    }
    __syncthreads();
    need = sh.bcast[0];
    prefix |= static_cast<uint32_t>(sh.bcast[1]) << shift;
    prefix_mask |= 255u << shift;
    __syncthreads();  // bcast is read before the next pass writes it
  }
  *cut_key = prefix;
  unsigned long long rank = need;
  if (by_mass) {
    // Equal keys have equal weights (+0 and -0 give the same exp); the key holds mass >= need > 0.
    const unsigned long long w =
        sample_weight_of(sample_rel_exp(sample_key_value(prefix), r.m), r.shift);
    rank = w == 0ull ? 1ull : (need + w - 1ull) / w;
  }
  *cut_id = select_id(sh, src, r.vocab, prefix, rank);
}

// The first min(n, count) tokens of src in order into sh.top_* (sorted), sh.top_count set.
template <typename Src>
__device__ void select_top(Shared& sh, const Src& src, const Row& r, int32_t n,
                           unsigned long long count) {
  uint32_t cut_key = 0, cut_id = kNoCutId;
  if (count > static_cast<unsigned long long>(n)) {
    select_cut(sh, src, r, false, static_cast<unsigned long long>(n), &cut_key, &cut_id);
  }
  __shared__ unsigned keys[DSK_SAMPLE_MAX_TOP_LOGPROBS];
  __shared__ unsigned ids[DSK_SAMPLE_MAX_TOP_LOGPROBS];
  __shared__ unsigned slots;
  if (threadIdx.x == 0) slots = 0u;
  __syncthreads();
  for_tokens(r.vocab, [&](int64_t j) {
    float v;
    if (!src.value(j, &v)) return;
    const uint32_t k = sample_key(v);
    if (!within(k, static_cast<uint32_t>(j), cut_key, cut_id)) return;
    const unsigned s = atomicAdd(&slots, 1u);
    if (s < static_cast<unsigned>(DSK_SAMPLE_MAX_TOP_LOGPROBS)) {
      keys[s] = k;
      ids[s] = static_cast<uint32_t>(j);
    }
  });
  __syncthreads();
  const unsigned got = slots < static_cast<unsigned>(n) ? slots : static_cast<unsigned>(n);
  if (threadIdx.x < got) {
    const unsigned long long me = pack(keys[threadIdx.x], ids[threadIdx.x]);
    unsigned rank = 0;
    for (unsigned i = 0; i < got; ++i) rank += pack(keys[i], ids[i]) > me ? 1u : 0u;
    sh.top_key[rank] = keys[threadIdx.x];
    sh.top_id[rank] = ids[threadIdx.x];
  }
  if (threadIdx.x == 0) sh.top_count = got;
  __syncthreads();
}

// ---- Per-row parameters and lists -------------------------------------------------------------

struct ListRange {
  int64_t begin[kSampleListCount];
  int64_t end[kSampleListCount];
};

// Loads row b's parameters into r; false (and, with `report`, one deferred report by thread 0)
// when one is out of range. Also the lists' ranges (empty for an absent list).
__device__ bool load_row(const SampleLaunch& a, int64_t b, Row* r, ListRange* lr, bool report_bad) {
  r->x = a.logits + b * a.ls0 * dtype_id_size(a.dtype_id);
  r->xs = a.ls1;
  r->vocab = a.vocab;
  r->dtype_id = a.dtype_id;
  r->mask = a.mask != nullptr ? a.mask + b * a.mask_s0 * 4 : nullptr;
  r->mask_s1 = a.mask_s1;
  r->temperature = vec_f32(a.temperature, b, a.temperature_v);
  r->top_k = a.top_k.data != nullptr ? load_bytes<int32_t>(a.top_k.data + b * a.top_k.stride * 4)
                                     : a.top_k_v;
  r->top_p = vec_f32(a.top_p, b, a.top_p_v);
  r->min_p = vec_f32(a.min_p, b, a.min_p_v);
  r->repetition = vec_f32(a.repetition, b, a.repetition_v);
  r->frequency = vec_f32(a.frequency, b, a.frequency_v);
  r->presence = vec_f32(a.presence, b, a.presence_v);
  r->seed =
      a.seed.data != nullptr ? load_bytes<uint64_t>(a.seed.data + b * a.seed.stride * 8) : a.seed_v;
  r->offset = a.offset.data != nullptr
                  ? load_bytes<uint64_t>(a.offset.data + b * a.offset.stride * 8)
                  : a.offset_v;
  r->specials = nullptr;
  r->bitmap = nullptr;
  r->prefix = nullptr;
  r->bias_ids = a.lists[kSampleListBias].ids;
  r->bias_ids_s = a.lists[kSampleListBias].ids_s;
  r->bias_ids64 = a.lists[kSampleListBias].ids64;
  r->bias_values = a.bias_values;
  r->bias_values_s = a.bias_values_s;
  r->shift = sample_weight_shift(a.vocab);
  r->m = 0.0f;

  const bool report = report_bad && threadIdx.x == 0 && a.record != nullptr;
  const float fv[] = {r->temperature, 0.0f,         r->top_p,   r->min_p,
                      r->repetition,  r->frequency, r->presence};
  for (int32_t id = kSampleParamTemperature; id <= kSampleParamPresence; ++id) {
    bool ok;
    uint32_t bits;
    if (id == kSampleParamTopK) {
      ok = sample_top_k_ok(r->top_k);
      bits = static_cast<uint32_t>(r->top_k);
    } else {
      ok = sample_param_ok(id, fv[id]);
      bits = f32_bits(fv[id]);
    }
    if (!ok) {
      if (report)
        report_deferred(a.record, kDeferredSampleParam, b, id, static_cast<long long>(bits));
      return false;
    }
  }
  r->bias_end = 0;
  for (int32_t l = 0; l < kSampleListCount; ++l) {
    const SampleList& L = a.lists[l];
    lr->begin[l] = 0;
    lr->end[l] = 0;
    if (L.offs == nullptr) continue;
    // A list whose offsets are out of order anywhere (reported by csr_check_kernel) makes every
    // row INVALID: row ranges could overlap, and with them the rows' table entries.
    if (a.list_ok != nullptr && a.list_ok[l] == 0) return false;
    const int64_t o0 = load_index(L.offs, b, L.offs_s, L.offs64);
    const int64_t o1 = load_index(L.offs, b + 1, L.offs_s, L.offs64);
    if (o0 < 0 || o0 > L.n || o1 < o0 || o1 > L.n) {
      const int64_t bad = (o0 < 0 || o0 > L.n) ? o0 : o1;
      if (report) report_deferred(a.record, kDeferredSampleCsr, b, l, bad);
      return false;
    }
    lr->begin[l] = o0;
    lr->end[l] = o1;
  }
  r->bias_end = lr->end[kSampleListBias];
  return true;
}

// Checks the row's listed ids (block-wide); false (one report) when one is outside [0, V).
__device__ bool check_ids(Shared& sh, const SampleLaunch& a, int64_t b, const ListRange& lr) {
  if (threadIdx.x == 0) sh.flag = 0;
  __syncthreads();
  for (int32_t l = 0; l < kSampleListCount; ++l) {
    const SampleList& L = a.lists[l];
    for (int64_t i = lr.begin[l] + threadIdx.x; i < lr.end[l]; i += kThreads) {
      const int64_t id = load_index(L.ids, i, L.ids_s, L.ids64);
      if (id < 0 || id >= a.vocab) {
        if (atomicExch(&sh.flag, 1) == 0 && a.record != nullptr) {
          report_deferred(a.record, kDeferredSampleTokenId, b, l, id);
        }
      }
    }
  }
  __syncthreads();
  const bool ok = sh.flag == 0;
  __syncthreads();
  return ok;
}

// Builds the row's listed-token records: a bitmap of the listed tokens, the exclusive prefix of its
// word popcounts (the record of token j is specials[prefix[j / 32] + set bits below j in its word],
// so records are in token order), counts, seen flags and bias entries.
__device__ void build_specials(Shared& sh, const SampleLaunch& a, int64_t b, const ListRange& lr,
                               Row* r) {
  const int64_t words = (a.vocab + 31) / 32;
  uint32_t* bm = a.bitmap + b * words;
  uint32_t* pf = a.prefix + b * words;
  int64_t base = 0, len = 0;
  for (int32_t l = 0; l < kSampleListCount; ++l) {
    base += lr.begin[l];
    len += lr.end[l] - lr.begin[l];
  }
  SampleSpecial* sp = a.table + base;
  for (int64_t w = threadIdx.x; w < words; w += kThreads) bm[w] = 0u;
  for (int64_t i = threadIdx.x; i < len; i += kThreads) {
    SampleSpecial e{};
    e.bias_first = ~0ull;
    sp[i] = e;
  }
  __syncthreads();
  for (int32_t l = 0; l < kSampleListCount; ++l) {
    const SampleList& L = a.lists[l];
    for (int64_t i = lr.begin[l] + threadIdx.x; i < lr.end[l]; i += kThreads) {
      const int64_t j = load_index(L.ids, i, L.ids_s, L.ids64);
      atomicOr(&bm[j >> 5], 1u << (j & 31));
    }
  }
  __syncthreads();
  // Exclusive prefix of the popcounts, kThreads words at a time.
  unsigned carry = 0;
  const unsigned lane = threadIdx.x & 31u;
  const unsigned warp = threadIdx.x >> 5;
  for (int64_t w0 = 0; w0 < words; w0 += kThreads) {
    const int64_t w = w0 + threadIdx.x;
    const unsigned c = w < words ? static_cast<unsigned>(__popc(bm[w])) : 0u;
    unsigned incl = c;
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned t = __shfl_up_sync(0xFFFFFFFFu, incl, o);
      if (lane >= static_cast<unsigned>(o)) incl += t;
    }
    __syncthreads();
    if (lane == 31u) sh.r32[warp] = incl;
    __syncthreads();
    unsigned before = 0, total = 0;
    for (unsigned k = 0; k < static_cast<unsigned>(kWarps); ++k) {
      if (k < warp) before += sh.r32[k];
      total += sh.r32[k];
    }
    if (w < words) pf[w] = carry + before + incl - c;
    carry += total;
  }
  __syncthreads();
  for (int32_t l = 0; l < kSampleListCount; ++l) {
    const SampleList& L = a.lists[l];
    for (int64_t i = lr.begin[l] + threadIdx.x; i < lr.end[l]; i += kThreads) {
      const int64_t j = load_index(L.ids, i, L.ids_s, L.ids64);
      const uint32_t w = bm[j >> 5];
      const uint32_t bit = 1u << (j & 31);
      SampleSpecial& e = sp[pf[j >> 5] + __popc(w & (bit - 1u))];
      if (l == kSampleListOutput) {
        atomicAdd(&e.count, 1u);
        atomicOr(&e.seen, 1u);
      } else if (l == kSampleListPrompt) {
        atomicOr(&e.seen, 1u);
      } else {
        atomicMin(&e.bias_first, static_cast<unsigned long long>(i));
        atomicAdd(&e.bias_n, 1u);
      }
    }
  }
  __syncthreads();
  r->bitmap = bm;
  r->prefix = pf;
  r->specials = sp;
}

// ---- Outputs ----------------------------------------------------------------------------------

__device__ __forceinline__ void put_f32(const SampleOut& o, int64_t b, float v) {
  if (o.data != nullptr) store_bytes<float>(o.data + b * o.s0 * 4, v);
}
__device__ __forceinline__ void put_i32(const SampleOut& o, int64_t b, int32_t v) {
  if (o.data != nullptr) store_bytes<int32_t>(o.data + b * o.s0 * 4, v);
}

// A row that is not OK: id 0, NaN logprobs, top ids -1 with NaN values; transforms all NaN.
__device__ void write_failed_row(const SampleLaunch& a, int64_t b, uint8_t status) {
  if (a.mode != kSampleModeSample) {
    for (int64_t j = threadIdx.x; j < a.vocab; j += kThreads) {
      store_from_f32(a.out_dtype_id, nan_f32(),
                     a.out.data + (b * a.out.s0 + j * a.out.s1) * dtype_id_size(a.out_dtype_id));
    }
  }
  if (threadIdx.x == 0) {
    put_i32(a.ids, b, 0);
    put_f32(a.logprobs, b, nan_f32());
    put_f32(a.raw_logprobs, b, nan_f32());
    if (a.status.data != nullptr) a.status.data[b * a.status.s0] = status;
  }
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < a.n_top; i += kThreads) {
    if (a.top_ids.data != nullptr) {
      store_bytes<int32_t>(a.top_ids.data + (b * a.top_ids.s0 + i * a.top_ids.s1) * 4, -1);
      store_bytes<float>(a.top_logprobs.data + (b * a.top_logprobs.s0 + i * a.top_logprobs.s1) * 4,
                         nan_f32());
    }
  }
}

// ---- The kernels ------------------------------------------------------------------------------

// Block l checks list l's offsets over the whole batch (nondecreasing, within [0, n]) into
// a.list_ok[l], reporting the first bad one (as the pair of rows it belongs to, like the CPU).
__global__ void __launch_bounds__(kThreads) csr_check_kernel(SampleLaunch a) {
  __shared__ unsigned long long first_bad;
  const auto l = static_cast<int32_t>(blockIdx.x);
  const SampleList& L = a.lists[l];
  if (threadIdx.x == 0) first_bad = ~0ull;
  __syncthreads();
  if (L.offs != nullptr) {
    for (int64_t i = threadIdx.x; i <= a.rows; i += kThreads) {
      const int64_t o = load_index(L.offs, i, L.offs_s, L.offs64);
      const bool bad =
          o < 0 || o > L.n || (i > 0 && o < load_index(L.offs, i - 1, L.offs_s, L.offs64));
      if (bad) atomicMin(&first_bad, static_cast<unsigned long long>(i));
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned long long i = first_bad;
    a.list_ok[l] = i == ~0ull ? 1 : 0;
    if (i != ~0ull && a.record != nullptr) {
      const auto at = static_cast<int64_t>(i);
      report_deferred(a.record, kDeferredSampleCsr, at > 0 ? at - 1 : 0, l,
                      load_index(L.offs, at, L.offs_s, L.offs64));
    }
  }
}

// Whether the raw distribution is wanted (raw logprobs or raw top lists).
__device__ __forceinline__ bool wants_raw(const SampleLaunch& a) {
  return a.mode == kSampleModeSample &&
         (a.raw_logprobs.data != nullptr || (a.n_top > 0 && a.top_raw != 0));
}

// Whether the Gumbel race runs in pass A: a random row with no filter (no kept set to find first).
__device__ __forceinline__ bool races_in_a(const SampleLaunch& a, const Row& r) {
  const bool topk_maybe = r.top_k > 0 && static_cast<int64_t>(r.top_k) < r.vocab;
  const bool filters = topk_maybe || r.top_p < 1.0f || r.min_p > 0.0f;
  return a.mode == kSampleModeSample && r.temperature > 0.0f && !filters;
}

struct PassAPlan {
  bool race;  // run the Gumbel race
  bool raw;   // also the raw logits' max, count and status
};

// Counts logit v of token j into a (bad flag, finite count, best (key, id)) tally; true when v is
// finite.
__device__ __forceinline__ bool tally(float v, int64_t j, unsigned& bad, unsigned long long& n,
                                      unsigned long long& best) {
  if (sample_bad_logit(v)) bad = 1u;
  if (!sample_finite(v)) return false;
  ++n;
  const unsigned long long p = pack(sample_key(v), static_cast<uint32_t>(j));
  best = p > best ? p : best;
  return true;
}

// This thread's share of pass A over tokens [begin, end) (begin a multiple of 4); the block's
// result is the max / sum / OR of every thread's.
template <int32_t ID>
__device__ SamplePassA pass_a(const Row& r, PassAPlan plan, int64_t begin, int64_t end) {
  SamplePassA pa{};
  float race_top = -kInf;  // this thread's best score (prune bound)
  Philox4 ph{};
  int64_t ph_block = -1;
  for_tokens_in(begin, end, [&](int64_t j) {
    const float z = z_at<ID>(r, j);
    if (tally(z, j, pa.bad, pa.nfinite, pa.best_z) && plan.race) {
      race_token(r.seed, r.offset, z, j, ph_block, ph, pa.best_race, race_top);
    }
    if (plan.raw) tally(raw_at<ID>(r, j), j, pa.raw_bad, pa.raw_nfinite, pa.best_x);
  });
  return pa;
}

// This thread's merge of row b's split pass A results (partials s = threadIdx.x, + kThreads, ...).
__device__ SamplePassA merge_partials(const SampleLaunch& a, int64_t b) {
  SamplePassA m{};
  for (int32_t s = static_cast<int32_t>(threadIdx.x); s < a.splits; s += kThreads) {
    const SamplePassA p = a.partials[b * a.splits + s];
    m.best_z = p.best_z > m.best_z ? p.best_z : m.best_z;
    m.best_x = p.best_x > m.best_x ? p.best_x : m.best_x;
    m.best_race = p.best_race > m.best_race ? p.best_race : m.best_race;
    m.nfinite += p.nfinite;
    m.raw_nfinite += p.raw_nfinite;
    m.bad |= p.bad;
    m.raw_bad |= p.raw_bad;
  }
  return m;
}

// Pass A of row blockIdx.y over slice blockIdx.x, into a.partials. A row with bad parameters
// writes nothing: sample_kernel finds them again, reports them and never reads its partials.
template <int32_t ID>
__global__ void __launch_bounds__(kThreads) sample_pass_a_kernel(SampleLaunch a) {
  __shared__ Shared sh;
  const int64_t b = blockIdx.y;
  Row r;
  ListRange lr;
  if (!load_row(a, b, &r, &lr, false)) return;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * a.split_len;
  const int64_t end = begin + a.split_len < r.vocab ? begin + a.split_len : r.vocab;
  const PassAPlan plan{races_in_a(a, r), wants_raw(a)};
  const SamplePassA pa = pass_a<ID>(r, plan, begin, end);
  SamplePassA out{};
  out.best_z = block_max(sh, pa.best_z);
  out.nfinite = block_sum(sh, pa.nfinite);
  out.bad = block_max(sh, pa.bad) != 0 ? 1u : 0u;
  if (plan.race) out.best_race = block_max(sh, pa.best_race);
  if (plan.raw) {
    out.best_x = block_max(sh, pa.best_x);
    out.raw_nfinite = block_sum(sh, pa.raw_nfinite);
    out.raw_bad = block_max(sh, pa.raw_bad) != 0 ? 1u : 0u;
  }
  if (threadIdx.x == 0) a.partials[b * a.splits + blockIdx.x] = out;
}

template <int32_t ID>
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleLaunch a) {
  __shared__ Shared sh;
  const int64_t b = blockIdx.x;
  Row r;
  ListRange lr;
  bool valid = load_row(a, b, &r, &lr, true);
  if (valid) valid = check_ids(sh, a, b, lr);
  if (!valid) {
    write_failed_row(a, b, DSK_SAMPLE_INVALID);
    return;
  }
  if (a.table != nullptr) {
    int64_t len = 0;
    for (int32_t l = 0; l < kSampleListCount; ++l) len += lr.end[l] - lr.begin[l];
    if (len > 0) build_specials(sh, a, b, lr, &r);
  }

  const bool sampling = a.mode == kSampleModeSample;
  const bool greedy = !(r.temperature > 0.0f);
  const bool want_raw = wants_raw(a);
  const bool want_mass = !sampling || a.logprobs.data != nullptr || (a.n_top > 0 && a.top_raw == 0);
  const bool topk_maybe = r.top_k > 0 && static_cast<int64_t>(r.top_k) < r.vocab;
  const bool filters = topk_maybe || r.top_p < 1.0f || r.min_p > 0.0f;
  const bool race_in_a = races_in_a(a, r);
  // The kept set matters for transforms, logprobs and random rows with filters (a greedy row's id
  // is the first token of every kept set).
  const bool need_kept = !sampling || want_mass || (!greedy && filters);

  // ---- Pass A.
  const PassAPlan plan{race_in_a, want_raw};
  SamplePassA pa = a.partials != nullptr ? merge_partials(a, b) : pass_a<ID>(r, plan, 0, r.vocab);
  unsigned long long best_z = block_max(sh, pa.best_z);
  const unsigned long long nfinite = block_sum(sh, pa.nfinite);
  const bool bad = block_max(sh, pa.bad) != 0;
  unsigned long long best_race = 0, best_x = 0, raw_nfinite = 0;
  bool raw_bad = false;
  if (race_in_a) best_race = block_max(sh, pa.best_race);
  if (want_raw) {
    best_x = block_max(sh, pa.best_x);
    raw_nfinite = block_sum(sh, pa.raw_nfinite);
    raw_bad = block_max(sh, pa.raw_bad) != 0;
  }
  if (bad || nfinite == 0) {
    write_failed_row(a, b, bad ? DSK_SAMPLE_NONFINITE : DSK_SAMPLE_ALL_MASKED);
    return;
  }
  const uint32_t greedy_id = packed_id(best_z);
  r.m = z_at<ID>(r, greedy_id);  // the max with its sign (the first maximal token's z)

  // ---- Filters: the kept prefix (cut) and min-p.
  uint32_t cut_key = 0, cut_id = kNoCutId;
  const bool min_p_on = r.min_p > 0.0f;
  if (filters && need_kept) {
    Processed<ID> all{&r, 0u, kNoCutId, false};
    if (topk_maybe && static_cast<unsigned long long>(r.top_k) < nfinite) {
      select_cut(sh, all, r, false, static_cast<unsigned long long>(r.top_k), &cut_key, &cut_id);
    }
    if (r.top_p < 1.0f) {
      Processed<ID> survivors{&r, cut_key, cut_id, false};
      unsigned long long total = 0;
      for_tokens(r.vocab, [&](int64_t j) {
        float z;
        if (survivors.value(j, &z)) total += sample_weight_of(sample_rel_exp(z, r.m), r.shift);
      });
      total = block_sum(sh, total);
      const unsigned long long target = sample_top_p_target(r.top_p, total);
      select_cut(sh, survivors, r, true, target, &cut_key, &cut_id);
    }
  }
  const Processed<ID> kept{&r, cut_key, cut_id, min_p_on};

  // ---- Pass F: the kept set's mass and count, the race over it, the raw mass.
  const bool race_in_f = sampling && !greedy && !race_in_a;
  const bool raw_ok = want_raw && !raw_bad && raw_nfinite > 0;
  float raw_max = 0.0f;
  if (raw_ok) raw_max = raw_at<ID>(r, packed_id(best_x));
  unsigned long long mass = 0, kept_n = 0, raw_mass = 0;
  if (want_mass || race_in_f || raw_ok) {
    Philox4 ph{};
    int64_t ph_block = -1;
    float race_top_f = -kInf;
    for_tokens(r.vocab, [&](int64_t j) {
      float z;
      if ((want_mass || race_in_f) && kept.value(j, &z)) {
        mass += sample_weight_of(sample_rel_exp(z, r.m), r.shift);
        ++kept_n;
        if (race_in_f) race_token(r.seed, r.offset, z, j, ph_block, ph, best_race, race_top_f);
      }
      if (raw_ok) {
        const float x = raw_at<ID>(r, j);
        if (sample_finite(x)) raw_mass += sample_weight_of(sample_rel_exp(x, raw_max), r.shift);
      }
    });
    mass = block_sum(sh, mass);
    kept_n = block_sum(sh, kept_n);
    if (race_in_f) best_race = block_max(sh, best_race);
    if (raw_ok) raw_mass = block_sum(sh, raw_mass);
  }
  const float log_s = sample_log_normalizer(mass, r.shift);
  const float raw_log_s = raw_ok ? sample_log_normalizer(raw_mass, r.shift) : 0.0f;

  // ---- Transforms.
  if (!sampling) {
    const float norm = sample_normalizer(mass, r.shift);
    const int32_t od = a.out_dtype_id;
    const int64_t es = dtype_id_size(od);
    for (int64_t j = threadIdx.x; j < r.vocab; j += kThreads) {
      float z;
      const bool in = kept.value(j, &z);
      float v;
      if (a.mode == kSampleModeProbs) {
        v = in ? sample_prob(sample_rel_exp(z, r.m), norm) : 0.0f;
      } else {
        v = in ? z : -kInf;
      }
      store_from_f32(od, v, a.out.data + (b * a.out.s0 + j * a.out.s1) * es);
    }
    if (threadIdx.x == 0 && a.status.data != nullptr) {
      a.status.data[b * a.status.s0] = DSK_SAMPLE_OK;
    }
    return;
  }

  // ---- Sample outputs.
  const uint32_t id = greedy ? greedy_id : packed_id(best_race);
  if (threadIdx.x == 0) {
    put_i32(a.ids, b, static_cast<int32_t>(id));
    if (a.logprobs.data != nullptr) {
      put_f32(a.logprobs, b, sample_logprob(z_at<ID>(r, id), r.m, log_s));
    }
    if (a.raw_logprobs.data != nullptr) {
      put_f32(a.raw_logprobs, b,
              raw_ok ? sample_logprob(raw_at<ID>(r, id), raw_max, raw_log_s) : nan_f32());
    }
    if (a.status.data != nullptr) a.status.data[b * a.status.s0] = DSK_SAMPLE_OK;
  }
  if (a.n_top > 0) {
    if (a.top_raw != 0) {
      const Raw<ID> raw{&r};
      select_top(sh, raw, r, a.n_top, raw_nfinite);
    } else {
      select_top(sh, kept, r, a.n_top, kept_n);
    }
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < a.n_top; i += kThreads) {
      int32_t tid = -1;
      // Padding: -inf, NaN for a raw list without a valid raw distribution (the CPU's rule).
      float lp = a.top_raw != 0 && !raw_ok ? nan_f32() : -kInf;
      if (static_cast<unsigned>(i) < sh.top_count) {
        const uint32_t t = sh.top_id[i];
        tid = static_cast<int32_t>(t);
        if (a.top_raw != 0) {
          lp = raw_ok ? sample_logprob(raw_at<ID>(r, t), raw_max, raw_log_s) : nan_f32();
        } else {
          lp = sample_logprob(z_at<ID>(r, t), r.m, log_s);
        }
      }
      store_bytes<int32_t>(a.top_ids.data + (b * a.top_ids.s0 + i * a.top_ids.s1) * 4, tid);
      store_bytes<float>(a.top_logprobs.data + (b * a.top_logprobs.s0 + i * a.top_logprobs.s1) * 4,
                         lp);
    }
  }
}

size_t align256(size_t n) { return (n + 255u) / 256u * 256u; }

bool has_lists(const SampleLaunch& a) {
  for (const SampleList& l : a.lists) {
    if (l.offs != nullptr) return true;
  }
  return false;
}

// Bytes of the listed-token tables (0 without lists).
size_t list_scratch_bytes(const SampleLaunch& a) {
  if (!has_lists(a) || a.rows == 0) return 0;
  int64_t entries = 0;
  for (const SampleList& l : a.lists) entries += l.offs != nullptr ? l.n : 0;
  const auto words = static_cast<size_t>((a.vocab + 31) / 32) * static_cast<size_t>(a.rows);
  return 2 * align256(words * sizeof(uint32_t)) +
         align256(static_cast<size_t>(entries) * sizeof(SampleSpecial)) +
         align256(kSampleListCount * sizeof(int32_t));
}

size_t partials_bytes(const SampleLaunch& a) {
  if (a.splits <= 1 || a.rows == 0) return 0;
  return align256(static_cast<size_t>(a.rows) * static_cast<size_t>(a.splits) *
                  sizeof(SamplePassA));
}

}  // namespace

void sample_plan_splits(SampleLaunch* a) noexcept {
  a->splits = 1;
  a->split_len = a->vocab;
  // Token lists need the row's listed-token table (built by the row's own block) before pass A; a
  // batch that fills the GPU gains nothing (and gridDim.y caps the rows).
  if (has_lists(*a) || a->rows <= 0 || a->rows >= kSampleSplitBlocks) return;
  const int64_t by_batch = (kSampleSplitBlocks + a->rows - 1) / a->rows;
  const int64_t by_len = a->vocab / kSampleSplitMinLen;
  const int64_t want = by_batch < by_len ? by_batch : by_len;
  if (want <= 1) return;
  const int64_t len = ((a->vocab + want - 1) / want + 3) / 4 * 4;
  a->split_len = len;
  a->splits = static_cast<int32_t>((a->vocab + len - 1) / len);
}

size_t sample_scratch_bytes(const SampleLaunch& a) noexcept {
  return list_scratch_bytes(a) + partials_bytes(a);
}

void sample_set_scratch(SampleLaunch* a, char* scratch) noexcept {
  if (list_scratch_bytes(*a) > 0) {
    const auto words = static_cast<size_t>((a->vocab + 31) / 32) * static_cast<size_t>(a->rows);
    a->bitmap = reinterpret_cast<uint32_t*>(scratch);
    a->prefix = reinterpret_cast<uint32_t*>(scratch + align256(words * sizeof(uint32_t)));
    a->table = reinterpret_cast<SampleSpecial*>(scratch + 2 * align256(words * sizeof(uint32_t)));
    int64_t entries = 0;
    for (const SampleList& l : a->lists) entries += l.offs != nullptr ? l.n : 0;
    a->list_ok =
        reinterpret_cast<int32_t*>(scratch + 2 * align256(words * sizeof(uint32_t)) +
                                   align256(static_cast<size_t>(entries) * sizeof(SampleSpecial)));
  }
  if (partials_bytes(*a) > 0) {
    a->partials = reinterpret_cast<SamplePassA*>(scratch + list_scratch_bytes(*a));
  }
}

namespace {

template <int32_t ID>
void launch_row_kernels(const SampleLaunch& a, cudaStream_t stream) {
  if (a.partials != nullptr) {
    const dim3 split_grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.rows));
    sample_pass_a_kernel<ID><<<split_grid, kThreads, 0, stream>>>(a);
  }
  sample_kernel<ID><<<static_cast<unsigned>(a.rows), kThreads, 0, stream>>>(a);
}

}  // namespace

dsk_status launch_sample(const SampleLaunch& a, cudaStream_t stream) noexcept {
  if (a.rows == 0) return DSK_OK;
  if (a.list_ok != nullptr) {
    csr_check_kernel<<<kSampleListCount, kThreads, 0, stream>>>(a);
    DSK_RETURN_IF_FAILED(check_launch("sample (token list offsets)"));
  }
  const size_t es = dtype_id_size(a.dtype_id);
  const bool aligned = reinterpret_cast<uintptr_t>(a.logits) % es == 0;
  if (!aligned) {
    launch_row_kernels<0>(a, stream);
  } else if (a.dtype_id == DSK_DTYPE_F32) {
    launch_row_kernels<DSK_DTYPE_F32>(a, stream);
  } else if (a.dtype_id == DSK_DTYPE_BF16) {
    launch_row_kernels<DSK_DTYPE_BF16>(a, stream);
  } else if (a.dtype_id == DSK_DTYPE_F16) {
    launch_row_kernels<DSK_DTYPE_F16>(a, stream);
  } else {
    launch_row_kernels<0>(a, stream);
  }
  return check_launch("sample");
}

}  // namespace cuda
}  // namespace dsk
