// Edge cases of dsk_sample (dsk_sampling.h): V = 1, rows with every token -inf (ALL_MASKED), NaN or
// +inf logits (NONFINITE) and what those rows output (id 0, NaN logprobs, top ids -1 with NaN
// values), a NaN under the mask, a mask that excludes everything, -inf / +inf bias, a temperature
// so small that z overflows, greedy (T = 0) rows mixed with random rows in one batch (argmax, ties
// to the lower id, whatever the filters), and B = 0.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "sampling_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using samp_test::Batch;
using samp_test::CpuContext;
using samp_test::kInf;
using samp_test::kNaN;
using samp_test::Outputs;
using samp_test::Ref;
using samp_test::RowSpec;
using samp_test::sz;

// Checks the outputs of a row that is not OK.
void check_bad_row(const Outputs& out, int64_t i, int status) {
  INFO("row ", i);
  CHECK(int{out.status[sz(i)]} == status);
  CHECK(out.ids[sz(i)] == 0);
  CHECK(std::isnan(out.logprobs[sz(i)]));
  CHECK(std::isnan(out.raw[sz(i)]));
  for (int64_t k = 0; k < out.n; ++k) {
    CHECK(out.top_id(i, k) == -1);
    CHECK(std::isnan(out.top_value(i, k)));
  }
}

}  // namespace

TEST_CASE("sampling edge: V = 1") {
  CpuContext ctx;
  Batch batch(3, 1);
  batch.x(0, 0) = 0.5f;
  batch.x(1, 0) = -30.0f;
  batch.x(2, 0) = 1e30f;
  batch.row(1).temperature = 0.0f;
  batch.row(2).top_k = 1;
  batch.row(2).top_p = 0.1f;
  batch.row(2).min_p = 1.0f;
  Outputs out(3, 3);
  samp_test::run_sample(ctx, batch, out);
  for (int64_t i = 0; i < 3; ++i) {
    INFO("row ", i);
    CHECK(int{out.status[sz(i)]} == DSK_SAMPLE_OK);
    CHECK(out.ids[sz(i)] == 0);
    CHECK(out.logprobs[sz(i)] == 0.0f);
    CHECK(out.raw[sz(i)] == 0.0f);
    CHECK(out.top_id(i, 0) == 0);
    CHECK(out.top_value(i, 0) == 0.0f);
    CHECK(out.top_id(i, 1) == -1);
    CHECK(out.top_value(i, 1) == -kInf);
    CHECK(out.top_id(i, 2) == -1);
    CHECK(out.top_value(i, 2) == -kInf);
  }
}

TEST_CASE("sampling edge: masked, non-finite and overflowing rows") {
  CpuContext ctx;
  const int64_t v = 40;
  Batch batch(12, v);
  batch.fill_normal(3, 1.0);
  // 0: every logit -inf.
  for (int64_t j = 0; j < v; ++j) batch.x(0, j) = -kInf;
  // 1: one NaN.
  batch.x(1, 17) = kNaN;
  // 2: one +inf.
  batch.x(2, 3) = kInf;
  // 3: a NaN and a +inf under the mask: the row is fine, raw logprobs are NaN.
  batch.x(3, 5) = kNaN;
  batch.x(3, 36) = kInf;
  batch.row(3).mask = {~(1u << 5), ~(1u << 4)};
  // 4: a mask that allows nothing (bits past V set: they are no tokens).
  batch.row(4).mask = {0u, 0xFFFFFF00u};
  // 5: a bias of +inf.
  batch.row(5).bias = {{9, kInf}};
  // 6: a bias of -inf on every token but 2: token 2 always.
  for (int64_t j = 0; j < v; ++j) {
    if (j != 2) batch.row(6).bias.emplace_back(j, -kInf);
  }
  // 7: z = x / T overflows to +inf for a positive logit.
  batch.x(7, 11) = 10.0f;
  batch.row(7).temperature = 1e-38f;
  // 8: the same T with logits <= -10: every z underflows to -inf: ALL_MASKED.
  for (int64_t j = 0; j < v; ++j) batch.x(8, j) = -10.0f - static_cast<float>(j);
  batch.row(8).temperature = 1e-38f;
  // 9: greedy with a NaN: NONFINITE.
  batch.x(9, 0) = kNaN;
  batch.row(9).temperature = 0.0f;
  // 10: -inf everywhere but a penalized token that stays finite.
  for (int64_t j = 0; j < v; ++j) batch.x(10, j) = j == 30 ? 2.0f : -kInf;
  batch.row(10).output_ids = {30, 30, 1};
  batch.row(10).frequency = 0.5f;
  batch.row(10).repetition = 3.0f;
  // 11: a plain row after them.
  Outputs out(12, 4);
  samp_test::run_sample(ctx, batch, out);
  check_bad_row(out, 0, DSK_SAMPLE_ALL_MASKED);
  check_bad_row(out, 1, DSK_SAMPLE_NONFINITE);
  check_bad_row(out, 2, DSK_SAMPLE_NONFINITE);
  check_bad_row(out, 4, DSK_SAMPLE_ALL_MASKED);
  check_bad_row(out, 5, DSK_SAMPLE_NONFINITE);
  check_bad_row(out, 7, DSK_SAMPLE_NONFINITE);
  check_bad_row(out, 8, DSK_SAMPLE_ALL_MASKED);
  check_bad_row(out, 9, DSK_SAMPLE_NONFINITE);
  for (int64_t i : {3, 6, 10, 11}) {
    INFO("row ", i);
    const Ref ref = batch.ref(i);
    REQUIRE(ref.status == DSK_SAMPLE_OK);
    CHECK(int{out.status[sz(i)]} == DSK_SAMPLE_OK);
    const int32_t id = out.ids[sz(i)];
    REQUIRE(id >= 0);
    REQUIRE(id < v);
    CHECK(ref.kept[sz(id)] != 0);
    CHECK(std::fabs(out.logprobs[sz(i)] - ref.logprob[sz(id)]) <= 1e-5);
  }
  CHECK(out.ids[3] != 5);
  CHECK(out.ids[3] != 36);
  CHECK(std::isnan(out.raw[3]));
  CHECK(out.ids[6] == 2);
  CHECK(out.logprobs[6] == 0.0f);
  CHECK(out.top_id(6, 0) == 2);
  CHECK(out.top_id(6, 1) == -1);
  CHECK(out.ids[10] == 30);
  CHECK(out.logprobs[10] == 0.0f);
  // The raw distribution of row 6 ignores the bias.
  CHECK(std::fabs(out.raw[6] - samp_test::raw_logprob(batch.xrow(6), 2)) <= 1e-5);
  // The same statuses from dsk_sampling_probs / dsk_sampling_logits, with NaN rows.
  std::vector<float> probs, z;
  std::vector<uint8_t> sp, sl;
  samp_test::run_probs(ctx, batch, probs, sp);
  samp_test::run_logits(ctx, batch, z, sl);
  for (int64_t i = 0; i < 12; ++i) {
    INFO("row ", i);
    CHECK(sp[sz(i)] == out.status[sz(i)]);
    CHECK(sl[sz(i)] == out.status[sz(i)]);
    if (sp[sz(i)] != DSK_SAMPLE_OK) {
      for (int64_t j = 0; j < v; ++j) {
        CHECK(std::isnan(probs[sz(i * v + j)]));
        CHECK(std::isnan(z[sz(i * v + j)]));
      }
    }
  }
  CHECK(probs[sz(6 * v + 2)] == 1.0f);
  CHECK(z[sz(3 * v + 5)] == -kInf);
  CHECK(z[sz(3 * v + 36)] == -kInf);
}

TEST_CASE("sampling edge: a non-finite logit in any share of a split row") {
  // One row of the DeepSeek vocabulary on 3 threads splits its passes into 3 block ranges: a NaN
  // or +inf in the last or the first range is found as in the unsplit row.
  CpuContext ctx;
  const int64_t v = 129280;
  for (int64_t at : {int64_t{3}, v / 2, v - 5}) {
    // -NaN: its key sorts below every other, so only pass 1's check can find it.
    for (float bad : {kNaN, -kNaN, kInf}) {
      for (float temperature : {0.0f, 0.7f}) {
        INFO("bad logit at ", at, " value ", bad, " T ", temperature);
        Batch batch(1, v);
        batch.fill_normal(11, 1.0);
        batch.x(0, at) = bad;
        batch.row(0).temperature = temperature;
        for (const char* threads : {"1", "3"}) {
          dsk_test::Threads t(threads);
          Outputs out(1, 4);
          samp_test::run_sample(ctx, batch, out);
          check_bad_row(out, 0, DSK_SAMPLE_NONFINITE);
        }
      }
    }
  }
}

TEST_CASE("sampling edge: greedy rows mixed with random rows") {
  CpuContext ctx;
  const int64_t b = 32, v = 200;
  Batch batch(b, v);
  batch.fill_normal(12, 2.0);
  for (int64_t i = 0; i < b; ++i) {
    RowSpec& r = batch.row(i);
    r.seed = static_cast<uint64_t>(1000 + i);
    if (i % 2 == 0) {
      r.temperature = 0.0f;
      // Filters on a greedy row never remove its argmax.
      r.top_k = static_cast<int32_t>(i % 5);
      r.top_p = i % 4 == 0 ? 0.2f : 1.0f;
      r.min_p = i % 6 == 0 ? 0.9f : 0.0f;
      // Ties at the max: the lower id wins.
      const float mx = 20.0f + static_cast<float>(i);
      batch.x(i, 150 - i) = mx;
      batch.x(i, 190 - i) = mx;
      batch.x(i, 160) = mx;
    } else {
      r.temperature = 1.0f;
    }
  }
  Outputs out(b, 2);
  samp_test::run_sample(ctx, batch, out);
  int64_t random_not_argmax = 0;
  for (int64_t i = 0; i < b; ++i) {
    INFO("row ", i);
    const Ref ref = batch.ref(i);
    CHECK(int{out.status[sz(i)]} == DSK_SAMPLE_OK);
    if (i % 2 == 0) {
      CHECK(out.ids[sz(i)] == 150 - i);
      CHECK(ref.greedy == 150 - i);
      CHECK(std::fabs(out.logprobs[sz(i)] - ref.logprob[sz(150 - i)]) <= 1e-5);
    } else {
      random_not_argmax += out.ids[sz(i)] != ref.greedy;
    }
  }
  // The random rows (logits sd 2 over 200 tokens) do not all take their argmax.
  CHECK(random_not_argmax >= 5);
}

TEST_CASE("sampling edge: B = 0 succeeds and writes nothing") {
  CpuContext ctx;
  Batch batch(0, 16);
  Outputs out(0, 2);
  samp_test::run_sample(ctx, batch, out);
  CHECK(out.ids[0] == -7);
  CHECK(out.status[0] == 0xEE);
  std::vector<float> probs;
  std::vector<uint8_t> st;
  samp_test::run_probs(ctx, batch, probs, st);
  CHECK(st[0] == 0xEE);
}
