// MoE gate (router) on the CPU (dsk_moe.h): dsk_moe_gate against an independent reference written
// in moe_test_util.h (double precision, std::exp) for DeepSeek V2-Lite, V2 and V3 and stress
// configs (384 experts, 16 groups, k 16); worked examples for the bias (selection only), the group
// rules, renormalization and the bf16 score mode; tie-heavy logits on the bf16 grid; NaN / inf
// rows and their flags; T 0, 1 and 65536; f16 / bf16 logits, int64 ids and strided logits; batch
// and thread-count invariance; dsk_moe_gate_router against dsk_linear + dsk_moe_gate.
//
// The library computes in f32 with its own exp, the reference in double with std::exp, so the two
// may order near-equal scores differently. The reference therefore decides, per row, whether its
// selection is robust (margins above 1e-5 relative between the k-th and (k+1)-th biased score and
// between the last kept and first dropped group score; exact ties of equal inputs are always
// robust); other rows are counted and must be rare. Weights: 1e-6 relative (f32 score mode).
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "moe_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using mla_test::Host;
using moe_test::config_label;
using moe_test::gate_config;
using moe_test::GateCompare;
using moe_test::GateOut;
using moe_test::make_gate_out;
using moe_test::random_bias;
using moe_test::random_logits;
using moe_test::run_and_compare;
using moe_test::sz;

// Rows the reference could not decide: at most 1% (plus one) of the rows.
void check_rare(const GateCompare& r, const std::string& what) {
  INFO(what);
  CHECK_MESSAGE(r.skipped_set <= r.rows / 100 + 1, r.skipped_set, " of ", r.rows,
                " rows had near ties at the selection boundary");
}

struct Case {
  dsk_moe_gate_config config;
  bool bias;
  double logit_sd;
  double bias_range;
};

void run_case(dsk_context* ctx, const Case& c, int64_t t, uint64_t seed, int32_t logits_dtype,
              int32_t ids_dtype) {
  const std::string what = config_label(c.config) + (c.bias ? " bias" : "") + " logits " +
                           moe_test::label(logits_dtype) + " ids " + moe_test::label(ids_dtype) +
                           " T " + std::to_string(t);
  INFO(what);
  Host logits = random_logits(t, c.config.num_experts, logits_dtype, seed, c.logit_sd);
  Host bias = random_bias(c.config.num_experts, seed + 1000, c.bias_range);
  const GateCompare r = run_and_compare(ctx, c.config, logits.dl(), logits.values(),
                                        c.bias ? &bias : nullptr, ids_dtype);
  check_rare(r, what);
}

}  // namespace

TEST_CASE("moe gate_config_init gives DeepSeek-V3's gate") {
  dsk_moe_gate_config c;
  std::memset(&c, 0xFF, sizeof(c));
  REQUIRE(dsk_moe_gate_config_init(&c) == DSK_OK);
  CHECK(c.struct_size == sizeof(dsk_moe_gate_config));
  CHECK(c.num_experts == 256);
  CHECK(c.top_k == 8);
  CHECK(c.n_group == 8);
  CHECK(c.topk_group == 4);
  CHECK(c.score_func == DSK_MOE_SCORE_SIGMOID);
  CHECK(c.group_rule == DSK_MOE_GROUP_AUTO);
  CHECK(c.renormalize == 1);
  CHECK(c.routed_scaling_factor == 2.5f);
  CHECK(c.score_dtype == DSK_DTYPE_F32);
  mla_test::expect_invalid(dsk_moe_gate_config_init(nullptr), {"config"});
}

TEST_CASE("moe gate matches the reference for DeepSeek V2-Lite, V2 and V3") {
  CpuContext ctx;
  // Logit spreads like a trained router's (softmax routers see a few units; V3's sigmoid logits
  // sit around 0 with a bias of a few tenths).
  const Case cases[] = {
      {moe_test::v2lite_config(), false, 2.0, 0},
      {moe_test::v2_config(), false, 2.0, 0},
      {moe_test::v3_config(), true, 1.5, 0.3},
      {moe_test::v3_config(), false, 1.5, 0},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    for (int32_t ids_dtype : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
      run_case(ctx, c, 777, seed++, DSK_DTYPE_F32, ids_dtype);
    }
  }
}

TEST_CASE("moe gate matches the reference for stress configs") {
  CpuContext ctx;
  const Case cases[] = {
      // Kimi-K2-like: 384 experts, one group, k 8.
      {gate_config(384, 8, 1, 1, DSK_MOE_SCORE_SIGMOID, 1, 2.827f), true, 1.5, 0.2},
      {gate_config(384, 8, 1, 1, DSK_MOE_SCORE_SOFTMAX, 0, 1.0f), false, 2.0, 0},
      // 256 experts in 16 groups of 16, 8 groups kept.
      {gate_config(256, 8, 16, 8, DSK_MOE_SCORE_SIGMOID, 1, 2.5f), true, 1.5, 0.3},
      {gate_config(256, 8, 16, 8, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, DSK_MOE_GROUP_MAX), false, 2.0,
       0},
      // k 16 (V3 shape), and k 16 of 256 in one group.
      {gate_config(256, 16, 8, 4, DSK_MOE_SCORE_SIGMOID, 1, 2.5f), true, 1.5, 0.3},
      {gate_config(256, 16, 1, 1, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f), false, 2.0, 0},
      // Groups of 20 (V2) with the top-2 rule and a bias; scores without a score function.
      {gate_config(160, 6, 8, 3, DSK_MOE_SCORE_NONE, 0, 1.0f, DSK_MOE_GROUP_TOP2SUM), true, 1.0,
       0.5},
      // k = topk_group * E / G: every expert of the kept groups is picked.
      {gate_config(64, 16, 8, 2, DSK_MOE_SCORE_SIGMOID, 1, 1.0f), true, 1.5, 0.2},
      // One expert per group (MAX rule), every group kept.
      {gate_config(8, 8, 8, 8, DSK_MOE_SCORE_SOFTMAX, 0, 1.0f), false, 2.0, 0},
      // k = E.
      {gate_config(6, 6, 1, 1, DSK_MOE_SCORE_SIGMOID, 1, 1.0f), true, 1.0, 0.3},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) run_case(ctx, c, 300, seed++, DSK_DTYPE_F32, DSK_DTYPE_INT32);
}

TEST_CASE("moe gate group rules, bias and renormalization against the reference") {
  CpuContext ctx;
  uint64_t seed = 200;
  for (int32_t score : {DSK_MOE_SCORE_SOFTMAX, DSK_MOE_SCORE_SIGMOID, DSK_MOE_SCORE_NONE}) {
    for (int32_t rule : {DSK_MOE_GROUP_AUTO, DSK_MOE_GROUP_MAX, DSK_MOE_GROUP_TOP2SUM}) {
      for (int32_t renorm : {0, 1}) {
        for (bool bias : {false, true}) {
          Case c{gate_config(96, 5, 6, 2, score, renorm, 1.75f, rule), bias, 1.5, 0.4};
          run_case(ctx, c, 200, seed++, DSK_DTYPE_F32, DSK_DTYPE_INT32);
        }
      }
    }
  }
}

TEST_CASE("moe gate worked example: the bias chooses, the weights ignore it") {
  CpuContext ctx;
  // Scores are the logits (NONE), scale 1, no renormalization: weights are the logits exactly.
  dsk_moe_gate_config c = gate_config(8, 2, 1, 1, DSK_MOE_SCORE_NONE, 0, 1.0f);
  Host logits({1, 8}, DSK_DTYPE_F32);
  const double l[8] = {0.5, 0.1, 0.9, 0.3, -0.2, 0.0, 0.25, 0.45};
  for (int i = 0; i < 8; ++i) logits.set(i, l[i]);
  Host bias({8}, DSK_DTYPE_F32);
  bias.fill(0);
  bias.set(1, 0.7);  // 0.1 + 0.7 = 0.8 beats 0.5
  GateOut with = make_gate_out(1, 2);
  MOE_REQUIRE_OK(dsk_moe_gate(ctx, &c, logits.dl(), bias.dl(), with.ids.dl(), with.weights.dl(),
                              with.flags.dl()));
  CHECK(with.ids.get(0) == 2);
  CHECK(with.ids.get(1) == 1);
  CHECK(with.weights.get(0) == static_cast<double>(0.9f));
  CHECK(with.weights.get(1) == static_cast<double>(0.1f));  // s, not s + bias
  CHECK(with.flag_values()[0] == 0);
  GateOut without = make_gate_out(1, 2);
  MOE_REQUIRE_OK(
      dsk_moe_gate(ctx, &c, logits.dl(), nullptr, without.ids.dl(), without.weights.dl(), nullptr));
  CHECK(without.ids.get(0) == 2);
  CHECK(without.ids.get(1) == 0);
  CHECK(without.weights.get(1) == static_cast<double>(0.5f));
  // Renormalized and scaled: w = s / (0.9 + 0.1 + 1e-20) * 3.
  c.renormalize = 1;
  c.routed_scaling_factor = 3.0f;
  GateOut renorm = make_gate_out(1, 2);
  MOE_REQUIRE_OK(dsk_moe_gate(ctx, &c, logits.dl(), bias.dl(), renorm.ids.dl(), renorm.weights.dl(),
                              renorm.flags.dl()));
  const double sum = static_cast<double>(0.9f) + static_cast<double>(0.1f);
  CHECK(renorm.weights.get(0) == doctest::Approx(0.9f / sum * 3).epsilon(1e-6));
  CHECK(renorm.weights.get(1) == doctest::Approx(0.1f / sum * 3).epsilon(1e-6));
}

TEST_CASE("moe gate worked example: group rules MAX, TOP2SUM and AUTO") {
  CpuContext ctx;
  // Four groups of two: {1.0, 0.0} {0.6, 0.6} {0.7, 0.1} {0.2, 0.2}; two groups kept, k 2.
  //   MAX:     group scores 1.0 0.6 0.7 0.2 -> groups 0, 2 -> experts 0 (1.0), 4 (0.7)
  //   TOP2SUM: group scores 1.0 1.2 0.8 0.4 -> groups 1, 0 -> experts 0 (1.0), 2 (0.6; ties 3)
  Host logits({1, 8}, DSK_DTYPE_F32);
  const double l[8] = {1.0, 0.0, 0.6, 0.6, 0.7, 0.1, 0.2, 0.2};
  for (int i = 0; i < 8; ++i) logits.set(i, l[i]);
  Host zero_bias({8}, DSK_DTYPE_F32);
  zero_bias.fill(0);
  struct Want {
    int32_t rule;
    bool bias;
    int64_t id1;
  };
  const Want wants[] = {
      {DSK_MOE_GROUP_MAX, false, 4},     {DSK_MOE_GROUP_MAX, true, 4},
      {DSK_MOE_GROUP_TOP2SUM, false, 2}, {DSK_MOE_GROUP_TOP2SUM, true, 2},
      {DSK_MOE_GROUP_AUTO, false, 4},  // MAX without a bias
      {DSK_MOE_GROUP_AUTO, true, 2},   // TOP2SUM with one (even an all-zero bias)
  };
  for (const Want& w : wants) {
    INFO("rule " << w.rule << " bias " << w.bias);
    dsk_moe_gate_config c = gate_config(8, 2, 4, 2, DSK_MOE_SCORE_NONE, 0, 1.0f, w.rule);
    GateOut o = make_gate_out(1, 2);
    MOE_REQUIRE_OK(dsk_moe_gate(ctx, &c, logits.dl(), w.bias ? zero_bias.dl() : nullptr, o.ids.dl(),
                                o.weights.dl(), o.flags.dl()));
    CHECK(o.ids.get(0) == 0);
    CHECK(o.ids.get(1) == w.id1);
    CHECK(o.weights.get(1) == static_cast<double>(static_cast<float>(l[w.id1])));
    CHECK(o.flag_values()[0] == 0);
  }
}

TEST_CASE("moe gate worked example: bf16 score mode rounds at the reference's points") {
  CpuContext ctx;
  // NONE scores, renormalized, scale 2.5, E 4, k 2. Logits (f32) 1 + 2^-8, 0.3, 0.7, 0.1.
  // bf16 mode: s = bf16(logits) = 1.0 (a tie, to even), 0.30078125, 0.69921875, 0.10009765625.
  //   picks 0 (1.0) and 2 (0.69921875)
  //   sum  = bf16(1.69921875) = 1.703125        (217.5 / 128: a tie, to even 218)
  //   w0   = bf16(1.0 / 1.703125 = 0.58716)     = 0.5859375   (150 / 256)
  //   w2   = bf16(0.69921875 / 1.703125 = 0.41055) = 0.41015625 (210 / 512)
  //   w0  *= 2.5: bf16(1.46484375) = 1.46875    (187.5 / 128: a tie, to even 188)
  //   w2  *= 2.5: bf16(1.025390625) = 1.0234375 (131.25 / 128 -> 131)
  // f32 mode: s = the f32 logits; w = s / (s0 + s2 + 1e-20) * 2.5.
  Host logits({1, 4}, DSK_DTYPE_F32);
  const double l[4] = {1.0 + std::ldexp(1.0, -8), 0.3, 0.7, 0.1};
  for (int i = 0; i < 4; ++i) logits.set(i, l[i]);
  dsk_moe_gate_config c = gate_config(4, 2, 1, 1, DSK_MOE_SCORE_NONE, 1, 2.5f);
  c.score_dtype = DSK_DTYPE_BF16;
  GateOut o = make_gate_out(1, 2);
  MOE_REQUIRE_OK(
      dsk_moe_gate(ctx, &c, logits.dl(), nullptr, o.ids.dl(), o.weights.dl(), o.flags.dl()));
  CHECK(o.ids.get(0) == 0);
  CHECK(o.ids.get(1) == 2);
  CHECK(o.weights.get(0) == 1.46875);
  CHECK(o.weights.get(1) == 1.0234375);
  // The same through the reference's rounding rules.
  const std::vector<double> lv = logits.values();
  const moe_test::GateRow ref = moe_test::ref_gate_row(c, lv.data(), nullptr);
  CHECK(ref.weights[0] == 1.46875);
  CHECK(ref.weights[1] == 1.0234375);

  c.score_dtype = DSK_DTYPE_F32;
  GateOut f = make_gate_out(1, 2);
  MOE_REQUIRE_OK(
      dsk_moe_gate(ctx, &c, logits.dl(), nullptr, f.ids.dl(), f.weights.dl(), f.flags.dl()));
  const double s0 = static_cast<float>(l[0]), s2 = static_cast<float>(l[2]);
  CHECK(f.weights.get(0) == doctest::Approx(s0 / (s0 + s2) * 2.5).epsilon(1e-6));
  CHECK(f.weights.get(1) == doctest::Approx(s2 / (s0 + s2) * 2.5).epsilon(1e-6));

  // bf16 sigmoid: s = bf16(sigmoid(x)); sigmoid(0) = 0.5 exactly, and 0.5 + 0.5 = 1 needs no
  // rounding: w = 0.5 / 1 * 2.5 = 1.25 for two zero logits, the others negative.
  Host zl({1, 4}, DSK_DTYPE_F32);
  const double z[4] = {-3.0, 0.0, -1.0, 0.0};
  for (int i = 0; i < 4; ++i) zl.set(i, z[i]);
  c = gate_config(4, 2, 1, 1, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
  c.score_dtype = DSK_DTYPE_BF16;
  GateOut sg = make_gate_out(1, 2);
  MOE_REQUIRE_OK(
      dsk_moe_gate(ctx, &c, zl.dl(), nullptr, sg.ids.dl(), sg.weights.dl(), sg.flags.dl()));
  CHECK(sg.ids.get(0) == 1);
  CHECK(sg.ids.get(1) == 3);
  CHECK(sg.weights.get(0) == 1.25);
  CHECK(sg.weights.get(1) == 1.25);
}

TEST_CASE("moe gate bf16 score mode against the reference") {
  CpuContext ctx;
  // Weights pass through up to three bf16 roundings whose f32 inputs may differ from the
  // reference's in the last f32 bit: one bf16 ulp (2^-8 relative) of slack.
  uint64_t seed = 300;
  for (const dsk_moe_gate_config& base :
       {moe_test::v3_config(), moe_test::v2_config(), moe_test::v2lite_config(),
        gate_config(64, 6, 4, 2, DSK_MOE_SCORE_NONE, 1, 2.0f)}) {
    dsk_moe_gate_config c = base;
    c.score_dtype = DSK_DTYPE_BF16;
    const bool bias = c.score_func == DSK_MOE_SCORE_SIGMOID;
    INFO(config_label(c));
    Host logits = random_logits(400, c.num_experts, DSK_DTYPE_BF16, seed++, 1.5);
    Host b = random_bias(c.num_experts, seed++, 0.3);
    const GateCompare r = run_and_compare(ctx, c, logits.dl(), logits.values(), bias ? &b : nullptr,
                                          DSK_DTYPE_INT32, 1.0 / 128);
    check_rare(r, config_label(c));
  }
}

TEST_CASE("moe gate ties on the bf16 grid go to the lower index") {
  CpuContext ctx;
  // Logits from a handful of bf16 values: most rows hold many exact ties, which every
  // implementation must break toward the lower expert (and group) index.
  uint64_t seed = 400;
  for (const dsk_moe_gate_config& c :
       {moe_test::v3_config(), moe_test::v2_config(), moe_test::v2lite_config(),
        gate_config(256, 8, 16, 8, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, DSK_MOE_GROUP_TOP2SUM),
        gate_config(256, 16, 8, 4, DSK_MOE_SCORE_NONE, 0, 1.0f, DSK_MOE_GROUP_MAX)}) {
    for (bool bias : {false, true}) {
      INFO(config_label(c) << (bias ? " bias" : ""));
      const int64_t t = 300, e = c.num_experts;
      Host logits({t, e}, DSK_DTYPE_BF16);
      std::mt19937_64 rng(seed++);
      const double grid[] = {-1.0, -0.5, 0.0, 0.25, 0.5, 1.0};
      std::uniform_int_distribution<int> pick(0, 5);
      for (int64_t i = 0; i < logits.size(); ++i) {
        // Some rows are constant (one big tie), the others draw from the grid.
        logits.set(i, (i / e) % 7 == 0 ? 0.5 : grid[pick(rng)]);
      }
      Host b({e}, DSK_DTYPE_F32);
      for (int64_t i = 0; i < e; ++i) b.set(i, static_cast<double>(i % 3) * 0.125);
      const GateCompare r =
          run_and_compare(ctx, c, logits.dl(), logits.values(), bias ? &b : nullptr);
      // Ties of equal inputs are decided (and compared) exactly; only sums of different inputs
      // that happen to be equal (a + b = c + d in the top-2 group rule) can make a row undecided.
      check_rare(r, config_label(c));
    }
  }
  // A constant row: groups 0 .. topk_group - 1 kept, ids 0 .. k - 1 in order, equal weights.
  dsk_moe_gate_config c = moe_test::v3_config();
  Host logits({1, 256}, DSK_DTYPE_F32);
  logits.fill(0.25);
  GateOut o = make_gate_out(1, 8);
  MOE_REQUIRE_OK(
      dsk_moe_gate(ctx, &c, logits.dl(), nullptr, o.ids.dl(), o.weights.dl(), o.flags.dl()));
  for (int64_t j = 0; j < 8; ++j) {
    CHECK(o.ids.get(j) == j);
    CHECK(o.weights.get(j) == doctest::Approx(2.5 / 8).epsilon(1e-6));
  }
}

TEST_CASE("moe gate rows with NaN and inf logits") {
  CpuContext ctx;
  const double nan = moe_test::kNaN, inf = moe_test::kInf;
  for (int32_t score : {DSK_MOE_SCORE_SOFTMAX, DSK_MOE_SCORE_SIGMOID, DSK_MOE_SCORE_NONE}) {
    for (int32_t g : {1, 4}) {
      const int64_t e = 16, k = 6, t = 6;
      // NONE scores may be negative: no renormalization there (a sum near 0 is ill-conditioned).
      const int32_t renorm = score == DSK_MOE_SCORE_NONE ? 0 : 1;
      dsk_moe_gate_config c = gate_config(16, 6, g, g == 1 ? 1 : 2, score, renorm, 2.0f);
      INFO(config_label(c));
      Host logits = random_logits(t, e, DSK_DTYPE_F32, 500 + static_cast<uint64_t>(score), 1.0);
      for (int64_t i = 0; i < e; ++i) {
        logits.set(0 * e + i, nan);                                   // row 0: all NaN
        logits.set(1 * e + i, i % 2 ? inf : -inf);                    // row 1: all infinite
        if (i != 5 && i != 9 && i != 12) logits.set(2 * e + i, nan);  // row 2: 3 finite
        if (i == 7) logits.set(3 * e + i, nan);                       // row 3: one NaN
        if (i == 2) logits.set(4 * e + i, inf);    // row 4: one +inf (counts as -inf)
        if (i != 11) logits.set(5 * e + i, -inf);  // row 5: one finite
      }
      GateOut o = make_gate_out(t, k);
      MOE_REQUIRE_OK(
          dsk_moe_gate(ctx, &c, logits.dl(), nullptr, o.ids.dl(), o.weights.dl(), o.flags.dl()));
      const std::vector<uint8_t> flags = o.flag_values();
      for (int64_t row : {0, 1}) {
        INFO("row " << row);
        CHECK(flags[sz(row)] == (DSK_MOE_ROW_NO_FINITE | DSK_MOE_ROW_SHORT));
        for (int64_t j = 0; j < k; ++j) {
          CHECK(o.ids.get(row * k + j) == j);  // the lowest free indices
          CHECK(o.weights.get(row * k + j) == 0.0);
        }
      }
      if (g == 1) {
        // Row 2: the finite three first (in score order), then the lowest free indices.
        CHECK(flags[2] == DSK_MOE_ROW_SHORT);
        std::vector<int64_t> first;
        for (int64_t j = 0; j < 3; ++j) first.push_back(static_cast<int64_t>(o.ids.get(2 * k + j)));
        std::sort(first.begin(), first.end());
        CHECK(first == std::vector<int64_t>{5, 9, 12});
        for (int64_t j = 3; j < k; ++j) {
          CHECK(o.ids.get(2 * k + j) == j - 3);
          CHECK(o.weights.get(2 * k + j) == 0.0);
        }
        // Row 5: one finite logit; with renormalization it gets the whole scale.
        CHECK(flags[5] == DSK_MOE_ROW_SHORT);
        CHECK(o.ids.get(5 * k) == 11);
        if (renorm) CHECK(o.weights.get(5 * k) == doctest::Approx(2.0).epsilon(1e-6));
      }
      CHECK(flags[3] == 0);
      CHECK(flags[4] == 0);
      for (int64_t j = 0; j < k; ++j) {
        CHECK(o.ids.get(3 * k + j) != 7);
        CHECK(o.ids.get(4 * k + j) != 2);
      }
      // Everything, flags included, against the reference.
      moe_test::compare_gate(c, logits.values(), nullptr, o);
    }
  }
}

TEST_CASE("moe gate with T 0, 1 and 65536") {
  CpuContext ctx;
  const dsk_moe_gate_config c = moe_test::v3_config();
  Host bias = random_bias(256, 600, 0.3);
  {
    Host logits({0, 256}, DSK_DTYPE_F32);
    GateOut o = make_gate_out(0, 8);
    MOE_REQUIRE_OK(
        dsk_moe_gate(ctx, &c, logits.dl(), bias.dl(), o.ids.dl(), o.weights.dl(), o.flags.dl()));
    MOE_REQUIRE_OK(
        dsk_moe_gate(ctx, &c, logits.dl(), nullptr, o.ids.dl(), o.weights.dl(), nullptr));
  }
  for (int64_t t : {int64_t{1}, int64_t{65536}}) {
    INFO("T " << t);
    Host logits = random_logits(t, 256, DSK_DTYPE_BF16, 601 + static_cast<uint64_t>(t), 1.5);
    const GateCompare r = run_and_compare(ctx, c, logits.dl(), logits.values(), &bias);
    check_rare(r, "V3 T " + std::to_string(t));
  }
}

TEST_CASE("moe gate reads f16, bf16 and strided logits") {
  CpuContext ctx;
  const dsk_moe_gate_config c = moe_test::v3_config();
  const int64_t t = 65, e = 256;
  Host bias = random_bias(e, 700, 0.3);
  for (int32_t dtype : {DSK_DTYPE_F16, DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
    INFO(moe_test::label(dtype));
    Host logits = random_logits(t, e, dtype, 701, 1.5);
    const std::vector<double> v = logits.values();
    check_rare(run_and_compare(ctx, c, logits.dl(), v, &bias), "contiguous");
    // A transposed view: the buffer is [E, T], logits[t, e] at e * T + t.
    Host buf({e, t}, dtype);
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t j = 0; j < e; ++j) buf.set(j * t + i, v[sz(i * e + j)]);
    }
    mla_test::View tr = buf.view({t, e}, {1, t});
    GateOut a = make_gate_out(t, 8), b = make_gate_out(t, 8);
    MOE_REQUIRE_OK(
        dsk_moe_gate(ctx, &c, logits.dl(), bias.dl(), a.ids.dl(), a.weights.dl(), a.flags.dl()));
    MOE_REQUIRE_OK(
        dsk_moe_gate(ctx, &c, tr.get(), bias.dl(), b.ids.dl(), b.weights.dl(), b.flags.dl()));
    CHECK(a.ids.raw() == b.ids.raw());
    CHECK(a.weights.raw() == b.weights.raw());
    CHECK(a.flags.raw() == b.flags.raw());
    // A column slice of a wider buffer, and strided outputs (columns of wider buffers).
    mla_test::Act sliced({t, e}, dtype, mla_test::Form::kSliced);
    sliced.set(v);
    Host ids_buf({t, 16}, DSK_DTYPE_INT32), w_buf({t, 3, 8}, DSK_DTYPE_F32);
    mla_test::View ids_v = ids_buf.view({t, 8}, {16, 1}, 8);
    mla_test::View w_v = w_buf.view({t, 8}, {24, 1}, 8);
    MOE_REQUIRE_OK(dsk_moe_gate(ctx, &c, sliced.dl(), bias.dl(), ids_v.get(), w_v.get(), nullptr));
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t j = 0; j < 8; ++j) {
        CHECK(ids_buf.get(i * 16 + 8 + j) == a.ids.get(i * 8 + j));
        CHECK(w_buf.get(i * 24 + 8 + j) == a.weights.get(i * 8 + j));
      }
    }
  }
}

TEST_CASE("moe gate rows do not depend on the batch or the thread count") {
  CpuContext ctx;
  const dsk_moe_gate_config c = moe_test::v2_config();
  const int64_t t = 257, e = c.num_experts, k = c.top_k;
  Host logits = random_logits(t, e, DSK_DTYPE_F32, 800, 2.0);
  GateOut all = make_gate_out(t, k);
  MOE_REQUIRE_OK(
      dsk_moe_gate(ctx, &c, logits.dl(), nullptr, all.ids.dl(), all.weights.dl(), all.flags.dl()));
  for (int64_t row : {0, 1, 100, 256}) {
    mla_test::View one = logits.view({1, e}, {e, 1}, row * e);
    GateOut o = make_gate_out(1, k);
    MOE_REQUIRE_OK(
        dsk_moe_gate(ctx, &c, one.get(), nullptr, o.ids.dl(), o.weights.dl(), o.flags.dl()));
    for (int64_t j = 0; j < k; ++j) {
      CHECK(o.ids.get(j) == all.ids.get(row * k + j));
      CHECK(o.weights.get(j) == all.weights.get(row * k + j));
    }
  }
  for (const char* n : {"1", "3"}) {
    dsk_test::Threads threads(n);
    GateOut o = make_gate_out(t, k);
    MOE_REQUIRE_OK(
        dsk_moe_gate(ctx, &c, logits.dl(), nullptr, o.ids.dl(), o.weights.dl(), o.flags.dl()));
    CHECK(o.ids.raw() == all.ids.raw());
    CHECK(o.weights.raw() == all.weights.raw());
  }
}

TEST_CASE("moe gate_router equals dsk_linear followed by dsk_moe_gate") {
  CpuContext ctx;
  const int64_t t = 37, d = 96;
  for (int32_t xdtype : {DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
    for (int32_t score_dtype : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
      for (bool reserve : {false, true}) {
        dsk_moe_gate_config c = gate_config(64, 6, 4, 2, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
        c.score_dtype = score_dtype;
        const int64_t e = c.num_experts, k = c.top_k;
        INFO("x " << moe_test::label(xdtype) << " score " << moe_test::label(score_dtype)
                  << " reserve " << reserve);
        Host x({t, d}, xdtype), w({e, d}, xdtype);
        x.fill_random(900, -1.0, 1.0);
        w.fill_random(901, -0.3, 0.3);
        Host bias = random_bias(e, 902, 0.2);
        if (reserve) MOE_REQUIRE_OK(dsk_context_reserve_workspace(ctx, sz(t * e * 4)));
        // The reference path: logits in f32 (or rounded to bf16 in the bf16 score mode).
        Host logits({t, e}, score_dtype);
        MOE_REQUIRE_OK(dsk_linear(ctx, x.dl(), w.dl(), nullptr, logits.dl()));
        GateOut want = make_gate_out(t, k), got = make_gate_out(t, k);
        MOE_REQUIRE_OK(dsk_moe_gate(ctx, &c, logits.dl(), bias.dl(), want.ids.dl(),
                                    want.weights.dl(), want.flags.dl()));
        MOE_REQUIRE_OK(dsk_moe_gate_router(ctx, &c, x.dl(), w.dl(), bias.dl(), got.ids.dl(),
                                           got.weights.dl(), got.flags.dl()));
        CHECK(got.ids.raw() == want.ids.raw());
        CHECK(got.weights.raw() == want.weights.raw());
        CHECK(got.flags.raw() == want.flags.raw());
        // int64 ids, no flags.
        GateOut g64 = make_gate_out(t, k, DSK_DTYPE_INT64);
        MOE_REQUIRE_OK(dsk_moe_gate_router(ctx, &c, x.dl(), w.dl(), bias.dl(), g64.ids.dl(),
                                           g64.weights.dl(), nullptr));
        CHECK(moe_test::int_values(g64.ids) == moe_test::int_values(want.ids));
        CHECK(g64.weights.raw() == want.weights.raw());
      }
    }
  }
  // T 0 through the router.
  dsk_moe_gate_config c = moe_test::v2lite_config();
  Host x({0, 32}, DSK_DTYPE_BF16), w({64, 32}, DSK_DTYPE_BF16);
  GateOut o = make_gate_out(0, 6);
  MOE_REQUIRE_OK(dsk_moe_gate_router(ctx, &c, x.dl(), w.dl(), nullptr, o.ids.dl(), o.weights.dl(),
                                     o.flags.dl()));
}
