// The processing chain of dsk_sampling.h (mask, bias, penalties, temperature, top-k, top-p, min-p)
// through dsk_sampling_logits and dsk_sampling_probs against the independent reference of
// sampling_test_util.h: per row the status, the kept set (the tokens with nonzero probability),
// the probabilities (1e-6 relative) and the processed logits (exact in f32: the same IEEE
// operations in the same order; -inf for removed tokens), on random batches with mixed per-row
// parameters, f32 / bf16 / f16 / strided logits, int32 and int64 token lists, scalar parameters;
// sampled ids always lie in the kept set and greedy rows take the argmax. Then worked cases whose
// result depends on the order of operations.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sampling_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using samp_test::Batch;
using samp_test::bits;
using samp_test::CpuContext;
using samp_test::kInf;
using samp_test::kNaN;
using samp_test::Outputs;
using samp_test::Ref;
using samp_test::RowSpec;
using samp_test::sz;

// Random per-row parameters (every filter and penalty, sometimes off), token lists, bias, mask.
void random_rows(Batch& batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t v = batch.vocab();
  auto pick = [&](auto const& options) {
    return options[std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)];
  };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const std::vector<float> temps = {0.0f, 0.3f, 0.7f, 1.0f, 1.5f};
  const std::vector<int32_t> ks = {
      0, 0, 1, 5, 40, static_cast<int32_t>(v), static_cast<int32_t>(v + 10)};
  const std::vector<float> ps = {1.0f, 1.0f, 0.3f, 0.5f, 0.9f, 0.95f};
  const std::vector<float> mps = {0.0f, 0.0f, 0.05f, 0.2f, 1.0f};
  for (int64_t i = 0; i < batch.rows(); ++i) {
    RowSpec& r = batch.row(i);
    r.temperature = pick(temps);
    r.top_k = pick(ks);
    r.top_p = pick(ps);
    r.min_p = pick(mps);
    r.seed = rng();
    r.offset = rng() % 1000;
    if (unit(rng) < 0.5) {
      r.repetition = static_cast<float>(0.5 + unit(rng) * 1.5);
      r.frequency = static_cast<float>(unit(rng) - 0.3);
      r.presence = static_cast<float>(unit(rng) * 0.8 - 0.2);
      const auto n_out = static_cast<int64_t>(rng() % 12);
      for (int64_t t = 0; t < n_out; ++t) r.output_ids.push_back(static_cast<int64_t>(rng() % 8));
      const auto n_prompt = static_cast<int64_t>(rng() % 10);
      for (int64_t t = 0; t < n_prompt; ++t)
        r.prompt_ids.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(v)));
    }
    if (unit(rng) < 0.4) {
      const auto n_bias = static_cast<int64_t>(rng() % 6);
      for (int64_t t = 0; t < n_bias; ++t) {
        const float val = unit(rng) < 0.15 ? -kInf : static_cast<float>(unit(rng) * 6.0 - 3.0);
        r.bias.emplace_back(static_cast<int64_t>(rng() % 6), val);
      }
    }
    if (unit(rng) < 0.3) {
      r.mask.assign(sz((v + 31) / 32), 0);
      for (int64_t j = 0; j < v; ++j) {
        if (unit(rng) < 0.8) r.mask[sz(j / 32)] |= 1u << (j % 32);
      }
    }
  }
}

struct Tally {
  int64_t rows = 0, undecided = 0;
};

// dsk_sampling_probs, dsk_sampling_logits and dsk_sample of `batch` against the reference.
Tally compare(dsk_context* ctx, Batch& batch, const std::string& what) {
  INFO(what);
  const int64_t b = batch.rows(), v = batch.vocab();
  std::vector<float> probs, z;
  std::vector<uint8_t> st_p, st_z;
  samp_test::run_probs(ctx, batch, probs, st_p);
  samp_test::run_logits(ctx, batch, z, st_z);
  Outputs out(b, 0);
  samp_test::run_sample(ctx, batch, out);
  Tally t;
  t.rows = b;
  for (int64_t i = 0; i < b; ++i) {
    const Ref ref = batch.ref(i);
    INFO("row ", i, ": ", samp_test::row_label(batch.row(i)));
    CHECK(int{st_p[sz(i)]} == ref.status);
    CHECK(int{st_z[sz(i)]} == ref.status);
    CHECK(int{out.status[sz(i)]} == ref.status);
    const float* pr = probs.data() + i * v;
    const float* zr = z.data() + i * v;
    if (ref.status != DSK_SAMPLE_OK) {
      int64_t not_nan = 0;
      for (int64_t j = 0; j < v; ++j) not_nan += (!std::isnan(pr[j])) + (!std::isnan(zr[j]));
      CHECK_MESSAGE(not_nan == 0, "a row that is not OK must be all NaN");
      CHECK(out.ids[sz(i)] == 0);
      CHECK(std::isnan(out.logprobs[sz(i)]));
      continue;
    }
    const int32_t id = out.ids[sz(i)];
    REQUIRE(id >= 0);
    REQUIRE(id < v);
    if (batch.row(i).temperature == 0.0f) CHECK(id == ref.greedy);
    if (!ref.decided) {
      ++t.undecided;
      continue;
    }
    CHECK_MESSAGE(ref.kept[sz(id)] != 0, "sampled token ", id, " was filtered out");
    int64_t set_diff = 0, prob_bad = 0, z_bad = 0;
    std::string first;
    for (int64_t j = 0; j < v; ++j) {
      const bool kept = ref.kept[sz(j)] != 0;
      // A kept token whose probability underflows f32 may read 0.
      const bool tiny = kept && ref.prob[sz(j)] < 1e-36;
      if ((pr[j] > 0.0f) != kept && !tiny) {
        if (set_diff++ == 0 && first.empty())
          first = "token " + std::to_string(j) + " prob " + std::to_string(pr[j]) + " ref kept " +
                  std::to_string(kept) + " z " + std::to_string(ref.z[sz(j)]);
      } else if (!samp_test::close_rel(pr[j], ref.prob[sz(j)], 1e-6)) {
        if (prob_bad++ == 0 && first.empty())
          first = "token " + std::to_string(j) + " prob " + std::to_string(pr[j]) + " want " +
                  std::to_string(ref.prob[sz(j)]);
      }
      const float want_z = kept ? ref.z[sz(j)] : -kInf;
      if (bits(zr[j]) != bits(want_z) && !(zr[j] == 0.0f && want_z == 0.0f)) {
        if (z_bad++ == 0 && first.empty())
          first = "token " + std::to_string(j) + " z " + std::to_string(zr[j]) + " want " +
                  std::to_string(want_z);
      }
    }
    double sum = 0;
    for (int64_t j = 0; j < v; ++j) sum += pr[j];
    CHECK_MESSAGE(std::fabs(sum - 1.0) <= 1e-5, "probabilities sum to ", sum);
    CHECK_MESSAGE(set_diff == 0, set_diff, " tokens differ in the kept set; ", first);
    CHECK_MESSAGE(prob_bad == 0, prob_bad, " probabilities off by more than 1e-6; ", first);
    CHECK_MESSAGE(z_bad == 0, z_bad, " processed logits differ; ", first);
    // The logprob of the sampled token.
    CHECK_MESSAGE(std::fabs(out.logprobs[sz(i)] - ref.logprob[sz(id)]) <= 1e-5, "logprob ",
                  out.logprobs[sz(i)], " want ", ref.logprob[sz(id)]);
  }
  CHECK_MESSAGE(t.undecided <= b / 25 + 1, t.undecided, " of ", b,
                " rows sat on a top-p / min-p boundary");
  return t;
}

// Kept token ids of row 0 after dsk_sampling_probs, and its processed logits.
std::vector<int64_t> kept_ids(dsk_context* ctx, Batch& batch, std::vector<float>* z_out = nullptr) {
  std::vector<float> probs, z;
  std::vector<uint8_t> st;
  samp_test::run_probs(ctx, batch, probs, st);
  REQUIRE(int{st[0]} == DSK_SAMPLE_OK);
  std::vector<int64_t> ids;
  for (int64_t j = 0; j < batch.vocab(); ++j) {
    if (probs[sz(j)] > 0.0f) ids.push_back(j);
  }
  if (z_out != nullptr) {
    samp_test::run_logits(ctx, batch, z, st);
    *z_out = std::vector<float>(z.begin(), z.begin() + batch.vocab());
  }
  return ids;
}

}  // namespace

TEST_CASE("sampling filters and penalties vs the reference: random batches") {
  CpuContext ctx;
  struct C {
    int64_t b, v;
    int32_t dtype;
    int32_t csr;
    int64_t extra;
    double sd;
    double grid;  // logits rounded to this grid (ties) when > 0
  };
  const C cases[] = {
      {64, 50, DSK_DTYPE_F32, DSK_DTYPE_INT32, 0, 2.0, 0},
      {48, 300, DSK_DTYPE_F32, DSK_DTYPE_INT64, 0, 2.5, 0},
      {40, 97, DSK_DTYPE_F32, DSK_DTYPE_INT32, 5, 1.0, 0.5},  // strided, many ties
      {40, 130, DSK_DTYPE_BF16, DSK_DTYPE_INT64, 0, 2.0, 0},
      {40, 64, DSK_DTYPE_F16, DSK_DTYPE_INT32, 3, 2.0, 0},
  };
  uint64_t seed = 100;
  for (const C& c : cases) {
    Batch batch(c.b, c.v);
    batch.logits_dtype = c.dtype;
    batch.csr_dtype = c.csr;
    batch.extra_cols = c.extra;
    batch.fill_normal(seed, c.sd);
    if (c.grid > 0) {
      for (int64_t i = 0; i < c.b; ++i) {
        for (int64_t j = 0; j < c.v; ++j) {
          batch.x(i, j) = static_cast<float>(std::round(batch.x(i, j) / c.grid) * c.grid);
        }
      }
    }
    random_rows(batch, seed + 1);
    seed += 2;
    compare(ctx, batch,
            "B " + std::to_string(c.b) + " V " + std::to_string(c.v) + " " +
                mla_test::dtype_label(c.dtype) + " lists " + mla_test::dtype_label(c.csr) +
                (c.extra ? " strided" : "") + (c.grid > 0 ? " ties" : ""));
  }
}

TEST_CASE("sampling filters: scalar parameters equal per-row tensors") {
  CpuContext ctx;
  const RowSpec specs[] = {
      [] {
        RowSpec r;
        r.temperature = 0.7f;
        r.top_k = 9;
        r.top_p = 0.9f;
        r.min_p = 0.01f;
        return r;
      }(),
      [] {
        RowSpec r;
        r.repetition = 1.4f;
        r.frequency = 0.3f;
        r.presence = -0.2f;
        r.temperature = 1.3f;
        return r;
      }(),
  };
  for (const RowSpec& spec : specs) {
    Batch a(16, 80), b(16, 80);
    a.fill_normal(5, 2.0);
    b.fill_normal(5, 2.0);
    for (int64_t i = 0; i < 16; ++i) {
      a.row(i) = spec;
      a.row(i).output_ids = {1, 2, 2, static_cast<int64_t>(i)};
      a.row(i).prompt_ids = {5, 70};
      a.row(i).seed = 3;
      a.row(i).offset = 8;
      b.row(i) = a.row(i);
    }
    b.scalars = true;
    b.per_row_rng = false;
    std::vector<float> pa, pb, za, zb;
    std::vector<uint8_t> sa, sb;
    samp_test::run_probs(ctx, a, pa, sa);
    samp_test::run_probs(ctx, b, pb, sb);
    CHECK(pa == pb);
    samp_test::run_logits(ctx, a, za, sa);
    samp_test::run_logits(ctx, b, zb, sb);
    CHECK(std::memcmp(za.data(), zb.data(), za.size() * 4) == 0);
    Outputs oa(16, 4), ob(16, 4);
    samp_test::run_sample(ctx, a, oa);
    samp_test::run_sample(ctx, b, ob);
    CHECK(oa.ids == ob.ids);
    CHECK(std::memcmp(oa.logprobs.data(), ob.logprobs.data(), 16 * 4) == 0);
    CHECK(oa.top_ids == ob.top_ids);
    compare(ctx, b, "scalars " + samp_test::row_label(spec));
  }
}

TEST_CASE("sampling order: mask, then bias, then penalties, then temperature") {
  CpuContext ctx;
  Batch batch(1, 8);
  for (int64_t j = 0; j < 8; ++j) batch.x(0, j) = 0.25f * static_cast<float>(j);
  batch.x(0, 0) = -1.0f;
  batch.x(0, 1) = 1.0f;
  batch.x(0, 2) = 3.0f;
  batch.x(0, 3) = -3.0f;
  batch.x(0, 4) = kNaN;  // masked: -inf whatever its value
  RowSpec& r = batch.row(0);
  r.temperature = 0.5f;
  r.repetition = 2.0f;
  r.frequency = 0.5f;
  r.presence = 0.125f;
  r.prompt_ids = {0, 2, 3};
  r.output_ids = {1, 5, 5, 5};
  r.bias = {{0, 2.0f}, {4, 100.0f}, {6, 1.0f}, {6, -0.5f}};
  r.mask = {0xFFu & ~(1u << 4)};
  std::vector<float> z;
  std::vector<uint8_t> st;
  samp_test::run_logits(ctx, batch, z, st);
  REQUIRE(int{st[0]} == DSK_SAMPLE_OK);
  // 0: bias first (-1 + 2 = 1 > 0), then repetition (1 / 2), then T: 1.0 (penalty first: 0).
  CHECK(z[0] == 1.0f);
  // 1: seen in the output once: 1 / 2, then (0.5 - 0.5 * 1) - 0.125 = -0.125, then T: -0.25
  // (temperature first: 0.375).
  CHECK(z[1] == -0.25f);
  // 2: prompt only: 3 / 2 = 1.5 (no presence), T: 3.
  CHECK(z[2] == 3.0f);
  // 3: negative seen logit is multiplied: -6, T: -12.
  CHECK(z[3] == -12.0f);
  // 4: masked before the bias.
  CHECK(z[4] == -kInf);
  // 5: seen in the output (repetition: 1.25 / 2), count 3: 0.625 - 1.5 - 0.125 = -1, T: -2.
  CHECK(z[5] == -2.0f);
  // 6: two bias entries in order: 1.5 + 1 - 0.5 = 2, T: 4.
  CHECK(z[6] == 4.0f);
  CHECK(z[7] == 3.5f);
  // Whole-row check against the reference too.
  compare(ctx, batch, "order row");
}

TEST_CASE("sampling order: top-k before top-p's mass, top-p before min-p") {
  CpuContext ctx;
  {
    // 4 tokens tie at the max, 12 more just below. top_k 4 then top_p 0.5 keeps 2 (the mass is
    // counted over the top-k survivors only; over the whole row it would keep 8).
    Batch batch(1, 16);
    for (int64_t j = 0; j < 16; ++j) batch.x(0, j) = j % 4 == 1 ? 2.0f : 1.9f;
    batch.row(0).top_k = 4;
    batch.row(0).top_p = 0.5f;
    CHECK(kept_ids(ctx, batch) == std::vector<int64_t>{1, 5});
    batch.row(0).top_k = 0;
    const Ref r = batch.ref(0);
    REQUIRE(r.decided);
    CHECK(r.order.size() == 8);
    CHECK(kept_ids(ctx, batch).size() == 8);
  }
  {
    // Weights 1, 4 x 0.3, 10 x 0.05. top-p 0.7 first (over 2.7) keeps 4 tokens, min-p 0.1 keeps
    // them all; min-p first would leave a mass of 2.2 and top-p would keep 3.
    Batch batch(1, 15);
    batch.x(0, 0) = 0.0f;
    for (int64_t j = 1; j < 5; ++j) batch.x(0, j) = static_cast<float>(std::log(0.3));
    for (int64_t j = 5; j < 15; ++j) batch.x(0, j) = static_cast<float>(std::log(0.05));
    batch.row(0).top_p = 0.7f;
    batch.row(0).min_p = 0.1f;
    const Ref r = batch.ref(0);
    REQUIRE(r.decided);
    CHECK(kept_ids(ctx, batch) == std::vector<int64_t>{0, 1, 2, 3});
  }
  {
    // Temperature before min-p: at T = 2 the weight of z = -2 is e^-1 >= 0.3; at T = 1 it is not.
    Batch batch(1, 4);
    batch.x(0, 0) = 0.0f;
    batch.x(0, 1) = -2.0f;
    batch.x(0, 2) = -4.0f;
    batch.x(0, 3) = -2.0f;
    batch.row(0).min_p = 0.3f;
    batch.row(0).temperature = 2.0f;
    CHECK(kept_ids(ctx, batch) == std::vector<int64_t>{0, 1, 3});
    batch.row(0).temperature = 1.0f;
    CHECK(kept_ids(ctx, batch) == std::vector<int64_t>{0});
  }
  {
    // Top-k ties go to the lower id.
    Batch batch(1, 10);
    for (int64_t j = 0; j < 10; ++j) batch.x(0, j) = (j == 2 || j >= 6) ? 1.0f : 0.0f;
    batch.row(0).top_k = 3;
    CHECK(kept_ids(ctx, batch) == std::vector<int64_t>{2, 6, 7});
    batch.row(0).top_k = 6;  // the 5 tied at 1, then the lowest id at 0
    CHECK(kept_ids(ctx, batch) == std::vector<int64_t>{0, 2, 6, 7, 8, 9});
  }
}

TEST_CASE("sampling filters: edge values of the parameters") {
  CpuContext ctx;
  Batch base(1, 30);
  base.fill_normal(17, 2.0);
  base.x(0, 20) = 9.0f;  // the max, twice
  base.x(0, 7) = 9.0f;
  auto kept_with = [&](const RowSpec& spec) {
    Batch b(1, 30);
    for (int64_t j = 0; j < 30; ++j) b.x(0, j) = base.x(0, j);
    b.row(0) = spec;
    return kept_ids(ctx, b);
  };
  std::vector<int64_t> all(30);
  for (int64_t j = 0; j < 30; ++j) all[sz(j)] = j;
  RowSpec s;
  CHECK(kept_with(s) == all);
  s.top_k = 30;  // k >= V: off
  CHECK(kept_with(s) == all);
  s.top_k = 1000;
  CHECK(kept_with(s) == all);
  s.top_k = 0;
  s.top_p = 1.0f;  // p = 1: off
  CHECK(kept_with(s) == all);
  s.min_p = 1.0f;  // min_p = 1: the tokens tied at the max
  CHECK(kept_with(s) == std::vector<int64_t>{7, 20});
  s.min_p = 0.0f;
  s.top_k = 1;  // k = 1: the lower id of the tie
  CHECK(kept_with(s) == std::vector<int64_t>{7});
  s.top_k = 0;
  s.top_p = 1e-30f;  // the tiniest p keeps one token
  CHECK(kept_with(s) == std::vector<int64_t>{7});
  s.top_p = 1.0f;
  s.temperature = 0.0f;  // greedy rows keep the chain at T = 1
  CHECK(kept_with(s) == all);
}

TEST_CASE("sampling_logits: bf16 and f16 outputs are rounded once") {
  CpuContext ctx;
  Batch batch(6, 70);
  batch.fill_normal(8, 3.0);
  random_rows(batch, 9);
  for (int64_t i = 0; i < 6; ++i) {
    batch.row(i).mask.clear();
    batch.row(i).bias.clear();
  }
  batch.row(5).top_k = 3;
  std::vector<float> z;
  std::vector<uint8_t> st;
  samp_test::run_logits(ctx, batch, z, st);
  for (int32_t dt : {DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    INFO(mla_test::dtype_label(dt));
    std::vector<uint16_t> out(6 * 70, 0x1234);
    Borrowed o(out.data(), {6, 70}, dt);
    std::vector<uint8_t> st2(6, 0xEE);
    Borrowed s(st2.data(), {6}, DSK_DTYPE_UINT8);
    SAMP_REQUIRE_OK(dsk_sampling_logits(ctx, &batch.params(), batch.logits(), &o, &s));
    SAMP_REQUIRE_OK(dsk_context_synchronize(ctx));
    CHECK(st2 == st);
    int64_t bad = 0;
    for (size_t k = 0; k < out.size(); ++k) {
      const uint16_t want =
          dt == DSK_DTYPE_BF16 ? mla_test::bf16_bits(z[k]) : mla_test::f16_bits(z[k]);
      if (std::isnan(z[k])) {
        bad += (out[k] & 0x7FFFu) <= (dt == DSK_DTYPE_BF16 ? 0x7F80u : 0x7C00u);
      } else {
        bad += out[k] != want;
      }
    }
    CHECK_MESSAGE(bad == 0, bad, " elements differ from the f32 result rounded once");
  }
}
