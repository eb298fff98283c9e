// MoE dispatch, permute and combine on the CPU (dsk_moe.h): dsk_moe_dispatch_capacity values;
// dsk_moe_dispatch on worked examples and against the obvious reference (counts, offsets,
// sorted_rows, block_experts, dest) for block sizes 1, 16, 64, 128, int32 and int64 ids, -1 ids,
// an expert_begin slice (EP), skewed loads, T 0; dsk_moe_permute (float outputs exactly; fp8
// outputs bitwise equal to dsk_quant_fp8_act of the gathered rows); dsk_moe_combine against an f32
// emulation (with shared, in place, -1 slots); round trips permute -> identity or per-expert
// scaling "experts" -> combine against the dense per-token sums.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "moe_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using mla_test::expect_invalid;
using mla_test::Host;
using mla_test::ints;
using mla_test::View;
using moe_test::capacity_of;
using moe_test::Dispatch;
using moe_test::int_values;
using moe_test::ref_dispatch;
using moe_test::sz;

// Gate-like ids [T, k]: k distinct experts of [0, e_total) per token; each slot is -1 with
// probability `drop`. `skew` > 0 sends most picks to the low experts.
std::vector<int64_t> random_ids(int64_t t, int64_t k, int64_t e_total, uint64_t seed,
                                double drop = 0.0, double skew = 0.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int64_t> ids(sz(t * k));
  for (int64_t i = 0; i < t; ++i) {
    std::vector<int64_t> picked;
    while (static_cast<int64_t>(picked.size()) < k) {
      double r = u(rng);
      if (skew > 0) r = std::pow(r, 1.0 + skew);
      const auto e = std::min<int64_t>(e_total - 1, static_cast<int64_t>(r * double(e_total)));
      if (std::find(picked.begin(), picked.end(), e) == picked.end()) picked.push_back(e);
    }
    for (int64_t j = 0; j < k; ++j) ids[sz(i * k + j)] = u(rng) < drop ? -1 : picked[sz(j)];
  }
  return ids;
}

// Dispatch outputs, pre-filled with a sentinel that every element must lose.
struct Outs {
  Host counts, offsets, sorted_rows, block_experts, dest;
  Outs(int64_t t, int64_t k, int64_t e, int64_t capacity, int64_t block)
      : counts({e}, DSK_DTYPE_INT32),
        offsets({e + 1}, DSK_DTYPE_INT32),
        sorted_rows({capacity}, DSK_DTYPE_INT32),
        block_experts({(capacity + block - 1) / block}, DSK_DTYPE_INT32),
        dest({t, k}, DSK_DTYPE_INT32) {
    for (Host* h : {&counts, &offsets, &sorted_rows, &block_experts, &dest}) h->fill_bytes(0x5A);
  }
};

dsk_status dispatch(dsk_context* ctx, Host& ids, int64_t e, int64_t begin, int64_t block, Outs& o,
                    bool with_blocks = true, bool with_dest = true) {
  return dsk_moe_dispatch(ctx, ids.dl(), static_cast<int32_t>(e), static_cast<int32_t>(begin),
                          static_cast<int32_t>(block), o.counts.dl(), o.offsets.dl(),
                          o.sorted_rows.dl(), with_blocks ? o.block_experts.dl() : nullptr,
                          with_dest ? o.dest.dl() : nullptr);
}

void check_dispatch(const Outs& o, const Dispatch& want, bool with_blocks = true,
                    bool with_dest = true) {
  CHECK(int_values(o.counts) == want.counts);
  CHECK(int_values(o.offsets) == want.offsets);
  CHECK(int_values(o.sorted_rows) == want.sorted_rows);
  if (with_blocks) CHECK(int_values(o.block_experts) == want.block_experts);
  if (with_dest) CHECK(int_values(o.dest) == want.dest);
}

int64_t capacity(int64_t t, int64_t k, int64_t e, int64_t block) {
  int64_t c = -1;
  MOE_REQUIRE_OK(dsk_moe_dispatch_capacity(t, static_cast<int32_t>(k), static_cast<int32_t>(e),
                                           static_cast<int32_t>(block), &c));
  return c;
}

}  // namespace

TEST_CASE("moe dispatch_capacity gives T k + min(E, T k) (block - 1)") {
  CHECK(capacity(0, 8, 256, 128) == 0);
  CHECK(capacity(1, 8, 256, 1) == 8);
  CHECK(capacity(1, 8, 256, 128) == 8 + 8 * 127);
  CHECK(capacity(1000, 8, 256, 64) == 8000 + 256 * 63);
  CHECK(capacity(4096, 8, 256, 128) == 32768 + 256 * 127);
  CHECK(capacity(3, 2, 4, 16) == 6 + 4 * 15);
  CHECK(capacity(int64_t{1} << 40, 16, 384, 128) == (int64_t{1} << 44) + 384 * 127);
  int64_t c = 0;
  expect_invalid(dsk_moe_dispatch_capacity(-1, 8, 256, 1, &c), {"num_tokens"});
  expect_invalid(dsk_moe_dispatch_capacity(4, 0, 256, 1, &c), {"top_k"});
  expect_invalid(dsk_moe_dispatch_capacity(4, 8, 0, 1, &c), {"num_experts"});
  expect_invalid(dsk_moe_dispatch_capacity(4, 8, 256, 0, &c), {"block_size"});
  expect_invalid(dsk_moe_dispatch_capacity(4, 8, 256, -3, &c), {"block_size"});
  expect_invalid(dsk_moe_dispatch_capacity(4, 8, 256, 1, nullptr), {"capacity"});
  expect_invalid(dsk_moe_dispatch_capacity(std::numeric_limits<int64_t>::max() / 4, 8, 256, 1, &c),
                 {"num_tokens|top_k|capacity"}, {"overflow"});
  // 15 * 2^59 fits, the padding 2^30 * (2^31 - 2) on top does not.
  expect_invalid(dsk_moe_dispatch_capacity(int64_t{1} << 59, 15, 1 << 30,
                                           std::numeric_limits<int32_t>::max(), &c),
                 {"num_tokens|top_k|block_size|capacity"}, {"overflow"});
}

TEST_CASE("moe dispatch worked example, packed and in blocks of 4") {
  CpuContext ctx;
  // T 4, k 2, E 3: assignments a = t * 2 + j go to experts 2 0 | 0 1 | 1 2 | 0 -1.
  //   counts e0: a1 a2 a6, e1: a3 a4, e2: a0 a5  ->  3 2 2
  for (int32_t dt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
    INFO(moe_test::label(dt));
    Host ids = ints({4, 2}, dt, {2, 0, 0, 1, 1, 2, 0, -1});
    {
      Outs o(4, 2, 3, 8, 1);
      MOE_REQUIRE_OK(dispatch(ctx, ids, 3, 0, 1, o));
      CHECK(int_values(o.counts) == std::vector<int64_t>{3, 2, 2});
      CHECK(int_values(o.offsets) == std::vector<int64_t>{0, 3, 5, 7});
      CHECK(int_values(o.sorted_rows) == std::vector<int64_t>{1, 2, 6, 3, 4, 0, 5, 8});
      CHECK(int_values(o.block_experts) == std::vector<int64_t>{0, 0, 0, 1, 1, 2, 2, -1});
      CHECK(int_values(o.dest) == std::vector<int64_t>{5, 0, 1, 3, 4, 6, 2, -1});
    }
    {
      // capacity 8 + 3 * 3 = 17; segments start at 0, 4, 8; 5 blocks of 4.
      Outs o(4, 2, 3, 17, 4);
      MOE_REQUIRE_OK(dispatch(ctx, ids, 3, 0, 4, o));
      CHECK(int_values(o.counts) == std::vector<int64_t>{3, 2, 2});
      CHECK(int_values(o.offsets) == std::vector<int64_t>{0, 4, 8, 12});
      CHECK(int_values(o.sorted_rows) ==
            std::vector<int64_t>{1, 2, 6, 8, 3, 4, 8, 8, 0, 5, 8, 8, 8, 8, 8, 8, 8});
      CHECK(int_values(o.block_experts) == std::vector<int64_t>{0, 1, 2, -1, -1});
      CHECK(int_values(o.dest) == std::vector<int64_t>{8, 0, 1, 4, 5, 9, 2, -1});
    }
    {
      // The slice of experts 1 .. 2 (expert_begin 1, 2 local experts): e0 and -1 are skipped.
      Outs o(4, 2, 2, 8, 1);
      MOE_REQUIRE_OK(dispatch(ctx, ids, 2, 1, 1, o));
      CHECK(int_values(o.counts) == std::vector<int64_t>{2, 2});
      CHECK(int_values(o.offsets) == std::vector<int64_t>{0, 2, 4});
      CHECK(int_values(o.sorted_rows) == std::vector<int64_t>{3, 4, 0, 5, 8, 8, 8, 8});
      CHECK(int_values(o.block_experts) == std::vector<int64_t>{0, 0, 1, 1, -1, -1, -1, -1});
      CHECK(int_values(o.dest) == std::vector<int64_t>{2, -1, -1, 0, 1, 3, -1, -1});
    }
  }
}

TEST_CASE("moe dispatch matches the reference on random ids") {
  CpuContext ctx;
  uint64_t seed = 1;
  for (int64_t block : {1, 16, 64, 128}) {
    // T 2500 (20000 assignments with k 8) splits over threads (8192 a share) where there are any.
    for (int64_t t : {1, 7, 300, 2500}) {
      for (int64_t e : {8, 64, 256}) {
        for (int32_t dt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
          const int64_t k = std::min<int64_t>(e, 8);
          const double drop = seed % 3 == 0 ? 0.1 : 0.0;
          const double skew = seed % 4 == 1 ? 3.0 : 0.0;
          INFO("block " << block << " T " << t << " E " << e << " ids " << moe_test::label(dt)
                        << " drop " << drop << " skew " << skew);
          const std::vector<int64_t> idv = random_ids(t, k, e, seed++, drop, skew);
          Host ids = ints({t, k}, dt, idv);
          // Extra capacity: the tail is padding, its blocks -1.
          const int64_t cap = capacity(t, k, e, block) + (seed % 2 ? 37 : 0);
          const Dispatch want = ref_dispatch(idv, t, k, e, 0, block, cap);
          Outs o(t, k, e, cap, block);
          MOE_REQUIRE_OK(dispatch(ctx, ids, e, 0, block, o));
          check_dispatch(o, want);
          // Without the optional outputs: the rest is the same.
          Outs p(t, k, e, cap, block);
          MOE_REQUIRE_OK(dispatch(ctx, ids, e, 0, block, p, false, false));
          check_dispatch(p, want, false, false);
        }
      }
    }
  }
}

TEST_CASE("moe dispatch of an expert_begin slice skips other experts and -1 ids") {
  CpuContext ctx;
  // 64 experts over 4 ranks of 16: each rank dispatches its slice; together they cover every
  // kept assignment exactly once.
  const int64_t t = 200, k = 6, e_total = 64, local = 16;
  const std::vector<int64_t> idv = random_ids(t, k, e_total, 77, 0.05);
  Host ids = ints({t, k}, DSK_DTYPE_INT64, idv);
  std::vector<int64_t> seen(sz(t * k), 0);
  for (int64_t rank = 0; rank < 4; ++rank) {
    for (int64_t block : {1, 16}) {
      INFO("rank " << rank << " block " << block);
      const int64_t cap = capacity(t, k, local, block);
      const Dispatch want = ref_dispatch(idv, t, k, local, rank * local, block, cap);
      Outs o(t, k, local, cap, block);
      MOE_REQUIRE_OK(dispatch(ctx, ids, local, rank * local, block, o));
      check_dispatch(o, want);
      if (block == 1) {
        for (int64_t a = 0; a < t * k; ++a) seen[sz(a)] += o.dest.get(a) >= 0 ? 1 : 0;
      }
    }
  }
  for (int64_t a = 0; a < t * k; ++a) CHECK(seen[sz(a)] == (idv[sz(a)] >= 0 ? 1 : 0));
}

TEST_CASE("moe dispatch with T 0 and with every token on one expert") {
  CpuContext ctx;
  {
    Host ids({0, 8}, DSK_DTYPE_INT32);
    Outs o(0, 8, 16, 5, 4);
    MOE_REQUIRE_OK(dispatch(ctx, ids, 16, 0, 4, o));
    CHECK(int_values(o.counts) == std::vector<int64_t>(16, 0));
    CHECK(int_values(o.offsets) == std::vector<int64_t>(17, 0));
    CHECK(int_values(o.sorted_rows) == std::vector<int64_t>(5, 0));  // T * k = 0: padding
    CHECK(int_values(o.block_experts) == std::vector<int64_t>(2, -1));
    Outs z(0, 8, 16, 0, 4);
    MOE_REQUIRE_OK(dispatch(ctx, ids, 16, 0, 4, z, false, true));
  }
  {
    // 1000 tokens, k 1, all on expert 5: stable order 0 .. 999.
    const int64_t t = 1000;
    std::vector<int64_t> idv(sz(t), 5);
    Host ids = ints({t, 1}, DSK_DTYPE_INT32, idv);
    const int64_t cap = capacity(t, 1, 8, 128);
    Outs o(t, 1, 8, cap, 128);
    MOE_REQUIRE_OK(dispatch(ctx, ids, 8, 0, 128, o));
    check_dispatch(o, ref_dispatch(idv, t, 1, 8, 0, 128, cap));
    CHECK(o.offsets.get(6) == 1024);
  }
}

// ---- permute ----

TEST_CASE("moe permute gathers token rows in expert order and zeroes padding") {
  CpuContext ctx;
  const int64_t t = 9, k = 3, d = 40;
  const std::vector<int64_t> idv = random_ids(t, k, 8, 5);
  const int64_t cap = capacity(t, k, 8, 4);
  const Dispatch disp = ref_dispatch(idv, t, k, 8, 0, 4, cap);
  Host rows = ints({cap}, DSK_DTYPE_INT32, disp.sorted_rows);
  for (int32_t xd : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
    for (int32_t od : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
      for (mla_test::Form form : {mla_test::Form::kContiguous, mla_test::Form::kHeadMajor}) {
        INFO("x " << moe_test::label(xd) << " out " << moe_test::label(od) << " "
                  << moe_test::form(form));
        mla_test::Act x({t, d}, xd, form);
        x.fill_random(11, -4.0, 4.0);
        mla_test::Act out({cap, d}, od, mla_test::Form::kSliced);
        MOE_REQUIRE_OK(
            dsk_moe_permute(ctx, x.dl(), rows.dl(), static_cast<int32_t>(k), out.dl(), nullptr, 0));
        const std::vector<double> xv = x.values(), ov = out.values();
        std::vector<double> want(sz(cap * d), 0.0);
        for (int64_t r = 0; r < cap; ++r) {
          const int64_t a = disp.sorted_rows[sz(r)];
          if (a == t * k) continue;
          for (int64_t c = 0; c < d; ++c) {
            want[sz(r * d + c)] = mla_test::rounded(xv[sz(a / k * d + c)], od);
          }
        }
        CHECK(ov == want);
        CHECK(out.padding_written() == 0);
      }
    }
  }
}

TEST_CASE("moe permute to fp8 equals dsk_quant_fp8_act of the gathered rows, bit for bit") {
  CpuContext ctx;
  for (int64_t d : {200, 384}) {
    for (uint32_t flags : {0u, DSK_QUANT_SCALE_POW2}) {
      for (int32_t xd : {DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
        INFO("D " << d << " flags " << flags << " x " << moe_test::label(xd));
        const int64_t t = 11, k = 4, e = 6, tiles = (d + 127) / 128;
        const std::vector<int64_t> idv = random_ids(t, k, e, 21, 0.1);
        const int64_t cap = capacity(t, k, e, 16);
        const Dispatch disp = ref_dispatch(idv, t, k, e, 0, 16, cap);
        Host rows = ints({cap}, DSK_DTYPE_INT32, disp.sorted_rows);
        Host x({t, d}, xd);
        x.fill_random(22, -3.0, 3.0);
        x.set(5, 0.0);  // a few special values
        x.set(d + 1, 1e-30);
        // Permute to fp8 directly.
        Host q({cap, d}, DSK_DTYPE_FP8_E4M3FN), s({cap, tiles}, DSK_DTYPE_F32);
        q.fill_bytes(0x11);
        s.fill_bytes(0x11);
        MOE_REQUIRE_OK(dsk_moe_permute(ctx, x.dl(), rows.dl(), static_cast<int32_t>(k), q.dl(),
                                       s.dl(), flags));
        // Gather in x's dtype, then quantize.
        Host g({cap, d}, xd), q2({cap, d}, DSK_DTYPE_FP8_E4M3FN), s2({cap, tiles}, DSK_DTYPE_F32);
        MOE_REQUIRE_OK(
            dsk_moe_permute(ctx, x.dl(), rows.dl(), static_cast<int32_t>(k), g.dl(), nullptr, 0));
        MOE_REQUIRE_OK(dsk_quant_fp8_act(ctx, g.dl(), q2.dl(), s2.dl(), flags));
        CHECK(q.raw() == q2.raw());
        CHECK(s.raw() == s2.raw());
        // Padding rows: q 0 and scale 0.
        for (int64_t r = 0; r < cap; ++r) {
          if (disp.sorted_rows[sz(r)] != t * k) continue;
          for (int64_t c = 0; c < tiles; ++c) CHECK(s.get(r * tiles + c) == 0.0);
          for (int64_t c = 0; c < d; ++c) {
            CHECK(static_cast<const uint8_t*>(q.data())[r * d + c] == 0);
          }
        }
      }
    }
  }
}

// ---- combine ----

namespace {

// out[t] = shared[t] + sum_j w[t, j] * y[dest[t, j]] in f32, j in order, one rounding at the end.
std::vector<double> combine_f32(const std::vector<double>& y, const std::vector<int64_t>& dest,
                                const std::vector<double>& w, const std::vector<double>* shared,
                                int64_t t, int64_t k, int64_t d, std::vector<double>* mag) {
  std::vector<double> out(sz(t * d));
  mag->assign(sz(t * d), 0.0);
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t c = 0; c < d; ++c) {
      float acc = shared ? static_cast<float>((*shared)[sz(i * d + c)]) : 0.0f;
      double m = std::fabs(acc);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t r = dest[sz(i * k + j)];
        if (r < 0) continue;
        const float p = static_cast<float>(w[sz(i * k + j)]) * static_cast<float>(y[sz(r * d + c)]);
        acc = acc + p;
        m += std::fabs(static_cast<double>(p));
      }
      out[sz(i * d + c)] = acc;
      (*mag)[sz(i * d + c)] = m;
    }
  }
  return out;
}

// got within a few f32 ulps of the summed magnitudes, plus the output's own rounding.
void check_combine(const std::vector<double>& got, const std::vector<double>& want,
                   const std::vector<double>& mag, int32_t out_dtype, const std::string& what) {
  const double own = out_dtype == DSK_DTYPE_BF16  ? std::ldexp(1.0, -8)
                     : out_dtype == DSK_DTYPE_F16 ? std::ldexp(1.0, -11)
                                                  : 0.0;
  mla_test::check_within(
      got, want, [&](size_t i) { return 4e-7 * mag[i] + own * std::fabs(want[i]) + 1e-30; }, what);
}

}  // namespace

TEST_CASE("moe combine sums weighted expert rows in f32, with and without shared") {
  CpuContext ctx;
  const int64_t t = 13, k = 4, e = 5, d = 72;
  const std::vector<int64_t> idv = random_ids(t, k, e, 31, 0.15);
  const int64_t cap = capacity(t, k, e, 1);
  const Dispatch disp = ref_dispatch(idv, t, k, e, 0, 1, cap);
  Host dest = ints({t, k}, DSK_DTYPE_INT32, disp.dest);
  Host w({t, k}, DSK_DTYPE_F32);
  w.fill_random(32, -1.0, 2.0);
  for (int32_t yd : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
    for (int32_t od : {DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_F16}) {
      for (bool with_shared : {false, true}) {
        INFO("y " << moe_test::label(yd) << " out " << moe_test::label(od) << " shared "
                  << with_shared);
        mla_test::Act y({cap, d}, yd, mla_test::Form::kInterleaved);
        y.fill_random(33, -2.0, 2.0);
        mla_test::Act shared({t, d}, DSK_DTYPE_BF16, mla_test::Form::kContiguous);
        shared.fill_random(34, -1.0, 1.0);
        mla_test::Act out({t, d}, od, mla_test::Form::kSliced);
        MOE_REQUIRE_OK(dsk_moe_combine(ctx, y.dl(), dest.dl(), w.dl(),
                                       with_shared ? shared.dl() : nullptr, out.dl()));
        const std::vector<double> sv = shared.values();
        std::vector<double> mag;
        const std::vector<double> want = combine_f32(y.values(), disp.dest, w.values(),
                                                     with_shared ? &sv : nullptr, t, k, d, &mag);
        check_combine(out.values(), want, mag, od, "combine");
        CHECK(out.padding_written() == 0);
      }
    }
  }
  // In place: out is shared itself.
  Host y({cap, d}, DSK_DTYPE_F32);
  y.fill_random(35, -2.0, 2.0);
  Host acc({t, d}, DSK_DTYPE_F32);
  acc.fill_random(36, -1.0, 1.0);
  const std::vector<double> before = acc.values();
  MOE_REQUIRE_OK(dsk_moe_combine(ctx, y.dl(), dest.dl(), w.dl(), acc.dl(), acc.dl()));
  std::vector<double> mag;
  const std::vector<double> want =
      combine_f32(y.values(), disp.dest, w.values(), &before, t, k, d, &mag);
  check_combine(acc.values(), want, mag, DSK_DTYPE_F32, "combine in place");
  // Every slot -1 (experts elsewhere): out = shared, or 0.
  Host none = ints({t, k}, DSK_DTYPE_INT32, std::vector<int64_t>(sz(t * k), -1));
  Host out({t, d}, DSK_DTYPE_F32);
  out.fill_nan();
  MOE_REQUIRE_OK(dsk_moe_combine(ctx, y.dl(), none.dl(), w.dl(), nullptr, out.dl()));
  CHECK(out.values() == std::vector<double>(sz(t * d), 0.0));
  MOE_REQUIRE_OK(dsk_moe_combine(ctx, y.dl(), none.dl(), w.dl(), acc.dl(), out.dl()));
  CHECK(out.values() == acc.values());
}

// ---- round trips ----

TEST_CASE("moe permute, identity or scaling experts and combine equal the dense sums") {
  CpuContext ctx;
  // Ids and weights from the gate; the "experts" are y = x (identity) or y = (1 + e / 8) x.
  // Dense: out[t] = sum_j w[t, j] * f_{ids[t, j]}(x[t]); f32 throughout, so the tolerance is a
  // few f32 ulps of the summed magnitudes.
  const dsk_moe_gate_config gc = moe_test::v3_config();
  const int64_t t = 50, k = gc.top_k, e = gc.num_experts, d = 136;
  Host logits = moe_test::random_logits(t, e, DSK_DTYPE_F32, 41, 1.5);
  Host bias = moe_test::random_bias(e, 42, 0.3);
  Host ids({t, k}, DSK_DTYPE_INT32), w({t, k}, DSK_DTYPE_F32);
  MOE_REQUIRE_OK(dsk_moe_gate(ctx, &gc, logits.dl(), bias.dl(), ids.dl(), w.dl(), nullptr));
  Host x({t, d}, DSK_DTYPE_F32);
  x.fill_random(43, -2.0, 2.0);
  const std::vector<double> xv = x.values(), wv = w.values();
  const std::vector<int64_t> idv = int_values(ids);
  for (int64_t block : {1, 16, 128}) {
    for (bool scaling : {false, true}) {
      INFO("block " << block << " scaling " << scaling);
      const int64_t cap = capacity(t, k, e, block);
      Outs o(t, k, e, cap, block);
      MOE_REQUIRE_OK(dispatch(ctx, ids, e, 0, block, o));
      Host xs({cap, d}, DSK_DTYPE_F32);
      MOE_REQUIRE_OK(dsk_moe_permute(ctx, x.dl(), o.sorted_rows.dl(), static_cast<int32_t>(k),
                                     xs.dl(), nullptr, 0));
      if (scaling) {
        // Scale each expert's segment by its factor, through the dispatch's offsets.
        for (int64_t ex = 0; ex < e; ++ex) {
          const auto lo = static_cast<int64_t>(o.offsets.get(ex));
          const auto hi = static_cast<int64_t>(o.offsets.get(ex + 1));
          for (int64_t r = lo; r < hi; ++r) {
            CHECK(o.block_experts.get(r / block) == ex);
            for (int64_t c = 0; c < d; ++c) {
              xs.set(r * d + c, static_cast<float>(xs.get(r * d + c)) *
                                    static_cast<float>(1.0 + double(ex) / 8));
            }
          }
        }
      }
      Host out({t, d}, DSK_DTYPE_F32);
      MOE_REQUIRE_OK(dsk_moe_combine(ctx, xs.dl(), o.dest.dl(), w.dl(), nullptr, out.dl()));
      std::vector<double> want(sz(t * d), 0.0), mag(sz(t * d), 0.0);
      for (int64_t i = 0; i < t; ++i) {
        for (int64_t j = 0; j < k; ++j) {
          const double f = scaling ? 1.0 + double(idv[sz(i * k + j)]) / 8 : 1.0;
          for (int64_t c = 0; c < d; ++c) {
            const double term = wv[sz(i * k + j)] * f * xv[sz(i * d + c)];
            want[sz(i * d + c)] += term;
            mag[sz(i * d + c)] += std::fabs(term);
          }
        }
      }
      mla_test::check_within(
          out.values(), want, [&](size_t i) { return 1e-6 * mag[i] + 1e-30; }, "round trip");
    }
  }
}

// ---- load statistics and the bias update ----

TEST_CASE("moe load_accumulate counts a slice's assignments across calls") {
  CpuContext ctx;
  for (int32_t dt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
    INFO(moe_test::label(dt));
    // Experts 2 .. 5 (expert_begin 2, E 4): ids 0, 1, 6 and -1 belong elsewhere.
    Host ids = ints({3, 3}, dt, {2, 5, 0, 3, 2, -1, 6, 1, 2});
    Host load = ints({4}, DSK_DTYPE_INT64, {0, 0, 0, 0});
    MOE_REQUIRE_OK(dsk_moe_load_accumulate(ctx, ids.dl(), 2, load.dl()));
    CHECK(int_values(load) == std::vector<int64_t>{3, 1, 0, 1});
    MOE_REQUIRE_OK(dsk_moe_load_accumulate(ctx, ids.dl(), 2, load.dl()));
    CHECK(int_values(load) == std::vector<int64_t>{6, 2, 0, 2});
    // T 0 adds nothing; a large start value keeps its high bits.
    Host none({0, 3}, dt);
    MOE_REQUIRE_OK(dsk_moe_load_accumulate(ctx, none.dl(), 2, load.dl()));
    CHECK(int_values(load) == std::vector<int64_t>{6, 2, 0, 2});
    Host big = ints({4}, DSK_DTYPE_INT64, {int64_t{1} << 40, 0, 0, 0});
    MOE_REQUIRE_OK(dsk_moe_load_accumulate(ctx, ids.dl(), 2, big.dl()));
    CHECK(int_values(big) == std::vector<int64_t>{(int64_t{1} << 40) + 3, 1, 0, 1});
  }
  // Random ids against a histogram, with a reset through dsk_fill (T 4100: 32800 assignments,
  // split over threads where there are any).
  const int64_t t = 4100, k = 8, e = 64;
  const std::vector<int64_t> idv = random_ids(t, k, e, 51, 0.1, 2.0);
  Host ids = ints({t, k}, DSK_DTYPE_INT32, idv);
  Host load({e}, DSK_DTYPE_INT64);
  MOE_REQUIRE_OK(dsk_fill(ctx, load.dl(), 0.0));
  for (int rep = 0; rep < 3; ++rep)
    MOE_REQUIRE_OK(dsk_moe_load_accumulate(ctx, ids.dl(), 0, load.dl()));
  std::vector<int64_t> want(sz(e), 0);
  for (int64_t id : idv) {
    if (id >= 0) want[sz(id)] += 3;
  }
  CHECK(int_values(load) == want);
}

TEST_CASE("moe bias_update worked examples: the sign rule, equality gives 0") {
  CpuContext ctx;
  const float gamma = 0.001f;
  const double g = static_cast<double>(gamma);
  // load {1, 3, 2, 2, 0}: mean 8 / 5 = 1.6 -> signs +1 -1 -1 -1 +1.
  // load {1, 3, 2, 2}:    mean 2         -> signs +1 -1  0  0 (equal loads keep their bias).
  Host bias5({5}, DSK_DTYPE_F32), bias4({4}, DSK_DTYPE_F32);
  const double b0[5] = {0.25, -0.125, 0.0, 0.1, -0.3};
  for (int i = 0; i < 5; ++i) bias5.set(i, b0[i]);
  for (int i = 0; i < 4; ++i) bias4.set(i, b0[i]);
  const std::vector<double> start5 = bias5.values(), start4 = bias4.values();
  auto after = [&](const std::vector<double>& start, const std::vector<int>& sign) {
    std::vector<double> v(start.size());
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = static_cast<float>(start[i] + g * sign[i]);  // double, then rounded to f32 once
    }
    return v;
  };
  Host load5 = ints({5}, DSK_DTYPE_INT64, {1, 3, 2, 2, 0});
  MOE_REQUIRE_OK(dsk_moe_bias_update(ctx, load5.dl(), bias5.dl(), gamma));
  CHECK(bias5.values() == after(start5, {1, -1, -1, -1, 1}));
  Host load4 = ints({4}, DSK_DTYPE_INT64, {1, 3, 2, 2});
  MOE_REQUIRE_OK(dsk_moe_bias_update(ctx, load4.dl(), bias4.dl(), gamma));
  const std::vector<double> once = after(start4, {1, -1, 0, 0});
  CHECK(bias4.values() == once);
  // The same with f32 loads (fractions: e.g. loads averaged over steps).
  Host fload({4}, DSK_DTYPE_F32);
  const double fl[4] = {0.5, 1.5, 1.0, 1.0};
  for (int i = 0; i < 4; ++i) fload.set(i, fl[i]);
  MOE_REQUIRE_OK(dsk_moe_bias_update(ctx, fload.dl(), bias4.dl(), gamma));
  CHECK(bias4.values() == after(once, {1, -1, 0, 0}));
  // gamma 0 changes nothing; all loads equal change nothing.
  const std::vector<uint8_t> raw = bias4.raw();
  MOE_REQUIRE_OK(dsk_moe_bias_update(ctx, fload.dl(), bias4.dl(), 0.0f));
  CHECK(bias4.raw() == raw);
  Host flat = ints({4}, DSK_DTYPE_INT64, {7, 7, 7, 7});
  MOE_REQUIRE_OK(dsk_moe_bias_update(ctx, flat.dl(), bias4.dl(), gamma));
  CHECK(bias4.raw() == raw);
  // Loads from load_accumulate drive the bias: over- and underloaded experts move apart.
  Host ids = ints({4, 2}, DSK_DTYPE_INT32, {0, 1, 0, 2, 0, 3, 0, 1});
  Host load = ints({4}, DSK_DTYPE_INT64, {0, 0, 0, 0});
  MOE_REQUIRE_OK(dsk_moe_load_accumulate(ctx, ids.dl(), 0, load.dl()));  // 4 2 1 1, mean 2
  Host b({4}, DSK_DTYPE_F32);
  b.fill(0.0);
  MOE_REQUIRE_OK(dsk_moe_bias_update(ctx, load.dl(), b.dl(), 0.5f));
  CHECK(b.values() == std::vector<double>{-0.5, 0.0, 0.5, 0.5});
}

// ---- expert-parallel layout ----

namespace {

struct EpOut {
  Host per_rank, per_expert, in_rank;
  EpOut(int64_t t, int64_t e, int64_t r, int32_t in_rank_dtype)
      : per_rank({r}, DSK_DTYPE_INT32),
        per_expert({e}, DSK_DTYPE_INT32),
        in_rank({t, r}, in_rank_dtype) {
    per_rank.fill_bytes(0x5A);
    per_expert.fill_bytes(0x5A);
    in_rank.fill_bytes(0x5A);
  }
  std::vector<int64_t> in_rank_values() const {
    const auto* p = static_cast<const uint8_t*>(in_rank.data());
    return std::vector<int64_t>(p, p + in_rank.size());
  }
};

}  // namespace

TEST_CASE("moe ep_layout worked example with 4 ranks and -1 ids") {
  CpuContext ctx;
  // E 8 over R 4: rank r owns experts 2r, 2r + 1.
  //   token 0: experts 0 1 5  -> ranks 0, 2
  //   token 1: experts 7 -1 6 -> rank 3
  //   token 2: -1 -1 -1       -> no rank
  //   token 3: experts 2 4 3  -> ranks 1, 2
  for (int32_t dt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
    for (int32_t bd : {DSK_DTYPE_BOOL, DSK_DTYPE_UINT8}) {
      INFO(moe_test::label(dt) << " is_token_in_rank dtype " << bd);
      Host ids = ints({4, 3}, dt, {0, 1, 5, 7, -1, 6, -1, -1, -1, 2, 4, 3});
      EpOut o(4, 8, 4, bd);
      MOE_REQUIRE_OK(dsk_moe_ep_layout(ctx, ids.dl(), 8, 4, o.per_rank.dl(), o.per_expert.dl(),
                                       o.in_rank.dl()));
      CHECK(int_values(o.per_rank) == std::vector<int64_t>{1, 1, 2, 1});
      CHECK(int_values(o.per_expert) == std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1});
      CHECK(o.in_rank_values() ==
            std::vector<int64_t>{1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0});
    }
  }
  // One rank: everything on it; T 0.
  Host ids = ints({2, 2}, DSK_DTYPE_INT32, {3, 1, -1, 3});
  EpOut one(2, 4, 1, DSK_DTYPE_BOOL);
  MOE_REQUIRE_OK(dsk_moe_ep_layout(ctx, ids.dl(), 4, 1, one.per_rank.dl(), one.per_expert.dl(),
                                   one.in_rank.dl()));
  CHECK(int_values(one.per_rank) == std::vector<int64_t>{2});
  CHECK(int_values(one.per_expert) == std::vector<int64_t>{0, 1, 0, 2});
  CHECK(one.in_rank_values() == std::vector<int64_t>{1, 1});
  Host empty({0, 8}, DSK_DTYPE_INT64);
  EpOut z(0, 256, 8, DSK_DTYPE_BOOL);
  MOE_REQUIRE_OK(dsk_moe_ep_layout(ctx, empty.dl(), 256, 8, z.per_rank.dl(), z.per_expert.dl(),
                                   z.in_rank.dl()));
  CHECK(int_values(z.per_rank) == std::vector<int64_t>(8, 0));
  CHECK(int_values(z.per_expert) == std::vector<int64_t>(256, 0));
}

TEST_CASE("moe ep_layout matches the reference on random ids") {
  CpuContext ctx;
  const int64_t t = 4100, k = 8, e = 256;  // 32800 assignments: split over threads
  const std::vector<int64_t> idv = random_ids(t, k, e, 61, 0.05, 1.0);
  for (int64_t r : {1, 8, 32, 256}) {
    INFO("R " << r);
    Host ids = ints({t, k}, DSK_DTYPE_INT64, idv);
    EpOut o(t, e, r, DSK_DTYPE_BOOL);
    MOE_REQUIRE_OK(dsk_moe_ep_layout(ctx, ids.dl(), static_cast<int32_t>(e),
                                     static_cast<int32_t>(r), o.per_rank.dl(), o.per_expert.dl(),
                                     o.in_rank.dl()));
    std::vector<int64_t> per_rank(sz(r), 0), per_expert(sz(e), 0), in_rank(sz(t * r), 0);
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t id = idv[sz(i * k + j)];
        if (id < 0) continue;
        ++per_expert[sz(id)];
        in_rank[sz(i * r + id / (e / r))] = 1;
      }
      for (int64_t q = 0; q < r; ++q) per_rank[sz(q)] += in_rank[sz(i * r + q)];
    }
    CHECK(int_values(o.per_rank) == per_rank);
    CHECK(int_values(o.per_expert) == per_expert);
    CHECK(o.in_rank_values() == in_rank);
  }
}
