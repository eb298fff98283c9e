// Tests of the CPU gate entry (dsk::cpu::moe_gate, lib/cpu/moe_gate.cpp) on hand-worked examples,
// against a naive selection (k rounds of argmax over an explicit group mask) written here, and of
// the AVX-512 score step against the scalar definition (lib/common/moe_gate_row.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/convert.h"
#include "common/moe_gate_row.h"
#include "core/backend_iface.h"
#include "cpu/backend_guard.h"
#include "cpu/moe_gate_score.h"
#include "cpu/ops.h"
#include "dsk/dsk_moe.h"

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

// bf16 round to nearest even, written independently of lib/common/convert.h (finite inputs).
float bf16(float v) {
  const uint32_t u = bits_of(v);
  const uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  float f;
  std::memcpy(&f, &r, sizeof(f));
  return f;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct Config {
  int32_t e = 4;
  int32_t k = 2;
  int32_t groups = 1;
  int32_t topk_group = 1;
  int32_t score = DSK_MOE_SCORE_SOFTMAX;
  int32_t top2sum = 0;
  int32_t renorm = 0;
  int32_t bf16_mode = 0;
  float scale = 1.0f;

  dsk_moe_gate_params params() const {
    dsk_moe_gate_params p{};
    p.num_experts = e;
    p.top_k = k;
    p.n_group = groups;
    p.topk_group = topk_group;
    p.score_func = score;
    p.top2sum = top2sum;
    p.renormalize = renorm;
    p.score_bf16 = bf16_mode;
    p.scale = scale;
    return p;
  }
};

Config cfg(int32_t e, int32_t k, int32_t g, int32_t tg, int32_t score, int32_t top2, int32_t renorm,
           float scale) {
  return Config{e, k, g, tg, score, top2, renorm, /*bf16_mode=*/0, scale};
}

// DeepSeek's shipped configs.
Config v3_config() { return cfg(256, 8, 8, 4, DSK_MOE_SCORE_SIGMOID, 1, 1, 2.5f); }
Config v2_config() { return cfg(160, 6, 8, 3, DSK_MOE_SCORE_SOFTMAX, 0, 0, 16.0f); }
Config v2_lite_config() { return cfg(64, 6, 1, 1, DSK_MOE_SCORE_SOFTMAX, 0, 0, 1.0f); }

// Host DLTensor over caller-owned memory with explicit strides.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  DLTensor t{};
  HostTensor(void* data, DLDataType dt, std::vector<int64_t> s, std::vector<int64_t> st)
      : shape(std::move(s)), strides(std::move(st)) {
    t.data = data;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = dt;
    t.shape = shape.data();
    t.strides = strides.data();
    t.byte_offset = 0;
  }
  const DLTensor* dl() const { return &t; }
};

constexpr DLDataType kF32{kDLFloat, 32, 1};
constexpr DLDataType kF16{kDLFloat, 16, 1};
constexpr DLDataType kBF16{kDLBfloat, 16, 1};
constexpr DLDataType kI32{kDLInt, 32, 1};
constexpr DLDataType kI64{kDLInt, 64, 1};
constexpr DLDataType kU8{kDLUInt, 8, 1};

struct Result {
  std::vector<int64_t> ids;
  std::vector<float> weights;
  std::vector<uint8_t> flags;
};

void require_ok(dsk_status st) {
  if (st != DSK_OK) FAIL("moe_gate failed: " << dsk::cpu::last_error());
}

// Runs the entry on row-major f32 logits [T, E] (bias may be empty), int32 ids.
Result run(const Config& c, const std::vector<float>& logits, const std::vector<float>& bias = {},
           bool int64_ids = false) {
  const int64_t t = static_cast<int64_t>(logits.size()) / c.e;
  std::vector<float> lg = logits;
  std::vector<float> b = bias;
  Result r;
  std::vector<int32_t> ids32(static_cast<size_t>(t * c.k), -7);
  std::vector<int64_t> ids64(static_cast<size_t>(t * c.k), -7);
  r.weights.assign(static_cast<size_t>(t * c.k), -7.0f);
  r.flags.assign(static_cast<size_t>(t), 0xEE);
  HostTensor lt(lg.data(), kF32, {t, c.e}, {c.e, 1});
  HostTensor bt(b.data(), kF32, {c.e}, {1});
  HostTensor it(int64_ids ? static_cast<void*>(ids64.data()) : static_cast<void*>(ids32.data()),
                int64_ids ? kI64 : kI32, {t, c.k}, {c.k, 1});
  HostTensor wt(r.weights.data(), kF32, {t, c.k}, {c.k, 1});
  HostTensor ft(r.flags.data(), kU8, {t}, {1});
  const dsk_moe_gate_params p = c.params();
  dsk_exec ex{};
  require_ok(dsk::cpu::moe_gate(&ex, &p, lt.dl(), b.empty() ? nullptr : bt.dl(), it.dl(), wt.dl(),
                                ft.dl()));
  if (int64_ids) {
    r.ids = ids64;
  } else {
    r.ids.assign(ids32.begin(), ids32.end());
  }
  return r;
}

void check_ids(const Result& r, const std::vector<int64_t>& want) {
  REQUIRE(r.ids.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK_MESSAGE(r.ids[i] == want[i], "slot " << i);
}

void check_weights(const Result& r, const std::vector<double>& want, double rel = 1e-6) {
  REQUIRE(r.weights.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK_MESSAGE(std::fabs(r.weights[i] - want[i]) <= rel * std::fabs(want[i]),
                  "slot " << i << ": got " << r.weights[i] << ", want " << want[i]);
  }
}

// ---- An independent-in-structure selection: explicit group mask, k rounds of argmax ----------
// Scores come from the shared header (their bits are what both backends must share); selection,
// groups and weights are redone naively here.
Result naive(const Config& c, const std::vector<float>& logits, const std::vector<float>& bias) {
  const int64_t t_count = static_cast<int64_t>(logits.size()) / c.e;
  Result r;
  dsk::cpu::MoeGateScoreArgs a{c.e, c.score, c.bf16_mode, bias.empty() ? nullptr : bias.data()};
  const int32_t gs = c.e / c.groups;
  for (int64_t t = 0; t < t_count; ++t) {
    std::vector<float> x(logits.begin() + t * c.e, logits.begin() + (t + 1) * c.e);
    std::vector<float> s(static_cast<size_t>(c.e));
    std::vector<uint32_t> key(static_cast<size_t>(c.e));
    dsk::cpu::moe_gate_score_row_scalar(a, x.data(), x.data(), s.data(), key.data());
    std::vector<float> sp(static_cast<size_t>(c.e));
    bool any = false;
    for (int32_t e = 0; e < c.e; ++e) {
      sp[e] = dsk::moe::gate_key_value(key[e]);
      any = any || std::isfinite(sp[e]);
    }
    if (c.groups > 1 && c.topk_group < c.groups) {
      std::vector<float> gscore(static_cast<size_t>(c.groups));
      for (int32_t g = 0; g < c.groups; ++g) {
        std::vector<float> m(sp.begin() + g * gs, sp.begin() + (g + 1) * gs);
        std::sort(m.begin(), m.end(), [](float u, float v) { return u > v; });
        gscore[g] = c.top2sum ? m[0] + m[1] : m[0];
      }
      std::vector<bool> keep(static_cast<size_t>(c.groups), false);
      for (int32_t round = 0; round < c.topk_group; ++round) {
        int32_t best = -1;
        for (int32_t g = 0; g < c.groups; ++g) {
          if (keep[g]) continue;
          if (best < 0 || gscore[g] > gscore[best]) best = g;
        }
        keep[best] = true;
      }
      for (int32_t e = 0; e < c.e; ++e) {
        if (!keep[e / gs]) sp[e] = -kInf;
      }
    }
    std::vector<bool> taken(static_cast<size_t>(c.e), false);
    std::vector<float> w;
    double sum = 0;
    float fsum = 0.0f;
    int finite = 0;
    for (int32_t j = 0; j < c.k; ++j) {
      int32_t best = -1;
      for (int32_t e = 0; e < c.e; ++e) {
        if (taken[e]) continue;
        if (best < 0 || sp[e] > sp[best]) best = e;
      }
      taken[best] = true;
      r.ids.push_back(best);
      const bool fin = std::isfinite(sp[best]);
      finite += fin ? 1 : 0;
      w.push_back(fin ? s[best] : 0.0f);
      fsum += w.back();
      sum += w.back();
    }
    (void)sum;
    for (int32_t j = 0; j < c.k; ++j) {
      float v = w[j];
      if (c.renorm) {
        const float d =
            (c.bf16_mode && c.score != DSK_MOE_SCORE_SOFTMAX ? bf16(fsum) : fsum) + 1e-20f;
        v = v / d;
        if (c.bf16_mode && c.score != DSK_MOE_SCORE_SOFTMAX) v = bf16(v);
      }
      v = v * c.scale;
      if (c.bf16_mode) v = bf16(v);
      r.weights.push_back(v);
    }
    r.flags.push_back(static_cast<uint8_t>((any ? 0 : DSK_MOE_ROW_NO_FINITE) |
                                           (finite < c.k ? DSK_MOE_ROW_SHORT : 0)));
  }
  return r;
}

void check_same(const Result& got, const Result& want, const std::string& what) {
  REQUIRE(got.ids.size() == want.ids.size());
  size_t bad = 0;
  for (size_t i = 0; i < want.ids.size(); ++i) {
    if (got.ids[i] != want.ids[i] || bits_of(got.weights[i]) != bits_of(want.weights[i])) {
      if (bad++ < 5) {
        FAIL_CHECK(what << ": slot " << i << ": id " << got.ids[i] << " vs " << want.ids[i]
                        << ", weight " << got.weights[i] << " vs " << want.weights[i]);
      }
    }
  }
  for (size_t t = 0; t < want.flags.size(); ++t) {
    CHECK_MESSAGE(got.flags[t] == want.flags[t], what << ": flags of row " << t);
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_SUITE("moe_gate") {
  TEST_CASE("moe gate: softmax top-k, descending, weights are the softmax probabilities") {
    Config c;
    c.e = 4;
    c.k = 2;
    const std::vector<float> lg = {1.0f, 2.0f, 3.0f, 0.0f};
    const Result r = run(c, lg);
    check_ids(r, {2, 1});
    const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + 1.0;
    check_weights(r, {std::exp(3.0) / z, std::exp(2.0) / z});
    CHECK(r.flags[0] == 0);
    // Scale and renormalization: w / (w0 + w1 + 1e-20) * 16.
    c.scale = 16.0f;
    c.renorm = 1;
    const Result rn = run(c, lg);
    const double s = std::exp(3.0) + std::exp(2.0);
    check_weights(rn, {16 * std::exp(3.0) / s, 16 * std::exp(2.0) / s});
  }

  TEST_CASE("moe gate: sigmoid with a bias: the bias selects, the weights stay unbiased") {
    Config c;
    c.e = 4;
    c.k = 2;
    c.score = DSK_MOE_SCORE_SIGMOID;
    const std::vector<float> lg = {0.0f, 1.0f, 2.0f, -1.0f};
    const Result plain = run(c, lg);
    check_ids(plain, {2, 1});
    check_weights(plain, {sigmoid(2), sigmoid(1)});
    // Bias 1 on expert 3: s' = 0.269 + 1 = 1.269 beats 0.881, so it comes first; its weight is
    // sigmoid(-1), not 1.269.
    const Result biased = run(c, lg, {0.0f, 0.0f, 0.0f, 1.0f});
    check_ids(biased, {3, 2});
    check_weights(biased, {sigmoid(-1), sigmoid(2)});
    // Renormalized over the picks and scaled (DeepSeek-V3: 2.5).
    c.renorm = 1;
    c.scale = 2.5f;
    const Result rn = run(c, lg, {0.0f, 0.0f, 0.0f, 1.0f});
    const double sum = sigmoid(-1) + sigmoid(2);
    check_weights(rn, {2.5 * sigmoid(-1) / sum, 2.5 * sigmoid(2) / sum});
  }

  TEST_CASE("moe gate: score none takes the logits as scores") {
    Config c;
    c.e = 5;
    c.k = 3;
    c.score = DSK_MOE_SCORE_NONE;
    c.scale = 2.0f;
    const Result r = run(c, {-1.0f, -3.0f, 0.5f, -0.25f, -2.0f});
    check_ids(r, {2, 3, 0});
    check_weights(r, {1.0, -0.5, -2.0});
  }

  TEST_CASE("moe gate: group-limited routing with the max and the top-2 sum rules") {
    // 8 experts in 4 groups of 2, keep 2 groups, pick 2.
    //   group 0: 0.9, 0.0   max 0.9  top2 0.9
    //   group 1: 0.5, 0.5   max 0.5  top2 1.0
    //   group 2: 0.6, 0.45  max 0.6  top2 1.05
    //   group 3: 0.1, 0.2   max 0.2  top2 0.3
    Config c;
    c.e = 8;
    c.k = 2;
    c.groups = 4;
    c.topk_group = 2;
    c.score = DSK_MOE_SCORE_NONE;
    const std::vector<float> lg = {0.9f, 0.0f, 0.5f, 0.5f, 0.6f, 0.45f, 0.1f, 0.2f};
    // MAX keeps groups 0 and 2: experts 0 (0.9) and 4 (0.6).
    check_ids(run(c, lg), {0, 4});
    // TOP2SUM keeps groups 2 and 1: experts 4 (0.6) then 2 (0.5, lower index than 3).
    c.top2sum = 1;
    check_ids(run(c, lg), {4, 2});
    // Without a group limit: 0.9, 0.6.
    c.groups = 1;
    c.topk_group = 1;
    c.top2sum = 0;
    check_ids(run(c, lg), {0, 4});
  }

  TEST_CASE("moe gate: a repeated maximum counts twice in the top-2 sum; equal groups by index") {
    // Groups of 3: g0 = {0.5, 0.5, 0.1} -> 1.0; g1 = {0.7, 0.2, 0.2} -> 0.9; g2 = {0.5, 0.1, 0.5}
    // -> 1.0 (ties g0, which wins by index).
    Config c;
    c.e = 9;
    c.k = 3;
    c.groups = 3;
    c.topk_group = 1;
    c.top2sum = 1;
    c.score = DSK_MOE_SCORE_NONE;
    const std::vector<float> lg = {0.5f, 0.5f, 0.1f, 0.7f, 0.2f, 0.2f, 0.5f, 0.1f, 0.5f};
    check_ids(run(c, lg), {0, 1, 2});
    c.topk_group = 2;
    check_ids(run(c, lg), {0, 1, 6});
  }

  TEST_CASE("moe gate: ties go to the lower index, -0 ties +0, nothing is picked twice") {
    Config c;
    c.e = 6;
    c.k = 4;
    c.score = DSK_MOE_SCORE_NONE;
    check_ids(run(c, {1.0f, 2.0f, 1.0f, 2.0f, 0.0f, 1.0f}), {1, 3, 0, 2});
    check_ids(run(c, {0.0f, -1.0f, -0.0f, 0.0f, -0.0f, -2.0f}), {0, 2, 3, 4});
    c.k = 6;
    check_ids(run(c, {3.0f, 3.0f, 3.0f, 3.0f, 3.0f, 3.0f}), {0, 1, 2, 3, 4, 5});
  }

  TEST_CASE("moe gate: non-finite logits never compete; an all-bad row picks 0..k-1 at weight 0") {
    Config c;
    c.e = 6;
    c.k = 3;
    c.score = DSK_MOE_SCORE_SIGMOID;
    c.renorm = 1;
    // NaN, +inf and -inf count as -inf: only experts 1 and 4 are finite candidates; the third
    // pick is the lowest free index (0) with weight 0, and the row is SHORT.
    const std::vector<float> row = {kNaN, -5.0f, kInf, -kInf, -6.0f, kNaN};
    // A bias cannot revive them either.
    const std::vector<float> bias = {10.0f, 0.0f, 10.0f, 10.0f, 0.0f, 10.0f};
    for (const bool with_bias : {false, true}) {
      const Result r = run(c, row, with_bias ? bias : std::vector<float>{});
      check_ids(r, {1, 4, 0});
      const double sum = sigmoid(-5) + sigmoid(-6);
      check_weights(r, {sigmoid(-5) / sum, sigmoid(-6) / sum, 0.0});
      CHECK(r.weights[2] == 0.0f);
      CHECK(r.flags[0] == DSK_MOE_ROW_SHORT);
    }
    for (const int32_t score : {DSK_MOE_SCORE_SOFTMAX, DSK_MOE_SCORE_SIGMOID, DSK_MOE_SCORE_NONE}) {
      c.score = score;
      const Result r =
          run(c, {kNaN, kInf, -kInf, kNaN, -kNaN, kInf, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, bias);
      // Row 1: the bias (10 on experts 0, 2, 3, 5) dominates: 5, 3, 2.
      check_ids(r, {0, 1, 2, 5, 3, 2});
      for (int j = 0; j < 3; ++j) CHECK(r.weights[j] == 0.0f);
      CHECK(r.flags[0] == (DSK_MOE_ROW_NO_FINITE | DSK_MOE_ROW_SHORT));
      CHECK(r.flags[1] == 0);
    }
  }

  TEST_CASE("moe gate: softmax over finite logits only, large logits stay finite") {
    Config c;
    c.e = 4;
    c.k = 2;
    const Result r = run(c, {1000.0f, kNaN, 999.0f, -kInf});
    check_ids(r, {0, 2});
    const double z = 1.0 + std::exp(-1.0);
    check_weights(r, {1.0 / z, std::exp(-1.0) / z});
    CHECK(r.flags[0] == 0);
  }

  TEST_CASE("moe gate: masked groups and a non-finite biased score make a row SHORT") {
    // Groups of 2, keep 1; group 1 holds the only finite score, group 0 two NaNs.
    Config c;
    c.e = 4;
    c.k = 2;
    c.groups = 2;
    c.topk_group = 1;
    c.score = DSK_MOE_SCORE_NONE;
    const Result r = run(c, {kNaN, kNaN, 1.0f, kNaN});
    check_ids(r, {2, 0});
    check_weights(r, {1.0, 0.0});
    CHECK(r.flags[0] == DSK_MOE_ROW_SHORT);
    // s + bias overflowing to inf counts as -inf: expert 0 drops behind expert 1.
    c.groups = 1;
    const Result o = run(c, {3e38f, 1.0f, 0.0f, -1.0f}, {3e38f, 0.0f, 0.0f, 0.0f});
    check_ids(o, {1, 2});
    CHECK(o.flags[0] == 0);
  }

  TEST_CASE("moe gate: bf16 score dtype reproduces the reference's rounding points") {
    // Sigmoid, renormalize, scale 2.5 (worked by hand):
    //   s = bf16(sigmoid(2)) = bf16(0.880797) = 0.87890625, bf16(sigmoid(1)) = 0.73046875
    //   sum = 1.609375 (bf16 exact); 0.87890625 / 1.609375 = 0.546117 -> 0.546875,
    //   0.73046875 / 1.609375 = 0.453884 -> 0.453125; times 2.5: 1.3671875 and 1.1328125 (exact).
    Config c;
    c.e = 4;
    c.k = 2;
    c.score = DSK_MOE_SCORE_SIGMOID;
    c.renorm = 1;
    c.scale = 2.5f;
    c.bf16_mode = 1;
    const Result r = run(c, {0.0f, 1.0f, 2.0f, -1.0f});
    check_ids(r, {2, 1});
    CHECK(r.weights[0] == 1.3671875f);
    CHECK(r.weights[1] == 1.1328125f);
    // In f32 the same config gives 2.5 * 0.880797 / 1.611856 = 1.366...
    c.bf16_mode = 0;
    const Result f = run(c, {0.0f, 1.0f, 2.0f, -1.0f});
    const double sum = sigmoid(2) + sigmoid(1);
    check_weights(f, {2.5 * sigmoid(2) / sum, 2.5 * sigmoid(1) / sum});
    // Softmax in bf16 mode rounds only the final weight: softmax(1, 2, 3, 0) * 16.
    c.score = DSK_MOE_SCORE_SOFTMAX;
    c.renorm = 0;
    c.scale = 16.0f;
    c.bf16_mode = 1;
    const Result sm = run(c, {1.0f, 2.0f, 3.0f, 0.0f});
    const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + 1.0;
    CHECK(sm.weights[0] == bf16(static_cast<float>(16 * std::exp(3.0) / z)));
    CHECK(sm.weights[1] == bf16(static_cast<float>(16 * std::exp(2.0) / z)));
    // Score none in bf16 mode rounds the logits: 1.00390625 (bf16 spacing 2^-7 above 1) ties
    // 1.0 after rounding, so the lower index wins.
    c.score = DSK_MOE_SCORE_NONE;
    c.scale = 1.0f;
    c.k = 1;
    check_ids(run(c, {0.5f, 1.0f, 1.001f, 0.0f}), {1});
    c.bf16_mode = 0;
    check_ids(run(c, {0.5f, 1.0f, 1.001f, 0.0f}), {2});
  }

  TEST_CASE("moe gate: int64 ids, strided and narrow logits, strided outputs") {
    Config c;
    c.e = 6;
    c.k = 2;
    c.score = DSK_MOE_SCORE_SIGMOID;
    const std::vector<float> lg = {0.1f, 0.7f,  -0.3f, 0.5f, 0.9f, 0.0f,
                                   2.0f, -1.0f, 0.25f, 3.0f, 0.0f, 1.0f};
    const Result want = run(c, lg);
    check_ids(want, {4, 1, 3, 0});
    const Result r64 = run(c, lg, {}, true);
    CHECK(r64.ids == want.ids);
    CHECK(r64.weights == want.weights);

    // Logits stored column-major ([T, E] with strides {1, T}), ids [T, k] int64 with strides
    // {1, T}, weights with a row stride of 5, flags with stride 3.
    const int64_t t = 2;
    std::vector<float> colmajor(static_cast<size_t>(t * c.e));
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t e = 0; e < c.e; ++e) colmajor[e * t + i] = lg[i * c.e + e];
    }
    std::vector<int64_t> ids(4, -1);
    std::vector<float> w(10, -1.0f);
    std::vector<uint8_t> fl(6, 0xEE);
    HostTensor lt(colmajor.data(), kF32, {t, c.e}, {1, t});
    HostTensor it(ids.data(), kI64, {t, c.k}, {1, t});
    HostTensor wt(w.data(), kF32, {t, c.k}, {5, 1});
    HostTensor ft(fl.data(), kU8, {t}, {3});
    const dsk_moe_gate_params p = c.params();
    dsk_exec ex{};
    require_ok(dsk::cpu::moe_gate(&ex, &p, lt.dl(), nullptr, it.dl(), wt.dl(), ft.dl()));
    CHECK(ids == std::vector<int64_t>{4, 3, 1, 0});
    CHECK(w[0] == want.weights[0]);
    CHECK(w[1] == want.weights[1]);
    CHECK(w[5] == want.weights[2]);
    CHECK(w[6] == want.weights[3]);
    CHECK(w[2] == -1.0f);
    CHECK(fl[0] == 0);
    CHECK(fl[3] == 0);
    CHECK(fl[1] == 0xEE);

    // bf16 and f16 logits: exactly representable values give the f32 result.
    for (const DLDataType dt : {kBF16, kF16}) {
      std::vector<uint16_t> narrow(lg.size());
      for (size_t i = 0; i < lg.size(); ++i) {
        narrow[i] = dt.code == kDLBfloat ? dsk::f32_to_bf16(lg[i]) : dsk::f32_to_f16(lg[i]);
      }
      std::vector<float> rounded(lg.size());
      for (size_t i = 0; i < lg.size(); ++i) {
        rounded[i] =
            dt.code == kDLBfloat ? dsk::bf16_to_f32(narrow[i]) : dsk::f16_to_f32(narrow[i]);
      }
      const Result ref = run(c, rounded);
      std::vector<int32_t> ids32(4, -1);
      std::vector<float> w2(4, -1.0f);
      HostTensor nt(narrow.data(), dt, {t, c.e}, {c.e, 1});
      HostTensor i2(ids32.data(), kI32, {t, c.k}, {c.k, 1});
      HostTensor w2t(w2.data(), kF32, {t, c.k}, {c.k, 1});
      require_ok(dsk::cpu::moe_gate(&ex, &p, nt.dl(), nullptr, i2.dl(), w2t.dl(), nullptr));
      for (size_t i = 0; i < 4; ++i) {
        CHECK(ids32[i] == ref.ids[i]);
        CHECK(bits_of(w2[i]) == bits_of(ref.weights[i]));
      }
    }
  }

  TEST_CASE("moe gate: rejects configs the contract excludes") {
    Config c;
    c.e = 6;
    c.k = 4;
    c.groups = 3;
    c.topk_group = 1;  // capacity 2 < k
    std::vector<float> lg(6, 0.0f);
    std::vector<int32_t> ids(4);
    std::vector<float> w(4);
    HostTensor lt(lg.data(), kF32, {1, 6}, {6, 1});
    HostTensor it(ids.data(), kI32, {1, 4}, {4, 1});
    HostTensor wt(w.data(), kF32, {1, 4}, {4, 1});
    dsk_exec ex{};
    dsk_moe_gate_params p = c.params();
    CHECK(dsk::cpu::moe_gate(&ex, &p, lt.dl(), nullptr, it.dl(), wt.dl(), nullptr) ==
          DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::string(dsk::cpu::last_error()).find("invalid config") != std::string::npos);
    p.topk_group = 2;
    p.score_func = 7;
    CHECK(dsk::cpu::moe_gate(&ex, &p, lt.dl(), nullptr, it.dl(), wt.dl(), nullptr) ==
          DSK_ERR_INVALID_ARGUMENT);
  }

  TEST_CASE("moe gate: equals a naive selection on DeepSeek configs, random and tie-heavy") {
    struct Case {
      const char* name;
      Config c;
      bool bias;
    };
    const Case cases[] = {
        {"V2-Lite", v2_lite_config(), false},
        {"V2", v2_config(), false},
        {"V3", v3_config(), true},
        {"384/1", cfg(384, 8, 1, 1, DSK_MOE_SCORE_SIGMOID, 0, 1, 1.0f), true},
        {"256/16/8/16", cfg(256, 16, 16, 8, DSK_MOE_SCORE_SIGMOID, 1, 1, 2.5f), true},
        {"none 40/20/5", cfg(40, 5, 20, 5, DSK_MOE_SCORE_NONE, 1, 1, 1.5f), true},
        {"softmax 33/11/2", cfg(33, 4, 11, 2, DSK_MOE_SCORE_SOFTMAX, 0, 1, 1.0f), false},
        // 32 groups all kept (no group stage): the fast rows once ignored groups past 15.
        {"sigmoid 64/32/32", cfg(64, 6, 32, 32, DSK_MOE_SCORE_SIGMOID, 0, 1, 1.0f), true},
        {"softmax 64/32/32", cfg(64, 6, 32, 32, DSK_MOE_SCORE_SOFTMAX, 0, 0, 1.0f), false},
    };
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    for (const Case& cs : cases) {
      for (const int32_t bf16_mode : {0, 1}) {
        for (const bool ties : {false, true}) {
          Config c = cs.c;
          c.bf16_mode = bf16_mode;
          const int64_t t = 97;
          std::vector<float> lg(static_cast<size_t>(t * c.e));
          for (float& v : lg) {
            v = normal(rng);
            // Tie-heavy: a coarse grid (4 values per unit), so scores repeat within rows.
            if (ties) v = std::round(v * 4.0f) / 4.0f;
          }
          // A few special rows: all NaN, partly non-finite, all equal.
          for (int64_t e = 0; e < c.e; ++e) {
            lg[static_cast<size_t>(3 * c.e + e)] = kNaN;
            if (e % 3 == 0) lg[static_cast<size_t>(5 * c.e + e)] = e % 2 ? kInf : -kInf;
            lg[static_cast<size_t>(7 * c.e + e)] = 0.5f;
          }
          std::vector<float> bias;
          if (cs.bias) {
            bias.resize(static_cast<size_t>(c.e));
            for (float& b : bias)
              b = ties ? std::round(normal(rng) * 2.0f) / 64.0f : normal(rng) / 8;
          }
          const std::string what =
              std::string(cs.name) + (bf16_mode ? " bf16" : " f32") + (ties ? " ties" : " random");
          check_same(run(c, lg, bias), naive(c, lg, bias), what);
        }
      }
    }
  }

  TEST_CASE("moe gate: the result does not depend on the thread count or on T") {
    const Config c = v3_config();
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t t = 600;
    std::vector<float> lg(static_cast<size_t>(t * c.e));
    for (float& v : lg) v = normal(rng);
    std::vector<float> bias(static_cast<size_t>(c.e));
    for (float& b : bias) b = normal(rng) / 16;
    const char* old = std::getenv("DSK_NUM_THREADS");
    const std::string saved = old != nullptr ? old : "";
    setenv("DSK_NUM_THREADS", "1", 1);
    const Result one = run(c, lg, bias);
    setenv("DSK_NUM_THREADS", "7", 1);
    const Result seven = run(c, lg, bias);
    if (old != nullptr) {
      setenv("DSK_NUM_THREADS", saved.c_str(), 1);
    } else {
      unsetenv("DSK_NUM_THREADS");
    }
    check_same(seven, one, "7 threads vs 1");
    // Row 123 alone gives the same bits as inside the batch.
    const std::vector<float> row(lg.begin() + 123 * c.e, lg.begin() + 124 * c.e);
    const Result single = run(c, row, bias);
    for (int32_t j = 0; j < c.k; ++j) {
      CHECK(single.ids[j] == one.ids[123 * c.k + j]);
      CHECK(bits_of(single.weights[j]) == bits_of(one.weights[123 * c.k + j]));
    }
  }

  TEST_CASE("moe gate: the AVX-512 score step equals the scalar definition bit for bit") {
    if (!dsk::cpu::moe_gate_have_avx512()) {
      MESSAGE("no AVX-512F on this CPU: only the scalar path runs");
      return;
    }
    // Every 97th float bit pattern through each score function (sigmoid exercises det_exp on
    // the whole line, softmax on x - max), in rows of 61 experts (a tail of 13 lanes).
    const int32_t n = 61;
    std::vector<float> bias(static_cast<size_t>(n));
    for (int32_t e = 0; e < n; ++e) bias[e] = static_cast<float>(e % 7) * 0.125f - 0.375f;
    std::vector<float> x0(static_cast<size_t>(n)), x1(static_cast<size_t>(n));
    std::vector<float> s0(static_cast<size_t>(n)), s1(static_cast<size_t>(n));
    std::vector<uint32_t> k0(static_cast<size_t>(n)), k1(static_cast<size_t>(n));
    int64_t rows = 0;
    int64_t mismatches = 0;
    uint64_t pattern = 0;
    while (pattern <= 0xFFFFFFFFull) {
      for (int32_t e = 0; e < n; ++e) {
        const auto u = static_cast<uint32_t>(pattern);
        std::memcpy(&x0[e], &u, 4);
        pattern += 97;
      }
      for (const int32_t score :
           {DSK_MOE_SCORE_SOFTMAX, DSK_MOE_SCORE_SIGMOID, DSK_MOE_SCORE_NONE}) {
        const int32_t b16 = static_cast<int32_t>(rows & 1);
        const dsk::cpu::MoeGateScoreArgs a{n, score, b16, (rows & 2) ? bias.data() : nullptr};
        // The scalar version in place, the AVX-512 one from a separate input.
        std::vector<float> xs = x0;
        const bool f0 =
            dsk::cpu::moe_gate_score_row_scalar(a, xs.data(), xs.data(), s0.data(), k0.data());
        const bool f1 =
            dsk::cpu::moe_gate_score_row_avx512(a, x0.data(), x1.data(), s1.data(), k1.data());
        bool same = f0 == f1 && std::memcmp(xs.data(), x1.data(), 4 * n) == 0 &&
                    std::memcmp(s0.data(), s1.data(), 4 * n) == 0 &&
                    std::memcmp(k0.data(), k1.data(), 4 * n) == 0;
        if (!same && mismatches++ < 3) {
          for (int32_t e = 0; e < n; ++e) {
            if (bits_of(s0[e]) != bits_of(s1[e]) || k0[e] != k1[e]) {
              FAIL_CHECK("score " << score << " row " << rows << " expert " << e << " x " << x0[e]
                                  << ": s " << s0[e] << " vs " << s1[e]);
              break;
            }
          }
        }
      }
      ++rows;
    }
    MESSAGE(rows << " rows of " << n << " compared");
    CHECK(mismatches == 0);
  }

  TEST_CASE("moe gate: the AVX-512 selection and group scores equal the scalar versions") {
    if (!dsk::cpu::moe_gate_have_avx512()) return;
    std::mt19937 rng(5);
    for (int iter = 0; iter < 3000; ++iter) {
      const int32_t n = 1 + static_cast<int32_t>(rng() % (iter < 2900 ? 300 : 5000));
      const int32_t k = 1 + static_cast<int32_t>(rng() % static_cast<uint32_t>(n));
      // Few distinct keys (ties everywhere) or many, including the -inf key.
      const uint32_t distinct = iter % 2 ? 4u : 1000000u;
      std::vector<uint32_t> key(static_cast<size_t>(n));
      for (uint32_t& v : key) v = dsk::moe::kKeyNegInf + static_cast<uint32_t>(rng() % distinct);
      // Masked groups, as after the group stage: whole runs of 16 or 32 at the -inf key.
      if (iter % 3 == 2) {
        const int32_t run = iter % 2 ? 16 : 32;
        for (int32_t b = 0; b * run < n; ++b) {
          if (rng() % 2 == 0) continue;
          for (int32_t e = b * run; e < n && e < (b + 1) * run; ++e) key[e] = dsk::moe::kKeyNegInf;
        }
      }
      std::vector<uint32_t> k0(static_cast<size_t>(k)), k1(static_cast<size_t>(k));
      std::vector<int32_t> i0(static_cast<size_t>(k)), i1(static_cast<size_t>(k));
      dsk::cpu::moe_gate_select_scalar(key.data(), n, k, k0.data(), i0.data());
      std::vector<uint32_t> scratch(static_cast<size_t>(dsk::cpu::moe_gate_select_scratch(n)));
      dsk::cpu::moe_gate_select_avx512(key.data(), n, k, scratch.data(), k1.data(), i1.data());
      REQUIRE(k0 == k1);
      REQUIRE(i0 == i1);
      for (int32_t j = 1; j < k; ++j) {
        CHECK(dsk::moe::gate_before(k0[j - 1], i0[j - 1], k0[j], i0[j]));
      }
      // Group scores over groups of 16, 32 or 48 keys.
      const int32_t size = 16 * (1 + iter % 3);
      const int32_t groups = 1 + static_cast<int32_t>(rng() % 8);
      std::vector<uint32_t> gkey(static_cast<size_t>(size * groups));
      for (uint32_t& v : gkey) v = dsk::moe::kKeyNegInf + static_cast<uint32_t>(rng() % distinct);
      std::vector<uint32_t> g0(static_cast<size_t>(groups)), g1(static_cast<size_t>(groups));
      for (const bool top2 : {false, true}) {
        dsk::cpu::moe_gate_group_keys_scalar(gkey.data(), groups, size, top2, g0.data());
        dsk::cpu::moe_gate_group_keys_avx512(gkey.data(), groups, size, top2, g1.data());
        REQUIRE(g0 == g1);
      }
    }
  }

  TEST_CASE("moe gate: the fused AVX-512 row equals the scalar steps bit for bit") {
    // Scores (every 997th float bit pattern, so det_exp's short and full sequences both run),
    // keys, the group stage and the selection of moe_gate_row_avx512 against the scalar steps
    // (moe_gate_score_row_scalar, moe_gate_group_keys_scalar, k rounds over the groups,
    // moe_gate_select_scalar), on random configs up to 256 experts.
    dsk::cpu::MoeGateRowPlan probe;
    if (!dsk::cpu::moe_gate_row_plan_init(probe, 8, 1, DSK_MOE_SCORE_SOFTMAX, 0, nullptr, 1, 1,
                                          false)) {
      MESSAGE("no AVX-512F/DQ on this CPU: the fused row does not run");
      return;
    }
    std::mt19937 rng(99);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    auto plan = std::make_unique<dsk::cpu::MoeGateRowPlan>();
    uint64_t pattern = 0;
    int64_t rows = 0;
    int64_t mismatches = 0;
    for (int iter = 0; iter < 40000; ++iter) {
      // A config: E <= 256, groups dividing E (<= 16 when a group stage runs), k <= 16.
      int32_t e = 1 + static_cast<int32_t>(rng() % 256);
      if (iter % 4 == 0) e = iter % 8 == 0 ? 256 : 160;
      std::vector<int32_t> divisors;
      for (int32_t g = 1; g <= 16 && g <= e; ++g) {
        if (e % g == 0) divisors.push_back(g);
      }
      const int32_t groups = divisors[rng() % divisors.size()];
      const int32_t size = e / groups;
      const int32_t topk_group = 1 + static_cast<int32_t>(rng() % static_cast<uint32_t>(groups));
      const bool top2 = size >= 2 && rng() % 2 == 0;
      const int32_t kmax = std::min(16, topk_group * size);
      const int32_t k = 1 + static_cast<int32_t>(rng() % static_cast<uint32_t>(kmax));
      const int32_t score = static_cast<int32_t>(rng() % 3);
      const int32_t b16 = static_cast<int32_t>(rng() % 2);
      std::vector<float> bias;
      if (rng() % 2 == 0) {
        bias.resize(static_cast<size_t>(e));
        for (float& b : bias) b = std::round(normal(rng) * 8.0f) / 64.0f;
      }
      std::vector<float> in(static_cast<size_t>(e));
      const int kind = iter % 4;
      for (float& v : in) {
        if (kind == 0) {  // bit patterns
          const auto u = static_cast<uint32_t>(pattern);
          std::memcpy(&v, &u, 4);
          pattern = (pattern + 997) & 0xFFFFFFFFull;
        } else if (kind == 1) {  // ties
          v = std::round(normal(rng)) / 2.0f;
        } else {
          v = normal(rng) * (kind == 3 ? 20.0f : 1.0f);
        }
      }
      REQUIRE(dsk::cpu::moe_gate_row_plan_init(
          *plan, e, k, score, b16, bias.empty() ? nullptr : bias.data(), groups, topk_group, top2));
      // Scalar.
      const dsk::cpu::MoeGateScoreArgs a{e, score, b16, bias.empty() ? nullptr : bias.data()};
      std::vector<float> x0(in), s0(static_cast<size_t>(e));
      std::vector<uint32_t> key0(static_cast<size_t>(e));
      const bool any0 =
          dsk::cpu::moe_gate_score_row_scalar(a, in.data(), x0.data(), s0.data(), key0.data());
      if (groups > 1 && topk_group < groups) {
        std::vector<uint32_t> gk(static_cast<size_t>(groups));
        dsk::cpu::moe_gate_group_keys_scalar(key0.data(), groups, size, top2, gk.data());
        std::vector<bool> keep(static_cast<size_t>(groups), false);
        for (int32_t round = 0; round < topk_group; ++round) {
          int32_t best = -1;
          for (int32_t g = 0; g < groups; ++g) {
            if (!keep[g] && (best < 0 || gk[g] > gk[best])) best = g;
          }
          keep[best] = true;
        }
        for (int32_t i = 0; i < e; ++i) {
          if (!keep[i / size]) key0[i] = dsk::moe::kKeyNegInf;
        }
      }
      std::vector<uint32_t> tk0(static_cast<size_t>(k));
      std::vector<int32_t> ti0(static_cast<size_t>(k));
      dsk::cpu::moe_gate_select_scalar(key0.data(), e, k, tk0.data(), ti0.data());
      // Fused.
      alignas(64) float s1[256];
      alignas(64) uint32_t key1[256];
      alignas(64) uint32_t scratch[256];
      uint32_t tk1[16];
      int32_t ti1[16];
      const bool any1 =
          dsk::cpu::moe_gate_row_avx512(*plan, in.data(), s1, key1, scratch, tk1, ti1);
      bool same = any0 == any1 && std::memcmp(s0.data(), s1, 4 * static_cast<size_t>(e)) == 0;
      for (int32_t j = 0; j < k; ++j) same = same && tk0[j] == tk1[j] && ti0[j] == ti1[j];
      if (!same && mismatches++ < 5) {
        FAIL_CHECK("config E " << e << " k " << k << " G " << groups << " tg " << topk_group
                               << " top2 " << top2 << " score " << score << " bf16 " << b16
                               << " bias " << !bias.empty() << " kind " << kind);
      }
      ++rows;
    }
    MESSAGE(rows << " rows compared");
    CHECK(mismatches == 0);
  }
}

TEST_SUITE("moe_gate") {
  TEST_CASE("moe gate: the fast rows (V3, V2, V2-Lite) equal a naive selection, any T") {
    // These configs take the fast rows (lib/cpu/moe_gate_score.h) wherever the CPU has them;
    // rows go in pairs, pipelined three pairs deep, so T = 0, 1, 2, 3 and a large odd T, rows
    // the fast row hands to the exact row (NaN, inf, ties, extremes) between ordinary ones, and
    // 1 or 2 threads all go through the public entry and must give the naive selection's bits.
    std::mt19937 rng(65536);
    std::normal_distribution<float> unit(0.0f, 1.0f);
    const char* old = std::getenv("DSK_NUM_THREADS");
    const std::string saved = old != nullptr ? old : "";
    for (const Config& c : {v3_config(), v2_config(), v2_lite_config()}) {
      const std::string name = "E " + std::to_string(c.e) + ": ";
      std::vector<float> bias;
      if (c.score == DSK_MOE_SCORE_SIGMOID) {
        bias.resize(static_cast<size_t>(c.e));
        for (float& b : bias) b = 0.05f * unit(rng);
      }
      for (const int64_t t : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{3}, int64_t{20001}}) {
        std::vector<float> lg(static_cast<size_t>(t * c.e));
        for (int64_t r = 0; r < t; ++r) {
          float* row = lg.data() + r * c.e;
          const int kind = static_cast<int>(r % 7);
          for (int32_t e = 0; e < c.e; ++e) {
            float v = unit(rng);
            if (kind == 1) v *= 2.0f;                         // N(0, 4)
            if (kind == 2) v = dsk::moe::gate_round_bf16(v);  // the bf16 grid
            if (kind == 3) v = std::round(v * 2.0f) / 2.0f;   // ties
            if (kind == 4) v *= 100.0f;                       // extreme
            row[e] = v;
          }
          if (kind == 5) row[rng() % static_cast<uint32_t>(c.e)] = (r / 7) % 2 ? kNaN : kInf;
          if (kind == 6 && (r / 7) % 3 == 0) {
            for (int32_t e = 0; e < c.e; ++e) row[e] = kNaN;
          }
        }
        const Result want = naive(c, lg, bias);
        for (const char* threads : {"1", "2"}) {
          setenv("DSK_NUM_THREADS", threads, 1);
          check_same(run(c, lg, bias), want,
                     name + "T " + std::to_string(t) + ", " + threads + " thread(s)");
          // Equal biases (ties between experts with equal logits) and no bias.
          if (t <= 3 && !bias.empty()) {
            const std::vector<float> flat(static_cast<size_t>(c.e), 0.125f);
            check_same(run(c, lg, flat), naive(c, lg, flat), name + "equal biases");
            check_same(run(c, lg), naive(c, lg, {}), name + "no bias");
          }
        }
      }
      if (old != nullptr) {
        setenv("DSK_NUM_THREADS", saved.c_str(), 1);
      } else {
        unsetenv("DSK_NUM_THREADS");
      }

      // bf16 and f16 logits (widened by the fast rows' first pass) and weights with a column
      // stride of 2 (the scalar weight loop) give the bits of f32 logits holding the same
      // values; every 5th row holds a NaN or an infinity.
      const int64_t t = 333;
      for (const DLDataType dt : {kBF16, kF16}) {
        std::vector<float> lg(static_cast<size_t>(t * c.e));
        std::vector<uint16_t> lg16(lg.size());
        for (size_t i = 0; i < lg.size(); ++i) {
          float v = 2.0f * unit(rng);
          if (i % static_cast<size_t>(5 * c.e) == 7) v = i % 2 ? kNaN : -kInf;
          lg16[i] = dt.code == kDLBfloat ? dsk::f32_to_bf16(v) : dsk::f32_to_f16(v);
          lg[i] = dt.code == kDLBfloat ? dsk::bf16_to_f32(lg16[i]) : dsk::f16_to_f32(lg16[i]);
        }
        const std::string what = name + (dt.code == kDLBfloat ? "bf16" : "f16") + " logits";
        const Result want = naive(c, lg, bias);
        check_same(run(c, lg, bias), want, what + ", f32 copy");
        std::vector<int32_t> ids(static_cast<size_t>(t * c.k), -7);
        std::vector<float> w(static_cast<size_t>(2 * t * c.k), -7.0f);
        std::vector<uint8_t> flags(static_cast<size_t>(t), 0xEE);
        std::vector<float> b = bias;
        HostTensor lt(lg16.data(), dt, {t, c.e}, {c.e, 1});
        HostTensor bt(b.data(), kF32, {c.e}, {1});
        HostTensor it(ids.data(), kI32, {t, c.k}, {c.k, 1});
        HostTensor wt(w.data(), kF32, {t, c.k}, {2 * c.k, 2});
        HostTensor ft(flags.data(), kU8, {t}, {1});
        const dsk_moe_gate_params p = c.params();
        dsk_exec ex{};
        require_ok(dsk::cpu::moe_gate(&ex, &p, lt.dl(), b.empty() ? nullptr : bt.dl(), it.dl(),
                                      wt.dl(), ft.dl()));
        Result got;
        got.ids.assign(ids.begin(), ids.end());
        for (int64_t i = 0; i < t * c.k; ++i) got.weights.push_back(w[static_cast<size_t>(2 * i)]);
        got.flags = flags;
        check_same(got, want, what + ", strided weights");
      }
    }
  }
}
