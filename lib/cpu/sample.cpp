// CPU reference of the sampling entries (dsk_sampling.h): sample and sampling_transform.
//
// Every per-row value and token list is checked before anything is written; then rows run in
// parallel, each through the engine of sample_row.h (results do not depend on the thread count:
// a row is computed by one thread, with exact comparisons only).
#include <stdint.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "common/convert.h"
#include "common/sampling_math.h"
#include "core/backend_iface.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/index_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "cpu/sample_row.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_sampling.h"

namespace dsk {
namespace cpu {
namespace {

using sampling::Cand;
using sampling::DenseRow;
using sampling::RowIds;
using sampling::RowLists;
using sampling::RowNeeds;
using sampling::RowParams;
using sampling::RowResult;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A [B] (or [B + 1]) 1-D tensor, or NULL.
struct Vec {
  const char* data = nullptr;
  int64_t step = 0;  // bytes
  int32_t dtype = 0;
  int64_t n = 0;
  explicit operator bool() const { return data != nullptr; }
  const char* at(int64_t i) const { return data + i * step; }
  float f32(int64_t i) const {
    float v;
    std::memcpy(&v, at(i), 4);
    return v;
  }
  int64_t index(int64_t i) const { return load_index(dtype, at(i)); }
  uint64_t u64(int64_t i) const {
    uint64_t v;
    std::memcpy(&v, at(i), 8);
    return v;
  }
  int32_t i32(int64_t i) const {
    int32_t v;
    std::memcpy(&v, at(i), 4);
    return v;
  }
};

Vec vec_of(const DLTensor* t, const char* name) {
  Vec v;
  if (t == nullptr) return v;
  const Layout l = check_tensor(t, name, Access::kRead);
  v.data = l.data;
  v.step = l.ndim >= 1 ? l.strides[0] * static_cast<int64_t>(l.elem_size) : 0;
  v.dtype = l.dtype_id;
  v.n = l.ndim >= 1 ? l.shape[0] : 1;
  if (v.data == nullptr) v.data = reinterpret_cast<const char*>(&v);  // empty: never read
  return v;
}

// A [B, n] 2-D tensor (outputs and the mask).
struct Mat {
  char* data = nullptr;
  int64_t s0 = 0, s1 = 0;  // bytes
  int32_t dtype = 0;
  int64_t cols = 0;
  explicit operator bool() const { return data != nullptr; }
  char* at(int64_t r, int64_t c) const { return data + r * s0 + c * s1; }
};

Mat mat_of(const DLTensor* t, const char* name, Access access) {
  Mat m;
  if (t == nullptr) return m;
  const Layout l = check_tensor(t, name, access);
  const auto es = static_cast<int64_t>(l.elem_size);
  m.data = l.data;
  m.dtype = l.dtype_id;
  if (l.ndim == 2) {
    m.s0 = l.strides[0] * es;
    m.s1 = l.strides[1] * es;
    m.cols = l.shape[1];
  } else {
    m.s0 = l.ndim >= 1 ? l.strides[0] * es : 0;
    m.s1 = 0;
    m.cols = 1;
  }
  return m;
}

struct Csr {
  Vec offs, ids, values;
  const char* name = "";  // "output", "prompt", "bias"
};

// Checks one CSR pair: offsets nondecreasing in [0, N], and the ids rows use in [0, V).
void check_csr(const Csr& c, int64_t rows, int64_t vocab) {
  if (!c.offs) return;
  const int64_t n = c.ids.n;
  int64_t prev = 0;
  for (int64_t b = 0; b <= rows; ++b) {
    const int64_t o = c.offs.index(b);
    if (b == 0) {
      check_arg(o >= 0 && o <= n,
                "params->{}_offsets[0] = {}, expected in [0, {}] (params->{}_ids.shape[0])", c.name,
                o, n, c.name);
    } else {
      check_arg(o >= prev,
                "params->{}_offsets[{}] = {} < {}_offsets[{}] = {}, expected nondecreasing <= {}",
                c.name, b, o, c.name, b - 1, prev, n);
      check_arg(
          o <= n,
          "params->{}_offsets[{}] = {}, expected nondecreasing <= {} (params->{}_ids.shape[0])",
          c.name, b, o, n, c.name);
    }
    prev = o;
  }
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t e = c.offs.index(b + 1);
    for (int64_t i = c.offs.index(b); i < e; ++i) {
      const int64_t id = c.ids.index(i);
      check_arg(id >= 0 && id < vocab, "params->{}_ids[{}] = {} (row {}), expected [0, {})", c.name,
                i, id, b, vocab);
    }
  }
}

// The normalized arguments of a call, read once.
struct Call {
  int64_t rows = 0, vocab = 0;
  DenseRow base;         // x of row 0
  int64_t row_step = 0;  // bytes between logits rows
  Vec temperature, top_k, top_p, min_p, repetition, frequency, presence, seed, offset;
  const dsk_sampling_args* a = nullptr;
  Csr out, prompt, bias;
  Mat mask;

  RowParams params(int64_t b) const {
    RowParams p;
    p.temperature = temperature ? temperature.f32(b) : a->temperature_value;
    p.top_k = top_k ? top_k.i32(b) : a->top_k_value;
    p.top_p = top_p ? top_p.f32(b) : a->top_p_value;
    p.min_p = min_p ? min_p.f32(b) : a->min_p_value;
    p.repetition = repetition ? repetition.f32(b) : a->repetition_value;
    p.frequency = frequency ? frequency.f32(b) : a->frequency_value;
    p.presence = presence ? presence.f32(b) : a->presence_value;
    p.seed = seed ? seed.u64(b) : a->seed_value;
    p.offset = offset ? offset.u64(b) : a->offset_value;
    return p;
  }

  static RowIds row_ids(const Csr& c, int64_t b) {
    RowIds r;
    if (!c.offs) return r;
    const int64_t o = c.offs.index(b);
    r.dtype = c.ids.dtype;
    r.data = c.ids.data + o * c.ids.step;
    r.step = c.ids.step;
    r.n = c.offs.index(b + 1) - o;
    return r;
  }

  RowLists lists(int64_t b) const {
    RowLists l;
    l.out = row_ids(out, b);
    l.prompt = row_ids(prompt, b);
    l.bias = row_ids(bias, b);
    if (bias.offs) {
      l.bias_values = bias.values.data + bias.offs.index(b) * bias.values.step;
      l.bias_value_step = bias.values.step;
    }
    if (mask) {
      l.mask = mask.at(b, 0);
      l.mask_step = mask.s1;
    }
    return l;
  }

  DenseRow row(int64_t b) const {
    DenseRow r = base;
    r.x = base.x + b * row_step;
    return r;
  }
};

void check_f32s(const Vec& v, int64_t rows, int32_t id, const char* name, const char* range) {
  if (!v) return;
  for (int64_t b = 0; b < rows; ++b) {
    const float x = v.f32(b);
    check_arg(sample_param_ok(id, x), "params->{}[{}] = {}, expected {}", name, b, x, range);
  }
}

Call read_call(const dsk_sampling_args* a) {
  Call c;
  c.a = a;
  const Layout x = check_tensor(a->logits, "logits", Access::kRead);
  check_arg(x.ndim == 2, "logits: expected [B, V]");
  c.rows = x.shape[0];
  c.vocab = x.shape[1];
  const auto es = static_cast<int64_t>(x.elem_size);
  c.base.x = x.data;
  c.base.step = x.strides[1] * es;
  c.base.dtype = x.dtype_id;
  c.base.vocab = c.vocab;
  c.row_step = x.strides[0] * es;
  c.temperature = vec_of(a->temperature, "params->temperatures");
  c.top_k = vec_of(a->top_k, "params->top_ks");
  c.top_p = vec_of(a->top_p, "params->top_ps");
  c.min_p = vec_of(a->min_p, "params->min_ps");
  c.repetition = vec_of(a->repetition, "params->repetition_penalties");
  c.frequency = vec_of(a->frequency, "params->frequency_penalties");
  c.presence = vec_of(a->presence, "params->presence_penalties");
  c.seed = vec_of(a->seed, "params->seeds");
  c.offset = vec_of(a->offset, "params->offsets");
  c.out = Csr{vec_of(a->output_offsets, "params->output_offsets"),
              vec_of(a->output_ids, "params->output_ids"), Vec{}, "output"};
  c.prompt = Csr{vec_of(a->prompt_offsets, "params->prompt_offsets"),
                 vec_of(a->prompt_ids, "params->prompt_ids"), Vec{}, "prompt"};
  c.bias =
      Csr{vec_of(a->bias_offsets, "params->bias_offsets"), vec_of(a->bias_ids, "params->bias_ids"),
          vec_of(a->bias_values, "params->bias_values"), "bias"};
  c.mask = mat_of(a->allowed_mask, "params->allowed_mask", Access::kRead);

  // Every per-row value before any output is written.
  const int64_t rows = c.rows;
  check_f32s(c.temperature, rows, kSampleParamTemperature, "temperatures", "finite >= 0");
  if (c.top_k) {
    for (int64_t b = 0; b < rows; ++b) {
      const int32_t k = c.top_k.i32(b);
      check_arg(sample_top_k_ok(k), "params->top_ks[{}] = {}, expected >= 0", b, k);
    }
  }
  check_f32s(c.top_p, rows, kSampleParamTopP, "top_ps", "(0, 1]");
  check_f32s(c.min_p, rows, kSampleParamMinP, "min_ps", "[0, 1]");
  check_f32s(c.repetition, rows, kSampleParamRepetition, "repetition_penalties", "finite > 0");
  check_f32s(c.frequency, rows, kSampleParamFrequency, "frequency_penalties", "finite");
  check_f32s(c.presence, rows, kSampleParamPresence, "presence_penalties", "finite");
  check_csr(c.out, rows, c.vocab);
  check_csr(c.prompt, rows, c.vocab);
  check_csr(c.bias, rows, c.vocab);
  return c;
}

// The raw (unprocessed) distribution of a row: log_softmax of x with the weight machinery.
struct RawStats {
  bool bad = true;
  float big_m = 0.0f;
  float log_s = 0.0f;
};

bool is_nan_f32(float x) { return (f32_bits(x) & 0x7FFFFFFFu) > 0x7F800000u; }

// The simple form: rows with NaN or +inf (or nothing finite) end here.
RawStats raw_stats_simple(const DenseRow& r, int32_t top_n, std::vector<Cand>& cand) {
  RawStats st;
  uint32_t mk = 0;
  int64_t mi = -1;
  bool bad = false;
  for (int64_t j = 0; j < r.vocab; ++j) {
    const float x = load_as_f32(r.dtype, r.x + j * r.step);
    if (sample_bad_logit(x)) {
      bad = true;
      continue;
    }
    if (x == kNegInf) continue;
    const uint32_t k = sample_key(x);
    if (k > mk) {
      mk = k;
      mi = j;
    }
  }
  cand.clear();
  if (bad || mi < 0) {
    st.bad = true;
    if (top_n > 0) {
      for (int64_t j = 0; j < r.vocab; ++j) {
        const float x = load_as_f32(r.dtype, r.x + j * r.step);
        if (sample_finite(x))
          cand.push_back(Cand{sampling::cand_ord(sample_key(x), j), 0, x, static_cast<int32_t>(j)});
      }
    }
    return st;
  }
  st.bad = false;
  const float big_m = load_as_f32(r.dtype, r.x + mi * r.step);
  st.big_m = big_m;
  const int32_t shift = sample_weight_shift(r.vocab);
  const float thr_w =
      -(StrictF32{static_cast<float>(shift)} * StrictF32{0.6931472f} + StrictF32{1.0f}).v;
  uint64_t total = 0;
  int64_t in_c = 0;
  for (int64_t j = 0; j < r.vocab; ++j) {
    const float x = load_as_f32(r.dtype, r.x + j * r.step);
    if (x == kNegInf) continue;
    const bool c = (StrictF32{x} - StrictF32{big_m}).v >= thr_w;
    if (c) {
      total += sample_weight_of(sample_rel_exp(x, big_m), shift);
      ++in_c;
    }
    if (top_n > 0)
      cand.push_back(Cand{sampling::cand_ord(sample_key(x), j), 0, x, static_cast<int32_t>(j)});
  }
  (void)in_c;
  st.log_s = sample_log_normalizer(total, shift);
  return st;
}

// With the dense kernels (T = 0: z = x, no mask): the maximum from pass 1, the total from the
// mass histogram, the top-n candidates from a collection above a floor (at least the first top_n
// finite tokens of the order, or all of them).
RawStats raw_stats(const DenseRow& r0, int32_t top_n, sampling::Scratch& s,
                   std::vector<Cand>& cand) {
  DenseRow r = r0;
  r.mask = nullptr;
  r.temperature = 0.0f;
  const sampling::DenseKernels& kern = sampling::dense_kernels_for(r);
  const int64_t nb = (r.vocab + sampling::kBlock - 1) / sampling::kBlock;
  if (static_cast<int64_t>(s.bmax.size()) < nb) s.bmax.resize(static_cast<size_t>(nb));
  uint32_t* bmax = s.bmax.data();
  bool bad = false;
  kern.pass1(r, 0, nb, bmax, bad);
  uint32_t gk = 0;
  for (int64_t b = 0; b < nb && !bad; ++b) gk = std::max(gk, bmax[b]);
  if (bad || gk <= sample_key(kNegInf)) return raw_stats_simple(r0, top_n, cand);
  RawStats st;
  st.bad = false;
  // M is the x of the first token with the largest key (-0 and +0 share a key).
  float big_m = sample_key_value(gk);
  for (int64_t b = 0; b < nb; ++b) {
    if (bmax[b] != gk) continue;
    for (int64_t j = b * sampling::kBlock; j < r.vocab; ++j) {
      const float x = load_as_f32(r.dtype, r.x + j * r.step);
      if (!is_nan_f32(x) && sample_key(x) == gk) {
        big_m = x;
        break;
      }
    }
    break;
  }
  st.big_m = big_m;
  const int32_t shift = sample_weight_shift(r.vocab);
  const float thr_w =
      -(StrictF32{static_cast<float>(shift)} * StrictF32{0.6931472f} + StrictF32{1.0f}).v;
  s.hist.assign(static_cast<size_t>(sampling::kHistCopies * sampling::kHistBuckets), 0);
  kern.mass(r, 0, nb, bmax, big_m, thr_w, shift, s.hist.data());
  uint64_t total = 0;
  for (const uint64_t h : s.hist) total += h;
  st.log_s = sample_log_normalizer(total, shift);
  cand.clear();
  if (top_n > 0) {
    uint32_t floor_key = 0;
    if (top_n <= nb) {
      s.keys.assign(bmax, bmax + nb);
      std::nth_element(s.keys.begin(), s.keys.begin() + (top_n - 1), s.keys.end(),
                       std::greater<uint32_t>());
      floor_key = s.keys[static_cast<size_t>(top_n - 1)];
    }
    kern.collect(r, 0, nb, bmax, big_m, kNegInf, floor_key, 0xFFFFFFFFu, cand);
  }
  return st;
}

struct Outputs {
  Mat ids, logprobs, top_ids, top_logprobs, raw_logprobs, status;
  int32_t top_n = 0;
  bool top_raw = false;
};

void store_i32(char* p, int32_t v) { std::memcpy(p, &v, 4); }
void store_f32(char* p, float v) { std::memcpy(p, &v, 4); }

void sample_rows(const Call& c, const Outputs& o, int64_t lo, int64_t hi, int64_t row_threads) {
  sampling::Scratch& s = sampling::thread_scratch();
  std::vector<Cand> raw_cand;
  for (int64_t b = lo; b < hi; ++b) {
    const RowParams p = c.params(b);
    RowNeeds needs;
    needs.logprob = static_cast<bool>(o.logprobs);
    needs.top_n = o.top_raw ? 0 : o.top_n;
    needs.sample = true;
    needs.threads = row_threads;
    RowResult res;
    DenseRow dense;
    sampling::run_row(c.row(b), p, c.lists(b), needs, s, res, dense);
    const bool ok = res.status == DSK_SAMPLE_OK;
    const int32_t id = ok ? res.id : 0;
    store_i32(o.ids.at(b, 0), id);
    if (o.status) *reinterpret_cast<uint8_t*>(o.status.at(b, 0)) = res.status;
    if (o.logprobs) store_f32(o.logprobs.at(b, 0), ok ? res.logprob : kNaN);
    if (o.top_n > 0 && !o.top_raw) {
      const int64_t n = ok ? std::min<int64_t>(o.top_n, res.n_kept) : 0;
      if (n > 0)
        std::partial_sort(s.cand.begin(), s.cand.begin() + n, s.cand.begin() + res.n_kept,
                          [](const Cand& x, const Cand& y) { return x.ord > y.ord; });
      for (int64_t i = 0; i < o.top_n; ++i) {
        if (i < n) {
          const Cand& e = s.cand[static_cast<size_t>(i)];
          store_i32(o.top_ids.at(b, i), e.id);
          store_f32(o.top_logprobs.at(b, i), sample_logprob(e.z, res.m, res.log_s));
        } else {
          store_i32(o.top_ids.at(b, i), -1);
          store_f32(o.top_logprobs.at(b, i), ok ? kNegInf : kNaN);
        }
      }
    }
    if (o.raw_logprobs || (o.top_n > 0 && o.top_raw)) {
      const int32_t want = o.top_raw && ok ? o.top_n : 0;
      const RawStats st = raw_stats(c.row(b), want, s, raw_cand);
      if (o.raw_logprobs) {
        float v = kNaN;
        if (ok && !st.bad) {
          const float x = load_as_f32(c.base.dtype, c.row(b).x + id * c.base.step);
          v = sample_logprob(x, st.big_m, st.log_s);
        }
        store_f32(o.raw_logprobs.at(b, 0), v);
      }
      if (o.top_n > 0 && o.top_raw) {
        const int64_t n = std::min<int64_t>(want, static_cast<int64_t>(raw_cand.size()));
        if (n > 0)
          std::partial_sort(raw_cand.begin(), raw_cand.begin() + n, raw_cand.end(),
                            [](const Cand& x, const Cand& y) { return x.ord > y.ord; });
        const float pad = ok && !st.bad ? kNegInf : kNaN;
        for (int64_t i = 0; i < o.top_n; ++i) {
          if (i < n) {
            const Cand& e = raw_cand[static_cast<size_t>(i)];
            store_i32(o.top_ids.at(b, i), e.id);
            store_f32(o.top_logprobs.at(b, i),
                      st.bad ? kNaN : sample_logprob(e.z, st.big_m, st.log_s));
          } else {
            store_i32(o.top_ids.at(b, i), -1);
            store_f32(o.top_logprobs.at(b, i), pad);
          }
        }
      }
    }
  }
}

void transform_rows(const Call& c, const Mat& out, bool probs, const Mat& status, int64_t lo,
                    int64_t hi) {
  sampling::Scratch& s = sampling::thread_scratch();
  for (int64_t b = lo; b < hi; ++b) {
    const RowParams p = c.params(b);
    RowNeeds needs;
    needs.membership = true;
    needs.total = probs;
    needs.sample = false;
    RowResult res;
    DenseRow dense;
    sampling::run_row(c.row(b), p, c.lists(b), needs, s, res, dense);
    if (status) *reinterpret_cast<uint8_t*>(status.at(b, 0)) = res.status;
    const int64_t vocab = c.vocab;
    if (res.status != DSK_SAMPLE_OK) {
      for (int64_t j = 0; j < vocab; ++j) store_from_f32(out.dtype, kNaN, out.at(b, j));
      continue;
    }
    const float m = res.m;
    const float norm = sample_normalizer(res.total, res.shift);
    auto value = [&](int64_t j, float z) {
      bool kept = z != kNegInf;
      if (kept && res.has_boundary) kept = sampling::cand_ord(sample_key(z), j) >= res.boundary;
      float w = 0.0f;
      if (kept && (res.min_p_on || probs)) {
        w = sample_rel_exp(z, m);
        if (res.min_p_on) kept = sample_min_p_keeps(w, res.min_p);
      }
      if (probs) return kept ? sample_prob(w, norm) : 0.0f;
      return kept ? z : kNegInf;
    };
    for (int64_t j = 0; j < vocab; ++j) {
      float z = kNegInf;
      if (dense.mask == nullptr || ((dense.mask[j >> 5] >> (j & 31)) & 1u) != 0)
        z = sample_temper(load_as_f32(dense.dtype, dense.x + j * dense.step), p.temperature);
      store_from_f32(out.dtype, value(j, z), out.at(b, j));
    }
    for (const sampling::Special& sp : s.special)
      store_from_f32(out.dtype, value(sp.id, sp.allowed ? sp.z : kNegInf), out.at(b, sp.id));
  }
}

int64_t row_grain(int64_t vocab) { return std::max<int64_t>(1, (int64_t{1} << 15) / vocab); }

}  // namespace

dsk_status sample(const dsk_exec* /*ex*/, const dsk_sampling_args* a) noexcept {
  return guarded([&] {
    const Call c = read_call(a);
    Outputs o;
    o.ids = mat_of(a->ids, "outputs->ids", Access::kWrite);
    o.logprobs = mat_of(a->logprobs, "outputs->logprobs", Access::kWrite);
    o.top_ids = mat_of(a->top_ids, "outputs->top_ids", Access::kWrite);
    o.top_logprobs = mat_of(a->top_logprobs, "outputs->top_logprobs", Access::kWrite);
    o.raw_logprobs = mat_of(a->raw_logprobs, "outputs->raw_logprobs", Access::kWrite);
    o.status = mat_of(a->status, "outputs->status", Access::kWrite);
    o.top_n = o.top_ids ? static_cast<int32_t>(o.top_ids.cols) : 0;
    o.top_raw = a->top_source == DSK_LOGPROBS_RAW;
    if (c.rows == 0) return;
    // Rows fewer than the threads: each row splits its passes over its share of them. A single
    // row splits on the pool; several rows already run as one pool job, so a row's own split
    // starts threads (the pool runs one job at a time), which pays only from about 4 threads a
    // row (measured on 2 cores before the pool: 2 threads a row were slower than 1).
    int64_t row_threads = std::max<int64_t>(1, configured_threads() / c.rows);
    if (c.rows > 1 && row_threads < 4) row_threads = 1;
    parallel_for(c.rows, row_grain(c.vocab),
                 [&](int64_t lo, int64_t hi) { sample_rows(c, o, lo, hi, row_threads); });
  });
}

dsk_status sampling_transform(const dsk_exec* /*ex*/, const dsk_sampling_args* a,
                              const DLTensor* out_t, int32_t probs) noexcept {
  return guarded([&] {
    const Call c = read_call(a);
    const Mat out = mat_of(out_t, "out", Access::kWrite);
    const Mat status = mat_of(a->status, "status", Access::kWrite);
    if (c.rows == 0) return;
    parallel_for(c.rows, row_grain(c.vocab), [&](int64_t lo, int64_t hi) {
      transform_rows(c, out, probs != 0, status, lo, hi);
    });
  });
}

}  // namespace cpu
}  // namespace dsk
