// sampling_test_util.h - helpers shared by the sampling C API tests (test_sampling_*.cpp):
//   * an independent reference of the processing chain of dsk_sampling.h (mask, bias, penalties,
//     temperature, top-k, top-p, min-p, probabilities and logprobs), written from the header's
//     text: the f32 steps 1-4 as the same IEEE operations (so z is exact), the filters and the
//     distribution in double with std::exp / std::log. It reports whether its top-p and min-p
//     decisions are robust (the library computes exp in f32 and masses in integers, so a boundary
//     within ~1e-6 relative may go either way);
//   * a batch builder (per-row parameter tensors or scalars, CSR token lists, masks) and output
//     buffers over std::vector storage;
//   * Philox4x32-10 written from the Random123 definition, and the Gumbel noise of the header's
//     RNG layout (double precision), for the RNG layout test;
//   * a chi-square goodness-of-fit check at p = 1e-6.
// Nothing here includes lib/: the tests see only the public headers and libdsk.
#ifndef DSK_TESTS_CAPI_SAMPLING_TEST_UTIL_H_
#define DSK_TESTS_CAPI_SAMPLING_TEST_UTIL_H_

#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mla_test_util.h"
#include "test_util.h"

namespace samp_test {

using dsk_test::Borrowed;
using dsk_test::CpuContext;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kInfD = std::numeric_limits<double>::infinity();

inline size_t sz(int64_t i) { return static_cast<size_t>(i); }

#define SAMP_REQUIRE_OK(call)                                                                     \
  do {                                                                                            \
    const dsk_status samp_status_ = (call);                                                       \
    REQUIRE_MESSAGE(samp_status_ == DSK_OK, #call, " -> ", dsk_status_string(samp_status_), ": ", \
                    dsk_last_error_message());                                                    \
  } while (0)

// One correctly rounded f32 result (the volatile store keeps a compiler from fusing it into an
// FMA with the next operation).
inline float f32(float v) {
  volatile float r = v;
  return r;
}

inline uint32_t bits(float f) { return mla_test::f32_bits(f); }

// ---- per-row parameters ----

struct RowSpec {
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition = 1.0f;
  float frequency = 0.0f;
  float presence = 0.0f;
  uint64_t seed = 0;
  uint64_t offset = 0;
  std::vector<int64_t> output_ids;
  std::vector<int64_t> prompt_ids;
  std::vector<std::pair<int64_t, float>> bias;  // (token, value), in list order
  std::vector<uint32_t> mask;                   // ceil(V / 32) words; empty = all allowed
};

inline std::string row_label(const RowSpec& r) {
  std::string s = "T " + std::to_string(r.temperature) + " k " + std::to_string(r.top_k) + " p " +
                  std::to_string(r.top_p) + " min_p " + std::to_string(r.min_p);
  if (r.repetition != 1.0f || r.frequency != 0.0f || r.presence != 0.0f) {
    s += " rep " + std::to_string(r.repetition) + " freq " + std::to_string(r.frequency) +
         " pres " + std::to_string(r.presence);
  }
  if (!r.output_ids.empty()) s += " out " + std::to_string(r.output_ids.size());
  if (!r.prompt_ids.empty()) s += " prompt " + std::to_string(r.prompt_ids.size());
  if (!r.bias.empty()) s += " bias " + std::to_string(r.bias.size());
  if (!r.mask.empty()) s += " mask";
  return s;
}

// ---- the reference ----

struct Ref {
  int status = DSK_SAMPLE_OK;
  std::vector<float> z;         // after steps 1-4 (exact f32)
  std::vector<char> kept;       // after steps 5-7
  float m = 0;                  // the max z
  std::vector<double> prob;     // 0 outside the kept set
  std::vector<double> logprob;  // -inf outside the kept set
  std::vector<int64_t> order;   // the kept tokens in the order (z descending, id ascending)
  int64_t greedy = 0;           // argmax z, ties to the lower id
  bool decided = true;          // the kept set does not hinge on a near-boundary mass or weight
  std::string why;              // what was undecided
};

// exp(z - m) as the header defines it, with the difference rounded to f32 first and the exp in
// double.
inline double rel_weight(float z, float m) {
  if (z == m) return 1.0;
  return std::exp(static_cast<double>(f32(z - m)));
}

// Steps 1-4 on one raw row x (f32 values). Returns z.
inline std::vector<float> process_z(const std::vector<float>& x, const RowSpec& r) {
  const int64_t v = static_cast<int64_t>(x.size());
  std::vector<float> z = x;
  if (!r.mask.empty()) {
    REQUIRE(static_cast<int64_t>(r.mask.size()) == (v + 31) / 32);
    for (int64_t j = 0; j < v; ++j) {
      if (((r.mask[sz(j / 32)] >> (j % 32)) & 1u) == 0) z[sz(j)] = -kInf;
    }
  }
  for (const auto& b : r.bias) z[sz(b.first)] = f32(z[sz(b.first)] + b.second);
  std::map<int64_t, int32_t> count;
  std::set<int64_t> seen;
  for (int64_t id : r.output_ids) {
    ++count[id];
    seen.insert(id);
  }
  for (int64_t id : r.prompt_ids) seen.insert(id);
  for (int64_t j = 0; j < v; ++j) {
    float& t = z[sz(j)];
    if (seen.count(j) != 0) t = t > 0.0f ? f32(t / r.repetition) : f32(t * r.repetition);
    auto it = count.find(j);
    if (it != count.end()) {
      const float fc = f32(r.frequency * static_cast<float>(it->second));
      t = f32(t - fc);
      t = f32(t - r.presence);
    }
    if (r.temperature > 0.0f) t = f32(t / r.temperature);
  }
  return z;
}

// The whole chain for one row. `margin`: the relative distance from a top-p or min-p boundary
// below which the reference calls the row undecided.
inline Ref reference(const std::vector<float>& x, const RowSpec& r, double margin = 2e-6) {
  const int64_t v = static_cast<int64_t>(x.size());
  Ref out;
  out.z = process_z(x, r);
  out.kept.assign(sz(v), 0);
  out.prob.assign(sz(v), 0.0);
  out.logprob.assign(sz(v), -kInfD);
  bool bad = false, any_finite = false;
  for (float t : out.z) {
    if (std::isnan(t) || t == kInf) bad = true;
    if (std::isfinite(t)) any_finite = true;
  }
  if (bad || !any_finite) {
    out.status = bad ? DSK_SAMPLE_NONFINITE : DSK_SAMPLE_ALL_MASKED;
    out.prob.assign(sz(v), std::nan(""));
    out.logprob.assign(sz(v), std::nan(""));
    return out;
  }
  std::vector<int64_t> order;
  for (int64_t j = 0; j < v; ++j) {
    if (std::isfinite(out.z[sz(j)])) order.push_back(j);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return out.z[sz(a)] > out.z[sz(b)]; });
  out.m = out.z[sz(order[0])];
  out.greedy = order[0];
  // 5. top-k
  if (r.top_k > 0 && static_cast<size_t>(r.top_k) < order.size()) order.resize(sz(r.top_k));
  // 6. top-p over the top-k survivors
  if (r.top_p < 1.0f) {
    bool exact = true;
    double total = 0;
    for (int64_t j : order) {
      total += rel_weight(out.z[sz(j)], out.m);
      if (out.z[sz(j)] != out.m) exact = false;
    }
    const double target = static_cast<double>(r.top_p) * total;
    double cum = 0;
    size_t keep = order.size();
    for (size_t i = 0; i < order.size(); ++i) {
      const double before = cum;
      cum += rel_weight(out.z[sz(order[i])], out.m);
      if (cum >= target) {
        keep = i + 1;
        if (!exact && (std::fabs(cum - target) <= margin * total ||
                       std::fabs(before - target) <= margin * total)) {
          out.decided = false;
          out.why = "top-p boundary";
        }
        break;
      }
    }
    order.resize(keep);
  }
  // 7. min-p
  if (r.min_p > 0.0f) {
    std::vector<int64_t> kept;
    for (int64_t j : order) {
      const double w = rel_weight(out.z[sz(j)], out.m);
      if (out.z[sz(j)] != out.m &&
          std::fabs(w - static_cast<double>(r.min_p)) <= margin * static_cast<double>(r.min_p)) {
        out.decided = false;
        out.why = "min-p boundary";
      }
      if (w >= static_cast<double>(r.min_p)) kept.push_back(j);
    }
    order = kept;
  }
  double s = 0;
  for (int64_t j : order) s += rel_weight(out.z[sz(j)], out.m);
  const double log_s = std::log(s);
  for (int64_t j : order) {
    out.kept[sz(j)] = 1;
    out.prob[sz(j)] = rel_weight(out.z[sz(j)], out.m) / s;
    out.logprob[sz(j)] = static_cast<double>(f32(out.z[sz(j)] - out.m)) - log_s;
  }
  out.order = order;
  return out;
}

// The raw log_softmax of x for token j (NaN when x has NaN or +inf, or no finite value).
inline double raw_logprob(const std::vector<float>& x, int64_t j) {
  double mx = -kInfD;
  for (float t : x) {
    if (std::isnan(t) || t == kInf) return std::nan("");
    if (std::isfinite(t)) mx = std::max(mx, static_cast<double>(t));
  }
  if (mx == -kInfD) return std::nan("");
  double s = 0;
  for (float t : x) {
    if (std::isfinite(t)) s += std::exp(static_cast<double>(t) - mx);
  }
  if (!std::isfinite(x[sz(j)])) return -kInfD;
  return (static_cast<double>(x[sz(j)]) - mx) - std::log(s);
}

// The finite raw logits in the order (x descending, id ascending).
inline std::vector<int64_t> raw_order(const std::vector<float>& x) {
  std::vector<int64_t> o;
  for (size_t j = 0; j < x.size(); ++j) {
    if (std::isfinite(x[j])) o.push_back(static_cast<int64_t>(j));
  }
  std::stable_sort(o.begin(), o.end(), [&](int64_t a, int64_t b) { return x[sz(a)] > x[sz(b)]; });
  return o;
}

// ---- a batch and its tensors ----

// Logits [B, V] (f32 values; stored as `dtype`) with one RowSpec per row, turned into
// dsk_sampling_params. Per-row tensors are made for every parameter unless `scalars` is set (then
// the scalars come from rows[0]; seeds and offsets are per row when `per_row_rng`).
class Batch {
 public:
  Batch(int64_t b, int64_t v) : b_(b), v_(v), x_(sz(b * v), 0.0f), rows_(sz(b)) {}

  int64_t rows() const { return b_; }
  int64_t vocab() const { return v_; }
  RowSpec& row(int64_t i) { return rows_[sz(i)]; }
  const RowSpec& row(int64_t i) const { return rows_[sz(i)]; }
  float& x(int64_t i, int64_t j) { return x_[sz(i * v_ + j)]; }
  // Row i as the library sees it (after rounding to the logits dtype).
  std::vector<float> xrow(int64_t i) const {
    std::vector<float> r(x_.begin() + i * v_, x_.begin() + (i + 1) * v_);
    for (float& t : r) t = round_to(t);
    return r;
  }
  Ref ref(int64_t i, double margin = 2e-6) const { return reference(xrow(i), row(i), margin); }

  void fill_normal(uint64_t seed, double sd, double mean = 0.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> d(mean, sd);
    for (float& t : x_) t = static_cast<float>(d(rng));
  }

  int32_t logits_dtype = DSK_DTYPE_F32;
  int32_t csr_dtype = DSK_DTYPE_INT32;
  bool scalars = false;
  bool per_row_rng = true;
  int64_t extra_cols = 0;  // logits row stride V + extra_cols (a strided view), NaN padding

  // The logits tensor and the params (valid while this Batch lives and is not rebuilt).
  const DLTensor* logits() { return &*logits_view_; }
  const dsk_sampling_params& params() const { return params_; }

  void build() {
    keep_.clear();
    tensors_.clear();
    // logits
    const int64_t ld = v_ + extra_cols;
    if (logits_dtype == DSK_DTYPE_F32) {
      std::vector<float> buf(sz(b_ * ld), kNaN);
      for (int64_t i = 0; i < b_; ++i) {
        for (int64_t j = 0; j < v_; ++j) buf[sz(i * ld + j)] = x_[sz(i * v_ + j)];
      }
      logits_view_ = borrow(store(std::move(buf)), {b_, v_}, DSK_DTYPE_F32, {ld, 1});
    } else {
      std::vector<uint16_t> buf(sz(b_ * ld), 0x7FC0u);
      for (int64_t i = 0; i < b_; ++i) {
        for (int64_t j = 0; j < v_; ++j) buf[sz(i * ld + j)] = enc16(x_[sz(i * v_ + j)]);
      }
      logits_view_ = borrow(store(std::move(buf)), {b_, v_}, logits_dtype, {ld, 1});
    }
    REQUIRE(dsk_sampling_params_init(&params_) == DSK_OK);
    const RowSpec& r0 = rows_.empty() ? RowSpec{} : rows_[0];
    if (scalars) {
      params_.temperature = r0.temperature;
      params_.top_k = r0.top_k;
      params_.top_p = r0.top_p;
      params_.min_p = r0.min_p;
      params_.repetition_penalty = r0.repetition;
      params_.frequency_penalty = r0.frequency;
      params_.presence_penalty = r0.presence;
    } else {
      params_.temperatures = f32_param([](const RowSpec& r) { return r.temperature; });
      params_.top_ks = i32_param([](const RowSpec& r) { return r.top_k; });
      params_.top_ps = f32_param([](const RowSpec& r) { return r.top_p; });
      params_.min_ps = f32_param([](const RowSpec& r) { return r.min_p; });
      params_.repetition_penalties = f32_param([](const RowSpec& r) { return r.repetition; });
      params_.frequency_penalties = f32_param([](const RowSpec& r) { return r.frequency; });
      params_.presence_penalties = f32_param([](const RowSpec& r) { return r.presence; });
    }
    if (per_row_rng) {
      std::vector<int64_t> s(sz(b_)), o(sz(b_));
      for (int64_t i = 0; i < b_; ++i) {
        s[sz(i)] = static_cast<int64_t>(rows_[sz(i)].seed);
        o[sz(i)] = static_cast<int64_t>(rows_[sz(i)].offset);
      }
      params_.seeds = borrow(store(std::move(s)), {b_}, DSK_DTYPE_INT64);
      params_.offsets = borrow(store(std::move(o)), {b_}, DSK_DTYPE_INT64);
    } else {
      params_.seed = r0.seed;
      params_.offset = r0.offset;
    }
    bool any_out = false, any_prompt = false, any_bias = false, any_mask = false;
    for (const RowSpec& r : rows_) {
      any_out |= !r.output_ids.empty();
      any_prompt |= !r.prompt_ids.empty();
      any_bias |= !r.bias.empty();
      any_mask |= !r.mask.empty();
    }
    if (any_out) {
      csr([](const RowSpec& r) { return r.output_ids; }, &params_.output_offsets,
          &params_.output_ids);
    }
    if (any_prompt) {
      csr([](const RowSpec& r) { return r.prompt_ids; }, &params_.prompt_offsets,
          &params_.prompt_ids);
    }
    if (any_bias) {
      csr(
          [](const RowSpec& r) {
            std::vector<int64_t> ids;
            for (const auto& p : r.bias) ids.push_back(p.first);
            return ids;
          },
          &params_.bias_offsets, &params_.bias_ids);
      std::vector<float> vals;
      for (const RowSpec& r : rows_) {
        for (const auto& p : r.bias) vals.push_back(p.second);
      }
      const auto n = static_cast<int64_t>(vals.size());
      params_.bias_values = borrow(store(std::move(vals)), {n}, DSK_DTYPE_F32);
    }
    if (any_mask) {
      const int64_t w = (v_ + 31) / 32;
      std::vector<int32_t> m(sz(b_ * w), -1);
      for (int64_t i = 0; i < b_; ++i) {
        const RowSpec& r = rows_[sz(i)];
        if (r.mask.empty()) continue;
        REQUIRE(static_cast<int64_t>(r.mask.size()) == w);
        for (int64_t k = 0; k < w; ++k) m[sz(i * w + k)] = static_cast<int32_t>(r.mask[sz(k)]);
      }
      params_.allowed_mask = borrow(store(std::move(m)), {b_, w}, DSK_DTYPE_INT32);
    }
  }

  float round_to(float t) const {
    switch (logits_dtype) {
      case DSK_DTYPE_BF16:
        return mla_test::bf16_value(mla_test::bf16_bits(t));
      case DSK_DTYPE_F16:
        return mla_test::f16_value(mla_test::f16_bits(t));
      default:
        return t;
    }
  }

 private:
  uint16_t enc16(float t) const {
    return logits_dtype == DSK_DTYPE_BF16 ? mla_test::bf16_bits(t) : mla_test::f16_bits(t);
  }

  template <typename T>
  void* store(std::vector<T> v) {
    if (v.empty()) v.resize(1);  // a non-NULL data pointer for empty tensors
    auto holder = std::make_shared<std::vector<T>>(std::move(v));
    void* p = holder->data();
    keep_.push_back(holder);
    return p;
  }
  const DLTensor* borrow(void* data, std::vector<int64_t> shape, int32_t dtype,
                         std::vector<int64_t> strides = {}) {
    tensors_.push_back(
        std::make_unique<Borrowed>(data, std::move(shape), dtype, std::move(strides)));
    return &*tensors_.back();
  }
  template <typename F>
  const DLTensor* f32_param(F f) {
    std::vector<float> v(sz(b_));
    for (int64_t i = 0; i < b_; ++i) v[sz(i)] = f(rows_[sz(i)]);
    return borrow(store(std::move(v)), {b_}, DSK_DTYPE_F32);
  }
  template <typename F>
  const DLTensor* i32_param(F f) {
    std::vector<int32_t> v(sz(b_));
    for (int64_t i = 0; i < b_; ++i) v[sz(i)] = f(rows_[sz(i)]);
    return borrow(store(std::move(v)), {b_}, DSK_DTYPE_INT32);
  }
  template <typename F>
  void csr(F f, const DLTensor** offs_out, const DLTensor** ids_out) {
    std::vector<int64_t> offs(1, 0), ids;
    for (const RowSpec& r : rows_) {
      const std::vector<int64_t> l = f(r);
      ids.insert(ids.end(), l.begin(), l.end());
      offs.push_back(static_cast<int64_t>(ids.size()));
    }
    const auto n = static_cast<int64_t>(ids.size());
    if (csr_dtype == DSK_DTYPE_INT64) {
      *offs_out = borrow(store(std::move(offs)), {b_ + 1}, DSK_DTYPE_INT64);
      *ids_out = borrow(store(std::move(ids)), {n}, DSK_DTYPE_INT64);
    } else {
      std::vector<int32_t> o32(offs.begin(), offs.end()), i32;
      for (int64_t t : ids) i32.push_back(static_cast<int32_t>(t));
      *offs_out = borrow(store(std::move(o32)), {b_ + 1}, DSK_DTYPE_INT32);
      *ids_out = borrow(store(std::move(i32)), {n}, DSK_DTYPE_INT32);
    }
  }

  int64_t b_, v_;
  std::vector<float> x_;
  std::vector<RowSpec> rows_;
  dsk_sampling_params params_{};
  std::vector<std::shared_ptr<void>> keep_;
  std::vector<std::unique_ptr<Borrowed>> tensors_;
  const DLTensor* logits_view_ = nullptr;
};

// Output buffers of dsk_sample for B rows and n top logprobs (n = 0: none), prefilled with
// sentinels.
struct Outputs {
  int64_t b, n;
  std::vector<int32_t> ids;
  std::vector<float> logprobs, raw;
  std::vector<uint8_t> status;
  std::vector<int32_t> top_ids;
  std::vector<float> top_lp;
  Borrowed t_ids, t_lp, t_raw, t_status, t_top_ids, t_top_lp;
  dsk_sampling_outputs o{};

  Outputs(int64_t rows, int64_t top_n, int32_t source = DSK_LOGPROBS_PROCESSED, bool all = true)
      : b(rows),
        n(top_n),
        ids(sz(std::max<int64_t>(rows, 1)), -7),
        logprobs(sz(std::max<int64_t>(rows, 1)), 77.0f),
        raw(sz(std::max<int64_t>(rows, 1)), 77.0f),
        status(sz(std::max<int64_t>(rows, 1)), 0xEE),
        top_ids(sz(std::max<int64_t>(rows * top_n, 1)), -7),
        top_lp(sz(std::max<int64_t>(rows * top_n, 1)), 77.0f),
        t_ids(ids.data(), {rows}, DSK_DTYPE_INT32),
        t_lp(logprobs.data(), {rows}, DSK_DTYPE_F32),
        t_raw(raw.data(), {rows}, DSK_DTYPE_F32),
        t_status(status.data(), {rows}, DSK_DTYPE_UINT8),
        t_top_ids(top_ids.data(), {rows, std::max<int64_t>(top_n, 1)}, DSK_DTYPE_INT32),
        t_top_lp(top_lp.data(), {rows, std::max<int64_t>(top_n, 1)}, DSK_DTYPE_F32) {
    REQUIRE(dsk_sampling_outputs_init(&o) == DSK_OK);
    o.top_source = source;
    o.ids = &t_ids;
    if (all) {
      o.logprobs = &t_lp;
      o.raw_logprobs = &t_raw;
      o.status = &t_status;
    }
    if (top_n > 0) {
      o.top_ids = &t_top_ids;
      o.top_logprobs = &t_top_lp;
    }
  }
  Outputs(const Outputs&) = delete;
  Outputs& operator=(const Outputs&) = delete;
  const dsk_sampling_outputs* get() const { return &o; }
  int32_t top_id(int64_t i, int64_t k) const { return top_ids[sz(i * n + k)]; }
  float top_value(int64_t i, int64_t k) const { return top_lp[sz(i * n + k)]; }
};

inline void run_sample(dsk_context* ctx, Batch& batch, const Outputs& out) {
  batch.build();
  SAMP_REQUIRE_OK(dsk_sample(ctx, &batch.params(), batch.logits(), out.get()));
  SAMP_REQUIRE_OK(dsk_context_synchronize(ctx));
}

// dsk_sampling_probs of a batch: probs [B, V] and status [B].
inline void run_probs(dsk_context* ctx, Batch& batch, std::vector<float>& probs,
                      std::vector<uint8_t>& status) {
  batch.build();
  probs.assign(sz(batch.rows() * batch.vocab()), 77.0f);
  status.assign(sz(std::max<int64_t>(batch.rows(), 1)), 0xEE);
  Borrowed p(probs.data(), {batch.rows(), batch.vocab()}, DSK_DTYPE_F32);
  Borrowed s(status.data(), {batch.rows()}, DSK_DTYPE_UINT8);
  SAMP_REQUIRE_OK(dsk_sampling_probs(ctx, &batch.params(), batch.logits(), &p, &s));
  SAMP_REQUIRE_OK(dsk_context_synchronize(ctx));
}

// dsk_sampling_logits of a batch into f32.
inline void run_logits(dsk_context* ctx, Batch& batch, std::vector<float>& z,
                       std::vector<uint8_t>& status) {
  batch.build();
  z.assign(sz(batch.rows() * batch.vocab()), 77.0f);
  status.assign(sz(std::max<int64_t>(batch.rows(), 1)), 0xEE);
  Borrowed p(z.data(), {batch.rows(), batch.vocab()}, DSK_DTYPE_F32);
  Borrowed s(status.data(), {batch.rows()}, DSK_DTYPE_UINT8);
  SAMP_REQUIRE_OK(dsk_sampling_logits(ctx, &batch.params(), batch.logits(), &p, &s));
  SAMP_REQUIRE_OK(dsk_context_synchronize(ctx));
}

// Relative (with a tiny absolute floor) closeness.
inline bool close_rel(double got, double want, double rel, double abs_tol = 1e-30) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= rel * std::fabs(want) + abs_tol;
}

// ---- Philox4x32-10 (Random123) and the header's Gumbel noise ----

struct Words {
  uint32_t v[4];
};

inline Words philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                           uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * c0;
    const uint64_t p1 = uint64_t{0xCD9E8D57u} * c2;
    const auto hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const auto hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Words{{c0, c1, c2, c3}};
}

// The header's draw `index` of `stream` for a row keyed by (seed, offset).
inline uint32_t rng_word(uint64_t seed, uint64_t offset, uint32_t stream, uint32_t index) {
  return philox4x32_10(index / 4, stream, static_cast<uint32_t>(offset),
                       static_cast<uint32_t>(offset >> 32), static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32))
      .v[index % 4];
}

// The Gumbel noise of token j (stream 0), in double.
inline double gumbel(uint64_t seed, uint64_t offset, uint32_t j) {
  const uint32_t w = rng_word(seed, offset, 0, j);
  const double u = static_cast<double>(2u * (w >> 9) + 1u) * std::ldexp(1.0, -24);
  return -std::log(-std::log(u));
}

// The acceptance uniform of draft position i (stream 1).
inline double accept_uniform(uint64_t seed, uint64_t offset, uint32_t i) {
  return static_cast<double>(rng_word(seed, offset, 1, i) >> 8) * std::ldexp(1.0, -24);
}

// ---- chi-square ----

// Upper 1e-6 quantile of chi-square with df degrees of freedom (Wilson-Hilferty; it errs on the
// large side for small df).
inline double chi2_critical(int64_t df) {
  const double k = static_cast<double>(std::max<int64_t>(df, 1));
  const double z = 4.753424;  // standard normal upper 1e-6 quantile
  const double t = 1.0 - 2.0 / (9.0 * k) + z * std::sqrt(2.0 / (9.0 * k));
  return k * t * t * t + (df <= 2 ? 4.0 : 0.0);
}

struct Fit {
  double stat = 0;
  int64_t df = 0;
  double critical = 0;
  int64_t forbidden = 0;  // draws of tokens with probability 0
  std::string worst;      // the bin that contributes most
};

// Goodness of fit of `counts` (n draws in all) to `probs`; bins with expected counts below 20 are
// pooled.
inline Fit chi_square(const std::vector<int64_t>& counts, const std::vector<double>& probs) {
  Fit f;
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  double pool_e = 0;
  int64_t pool_c = 0, bins = 0;
  double worst = -1;
  for (size_t j = 0; j < counts.size(); ++j) {
    if (probs[j] <= 0) {
      f.forbidden += counts[j];
      continue;
    }
    const double e = probs[j] * static_cast<double>(n);
    if (e < 20) {
      pool_e += e;
      pool_c += counts[j];
      continue;
    }
    const double d = static_cast<double>(counts[j]) - e;
    const double term = d * d / e;
    f.stat += term;
    ++bins;
    if (term > worst) {
      worst = term;
      f.worst = "token " + std::to_string(j) + ": " + std::to_string(counts[j]) +
                " draws, expected " + std::to_string(e);
    }
  }
  if (pool_e > 0) {
    if (pool_e >= 5) {
      const double d = static_cast<double>(pool_c) - pool_e;
      f.stat += d * d / pool_e;
      ++bins;
    } else {
      // Too few expected for chi-square: a crude bound instead (Poisson tail far out).
      CHECK_MESSAGE(static_cast<double>(pool_c) <= pool_e + 10.0 * std::sqrt(pool_e) + 20.0,
                    "pooled rare tokens drawn ", pool_c, " times, expected ", pool_e);
    }
  }
  f.df = std::max<int64_t>(bins - 1, 1);
  f.critical = chi2_critical(f.df);
  return f;
}

inline void check_fit(const std::vector<int64_t>& counts, const std::vector<double>& probs,
                      const std::string& what) {
  const Fit f = chi_square(counts, probs);
  INFO(what);
  CHECK_MESSAGE(f.forbidden == 0, f.forbidden, " draws of tokens with probability 0");
  CHECK_MESSAGE(f.stat < f.critical, "chi-square ", f.stat, " with ", f.df, " df >= ", f.critical,
                " (p = 1e-6); worst ", f.worst);
}

}  // namespace samp_test

#endif  // DSK_TESTS_CAPI_SAMPLING_TEST_UTIL_H_
