// Sampling distributions (dsk_sampling.h): for small vocabularies, many draws of one logits row
// (B rows of identical logits and parameters, each with its own Philox offset, so one dsk_sample
// call gives B independent draws) must follow the exact filtered distribution of the independent
// reference (sampling_test_util.h): chi-square at p = 1e-6 with fixed seeds, and tokens the
// filters remove are never drawn. Configurations: T = 1, T = 0.6, top-k, top-p (with prefix
// masses exactly at p), min-p, all filters together, penalties + bias + mask, bf16 logits.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sampling_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using samp_test::Batch;
using samp_test::CpuContext;
using samp_test::kInf;
using samp_test::Outputs;
using samp_test::Ref;
using samp_test::RowSpec;
using samp_test::sz;

// Counts of the tokens drawn by `n` rows that all hold logits `x` and parameters `spec` (seed
// spec.seed; row r gets offset spec.offset + r). Every draw's status must be OK.
std::vector<int64_t> draw(dsk_context* ctx, const std::vector<float>& x, const RowSpec& spec,
                          int64_t n, int32_t dtype = DSK_DTYPE_F32) {
  const auto v = static_cast<int64_t>(x.size());
  std::vector<int64_t> counts(sz(v), 0);
  const int64_t chunk = 65536;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t b = std::min(chunk, n - start);
    Batch batch(b, v);
    batch.logits_dtype = dtype;
    batch.scalars = true;
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j < v; ++j) batch.x(i, j) = x[sz(j)];
      RowSpec& r = batch.row(i);
      r = spec;
      r.offset = spec.offset + static_cast<uint64_t>(start + i);
    }
    Outputs out(b, 0, DSK_LOGPROBS_PROCESSED, false);
    std::vector<uint8_t> status(sz(b), 0xEE);
    Borrowed st(status.data(), {b}, DSK_DTYPE_UINT8);
    out.o.status = &st;
    samp_test::run_sample(ctx, batch, out);
    int64_t bad = 0;
    for (int64_t i = 0; i < b; ++i) {
      const int32_t id = out.ids[sz(i)];
      if (status[sz(i)] != DSK_SAMPLE_OK || id < 0 || id >= v) {
        ++bad;
        continue;
      }
      ++counts[sz(id)];
    }
    REQUIRE_MESSAGE(bad == 0, bad, " draws had a bad status or id");
  }
  return counts;
}

// Draws n samples of (x, spec) and checks them against the reference distribution.
std::vector<int64_t> check_config(dsk_context* ctx, const std::vector<float>& x,
                                  const RowSpec& spec, int64_t n, const std::string& what,
                                  int32_t dtype = DSK_DTYPE_F32) {
  INFO(what, " (", samp_test::row_label(spec), ")");
  std::vector<float> xr = x;
  if (dtype != DSK_DTYPE_F32) {
    Batch tmp(1, static_cast<int64_t>(x.size()));
    tmp.logits_dtype = dtype;
    for (float& t : xr) t = tmp.round_to(t);
  }
  const Ref ref = samp_test::reference(xr, spec);
  REQUIRE(ref.status == DSK_SAMPLE_OK);
  REQUIRE_MESSAGE(ref.decided, "the configuration sits on a filter boundary: ", ref.why);
  const std::vector<int64_t> counts = draw(ctx, x, spec, n, dtype);
  samp_test::check_fit(counts, ref.prob, what);
  return counts;
}

// V = 24 logits, normal with sd 1.5, fixed seed.
std::vector<float> base_logits(uint64_t seed = 7, int64_t v = 24, double sd = 1.5) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, sd);
  std::vector<float> x(sz(v));
  for (float& t : x) t = static_cast<float>(d(rng));
  return x;
}

}  // namespace

TEST_CASE("sampling distribution: plain temperature 1 and 0.6 (10^6 draws each)") {
  CpuContext ctx;
  const std::vector<float> x = base_logits();
  RowSpec s;
  s.seed = 1234;
  check_config(ctx, x, s, 1000000, "T = 1");
  s.temperature = 0.6f;
  s.seed = 99;
  const std::vector<int64_t> counts = check_config(ctx, x, s, 1000000, "T = 0.6");
  // The test has power: the same draws are far from the distribution at T = 0.61.
  RowSpec near = s;
  near.temperature = 0.61f;
  const samp_test::Fit f = samp_test::chi_square(counts, samp_test::reference(x, near).prob);
  CHECK_MESSAGE(f.stat > f.critical, "chi-square against T = 0.61: ", f.stat);
}

TEST_CASE("sampling distribution: top-k, top-p, min-p") {
  CpuContext ctx;
  const std::vector<float> x = base_logits(11);
  {
    RowSpec s;
    s.seed = 5;
    s.top_k = 5;
    s.temperature = 0.8f;
    check_config(ctx, x, s, 200000, "top-k 5");
  }
  {
    RowSpec s;
    s.seed = 6;
    s.top_p = 0.9f;
    s.offset = 1u << 20;
    const Ref r = samp_test::reference(x, s);
    CHECK(r.order.size() > 3);
    CHECK(r.order.size() < x.size());
    check_config(ctx, x, s, 200000, "top-p 0.9");
  }
  {
    RowSpec s;
    s.seed = 7;
    s.min_p = 0.1f;
    const Ref r = samp_test::reference(x, s);
    CHECK(r.order.size() > 2);
    CHECK(r.order.size() < x.size());
    check_config(ctx, x, s, 200000, "min-p 0.1");
  }
}

TEST_CASE("sampling distribution: top-p prefix mass exactly at p") {
  // 8 tokens tie at the max (ids scattered), the others lower; top_k 8 keeps exactly the tied
  // group, whose masses are exact: p = 0.5 must keep the 4 lowest ids of the group (the prefix of
  // 4 reaches 0.5 exactly), the next float above 0.5 keeps 5, p = 0.25 keeps 2.
  CpuContext ctx;
  std::vector<float> x = base_logits(3, 20, 1.0);
  const int64_t tied[8] = {17, 2, 9, 4, 0, 13, 6, 11};
  for (int64_t j : tied) x[sz(j)] = 5.0f;
  struct P {
    float p;
    std::vector<int64_t> keep;
  };
  const P cases[] = {{0.5f, {0, 2, 4, 6}},
                     {std::nextafter(0.5f, 1.0f), {0, 2, 4, 6, 9}},
                     {0.25f, {0, 2}},
                     {0.125f, {0}},
                     {0.75f, {0, 2, 4, 6, 9, 11}}};
  uint64_t seed = 40;
  for (const P& c : cases) {
    RowSpec s;
    s.seed = seed++;
    s.top_k = 8;
    s.top_p = c.p;
    const Ref r = samp_test::reference(x, s);
    std::vector<int64_t> kept = r.order;
    std::sort(kept.begin(), kept.end());
    CHECK(kept == c.keep);
    std::vector<double> probs(x.size(), 0.0);
    for (int64_t j : c.keep) probs[sz(j)] = 1.0 / static_cast<double>(c.keep.size());
    const std::vector<int64_t> counts = draw(ctx, x, s, 100000);
    samp_test::check_fit(counts, probs, "top-k 8 top-p " + std::to_string(c.p));
  }
}

TEST_CASE("sampling distribution: all filters together (10^6 draws)") {
  CpuContext ctx;
  const std::vector<float> x = base_logits(21, 32, 2.0);
  RowSpec s;
  s.seed = 0xDEADBEEFCAFEull;
  s.offset = 0x100000000ull;  // the high offset word in use
  s.temperature = 0.7f;
  s.top_k = 10;
  s.top_p = 0.95f;
  s.min_p = 0.02f;
  // Top-p's mass is counted over the 10 top-k survivors: 6 kept (9 without top-k).
  const Ref r = samp_test::reference(x, s);
  CHECK(r.order.size() == 6);
  RowSpec no_k = s;
  no_k.top_k = 0;
  CHECK(samp_test::reference(x, no_k).order.size() == 9);
  check_config(ctx, x, s, 1000000, "T 0.7, top-k 10, top-p 0.95, min-p 0.02");
}

TEST_CASE("sampling distribution: penalties, bias and mask") {
  CpuContext ctx;
  const std::vector<float> x = base_logits(31, 40, 1.0);
  RowSpec s;
  s.seed = 77;
  s.temperature = 0.9f;
  s.repetition = 1.3f;
  s.frequency = 0.4f;
  s.presence = 0.25f;
  s.output_ids = {3, 3, 7, 12, 3, 39};
  s.prompt_ids = {0, 1, 7, 20, 21};
  s.bias = {{5, 1.5f}, {6, -kInf}, {8, -0.5f}, {5, 0.25f}, {33, 2.0f}};
  s.mask = {~((1u << 2) | (1u << 9)), ~((1u << (33 - 32)) | (1u << (37 - 32)))};
  // The mask removes 2, 9, 33 (its bias too) and 37; the bias removes 6.
  const Ref r = samp_test::reference(x, s);
  for (int64_t j : {2, 6, 9, 33, 37}) CHECK(r.kept[sz(j)] == 0);
  check_config(ctx, x, s, 200000, "penalties + bias + mask");
  // With filters on top.
  s.top_k = 10;
  s.top_p = 0.8f;
  s.seed = 78;
  check_config(ctx, x, s, 200000, "penalties + bias + mask + top-k + top-p");
}

TEST_CASE("sampling distribution: bf16 and f16 logits") {
  CpuContext ctx;
  const std::vector<float> x = base_logits(41, 16, 2.0);
  RowSpec s;
  s.seed = 9;
  s.temperature = 0.5f;
  check_config(ctx, x, s, 200000, "bf16 T 0.5", DSK_DTYPE_BF16);
  s.seed = 10;
  s.top_k = 6;
  check_config(ctx, x, s, 200000, "f16 T 0.5 top-k 6", DSK_DTYPE_F16);
}
