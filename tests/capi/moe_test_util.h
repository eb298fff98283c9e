// moe_test_util.h - helpers shared by the MoE C API tests (test_moe_*.cpp): gate configs, an
// independent gate reference (double precision, std::exp; written from the semantics in dsk_moe.h,
// not from the library's code) that also says which rows it can decide robustly, the dispatch
// layout computed the obvious way, an fp8 e4m3fn encoder and block quantizers written from the
// format definition, and a dense SwiGLU expert reference. Host tensors, views and error checks
// come from mla_test_util.h.
#ifndef DSK_TESTS_CAPI_MOE_TEST_UTIL_H_
#define DSK_TESTS_CAPI_MOE_TEST_UTIL_H_

#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "mla_test_util.h"
#include "test_util.h"

namespace moe_test {

using mla_test::bf16_bits;
using mla_test::bf16_value;
using mla_test::Host;
using mla_test::View;

#define MOE_REQUIRE_OK(call) MLA_REQUIRE_OK(call)

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

inline size_t sz(int64_t i) { return static_cast<size_t>(i); }

// Labels as std::string (doctest's INFO prints a const char* as an address).
inline std::string label(int32_t dtype_id) { return mla_test::dtype_label(dtype_id); }
inline std::string form(mla_test::Form f) { return mla_test::form_label(f); }

// ---- gate configs ----

inline dsk_moe_gate_config gate_config(int32_t e, int32_t k, int32_t g, int32_t tg, int32_t score,
                                       int32_t renorm, float scale,
                                       int32_t rule = DSK_MOE_GROUP_AUTO) {
  dsk_moe_gate_config c;
  REQUIRE(dsk_moe_gate_config_init(&c) == DSK_OK);
  c.num_experts = e;
  c.top_k = k;
  c.n_group = g;
  c.topk_group = tg;
  c.score_func = score;
  c.group_rule = rule;
  c.renormalize = renorm;
  c.routed_scaling_factor = scale;
  return c;
}
inline dsk_moe_gate_config v3_config() {
  return gate_config(256, 8, 8, 4, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
}
inline dsk_moe_gate_config v2_config() {
  return gate_config(160, 6, 8, 3, DSK_MOE_SCORE_SOFTMAX, 0, 16.0f);
}
inline dsk_moe_gate_config v2lite_config() {
  return gate_config(64, 6, 1, 1, DSK_MOE_SCORE_SOFTMAX, 0, 1.0f);
}

inline std::string config_label(const dsk_moe_gate_config& c) {
  static const char* scores[] = {"softmax", "sigmoid", "none"};
  static const char* rules[] = {"auto", "max", "top2sum"};
  return "E " + std::to_string(c.num_experts) + " k " + std::to_string(c.top_k) + " G " +
         std::to_string(c.n_group) + " tg " + std::to_string(c.topk_group) + " " +
         (c.score_func >= 0 && c.score_func < 3 ? scores[c.score_func] : "?") + " " +
         (c.group_rule >= 0 && c.group_rule < 3 ? rules[c.group_rule] : "?") +
         (c.renormalize ? " renorm" : "") + " scale " + std::to_string(c.routed_scaling_factor) +
         (c.score_dtype == DSK_DTYPE_BF16 ? " bf16" : "");
}

// ---- the gate reference ----

inline double bf16_round(double v) { return bf16_value(bf16_bits(static_cast<float>(v))); }

// One value the gate compares: its (double) value, the magnitude its f32 rounding error scales
// with, and an identity `key` (inputs that produce it: equal keys give bitwise equal values in any
// implementation, so their order is decided by the index rule alone).
struct Cand {
  double value = -kInf;
  double mag = 0;
  std::array<double, 4> key{};  // an expert: (logit, bias, 0, 0); a top-2 group: both experts'
};

// True when an f32 implementation must order a and b as the double values do: exact ties of
// equal keys, -inf against -inf, or a relative margin above `rel`.
inline bool decided(const Cand& a, const Cand& b, double rel) {
  if (std::isinf(a.value) && std::isinf(b.value) && a.value == b.value) return true;
  if (a.key == b.key) return true;
  if (std::isinf(a.value) || std::isinf(b.value)) return true;
  return std::fabs(a.value - b.value) > rel * std::max(a.mag, b.mag) + 1e-300;
}

struct GateRow {
  std::vector<int64_t> ids;     // in pick order
  std::vector<double> weights;  // in pick order
  uint8_t flags = 0;            // DSK_MOE_ROW_* bits
  bool set_decided = true;      // the selected set (and kept groups) is robust
  bool order_decided = true;    // so is the order of the picks
};

// Non-finite logits (dsk_moe.h): the expert leaves the selection (s' = -inf whatever the bias),
// counts 0 in the softmax denominator, and weighs 0 when picked.
inline GateRow ref_gate_row(const dsk_moe_gate_config& c, const double* logits, const float* bias,
                            double rel = 1e-5) {
  const int64_t e_count = c.num_experts, k = c.top_k, g_count = c.n_group;
  const bool bf16 = c.score_dtype == DSK_DTYPE_BF16;
  std::vector<double> s(sz(e_count), 0.0);
  std::vector<Cand> sp(sz(e_count));
  std::vector<char> near_mid(sz(e_count), 0);
  // 1. scores
  double mx = -kInf;
  for (int64_t i = 0; i < e_count; ++i) {
    if (std::isfinite(logits[i])) mx = std::max(mx, logits[i]);
  }
  double denom = 0;
  if (c.score_func == DSK_MOE_SCORE_SOFTMAX) {
    for (int64_t i = 0; i < e_count; ++i) {
      if (std::isfinite(logits[i])) denom += std::exp(logits[i] - mx);
    }
  }
  for (int64_t i = 0; i < e_count; ++i) {
    const double l = logits[i];
    const bool fin = std::isfinite(l);
    double v = 0;
    if (c.score_func == DSK_MOE_SCORE_SOFTMAX) {
      v = fin ? std::exp(l - mx) / denom : 0.0;
    } else if (c.score_func == DSK_MOE_SCORE_SIGMOID) {
      v = fin ? 1.0 / (1.0 + std::exp(-l)) : 0.0;
      if (bf16) v = bf16_round(v);
    } else {
      v = fin ? l : -kInf;
      if (bf16 && fin) v = bf16_round(v);
    }
    s[sz(i)] = v;
    const double b = bias ? static_cast<double>(bias[i]) : 0.0;
    Cand& cd = sp[sz(i)];
    if (fin && std::isfinite(v + b)) {
      cd.value = v + b;
      cd.mag = std::fabs(v) + std::fabs(b);
    } else {
      cd.value = -kInf;
    }
    cd.key = {fin ? l : -kInf, b, 0.0, 0.0};
    // With bf16 scores the rounded score is the identity (logits that round alike tie exactly).
    if (bf16 && fin && c.score_func != DSK_MOE_SCORE_SOFTMAX) cd.key = {v, b, 0.0, 0.0};
    if (bf16 && fin && c.score_func == DSK_MOE_SCORE_SIGMOID) {
      // An f32 sigmoid within a few f32 ulps of a bf16 rounding midpoint may round the other way
      // in the library (its exp is not std::exp).
      const uint32_t low =
          mla_test::f32_bits(static_cast<float>(1.0 / (1.0 + std::exp(-l)))) & 0xFFFFu;
      near_mid[sz(i)] = low >= 0x8000u - 4 && low <= 0x8000u + 4;
    }
  }
  GateRow out;
  int64_t finite = 0;
  for (const Cand& cd : sp) finite += std::isfinite(cd.value) ? 1 : 0;
  if (finite == 0) out.flags |= DSK_MOE_ROW_NO_FINITE;
  // 3. groups
  auto better = [](const Cand& a, int64_t ia, const Cand& b, int64_t ib) {
    if (a.value != b.value) return a.value > b.value;
    return ia < ib;
  };
  if (g_count > 1) {
    const int64_t per = e_count / g_count;
    bool top2 = c.group_rule == DSK_MOE_GROUP_TOP2SUM ||
                (c.group_rule == DSK_MOE_GROUP_AUTO && bias != nullptr);
    std::vector<Cand> gs(sz(g_count));
    for (int64_t g = 0; g < g_count; ++g) {
      // better() is a strict total order (ties by index), so partial sorts are deterministic.
      std::vector<int64_t> order(sz(per));
      std::iota(order.begin(), order.end(), g * per);
      std::partial_sort(order.begin(), order.begin() + std::min<int64_t>(per, 2), order.end(),
                        [&](int64_t a, int64_t b) { return better(sp[sz(a)], a, sp[sz(b)], b); });
      const Cand& first = sp[sz(order[0])];
      Cand& gc = gs[sz(g)];
      if (!top2) {
        gc.value = first.value;
        gc.mag = first.mag;
        gc.key = first.key;
      } else {
        const Cand& second = sp[sz(order[1])];
        gc.value = first.value + second.value;  // -inf when either is
        gc.mag = first.mag + second.mag;
        gc.key = {first.key[0], first.key[1], second.key[0], second.key[1]};
      }
    }
    std::vector<int64_t> gorder(sz(g_count));
    std::iota(gorder.begin(), gorder.end(), 0);
    std::sort(gorder.begin(), gorder.end(),
              [&](int64_t a, int64_t b) { return better(gs[sz(a)], a, gs[sz(b)], b); });
    const int64_t tg = c.topk_group;
    if (tg < g_count && !decided(gs[sz(gorder[sz(tg - 1)])], gs[sz(gorder[sz(tg)])], rel)) {
      out.set_decided = false;
    }
    std::vector<char> keep(sz(g_count), 0);
    for (int64_t i = 0; i < tg; ++i) keep[sz(gorder[sz(i)])] = 1;
    for (int64_t i = 0; i < e_count; ++i) {
      if (!keep[sz(i / per)]) sp[sz(i)].value = -kInf;
    }
  }
  // 4. top-k
  std::vector<int64_t> order(sz(e_count));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + std::min(e_count, k + 1), order.end(),
                    [&](int64_t a, int64_t b) { return better(sp[sz(a)], a, sp[sz(b)], b); });
  int64_t finite_kept = 0;
  for (const Cand& cd : sp) finite_kept += std::isfinite(cd.value) ? 1 : 0;
  if (finite_kept < k) out.flags |= DSK_MOE_ROW_SHORT;
  if (k < e_count && !decided(sp[sz(order[sz(k - 1)])], sp[sz(order[sz(k)])], rel)) {
    out.set_decided = false;
  }
  for (int64_t j = 0; j + 1 < k; ++j) {
    if (!decided(sp[sz(order[sz(j)])], sp[sz(order[sz(j + 1)])], rel)) out.order_decided = false;
  }
  for (int64_t j = 0; j <= k && j < e_count; ++j) {
    if (near_mid[sz(order[sz(j)])]) out.set_decided = false;
  }
  if (!out.set_decided) out.order_decided = false;
  // 5. weights
  out.ids.assign(order.begin(), order.begin() + k);
  out.weights.resize(sz(k));
  for (int64_t j = 0; j < k; ++j) {
    const int64_t id = out.ids[sz(j)];
    out.weights[sz(j)] = std::isfinite(sp[sz(id)].value) ? s[sz(id)] : 0.0;
  }
  if (c.renormalize) {
    double sum = 0;
    for (double w : out.weights) sum += w;
    if (bf16) sum = bf16_round(sum);
    sum += 1e-20;
    for (double& w : out.weights) {
      w /= sum;
      if (bf16) w = bf16_round(w);
    }
  }
  for (double& w : out.weights) {
    w *= static_cast<double>(c.routed_scaling_factor);
    if (bf16) w = bf16_round(w);
  }
  return out;
}

// ---- running the gate on host tensors ----

// The library's gate output for host logits.
struct GateOut {
  Host ids, weights, flags;
  std::vector<uint8_t> flag_values() const {
    const auto* p = static_cast<const uint8_t*>(flags.data());
    return std::vector<uint8_t>(p, p + flags.size());
  }
};

inline GateOut make_gate_out(int64_t t, int64_t k, int32_t ids_dtype = DSK_DTYPE_INT32) {
  GateOut o{Host({t, k}, ids_dtype), Host({t, k}, DSK_DTYPE_F32), Host({t}, DSK_DTYPE_UINT8)};
  o.ids.fill_bytes(0xA5);
  o.weights.fill_bytes(0xA5);
  o.flags.fill_bytes(0xA5);
  return o;
}

// Compares the library's rows against the reference. Rows whose selection the reference cannot
// decide robustly (near ties in f32) are counted in *skipped_set; their ids are only checked to be
// distinct and in range. Weights: within `wrel` relative (plus 1e-30 absolute for zeros).
struct GateCompare {
  int64_t rows = 0, skipped_set = 0, skipped_order = 0, bad_rows = 0;
};

inline GateCompare compare_gate(const dsk_moe_gate_config& c, const std::vector<double>& logits,
                                const float* bias, const GateOut& got, double wrel = 1e-6,
                                bool check_flags = true) {
  const int64_t e = c.num_experts, k = c.top_k;
  const int64_t t_count = static_cast<int64_t>(logits.size()) / e;
  GateCompare r;
  r.rows = t_count;
  const std::vector<uint8_t> flags = got.flag_values();
  for (int64_t t = 0; t < t_count; ++t) {
    const GateRow ref = ref_gate_row(c, logits.data() + t * e, bias);
    std::vector<int64_t> ids(sz(k));
    std::vector<double> w(sz(k));
    bool ok = true;
    std::vector<char> seen(sz(e), 0);
    for (int64_t j = 0; j < k; ++j) {
      ids[sz(j)] = static_cast<int64_t>(got.ids.get(t * k + j));
      w[sz(j)] = got.weights.get(t * k + j);
      if (ids[sz(j)] < 0 || ids[sz(j)] >= e || seen[sz(ids[sz(j)])]) {
        ok = false;
      } else {
        seen[sz(ids[sz(j)])] = 1;
      }
    }
    std::string why = ok ? "" : "ids out of range or repeated";
    if (ok && !ref.set_decided) {
      ++r.skipped_set;
    } else if (ok) {
      if (!ref.order_decided) ++r.skipped_order;
      // Compare per id (the set), and the order when it is decided.
      for (int64_t j = 0; j < k && ok; ++j) {
        const auto it = std::find(ref.ids.begin(), ref.ids.end(), ids[sz(j)]);
        if (it == ref.ids.end()) {
          ok = false;
          why = "id " + std::to_string(ids[sz(j)]) + " not in the reference set";
          break;
        }
        const double want = ref.weights[sz(it - ref.ids.begin())];
        if (!(std::fabs(w[sz(j)] - want) <= wrel * std::fabs(want) + 1e-30)) {
          ok = false;
          why = "weight of id " + std::to_string(ids[sz(j)]) + " is " + std::to_string(w[sz(j)]) +
                ", expected " + std::to_string(want);
        }
      }
      if (ok && ref.order_decided && ids != ref.ids) {
        ok = false;
        why = "pick order differs";
      }
      // (NO_FINITE rows carry SHORT too: no finite candidate is fewer than k.)
      if (ok && check_flags && flags[sz(t)] != ref.flags) {
        ok = false;
        why =
            "row flags " + std::to_string(flags[sz(t)]) + ", expected " + std::to_string(ref.flags);
      }
    }
    if (!ok && r.bad_rows++ < 3) {
      std::string g = "got", want = "want";
      for (int64_t j = 0; j < k; ++j) {
        g += " " + std::to_string(ids[sz(j)]) + ":" + std::to_string(w[sz(j)]);
        want += " " + std::to_string(ref.ids[sz(j)]) + ":" + std::to_string(ref.weights[sz(j)]);
      }
      FAIL_CHECK(config_label(c) << " row " << t << ": " << why << "\n  " << g << "\n  " << want);
    }
  }
  CHECK_MESSAGE(r.bad_rows == 0, config_label(c), ": ", r.bad_rows, " of ", t_count,
                " rows differ from the reference");
  return r;
}

// Runs dsk_moe_gate on host tensors and compares with the reference.
inline GateCompare run_and_compare(dsk_context* ctx, const dsk_moe_gate_config& c,
                                   const DLTensor* logits_dl, const std::vector<double>& logits,
                                   const Host* bias, int32_t ids_dtype = DSK_DTYPE_INT32,
                                   double wrel = 1e-6) {
  const int64_t t = static_cast<int64_t>(logits.size()) / c.num_experts;
  GateOut out = make_gate_out(t, c.top_k, ids_dtype);
  Host* b = const_cast<Host*>(bias);
  MOE_REQUIRE_OK(dsk_moe_gate(ctx, &c, logits_dl, b ? b->dl() : nullptr, out.ids.dl(),
                              out.weights.dl(), out.flags.dl()));
  const float* bp = bias ? static_cast<const float*>(bias->data()) : nullptr;
  return compare_gate(c, logits, bp, out, wrel);
}

// Normal(0, sd) logits rounded to `dtype` (values as stored).
inline Host random_logits(int64_t t, int64_t e, int32_t dtype, uint64_t seed, double sd = 1.0) {
  Host h({t, e}, dtype);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, sd);
  for (int64_t i = 0; i < h.size(); ++i) h.set(i, d(rng));
  return h;
}

inline Host random_bias(int64_t e, uint64_t seed, double range) {
  Host h({e}, DSK_DTYPE_F32);
  h.fill_random(seed, -range, range);
  return h;
}

// ---- dispatch reference ----

struct Dispatch {
  std::vector<int64_t> counts, offsets, sorted_rows, block_experts, dest;
};

inline int64_t capacity_of(int64_t t, int64_t k, int64_t e, int64_t block) {
  return t * k + std::min(e, t * k) * (block - 1);
}

// ids row-major [T, k]; local experts e = id - begin in [0, E).
inline Dispatch ref_dispatch(const std::vector<int64_t>& ids, int64_t t, int64_t k, int64_t e,
                             int64_t begin, int64_t block, int64_t capacity) {
  Dispatch d;
  d.counts.assign(sz(e), 0);
  for (int64_t id : ids) {
    const int64_t l = id - begin;
    if (l >= 0 && l < e) ++d.counts[sz(l)];
  }
  d.offsets.assign(sz(e + 1), 0);
  for (int64_t i = 0; i < e; ++i) {
    d.offsets[sz(i + 1)] = d.offsets[sz(i)] + (d.counts[sz(i)] + block - 1) / block * block;
  }
  d.sorted_rows.assign(sz(capacity), t * k);
  d.dest.assign(sz(t * k), -1);
  std::vector<int64_t> next(d.offsets.begin(), d.offsets.end() - 1);
  for (int64_t a = 0; a < t * k; ++a) {
    const int64_t l = ids[sz(a)] - begin;
    if (l < 0 || l >= e) continue;
    const int64_t row = next[sz(l)]++;
    d.sorted_rows[sz(row)] = a;
    d.dest[sz(a)] = row;
  }
  const int64_t blocks = (capacity + block - 1) / block;
  d.block_experts.assign(sz(blocks), -1);
  for (int64_t i = 0; i < e; ++i) {
    for (int64_t r = d.offsets[sz(i)]; r < d.offsets[sz(i + 1)]; r += block) {
      d.block_experts[sz(r / block)] = i;
    }
  }
  return d;
}

inline std::vector<int64_t> int_values(const Host& h) {
  std::vector<int64_t> v(sz(h.size()));
  for (int64_t i = 0; i < h.size(); ++i) v[sz(i)] = static_cast<int64_t>(h.get(i));
  return v;
}

// ---- fp8 e4m3fn, written from the format ----

// f32 -> e4m3fn code, round to nearest even, saturating to +-448 (NaN -> 0x7F).
inline uint8_t e4m3_code(float f) {
  if (std::isnan(f)) return 0x7F;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  double a = std::fabs(static_cast<double>(f));
  if (a >= 448.0) return static_cast<uint8_t>(sign | 0x7E);
  // Subnormals: multiples of 2^-9 below 2^-6.
  if (a < std::ldexp(1.0, -6)) {
    const double q = std::nearbyint(a * 512.0);  // ties to even (default rounding mode)
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));  // q == 8 is 2^-6: code 0x08
  }
  int ex;
  std::frexp(a, &ex);                                     // a = m * 2^ex, m in [0.5, 1)
  const int e = ex - 1;                                   // a in [2^e, 2^(e+1))
  const double q = std::nearbyint(std::ldexp(a, 3 - e));  // 8 .. 16 (mantissa with hidden bit)
  int eb = e + 7;
  int m = static_cast<int>(q) - 8;
  if (m == 8) {
    m = 0;
    ++eb;
  }
  if (eb > 15 || (eb == 15 && m > 6)) return static_cast<uint8_t>(sign | 0x7E);
  return static_cast<uint8_t>(sign | (eb << 3) | m);
}

// Quantizes rows of n values per 1 x 128 tile as dsk_quant_fp8_act documents (no POW2 flag):
// scale = f32(amax / 448), q = e4m3(f32(x / scale)); a zero tile gets scale 0 and q 0. Returns the
// dequantized values q * scale (rounded to f32) and the scales.
inline std::vector<double> fp8_act_roundtrip(const std::vector<double>& x, int64_t rows,
                                             int64_t cols, std::vector<float>* scales = nullptr) {
  const int64_t tiles = (cols + 127) / 128;
  std::vector<double> out(x.size());
  if (scales) scales->assign(sz(rows * tiles), 0.f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t c0 = tile * 128, c1 = std::min(cols, c0 + 128);
      float amax = 0;
      for (int64_t c = c0; c < c1; ++c) {
        amax = std::max(amax, std::fabs(static_cast<float>(x[sz(r * cols + c)])));
      }
      const float scale = amax / 448.0f;
      if (scales) (*scales)[sz(r * tiles + tile)] = scale;
      for (int64_t c = c0; c < c1; ++c) {
        double v = 0;
        if (amax > 0) {
          const float q = static_cast<float>(x[sz(r * cols + c)]) / scale;
          v = static_cast<double>(static_cast<float>(mla_test::e4m3_value(e4m3_code(q)) * scale));
        }
        out[sz(r * cols + c)] = v;
      }
    }
  }
  return out;
}

// ---- the SwiGLU expert reference ----

inline double silu(double v) { return v / (1.0 + std::exp(-v)); }

// y[r, :] = expert(x[r, :]) for rows of x (row-major [rows, d]) with w1, w3 [i, d] and w2 [d, i]
// (row-major, already dequantized). Intermediates are rounded to `act_dtype` as dsk_moe_experts
// documents (gate and up outputs, their SwiGLU product); with `quant_x` / `quant_p` the input rows
// / the product go through the 1 x 128 fp8 round trip first (fp8 weights).
inline std::vector<double> ref_expert(const std::vector<double>& x, int64_t rows, int64_t d,
                                      int64_t inter, const double* w1, const double* w3,
                                      const double* w2, int32_t act_dtype, bool quant_x,
                                      bool quant_p) {
  std::vector<double> xin = quant_x ? fp8_act_roundtrip(x, rows, d) : x;
  std::vector<double> p(sz(rows * inter));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < inter; ++i) {
      double g = 0, u = 0;
      for (int64_t c = 0; c < d; ++c) {
        g += xin[sz(r * d + c)] * w1[i * d + c];
        u += xin[sz(r * d + c)] * w3[i * d + c];
      }
      g = mla_test::rounded(g, act_dtype);
      u = mla_test::rounded(u, act_dtype);
      p[sz(r * inter + i)] = mla_test::rounded(silu(g) * u, act_dtype);
    }
  }
  if (quant_p) p = fp8_act_roundtrip(p, rows, inter);
  std::vector<double> y(sz(rows * d));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < d; ++c) {
      double acc = 0;
      for (int64_t i = 0; i < inter; ++i) acc += p[sz(r * inter + i)] * w2[c * inter + i];
      y[sz(r * d + c)] = acc;
    }
  }
  return y;
}

// ---- comparisons ----

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// |got - want| <= atol_frac * max|want| + rtol * |want| for every element.
inline void check_scaled(const std::vector<double>& got, const std::vector<double>& want,
                         double atol_frac, double rtol, const std::string& what) {
  mla_test::check_close(got, want, atol_frac * max_abs(want), rtol, what);
}

}  // namespace moe_test

#endif  // DSK_TESTS_CAPI_MOE_TEST_UTIL_H_
