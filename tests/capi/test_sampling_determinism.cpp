// Determinism and the RNG layout of dsk_sample (dsk_sampling.h): the same (seed, offset) gives the
// same ids across runs, batch sizes, row positions, thread counts and logits strides (a stride-0
// broadcast row included); different seeds or offsets give different ids; scalar seed / offset
// equal per-row tensors of the same values (int64 read as uint64). The RNG layout itself: with
// Philox4x32-10 written here from its definition (checked against Random123's known answers) and
// the header's counter layout and Gumbel transform in double, the argmax of z + g predicts the
// library's id wherever the top two scores are not within 1e-4 of each other.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
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
using samp_test::RowSpec;
using samp_test::sz;

// A mixed batch: every parameter, token lists, bias, masks, some greedy rows.
Batch mixed_batch(int64_t b, int64_t v, uint64_t seed) {
  Batch batch(b, v);
  batch.fill_normal(seed, 2.0);
  std::mt19937_64 rng(seed + 1);
  for (int64_t i = 0; i < b; ++i) {
    RowSpec& r = batch.row(i);
    r.seed = rng();
    r.offset = rng() >> (rng() % 64);
    r.temperature = i % 7 == 3 ? 0.0f : 0.4f + static_cast<float>(rng() % 100) / 60.0f;
    r.top_k = static_cast<int32_t>(rng() % 3 == 0 ? rng() % 50 : 0);
    r.top_p = rng() % 2 == 0 ? 0.9f : 1.0f;
    r.min_p = rng() % 3 == 0 ? 0.02f : 0.0f;
    if (rng() % 2 == 0) {
      r.repetition = 1.1f;
      r.frequency = 0.2f;
      r.presence = 0.1f;
      for (int t = 0; t < 5; ++t) r.output_ids.push_back(static_cast<int64_t>(rng() % 30));
      r.prompt_ids = {static_cast<int64_t>(rng() % static_cast<uint64_t>(v))};
    }
    if (rng() % 3 == 0) r.bias = {{static_cast<int64_t>(rng() % 30), 1.0f}};
    if (rng() % 4 == 0) {
      r.mask.assign(sz((v + 31) / 32), 0xFFFFFFFFu);
      r.mask[0] = 0xF0F0F0F0u;
    }
  }
  return batch;
}

// A batch made of rows `which` of `src` (same logits and parameters).
Batch pick(const Batch& src, const std::vector<int64_t>& which) {
  Batch out(static_cast<int64_t>(which.size()), src.vocab());
  for (size_t k = 0; k < which.size(); ++k) {
    const auto i = static_cast<int64_t>(k);
    const std::vector<float> x = src.xrow(which[k]);
    for (int64_t j = 0; j < src.vocab(); ++j) out.x(i, j) = x[sz(j)];
    out.row(i) = src.row(which[k]);
  }
  return out;
}

struct Result {
  std::vector<int32_t> ids;
  std::vector<float> lp;
  std::vector<int32_t> top;
};

Result run(dsk_context* ctx, Batch& batch) {
  Outputs out(batch.rows(), 3);
  samp_test::run_sample(ctx, batch, out);
  Result r;
  r.ids.assign(out.ids.begin(), out.ids.begin() + batch.rows());
  r.lp.assign(out.logprobs.begin(), out.logprobs.begin() + batch.rows());
  r.top.assign(out.top_ids.begin(), out.top_ids.begin() + batch.rows() * 3);
  return r;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

}  // namespace

TEST_CASE("sampling determinism: the test's Philox4x32-10 matches Random123's known answers") {
  const samp_test::Words a = samp_test::philox4x32_10(0, 0, 0, 0, 0, 0);
  CHECK(a.v[0] == 0x6627e8d5u);
  CHECK(a.v[1] == 0xe169c58du);
  CHECK(a.v[2] == 0xbc57ac4cu);
  CHECK(a.v[3] == 0x9b00dbd8u);
  const samp_test::Words b = samp_test::philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  CHECK(b.v[0] == 0x408f276du);
  CHECK(b.v[1] == 0x41c83b0eu);
  CHECK(b.v[2] == 0xa20bc7c6u);
  CHECK(b.v[3] == 0x6d5451fdu);
  const samp_test::Words c = samp_test::philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu,
                                                      0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK(c.v[0] == 0xd16cfe09u);
  CHECK(c.v[1] == 0x94fdccebu);
  CHECK(c.v[2] == 0x5001e420u);
  CHECK(c.v[3] == 0x24126ea1u);
}

TEST_CASE("sampling determinism: ids follow the documented RNG layout") {
  CpuContext ctx;
  const int64_t b = 64, v = 1000;
  Batch batch(b, v);
  batch.fill_normal(61, 1.0);
  std::mt19937_64 rng(62);
  for (int64_t i = 0; i < b; ++i) {
    RowSpec& r = batch.row(i);
    // Seeds and offsets with both words in use.
    r.seed = i % 3 == 0 ? static_cast<uint64_t>(i) : rng();
    r.offset = i % 4 == 0 ? static_cast<uint64_t>(i) : rng();
    r.temperature = i % 2 == 0 ? 1.0f : 0.5f;
    if (i % 5 == 0) r.top_k = 20;
  }
  Outputs out(b, 0);
  samp_test::run_sample(ctx, batch, out);
  int64_t decided = 0;
  for (int64_t i = 0; i < b; ++i) {
    INFO("row ", i);
    const samp_test::Ref ref = batch.ref(i);
    double best = -kInf, second = -kInf;
    int64_t best_id = -1;
    for (int64_t j = 0; j < v; ++j) {
      if (!ref.kept[sz(j)]) continue;
      const double s =
          static_cast<double>(ref.z[sz(j)]) +
          samp_test::gumbel(batch.row(i).seed, batch.row(i).offset, static_cast<uint32_t>(j));
      if (s > best) {
        second = best;
        best = s;
        best_id = j;
      } else if (s > second) {
        second = s;
      }
    }
    if (best - second > 1e-4) {
      ++decided;
      CHECK(out.ids[sz(i)] == best_id);
    }
  }
  CHECK(decided >= b - 2);
}

TEST_CASE("sampling determinism: runs, batch sizes, row positions and thread counts") {
  CpuContext ctx;
  const int64_t b = 37, v = 500;
  Batch batch = mixed_batch(b, v, 70);
  const Result first = run(ctx, batch);
  const Result again = run(ctx, batch);
  CHECK(first.ids == again.ids);
  CHECK(first.top == again.top);
  // Each row alone.
  for (int64_t i = 0; i < b; ++i) {
    Batch one = pick(batch, {i});
    const Result r = run(ctx, one);
    INFO("row ", i, " alone");
    CHECK(r.ids[0] == first.ids[sz(i)]);
    CHECK(same_bits(r.lp[0], first.lp[sz(i)]));
    CHECK(std::equal(r.top.begin(), r.top.end(), first.top.begin() + i * 3));
  }
  // Reversed, with some rows repeated: a larger batch.
  std::vector<int64_t> order;
  for (int64_t i = b - 1; i >= 0; --i) order.push_back(i);
  for (int64_t i = 0; i < b; i += 3) order.push_back(i);
  Batch shuffled = pick(batch, order);
  const Result s = run(ctx, shuffled);
  for (size_t k = 0; k < order.size(); ++k) {
    INFO("position ", k, " holds row ", order[k]);
    CHECK(s.ids[k] == first.ids[sz(order[k])]);
    CHECK(same_bits(s.lp[k], first.lp[sz(order[k])]));
  }
  // Thread counts, and rows long enough to be split.
  for (int64_t vv : {int64_t{500}, int64_t{129280}}) {
    Batch big = mixed_batch(vv == 500 ? 64 : 4, vv, 71);
    Result r1, r3;
    {
      dsk_test::Threads t("1");
      r1 = run(ctx, big);
    }
    {
      dsk_test::Threads t("3");
      r3 = run(ctx, big);
    }
    INFO("V ", vv);
    CHECK(r1.ids == r3.ids);
    CHECK(r1.top == r3.top);
    CHECK(std::memcmp(r1.lp.data(), r3.lp.data(), r1.lp.size() * 4) == 0);
    if (vv == 500) continue;
    // A row alone splits every pass over the row (pass 1, the race, the mass) over 3 threads.
    for (int64_t i = 0; i < big.rows(); ++i) {
      INFO("row ", i, " alone");
      Batch one = pick(big, {i});
      Result a;
      {
        dsk_test::Threads t("3");
        a = run(ctx, one);
      }
      CHECK(a.ids[0] == r1.ids[sz(i)]);
      CHECK(same_bits(a.lp[0], r1.lp[sz(i)]));
      CHECK(std::equal(a.top.begin(), a.top.end(), r1.top.begin() + 3 * i));
    }
  }
}

TEST_CASE("sampling determinism: strides and dtypes of the inputs do not matter") {
  CpuContext ctx;
  Batch a = mixed_batch(20, 300, 80);
  const Result base = run(ctx, a);
  a.extra_cols = 13;  // a strided view of a wider buffer
  a.csr_dtype = DSK_DTYPE_INT64;
  const Result strided = run(ctx, a);
  CHECK(strided.ids == base.ids);
  CHECK(strided.top == base.top);
  // A stride-0 broadcast of one row equals the row repeated.
  const int64_t b = 50, v = 64;
  Batch rep(b, v);
  std::vector<float> row(sz(v));
  std::mt19937_64 rng(81);
  std::normal_distribution<double> d(0.0, 1.0);
  for (float& t : row) t = static_cast<float>(d(rng));
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < v; ++j) rep.x(i, j) = row[sz(j)];
    rep.row(i).seed = 5;
    rep.row(i).offset = static_cast<uint64_t>(i);
  }
  const Result full = run(ctx, rep);
  rep.build();
  Borrowed bcast(row.data(), {b, v}, DSK_DTYPE_F32, {0, 1});
  Outputs out(b, 3);
  SAMP_REQUIRE_OK(dsk_sample(ctx, &rep.params(), &bcast, out.get()));
  SAMP_REQUIRE_OK(dsk_context_synchronize(ctx));
  CHECK(std::equal(full.ids.begin(), full.ids.end(), out.ids.begin()));
  // 50 rows of one distribution over 64 tokens with different offsets: not all the same id.
  CHECK(std::count(full.ids.begin(), full.ids.end(), full.ids[0]) < 40);
}

TEST_CASE("sampling determinism: seeds and offsets") {
  CpuContext ctx;
  const int64_t b = 200, v = 1000;
  auto flat = [&](uint64_t seed0, uint64_t offset0, bool per_row) {
    Batch batch(b, v);  // every logit 0: the id is the argmax of the noise
    for (int64_t i = 0; i < b; ++i) {
      batch.row(i).seed = seed0 + (per_row ? static_cast<uint64_t>(i) : 0);
      batch.row(i).offset = offset0;
    }
    batch.per_row_rng = per_row;
    return run(ctx, batch).ids;
  };
  const std::vector<int32_t> a = flat(1, 0, true);
  const std::vector<int32_t> diff_seed = flat(1001, 0, true);
  const std::vector<int32_t> diff_offset = flat(1, 1, true);
  int64_t same_seed_hits = 0, same_offset_hits = 0;
  for (int64_t i = 0; i < b; ++i) {
    same_seed_hits += a[sz(i)] == diff_seed[sz(i)];
    same_offset_hits += a[sz(i)] == diff_offset[sz(i)];
  }
  CHECK(same_seed_hits < 10);
  CHECK(same_offset_hits < 10);
  // Rows of one batch with different seeds differ from each other.
  CHECK(std::count(a.begin(), a.end(), a[0]) < 10);
  // Scalar seed and offset == per-row tensors holding the same values (high bits too).
  for (uint64_t seed : {uint64_t{0}, uint64_t{42}, uint64_t{0x8000000000000001ull},
                        uint64_t{0xFFFFFFFFFFFFFFFFull}}) {
    for (uint64_t offset : {uint64_t{0}, uint64_t{7}, uint64_t{0xFFFFFFFF00000000ull}}) {
      INFO("seed ", seed, " offset ", offset);
      const std::vector<int32_t> scalar = flat(seed, offset, false);
      const std::vector<int32_t> tensor = [&] {
        Batch batch(b, v);
        for (int64_t i = 0; i < b; ++i) {
          batch.row(i).seed = seed;
          batch.row(i).offset = offset;
        }
        return run(ctx, batch).ids;
      }();
      CHECK(scalar == tensor);
      // A single seed/offset for all rows of a flat batch: every row draws the same token.
      CHECK(std::count(scalar.begin(), scalar.end(), scalar[0]) == b);
    }
  }
}
