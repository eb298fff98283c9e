// Logprob outputs of dsk_sample (dsk_sampling.h) against the reference: the processed logprob of
// the sampled token (log-softmax of the kept z, within 1e-5), the top-n list of the processed
// distribution (the first n kept tokens in the order (z descending, id ascending), -1 / -inf
// past the kept set) and of the raw one (the finite raw logits, log_softmax of x), raw_logprobs
// (log_softmax of the unprocessed logits at the sampled id, NaN when x has NaN or +inf), n up to
// DSK_SAMPLE_MAX_TOP_LOGPROBS, and bf16 logits.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sampling_test_util.h"
#include "test_util.h"

namespace {

using samp_test::Batch;
using samp_test::CpuContext;
using samp_test::kInf;
using samp_test::kNaN;
using samp_test::Outputs;
using samp_test::Ref;
using samp_test::RowSpec;
using samp_test::sz;

void random_params(Batch& batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const float temps[] = {0.0f, 0.5f, 1.0f, 1.7f};
  const int32_t ks[] = {0, 3, 10, 70};
  const float ps[] = {1.0f, 0.6f, 0.95f};
  const float mps[] = {0.0f, 0.0f, 0.1f};
  for (int64_t i = 0; i < batch.rows(); ++i) {
    RowSpec& r = batch.row(i);
    r.temperature = temps[rng() % 4];
    r.top_k = ks[rng() % 4];
    r.top_p = ps[rng() % 3];
    r.min_p = mps[rng() % 3];
    r.seed = rng();
    r.offset = rng();
    if (rng() % 3 == 0) {
      r.output_ids = {static_cast<int64_t>(rng() % 20), static_cast<int64_t>(rng() % 20)};
      r.presence = 0.5f;
      r.repetition = 1.2f;
    }
    if (rng() % 4 == 0) r.bias = {{static_cast<int64_t>(rng() % 20), 3.0f}};
  }
}

// Checks ids, logprobs, raw logprobs and the top lists of every decided row.
void check_logprobs(dsk_context* ctx, Batch& batch, int64_t n, const std::string& what) {
  INFO(what, ", n ", n);
  const int64_t b = batch.rows();
  Outputs proc(b, n, DSK_LOGPROBS_PROCESSED), raw(b, n, DSK_LOGPROBS_RAW);
  samp_test::run_sample(ctx, batch, proc);
  samp_test::run_sample(ctx, batch, raw);
  CHECK(proc.ids == raw.ids);  // top_source changes nothing but the top lists
  int64_t undecided = 0;
  for (int64_t i = 0; i < b; ++i) {
    INFO("row ", i, ": ", samp_test::row_label(batch.row(i)));
    const Ref ref = batch.ref(i);
    const std::vector<float> x = batch.xrow(i);
    REQUIRE(ref.status == DSK_SAMPLE_OK);
    REQUIRE(int{proc.status[sz(i)]} == DSK_SAMPLE_OK);
    const int32_t id = proc.ids[sz(i)];
    REQUIRE(id >= 0);
    REQUIRE(id < batch.vocab());
    // raw_logprobs does not depend on the filters.
    CHECK(std::fabs(proc.raw[sz(i)] - samp_test::raw_logprob(x, id)) <= 1e-5);
    CHECK(proc.raw[sz(i)] == raw.raw[sz(i)]);
    CHECK(proc.logprobs[sz(i)] == raw.logprobs[sz(i)]);
    // Raw top list.
    const std::vector<int64_t> ro = samp_test::raw_order(x);
    for (int64_t k = 0; k < n; ++k) {
      INFO("raw top ", k);
      if (k < static_cast<int64_t>(ro.size())) {
        CHECK(raw.top_id(i, k) == ro[sz(k)]);
        CHECK(std::fabs(raw.top_value(i, k) - samp_test::raw_logprob(x, ro[sz(k)])) <= 1e-5);
      } else {
        CHECK(raw.top_id(i, k) == -1);
        CHECK(raw.top_value(i, k) == -kInf);
      }
    }
    if (!ref.decided) {
      ++undecided;
      continue;
    }
    CHECK(ref.kept[sz(id)] != 0);
    CHECK(std::fabs(proc.logprobs[sz(i)] - ref.logprob[sz(id)]) <= 1e-5);
    if (batch.row(i).temperature == 0.0f) CHECK(id == ref.greedy);
    for (int64_t k = 0; k < n; ++k) {
      INFO("processed top ", k);
      if (k < static_cast<int64_t>(ref.order.size())) {
        const int64_t t = ref.order[sz(k)];
        CHECK(proc.top_id(i, k) == t);
        CHECK(std::fabs(proc.top_value(i, k) - ref.logprob[sz(t)]) <= 1e-5);
      } else {
        CHECK(proc.top_id(i, k) == -1);
        CHECK(proc.top_value(i, k) == -kInf);
      }
    }
    // The sampled token's logprob is its entry in the top list when it is there.
    for (int64_t k = 0; k < n; ++k) {
      if (proc.top_id(i, k) == id) CHECK(proc.top_value(i, k) == proc.logprobs[sz(i)]);
    }
  }
  CHECK(undecided <= b / 25 + 1);
}

}  // namespace

TEST_CASE("sampling logprobs: sampled, top-n processed and raw vs the reference") {
  CpuContext ctx;
  for (int64_t n : {1, 5, 64}) {
    Batch batch(40, 120);
    batch.fill_normal(static_cast<uint64_t>(n), 2.0);
    // A few rows with many -inf logits (fewer finite raw tokens than n) and ties.
    for (int64_t j = 0; j < 120; ++j) {
      if (j % 3 != 0) batch.x(1, j) = -kInf;
      if (j > 3) batch.x(2, j) = -kInf;
      batch.x(3, j) = static_cast<float>(j % 7);
    }
    random_params(batch, 50 + static_cast<uint64_t>(n));
    batch.row(2).top_k = 0;
    check_logprobs(ctx, batch, n, "f32");
  }
  Batch batch(24, 333);
  batch.logits_dtype = DSK_DTYPE_BF16;
  batch.fill_normal(90, 3.0);
  random_params(batch, 91);
  check_logprobs(ctx, batch, 8, "bf16");
}

TEST_CASE("sampling logprobs: raw values are NaN when x has NaN or +inf; bad rows") {
  CpuContext ctx;
  Batch batch(4, 50);
  batch.fill_normal(4, 1.0);
  batch.x(0, 7) = kNaN;  // under the mask: the row samples, raw values are NaN
  batch.row(0).mask = {~(1u << 7), ~0u};
  batch.x(1, 8) = kInf;  // under a -inf bias? No: +inf + -inf is NaN; mask it instead
  batch.row(1).mask = {~(1u << 8), ~0u};
  for (int64_t j = 0; j < 50; ++j) batch.x(2, j) = -kInf;  // ALL_MASKED
  batch.x(3, 0) = kNaN;                                    // NONFINITE
  for (int32_t source : {DSK_LOGPROBS_PROCESSED, DSK_LOGPROBS_RAW}) {
    INFO("source ", source);
    Outputs out(4, 3, source);
    samp_test::run_sample(ctx, batch, out);
    for (int64_t i : {0, 1}) {
      INFO("row ", i);
      CHECK(int{out.status[sz(i)]} == DSK_SAMPLE_OK);
      CHECK(std::isnan(out.raw[sz(i)]));
      CHECK(std::isfinite(out.logprobs[sz(i)]));
      if (source == DSK_LOGPROBS_RAW) {
        for (int64_t k = 0; k < 3; ++k) CHECK(std::isnan(out.top_value(i, k)));
      } else {
        const Ref ref = batch.ref(i);
        for (int64_t k = 0; k < 3; ++k) CHECK(out.top_id(i, k) == ref.order[sz(k)]);
      }
    }
    for (int64_t i : {2, 3}) {
      INFO("row ", i);
      CHECK(int{out.status[sz(i)]} == (i == 2 ? DSK_SAMPLE_ALL_MASKED : DSK_SAMPLE_NONFINITE));
      CHECK(out.ids[sz(i)] == 0);
      CHECK(std::isnan(out.logprobs[sz(i)]));
      CHECK(std::isnan(out.raw[sz(i)]));
      for (int64_t k = 0; k < 3; ++k) {
        CHECK(out.top_id(i, k) == -1);
        CHECK(std::isnan(out.top_value(i, k)));
      }
    }
  }
}

TEST_CASE("sampling logprobs: optional outputs may be left out") {
  CpuContext ctx;
  Batch batch(8, 64);
  batch.fill_normal(5, 1.5);
  random_params(batch, 6);
  Outputs full(8, 4), ids_only(8, 0, DSK_LOGPROBS_PROCESSED, false);
  samp_test::run_sample(ctx, batch, full);
  samp_test::run_sample(ctx, batch, ids_only);
  CHECK(full.ids == ids_only.ids);
  CHECK(ids_only.logprobs[0] == 77.0f);  // not given: untouched
}
