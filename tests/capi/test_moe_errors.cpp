// MoE bad input on the CPU (dsk_moe.h): every function answers a bad argument with
// DSK_ERR_INVALID_ARGUMENT (DSK_ERR_VERSION_MISMATCH for a struct_size below the first release, as
// every versioned struct of dsk) and a message naming the argument: NULL context, config, tensors
// and structs; gate configs (E % G, topk_group, k, top-2 rule with one expert per group, score
// function, group rule, renormalize, non-finite scale, score dtype); dtypes and shapes of every
// tensor; dispatch capacity and block size; index values (sorted_rows, dest, EP ids: the CPU names
// the element and writes nothing); gamma; E % R; the expert weights; plan/run mismatches.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
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
using moe_test::sz;

const float kNaNf = std::numeric_limits<float>::quiet_NaN();
const float kInff = std::numeric_limits<float>::infinity();

void expect_version(dsk_status s, const char* fragment) {
  dsk_test::expect_error(s, DSK_ERR_VERSION_MISMATCH, {fragment});
}

// ---- gate ----

struct GateFixture {
  CpuContext ctx;
  dsk_moe_gate_config config = moe_test::v3_config();
  Host logits{{4, 256}, DSK_DTYPE_F32};
  Host bias{{256}, DSK_DTYPE_F32};
  Host ids{{4, 8}, DSK_DTYPE_INT32};
  Host weights{{4, 8}, DSK_DTYPE_F32};
  Host flags{{4}, DSK_DTYPE_UINT8};
  GateFixture() {
    logits.fill_random(1);
    bias.fill(0.0);
  }
  dsk_status run(const dsk_moe_gate_config& c) {
    return dsk_moe_gate(ctx, &c, logits.dl(), bias.dl(), ids.dl(), weights.dl(), flags.dl());
  }
  dsk_status with(const std::function<void(dsk_moe_gate_config&)>& f) {
    dsk_moe_gate_config c = config;
    f(c);
    return run(c);
  }
};

}  // namespace

TEST_CASE("moe gate rejects bad configs") {
  GateFixture f;
  MOE_REQUIRE_OK(f.run(f.config));
  expect_invalid(dsk_moe_gate(nullptr, &f.config, f.logits.dl(), f.bias.dl(), f.ids.dl(),
                              f.weights.dl(), f.flags.dl()),
                 {"ctx"});
  expect_invalid(dsk_moe_gate(f.ctx, nullptr, f.logits.dl(), f.bias.dl(), f.ids.dl(),
                              f.weights.dl(), f.flags.dl()),
                 {"config"});
  expect_version(f.with([](dsk_moe_gate_config& c) { c.struct_size = 4; }),
                 "config->struct_size = 4");
  expect_version(f.with([](dsk_moe_gate_config& c) { c.struct_size = 0; }), "config->struct_size");
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.num_experts = 0; }), {"num_experts"});
  // E % G != 0, G out of range.
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.n_group = 7; }), {"n_group"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.n_group = 0; }), {"n_group"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.n_group = 512; }), {"n_group"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.topk_group = 0; }), {"topk_group"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.topk_group = 9; }), {"topk_group"});
  // k > topk_group * E / G = 4 * 32.
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.top_k = 0; }), {"top_k"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.top_k = 129; }), {"top_k"}, {"128"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) {
    c.topk_group = 1;
    c.top_k = 33;
  }),
                 {"top_k"});
  // Top-2 sums with one expert per group: TOP2SUM, or AUTO with a bias.
  expect_invalid(f.with([](dsk_moe_gate_config& c) {
    c.n_group = 256;
    c.topk_group = 8;
    c.group_rule = DSK_MOE_GROUP_TOP2SUM;
  }),
                 {"n_group|group_rule"}, {"TOP2SUM"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) {
    c.n_group = 256;
    c.topk_group = 8;
  }),
                 {"n_group|group_rule"});
  {
    // ... which is fine with MAX, or with AUTO and no bias.
    dsk_moe_gate_config c = f.config;
    c.n_group = 256;
    c.topk_group = 8;
    c.group_rule = DSK_MOE_GROUP_MAX;
    MOE_REQUIRE_OK(f.run(c));
    c.group_rule = DSK_MOE_GROUP_AUTO;
    MOE_REQUIRE_OK(
        dsk_moe_gate(f.ctx, &c, f.logits.dl(), nullptr, f.ids.dl(), f.weights.dl(), nullptr));
  }
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.score_func = 3; }), {"score_func"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.score_func = -1; }), {"score_func"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.group_rule = 3; }), {"group_rule"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.renormalize = 2; }), {"renormalize"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.routed_scaling_factor = kNaNf; }),
                 {"routed_scaling_factor"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.routed_scaling_factor = kInff; }),
                 {"routed_scaling_factor"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.routed_scaling_factor = -kInff; }),
                 {"routed_scaling_factor"});
  expect_invalid(f.with([](dsk_moe_gate_config& c) { c.score_dtype = DSK_DTYPE_F16; }),
                 {"score_dtype"});
  // A config struct from a newer header (larger) is read up to what this library knows.
  {
    struct Bigger {
      dsk_moe_gate_config c;
      int32_t extra[4];
    } big{};
    big.c = f.config;
    big.c.struct_size = sizeof(Bigger);
    MOE_REQUIRE_OK(f.run(big.c));
  }
}

TEST_CASE("moe gate rejects bad tensors") {
  GateFixture f;
  auto gate = [&](const DLTensor* logits, const DLTensor* bias, const DLTensor* ids,
                  const DLTensor* weights, const DLTensor* flags) {
    return dsk_moe_gate(f.ctx, &f.config, logits, bias, ids, weights, flags);
  };
  const DLTensor *L = f.logits.dl(), *B = f.bias.dl(), *I = f.ids.dl(), *W = f.weights.dl(),
                 *F = f.flags.dl();
  expect_invalid(gate(nullptr, B, I, W, F), {"logits"});
  expect_invalid(gate(L, B, nullptr, W, F), {"ids"});
  expect_invalid(gate(L, B, I, nullptr, F), {"weights"});
  Host li({4, 256}, DSK_DTYPE_INT32), l3({1, 4, 256}, DSK_DTYPE_F32), l255({4, 255}, DSK_DTYPE_F32);
  expect_invalid(gate(li.dl(), B, I, W, F), {"logits"});
  expect_invalid(gate(l3.dl(), B, I, W, F), {"logits"});
  expect_invalid(gate(l255.dl(), B, I, W, F), {"logits"}, {"num_experts"});
  Host bh({256}, DSK_DTYPE_BF16), b255({255}, DSK_DTYPE_F32);
  expect_invalid(gate(L, bh.dl(), I, W, F), {"bias"});
  expect_invalid(gate(L, b255.dl(), I, W, F), {"bias"});
  Host ids_f({4, 8}, DSK_DTYPE_F32), ids7({4, 7}, DSK_DTYPE_INT32), ids5({5, 8}, DSK_DTYPE_INT32);
  expect_invalid(gate(L, B, ids_f.dl(), W, F), {"ids"});
  expect_invalid(gate(L, B, ids7.dl(), W, F), {"ids"});
  expect_invalid(gate(L, B, ids5.dl(), W, F), {"ids"});
  Host w16({4, 8}, DSK_DTYPE_F16), w9({4, 9}, DSK_DTYPE_F32);
  expect_invalid(gate(L, B, I, w16.dl(), F), {"weights"});
  expect_invalid(gate(L, B, I, w9.dl(), F), {"weights"});
  Host fl32({4}, DSK_DTYPE_INT32), fl5({5}, DSK_DTYPE_UINT8);
  expect_invalid(gate(L, B, I, W, fl32.dl()), {"row_flags"});
  expect_invalid(gate(L, B, I, W, fl5.dl()), {"row_flags"});
  // Outputs overlapping each other or an input.
  Host both({4, 16}, DSK_DTYPE_INT32);
  View ids_part = both.view({4, 8}, {16, 1}, 0);
  View w_part = View(both.data(), DSK_DTYPE_F32, {4, 8}, {16, 1});
  expect_invalid(gate(L, B, ids_part.get(), w_part.get(), F), {"ids|weights"});
  View w_on_logits = f.logits.view({4, 8}, {256, 1});
  expect_invalid(gate(L, B, I, w_on_logits.get(), F), {"weights|logits"});
  // T 0 still checks shapes.
  Host l0({0, 256}, DSK_DTYPE_F32), ids1({1, 8}, DSK_DTYPE_INT32);
  expect_invalid(gate(l0.dl(), B, ids1.dl(), W, F), {"ids"});
}

TEST_CASE("moe gate_router rejects bad arguments") {
  CpuContext ctx;
  dsk_moe_gate_config c = moe_test::v2lite_config();
  Host x({3, 32}, DSK_DTYPE_BF16), w({64, 32}, DSK_DTYPE_BF16), ids({3, 6}, DSK_DTYPE_INT32),
      weights({3, 6}, DSK_DTYPE_F32);
  x.fill(0.5);
  w.fill(0.25);
  MOE_REQUIRE_OK(
      dsk_moe_gate_router(ctx, &c, x.dl(), w.dl(), nullptr, ids.dl(), weights.dl(), nullptr));
  expect_invalid(
      dsk_moe_gate_router(nullptr, &c, x.dl(), w.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"ctx"});
  expect_invalid(
      dsk_moe_gate_router(ctx, nullptr, x.dl(), w.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"config"});
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, nullptr, w.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"x"});
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, x.dl(), nullptr, nullptr, ids.dl(), weights.dl(), nullptr),
      {"w"});
  Host wf({64, 32}, DSK_DTYPE_F32), w33({64, 33}, DSK_DTYPE_BF16), w63({63, 32}, DSK_DTYPE_BF16),
      xi({3, 32}, DSK_DTYPE_INT32), x1({32}, DSK_DTYPE_BF16);
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, x.dl(), wf.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"w|x"});
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, x.dl(), w33.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"w"});
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, x.dl(), w63.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"w"});
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, xi.dl(), w.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"x"});
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, x1.dl(), w.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"x"});
  c.n_group = 5;
  expect_invalid(
      dsk_moe_gate_router(ctx, &c, x.dl(), w.dl(), nullptr, ids.dl(), weights.dl(), nullptr),
      {"n_group"});
}

// ---- dispatch, permute, combine ----

TEST_CASE("moe dispatch rejects bad arguments") {
  CpuContext ctx;
  // T 4, k 2, E 3, packed: capacity 8.
  Host ids = ints({4, 2}, DSK_DTYPE_INT32, {2, 0, 0, 1, 1, 2, 0, -1});
  Host counts({3}, DSK_DTYPE_INT32), offsets({4}, DSK_DTYPE_INT32), rows({8}, DSK_DTYPE_INT32),
      blocks({8}, DSK_DTYPE_INT32), dest({4, 2}, DSK_DTYPE_INT32);
  auto run = [&](const DLTensor* i, int32_t e, int32_t begin, int32_t block, const DLTensor* c,
                 const DLTensor* o, const DLTensor* r, const DLTensor* b, const DLTensor* d) {
    return dsk_moe_dispatch(ctx, i, e, begin, block, c, o, r, b, d);
  };
  const DLTensor *I = ids.dl(), *C = counts.dl(), *O = offsets.dl(), *R = rows.dl(),
                 *B = blocks.dl(), *D = dest.dl();
  MOE_REQUIRE_OK(run(I, 3, 0, 1, C, O, R, B, D));
  expect_invalid(dsk_moe_dispatch(nullptr, I, 3, 0, 1, C, O, R, B, D), {"ctx"});
  expect_invalid(run(nullptr, 3, 0, 1, C, O, R, B, D), {"ids"});
  expect_invalid(run(I, 3, 0, 1, nullptr, O, R, B, D), {"counts"});
  expect_invalid(run(I, 3, 0, 1, C, nullptr, R, B, D), {"offsets"});
  expect_invalid(run(I, 3, 0, 1, C, O, nullptr, B, D), {"sorted_rows"});
  Host ids_f({4, 2}, DSK_DTYPE_F32), ids1({8}, DSK_DTYPE_INT32);
  expect_invalid(run(ids_f.dl(), 3, 0, 1, C, O, R, B, D), {"ids"});
  expect_invalid(run(ids1.dl(), 3, 0, 1, C, O, R, B, D), {"ids"});
  expect_invalid(run(I, 0, 0, 1, C, O, R, B, D), {"num_experts"});
  expect_invalid(run(I, 3, -1, 1, C, O, R, B, D), {"expert_begin"});
  expect_invalid(run(I, 3, 0, 0, C, O, R, B, D), {"block_size"});
  expect_invalid(run(I, 3, 0, -16, C, O, R, B, D), {"block_size"});
  Host c2({2}, DSK_DTYPE_INT32), c64({3}, DSK_DTYPE_INT64), o3({3}, DSK_DTYPE_INT32),
      r7({7}, DSK_DTYPE_INT32), r64({8}, DSK_DTYPE_INT64), b7({7}, DSK_DTYPE_INT32),
      d3({4, 3}, DSK_DTYPE_INT32), d64({4, 2}, DSK_DTYPE_INT64);
  expect_invalid(run(I, 3, 0, 1, c2.dl(), O, R, B, D), {"counts"});
  expect_invalid(run(I, 3, 0, 1, c64.dl(), O, R, B, D), {"counts"});
  expect_invalid(run(I, 3, 0, 1, C, o3.dl(), R, B, D), {"offsets"});
  // Capacity below dsk_moe_dispatch_capacity: 7 < 8 packed, 8 < 17 in blocks of 4.
  expect_invalid(run(I, 3, 0, 1, C, O, r7.dl(), B, D), {"sorted_rows"},
                 {"dsk_moe_dispatch_capacity"});
  expect_invalid(run(I, 3, 0, 4, C, O, R, nullptr, D), {"sorted_rows"});
  expect_invalid(run(I, 3, 0, 1, C, O, r64.dl(), B, D), {"sorted_rows"});
  expect_invalid(run(I, 3, 0, 1, C, O, R, b7.dl(), D), {"block_experts"});
  expect_invalid(run(I, 3, 0, 1, C, O, R, B, d3.dl()), {"dest"});
  expect_invalid(run(I, 3, 0, 1, C, O, R, B, d64.dl()), {"dest"});
  // Outputs on top of each other.
  expect_invalid(run(I, 3, 0, 1, C, O, R, B, rows.view({4, 2}, {2, 1}).get()),
                 {"dest|sorted_rows"});
}

TEST_CASE("moe permute rejects bad arguments and bad sorted_rows values before writing") {
  CpuContext ctx;
  // T 4, k 2: values 0 .. 7 are assignments, 8 is padding.
  Host x({4, 16}, DSK_DTYPE_F32);
  x.fill_random(1);
  Host rows = ints({6}, DSK_DTYPE_INT32, {1, 2, 8, 7, 0, 8});
  Host out({6, 16}, DSK_DTYPE_BF16);
  auto run = [&](const DLTensor* xx, const DLTensor* r, int32_t k, const DLTensor* o,
                 const DLTensor* s,
                 uint32_t flags) { return dsk_moe_permute(ctx, xx, r, k, o, s, flags); };
  MOE_REQUIRE_OK(run(x.dl(), rows.dl(), 2, out.dl(), nullptr, 0));
  expect_invalid(dsk_moe_permute(nullptr, x.dl(), rows.dl(), 2, out.dl(), nullptr, 0), {"ctx"});
  expect_invalid(run(nullptr, rows.dl(), 2, out.dl(), nullptr, 0), {"x"});
  expect_invalid(run(x.dl(), nullptr, 2, out.dl(), nullptr, 0), {"sorted_rows"});
  expect_invalid(run(x.dl(), rows.dl(), 2, nullptr, nullptr, 0), {"out"});
  Host xi({4, 16}, DSK_DTYPE_INT32), r64({6}, DSK_DTYPE_INT64), o15({6, 15}, DSK_DTYPE_BF16),
      o5({5, 16}, DSK_DTYPE_BF16), oi({6, 16}, DSK_DTYPE_INT32);
  expect_invalid(run(xi.dl(), rows.dl(), 2, out.dl(), nullptr, 0), {"x"});
  expect_invalid(run(x.dl(), r64.dl(), 2, out.dl(), nullptr, 0), {"sorted_rows"});
  expect_invalid(run(x.dl(), rows.dl(), 0, out.dl(), nullptr, 0), {"top_k"});
  expect_invalid(run(x.dl(), rows.dl(), 2, o15.dl(), nullptr, 0), {"out"});
  expect_invalid(run(x.dl(), rows.dl(), 2, o5.dl(), nullptr, 0), {"out"});
  expect_invalid(run(x.dl(), rows.dl(), 2, oi.dl(), nullptr, 0), {"out"});
  // Scales go with an fp8 out only, flags too.
  Host q({6, 16}, DSK_DTYPE_FP8_E4M3FN), s({6, 1}, DSK_DTYPE_F32), s2({6, 2}, DSK_DTYPE_F32),
      s16({6, 1}, DSK_DTYPE_F16);
  MOE_REQUIRE_OK(run(x.dl(), rows.dl(), 2, q.dl(), s.dl(), DSK_QUANT_SCALE_POW2));
  expect_invalid(run(x.dl(), rows.dl(), 2, q.dl(), nullptr, 0), {"out_scales"});
  expect_invalid(run(x.dl(), rows.dl(), 2, q.dl(), s2.dl(), 0), {"out_scales"});
  expect_invalid(run(x.dl(), rows.dl(), 2, q.dl(), s16.dl(), 0), {"out_scales"});
  expect_invalid(run(x.dl(), rows.dl(), 2, q.dl(), s.dl(), 4), {"flags"});
  expect_invalid(run(x.dl(), rows.dl(), 2, out.dl(), s.dl(), 0), {"out_scales"});
  expect_invalid(run(x.dl(), rows.dl(), 2, out.dl(), nullptr, DSK_QUANT_SCALE_POW2), {"flags"});
  // out on top of x.
  Host big({6, 16}, DSK_DTYPE_F32);
  View x_in_big = big.view({4, 16}, {16, 1});
  expect_invalid(run(x_in_big.get(), rows.dl(), 2, big.dl(), nullptr, 0), {"out|x"});
  // Index values: 9 > T * k = 8, and -1; the CPU names the element and writes nothing.
  for (int64_t bad : {9, -1, 1000}) {
    INFO("sorted_rows[3] = " << bad);
    Host r = ints({6}, DSK_DTYPE_INT32, {1, 2, 8, bad, 0, 8});
    out.fill_bytes(0x77);
    const std::vector<uint8_t> before = out.raw();
    expect_invalid(run(x.dl(), r.dl(), 2, out.dl(), nullptr, 0), {"sorted_rows"},
                   {"sorted_rows[3]", std::to_string(bad).c_str()});
    CHECK(out.raw() == before);
    q.fill_bytes(0x77);
    const std::vector<uint8_t> qb = q.raw();
    expect_invalid(run(x.dl(), r.dl(), 2, q.dl(), s.dl(), 0), {"sorted_rows"}, {"sorted_rows[3]"});
    CHECK(q.raw() == qb);
  }
}

TEST_CASE("moe combine rejects bad arguments and bad dest values before writing") {
  CpuContext ctx;
  // R 8 rows of y, T 4, k 2.
  Host y({8, 16}, DSK_DTYPE_F32);
  y.fill_random(2);
  Host dest = ints({4, 2}, DSK_DTYPE_INT32, {0, 1, 2, -1, 3, 4, 5, 7});
  Host w({4, 2}, DSK_DTYPE_F32);
  w.fill(0.5);
  Host shared({4, 16}, DSK_DTYPE_BF16), out({4, 16}, DSK_DTYPE_F32);
  shared.fill(1.0);
  auto run = [&](const DLTensor* yy, const DLTensor* d, const DLTensor* ww, const DLTensor* sh,
                 const DLTensor* o) { return dsk_moe_combine(ctx, yy, d, ww, sh, o); };
  MOE_REQUIRE_OK(run(y.dl(), dest.dl(), w.dl(), shared.dl(), out.dl()));
  expect_invalid(dsk_moe_combine(nullptr, y.dl(), dest.dl(), w.dl(), nullptr, out.dl()), {"ctx"});
  expect_invalid(run(nullptr, dest.dl(), w.dl(), nullptr, out.dl()), {"y"});
  expect_invalid(run(y.dl(), nullptr, w.dl(), nullptr, out.dl()), {"dest"});
  expect_invalid(run(y.dl(), dest.dl(), nullptr, nullptr, out.dl()), {"weights"});
  expect_invalid(run(y.dl(), dest.dl(), w.dl(), nullptr, nullptr), {"out"});
  Host yi({8, 16}, DSK_DTYPE_INT32), d64({4, 2}, DSK_DTYPE_INT64), w16({4, 2}, DSK_DTYPE_F16),
      w3({4, 3}, DSK_DTYPE_F32), o15({4, 15}, DSK_DTYPE_F32), o5({5, 16}, DSK_DTYPE_F32),
      sh3({3, 16}, DSK_DTYPE_F32);
  expect_invalid(run(yi.dl(), dest.dl(), w.dl(), nullptr, out.dl()), {"y"});
  expect_invalid(run(y.dl(), d64.dl(), w.dl(), nullptr, out.dl()), {"dest"});
  expect_invalid(run(y.dl(), dest.dl(), w16.dl(), nullptr, out.dl()), {"weights"});
  expect_invalid(run(y.dl(), dest.dl(), w3.dl(), nullptr, out.dl()), {"weights|dest"});
  expect_invalid(run(y.dl(), dest.dl(), w.dl(), nullptr, o15.dl()), {"out|y"});
  expect_invalid(run(y.dl(), dest.dl(), w.dl(), nullptr, o5.dl()), {"out|dest"});
  expect_invalid(run(y.dl(), dest.dl(), w.dl(), sh3.dl(), out.dl()), {"shared"});
  // out overlapping y, or overlapping shared without being it.
  View out_on_y = y.view({4, 16}, {16, 1}, 16);
  expect_invalid(run(y.dl(), dest.dl(), w.dl(), nullptr, out_on_y.get()), {"out|y"});
  Host acc({5, 16}, DSK_DTYPE_F32);
  View a0 = acc.view({4, 16}, {16, 1}, 0), a1 = acc.view({4, 16}, {16, 1}, 16);
  expect_invalid(run(y.dl(), dest.dl(), w.dl(), a0.get(), a1.get()), {"out|shared"});
  MOE_REQUIRE_OK(run(y.dl(), dest.dl(), w.dl(), a0.get(), a0.get()));  // the same view: in place
  // dest values outside [-1, R): the CPU names the element and writes nothing.
  for (int64_t bad : {8, -2, 100}) {
    INFO("dest[3, 0] = " << bad);
    Host d = ints({4, 2}, DSK_DTYPE_INT32, {0, 1, 2, -1, 3, 4, bad, 7});
    out.fill_bytes(0x77);
    const std::vector<uint8_t> before = out.raw();
    expect_invalid(run(y.dl(), d.dl(), w.dl(), shared.dl(), out.dl()), {"dest"},
                   {"dest[3, 0]", std::to_string(bad).c_str()});
    CHECK(out.raw() == before);
  }
}

// ---- experts ----

namespace {

struct ExpertFixture {
  CpuContext ctx;
  int64_t e = 2, inter = 32, d = 48, rows = 6;
  Host w1{{2, 32, 48}, DSK_DTYPE_BF16}, w3{{2, 32, 48}, DSK_DTYPE_BF16},
      w2{{2, 48, 32}, DSK_DTYPE_BF16};
  Host x{{6, 48}, DSK_DTYPE_BF16}, y{{6, 48}, DSK_DTYPE_BF16};
  Host offsets = ints({3}, DSK_DTYPE_INT32, {0, 2, 5});
  dsk_moe_expert_weights wts{};
  ExpertFixture() {
    for (Host* h : {&w1, &w3, &w2, &x}) h->fill_random(3, -0.1, 0.1);
    dsk_moe_expert_weights_init(&wts);
    wts.w1 = w1.dl();
    wts.w3 = w3.dl();
    wts.w2 = w2.dl();
  }
  dsk_status run(const dsk_moe_expert_weights* w, const DLTensor* xx, const DLTensor* xs,
                 const DLTensor* off, const DLTensor* yy) {
    return dsk_moe_experts(ctx, w, xx, xs, off, yy);
  }
  dsk_status with(const std::function<void(dsk_moe_expert_weights&)>& f) {
    dsk_moe_expert_weights w = wts;
    f(w);
    return run(&w, x.dl(), nullptr, offsets.dl(), y.dl());
  }
};

}  // namespace

TEST_CASE("moe experts reject bad arguments") {
  ExpertFixture f;
  MOE_REQUIRE_OK(f.run(&f.wts, f.x.dl(), nullptr, f.offsets.dl(), f.y.dl()));
  expect_invalid(dsk_moe_experts(nullptr, &f.wts, f.x.dl(), nullptr, f.offsets.dl(), f.y.dl()),
                 {"ctx"});
  expect_invalid(f.run(nullptr, f.x.dl(), nullptr, f.offsets.dl(), f.y.dl()), {"weights"});
  expect_version(f.with([](dsk_moe_expert_weights& w) { w.struct_size = 8; }),
                 "weights->struct_size");
  expect_invalid(f.with([](dsk_moe_expert_weights& w) { w.w1 = nullptr; }), {"weights->w1"});
  expect_invalid(f.with([](dsk_moe_expert_weights& w) { w.w2 = nullptr; }), {"weights->w2"});
  Host w3_bad({2, 33, 48}, DSK_DTYPE_BF16), w2_bad({2, 48, 31}, DSK_DTYPE_BF16),
      w3_f32({2, 32, 48}, DSK_DTYPE_F32), w1_2d({32, 48}, DSK_DTYPE_BF16),
      w1_int({2, 32, 48}, DSK_DTYPE_INT32), scales({2, 1, 1}, DSK_DTYPE_F32);
  expect_invalid(f.with([&](dsk_moe_expert_weights& w) { w.w3 = w3_bad.dl(); }), {"weights->w3"});
  expect_invalid(f.with([&](dsk_moe_expert_weights& w) { w.w2 = w2_bad.dl(); }), {"weights->w2"});
  expect_invalid(f.with([&](dsk_moe_expert_weights& w) { w.w3 = w3_f32.dl(); }),
                 {"weights->w3|weights->w1"});
  expect_invalid(f.with([&](dsk_moe_expert_weights& w) { w.w1 = w1_2d.dl(); }), {"weights->w1"});
  expect_invalid(f.with([&](dsk_moe_expert_weights& w) { w.w1 = w1_int.dl(); }), {"weights->w1"});
  expect_invalid(f.with([&](dsk_moe_expert_weights& w) { w.w1_scales = scales.dl(); }),
                 {"weights->w1_scales"});
  // fp8 weights need all three scale tensors of the right shape.
  Host q1({2, 32, 48}, DSK_DTYPE_FP8_E4M3FN), q3({2, 32, 48}, DSK_DTYPE_FP8_E4M3FN),
      q2({2, 48, 32}, DSK_DTYPE_FP8_E4M3FN), s1({2, 1, 1}, DSK_DTYPE_F32),
      s3({2, 1, 1}, DSK_DTYPE_F32), s2({2, 1, 1}, DSK_DTYPE_F32), s_bad({2, 2, 1}, DSK_DTYPE_F32);
  for (Host* s : {&s1, &s3, &s2}) s->fill(0.01);
  dsk_moe_expert_weights fp8{};
  dsk_moe_expert_weights_init(&fp8);
  fp8.w1 = q1.dl();
  fp8.w3 = q3.dl();
  fp8.w2 = q2.dl();
  fp8.w1_scales = s1.dl();
  fp8.w3_scales = s3.dl();
  fp8.w2_scales = s2.dl();
  MOE_REQUIRE_OK(f.run(&fp8, f.x.dl(), nullptr, f.offsets.dl(), f.y.dl()));
  {
    dsk_moe_expert_weights w = fp8;
    w.w2_scales = nullptr;
    expect_invalid(f.run(&w, f.x.dl(), nullptr, f.offsets.dl(), f.y.dl()), {"weights->w2_scales"});
    w = fp8;
    w.w3_scales = s_bad.dl();
    expect_invalid(f.run(&w, f.x.dl(), nullptr, f.offsets.dl(), f.y.dl()), {"weights->w3_scales"});
  }
  // x: the weights' dtype (float weights), D columns; fp8 x needs x_scales, float x none.
  Host x32({6, 48}, DSK_DTYPE_F32), x47({6, 47}, DSK_DTYPE_BF16), x1({48}, DSK_DTYPE_BF16),
      xq({6, 48}, DSK_DTYPE_FP8_E4M3FN), xs({6, 1}, DSK_DTYPE_F32), xs2({6, 2}, DSK_DTYPE_F32);
  expect_invalid(f.run(&f.wts, x32.dl(), nullptr, f.offsets.dl(), f.y.dl()), {"x"});
  expect_invalid(f.run(&f.wts, x47.dl(), nullptr, f.offsets.dl(), f.y.dl()), {"x"});
  expect_invalid(f.run(&f.wts, x1.dl(), nullptr, f.offsets.dl(), f.y.dl()), {"x"});
  expect_invalid(f.run(&f.wts, f.x.dl(), xs.dl(), f.offsets.dl(), f.y.dl()), {"x_scales"});
  expect_invalid(f.run(&fp8, xq.dl(), nullptr, f.offsets.dl(), f.y.dl()), {"x_scales"});
  expect_invalid(f.run(&fp8, xq.dl(), xs2.dl(), f.offsets.dl(), f.y.dl()), {"x_scales"});
  MOE_REQUIRE_OK(f.run(&fp8, xq.dl(), xs.dl(), f.offsets.dl(), f.y.dl()));
  // offsets: [E + 1] int32, non-decreasing, within the rows of x.
  Host o64({3}, DSK_DTYPE_INT64), o2({2}, DSK_DTYPE_INT32);
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, o64.dl(), f.y.dl()), {"offsets"});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, o2.dl(), f.y.dl()), {"offsets"});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, nullptr, f.y.dl()), {"offsets"});
  Host dec = ints({3}, DSK_DTYPE_INT32, {0, 4, 3}), past = ints({3}, DSK_DTYPE_INT32, {0, 2, 7}),
       neg = ints({3}, DSK_DTYPE_INT32, {-1, 2, 5});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, dec.dl(), f.y.dl()), {"offsets"}, {"offsets[2]"});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, past.dl(), f.y.dl()), {"offsets"},
                 {"offsets[2]"});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, neg.dl(), f.y.dl()), {"offsets"}, {"offsets[0]"});
  // y: [R, D] float.
  Host y47({6, 47}, DSK_DTYPE_BF16), yi({6, 48}, DSK_DTYPE_INT32);
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, f.offsets.dl(), y47.dl()), {"y"});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, f.offsets.dl(), yi.dl()), {"y"});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, f.offsets.dl(), nullptr), {"y"});
  expect_invalid(f.run(&f.wts, f.x.dl(), nullptr, f.offsets.dl(), f.x.dl()), {"y|x"});
}

// ---- the layer ----

namespace {

struct LayerFixture {
  CpuContext ctx;
  dsk_moe_gate_config config = moe_test::gate_config(4, 2, 2, 1, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
  Host x{{3, 32}, DSK_DTYPE_BF16}, router{{4, 32}, DSK_DTYPE_BF16}, out{{3, 32}, DSK_DTYPE_BF16};
  Host bias{{4}, DSK_DTYPE_F32};
  Host w1{{4, 16, 32}, DSK_DTYPE_BF16}, w3{{4, 16, 32}, DSK_DTYPE_BF16},
      w2{{4, 32, 16}, DSK_DTYPE_BF16};
  Host s1{{24, 32}, DSK_DTYPE_BF16}, s3{{24, 32}, DSK_DTYPE_BF16}, s2{{32, 24}, DSK_DTYPE_BF16};
  dsk_moe_expert_weights experts{}, shared{};
  LayerFixture() {
    for (Host* h : {&x, &router, &w1, &w3, &w2, &s1, &s3, &s2}) h->fill_random(5, -0.2, 0.2);
    bias.fill(0.0);
    dsk_moe_expert_weights_init(&experts);
    experts.w1 = w1.dl();
    experts.w3 = w3.dl();
    experts.w2 = w2.dl();
    dsk_moe_expert_weights_init(&shared);
    shared.w1 = s1.dl();
    shared.w3 = s3.dl();
    shared.w2 = s2.dl();
  }
  dsk_status forward(const DLTensor* xx, const DLTensor* r, const dsk_moe_expert_weights* e,
                     const dsk_moe_expert_weights* s, const DLTensor* o) {
    return dsk_moe_forward(ctx, &config, xx, r, bias.dl(), e, s, o);
  }
};

}  // namespace

TEST_CASE("moe forward and plan_create reject bad arguments") {
  LayerFixture f;
  MOE_REQUIRE_OK(f.forward(f.x.dl(), f.router.dl(), &f.experts, &f.shared, f.out.dl()));
  expect_invalid(dsk_moe_forward(nullptr, &f.config, f.x.dl(), f.router.dl(), nullptr, &f.experts,
                                 nullptr, f.out.dl()),
                 {"ctx"});
  expect_invalid(dsk_moe_forward(f.ctx, nullptr, f.x.dl(), f.router.dl(), nullptr, &f.experts,
                                 nullptr, f.out.dl()),
                 {"config"});
  expect_invalid(f.forward(nullptr, f.router.dl(), &f.experts, nullptr, f.out.dl()), {"x"});
  expect_invalid(f.forward(f.x.dl(), nullptr, &f.experts, nullptr, f.out.dl()), {"router_w"});
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), nullptr, nullptr, f.out.dl()), {"experts"});
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &f.experts, nullptr, nullptr), {"out"});
  Host r33({4, 33}, DSK_DTYPE_BF16), r5({5, 32}, DSK_DTYPE_BF16), r32({4, 32}, DSK_DTYPE_F32),
      xi({3, 32}, DSK_DTYPE_INT32), o31({3, 31}, DSK_DTYPE_BF16), oi({3, 32}, DSK_DTYPE_INT32);
  expect_invalid(f.forward(f.x.dl(), r33.dl(), &f.experts, nullptr, f.out.dl()), {"router_w"});
  expect_invalid(f.forward(f.x.dl(), r5.dl(), &f.experts, nullptr, f.out.dl()), {"router_w"});
  expect_invalid(f.forward(f.x.dl(), r32.dl(), &f.experts, nullptr, f.out.dl()), {"router_w|x"});
  expect_invalid(f.forward(xi.dl(), f.router.dl(), &f.experts, nullptr, f.out.dl()), {"x"});
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &f.experts, nullptr, o31.dl()), {"out"});
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &f.experts, nullptr, oi.dl()), {"out"});
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &f.experts, nullptr, f.x.dl()), {"out|x"});
  // Routed experts: E from the config, D from x, x's dtype.
  Host e5({5, 16, 32}, DSK_DTYPE_BF16), e5b({5, 16, 32}, DSK_DTYPE_BF16),
      e5c({5, 32, 16}, DSK_DTYPE_BF16), d40({4, 16, 40}, DSK_DTYPE_BF16),
      d40b({4, 16, 40}, DSK_DTYPE_BF16), d40c({4, 40, 16}, DSK_DTYPE_BF16),
      f1({4, 16, 32}, DSK_DTYPE_F32), f3({4, 16, 32}, DSK_DTYPE_F32),
      f2({4, 32, 16}, DSK_DTYPE_F32);
  dsk_moe_expert_weights bad = f.experts;
  bad.w1 = e5.dl();
  bad.w3 = e5b.dl();
  bad.w2 = e5c.dl();
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &bad, nullptr, f.out.dl()), {"experts->w1"},
                 {"num_experts"});
  bad.w1 = d40.dl();
  bad.w3 = d40b.dl();
  bad.w2 = d40c.dl();
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &bad, nullptr, f.out.dl()), {"experts->w1"});
  bad.w1 = f1.dl();
  bad.w3 = f3.dl();
  bad.w2 = f2.dl();
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &bad, nullptr, f.out.dl()), {"experts->w1"});
  bad = f.experts;
  bad.w3 = nullptr;
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &bad, nullptr, f.out.dl()), {"experts->w3"});
  bad.struct_size = 0;
  expect_version(f.forward(f.x.dl(), f.router.dl(), &bad, nullptr, f.out.dl()),
                 "experts->struct_size");
  // Shared experts: 2-D, D from x.
  dsk_moe_expert_weights sh = f.shared;
  sh.w1 = f.w1.dl();
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &f.experts, &sh, f.out.dl()), {"shared->w1"});
  Host s40({24, 40}, DSK_DTYPE_BF16), s40b({24, 40}, DSK_DTYPE_BF16),
      s40c({40, 24}, DSK_DTYPE_BF16);
  sh.w1 = s40.dl();
  sh.w3 = s40b.dl();
  sh.w2 = s40c.dl();
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &f.experts, &sh, f.out.dl()), {"shared->w1"});
  // Config problems come through as well; the bias must be [E] f32.
  f.config.n_group = 3;
  expect_invalid(f.forward(f.x.dl(), f.router.dl(), &f.experts, nullptr, f.out.dl()), {"n_group"});
  f.config.n_group = 2;
  Host b5({5}, DSK_DTYPE_F32);
  expect_invalid(dsk_moe_forward(f.ctx, &f.config, f.x.dl(), f.router.dl(), b5.dl(), &f.experts,
                                 nullptr, f.out.dl()),
                 {"bias"});
  // plan_create: NULL plan pointer; *plan is NULL after an error.
  expect_invalid(dsk_moe_plan_create(f.ctx, &f.config, f.x.dl(), f.router.dl(), &f.experts, nullptr,
                                     f.out.dl(), nullptr),
                 {"plan"});
  dsk_moe_plan* plan = reinterpret_cast<dsk_moe_plan*>(&f);
  expect_invalid(dsk_moe_plan_create(f.ctx, &f.config, f.x.dl(), r33.dl(), &f.experts, nullptr,
                                     f.out.dl(), &plan),
                 {"router_w"});
  CHECK(plan == nullptr);
  size_t bytes = 0;
  expect_invalid(dsk_moe_plan_workspace_size(nullptr, &bytes), {"plan"});
  dsk_moe_plan_release(nullptr);  // a no-op
}

TEST_CASE("moe forward_run rejects tensors that do not match the plan") {
  LayerFixture f;
  dsk_moe_plan* plan = nullptr;
  MOE_REQUIRE_OK(dsk_moe_plan_create(f.ctx, &f.config, f.x.dl(), f.router.dl(), &f.experts,
                                     &f.shared, f.out.dl(), &plan));
  std::unique_ptr<dsk_moe_plan, void (*)(dsk_moe_plan*)> owned(plan, dsk_moe_plan_release);
  size_t bytes = 0;
  expect_invalid(dsk_moe_plan_workspace_size(plan, nullptr), {"bytes"});
  MOE_REQUIRE_OK(dsk_moe_plan_workspace_size(plan, &bytes));
  Host ids({3, 2}, DSK_DTYPE_INT32), weights({3, 2}, DSK_DTYPE_F32);
  auto run = [&](const dsk_moe_plan* p, const DLTensor* x, const dsk_moe_expert_weights* e,
                 const dsk_moe_expert_weights* s, const DLTensor* out, const DLTensor* i,
                 const DLTensor* w) {
    return dsk_moe_forward_run(f.ctx, p, x, f.router.dl(), f.bias.dl(), e, s, out, i, w);
  };
  MOE_REQUIRE_OK(run(plan, f.x.dl(), &f.experts, &f.shared, f.out.dl(), ids.dl(), weights.dl()));
  expect_invalid(dsk_moe_forward_run(nullptr, plan, f.x.dl(), f.router.dl(), nullptr, &f.experts,
                                     &f.shared, f.out.dl(), nullptr, nullptr),
                 {"ctx"});
  expect_invalid(run(nullptr, f.x.dl(), &f.experts, &f.shared, f.out.dl(), nullptr, nullptr),
                 {"plan"});
  // Another T, another D, another dtype of x / out than at plan time.
  Host x4({4, 32}, DSK_DTYPE_BF16), o4({4, 32}, DSK_DTYPE_BF16), o32({3, 32}, DSK_DTYPE_F32),
      xf({3, 32}, DSK_DTYPE_F32), rf({4, 32}, DSK_DTYPE_F32);
  expect_invalid(run(plan, x4.dl(), &f.experts, &f.shared, o4.dl(), nullptr, nullptr), {"x"},
                 {"plan"});
  expect_invalid(run(plan, f.x.dl(), &f.experts, &f.shared, o32.dl(), nullptr, nullptr), {"out|x"},
                 {"plan"});
  expect_invalid(dsk_moe_forward_run(f.ctx, plan, xf.dl(), rf.dl(), nullptr, &f.experts, &f.shared,
                                     o32.dl(), nullptr, nullptr),
                 {"x|experts->w1"});
  // Shared given exactly when it was at plan time.
  expect_invalid(run(plan, f.x.dl(), &f.experts, nullptr, f.out.dl(), nullptr, nullptr),
                 {"shared"});
  dsk_moe_plan* no_shared = nullptr;
  MOE_REQUIRE_OK(dsk_moe_plan_create(f.ctx, &f.config, f.x.dl(), f.router.dl(), &f.experts, nullptr,
                                     f.out.dl(), &no_shared));
  expect_invalid(run(no_shared, f.x.dl(), &f.experts, &f.shared, f.out.dl(), nullptr, nullptr),
                 {"shared"});
  dsk_moe_plan_release(no_shared);
  // Experts of another width I.
  Host i8a({4, 8, 32}, DSK_DTYPE_BF16), i8b({4, 8, 32}, DSK_DTYPE_BF16),
      i8c({4, 32, 8}, DSK_DTYPE_BF16);
  dsk_moe_expert_weights narrow = f.experts;
  narrow.w1 = i8a.dl();
  narrow.w3 = i8b.dl();
  narrow.w2 = i8c.dl();
  expect_invalid(run(plan, f.x.dl(), &narrow, &f.shared, f.out.dl(), nullptr, nullptr), {"experts"},
                 {"plan"});
  // The optional gate outputs: ids [T, k] int32 or int64, weights [T, k] f32.
  Host ids64({3, 2}, DSK_DTYPE_INT64), idsf({3, 2}, DSK_DTYPE_F32), ids3({3, 3}, DSK_DTYPE_INT32),
      w16({3, 2}, DSK_DTYPE_F16);
  MOE_REQUIRE_OK(run(plan, f.x.dl(), &f.experts, &f.shared, f.out.dl(), ids64.dl(), nullptr));
  expect_invalid(run(plan, f.x.dl(), &f.experts, &f.shared, f.out.dl(), idsf.dl(), nullptr),
                 {"ids"});
  expect_invalid(run(plan, f.x.dl(), &f.experts, &f.shared, f.out.dl(), ids3.dl(), nullptr),
                 {"ids"});
  expect_invalid(run(plan, f.x.dl(), &f.experts, &f.shared, f.out.dl(), nullptr, w16.dl()),
                 {"weights"});
  Host b5({5}, DSK_DTYPE_F32);
  expect_invalid(dsk_moe_forward_run(f.ctx, plan, f.x.dl(), f.router.dl(), b5.dl(), &f.experts,
                                     &f.shared, f.out.dl(), nullptr, nullptr),
                 {"bias"});
}

// ---- statistics and the EP layout ----

TEST_CASE("moe load_accumulate and bias_update reject bad arguments") {
  CpuContext ctx;
  Host ids = ints({2, 2}, DSK_DTYPE_INT32, {0, 1, 2, 3});
  Host load({4}, DSK_DTYPE_INT64);
  load.fill(0);
  MOE_REQUIRE_OK(dsk_moe_load_accumulate(ctx, ids.dl(), 0, load.dl()));
  expect_invalid(dsk_moe_load_accumulate(nullptr, ids.dl(), 0, load.dl()), {"ctx"});
  expect_invalid(dsk_moe_load_accumulate(ctx, nullptr, 0, load.dl()), {"ids"});
  expect_invalid(dsk_moe_load_accumulate(ctx, ids.dl(), 0, nullptr), {"load"});
  expect_invalid(dsk_moe_load_accumulate(ctx, ids.dl(), -1, load.dl()), {"expert_begin"});
  Host idf({2, 2}, DSK_DTYPE_F32), id1({4}, DSK_DTYPE_INT32), l32({4}, DSK_DTYPE_INT32),
      lf({4}, DSK_DTYPE_F32), l2({2, 2}, DSK_DTYPE_INT64), l0({0}, DSK_DTYPE_INT64);
  expect_invalid(dsk_moe_load_accumulate(ctx, idf.dl(), 0, load.dl()), {"ids"});
  expect_invalid(dsk_moe_load_accumulate(ctx, id1.dl(), 0, load.dl()), {"ids"});
  expect_invalid(dsk_moe_load_accumulate(ctx, ids.dl(), 0, l32.dl()), {"load"});
  expect_invalid(dsk_moe_load_accumulate(ctx, ids.dl(), 0, lf.dl()), {"load"});
  expect_invalid(dsk_moe_load_accumulate(ctx, ids.dl(), 0, l2.dl()), {"load"});
  expect_invalid(dsk_moe_load_accumulate(ctx, ids.dl(), 0, l0.dl()), {"load"});

  Host bias({4}, DSK_DTYPE_F32);
  bias.fill(0.0);
  MOE_REQUIRE_OK(dsk_moe_bias_update(ctx, load.dl(), bias.dl(), 0.001f));
  expect_invalid(dsk_moe_bias_update(nullptr, load.dl(), bias.dl(), 0.001f), {"ctx"});
  expect_invalid(dsk_moe_bias_update(ctx, nullptr, bias.dl(), 0.001f), {"load"});
  expect_invalid(dsk_moe_bias_update(ctx, load.dl(), nullptr, 0.001f), {"bias"});
  for (float g : {-0.001f, kNaNf, kInff}) {
    INFO("gamma " << g);
    expect_invalid(dsk_moe_bias_update(ctx, load.dl(), bias.dl(), g), {"gamma"});
  }
  Host b16({4}, DSK_DTYPE_BF16), b5({5}, DSK_DTYPE_F32), lbf({4}, DSK_DTYPE_BF16);
  expect_invalid(dsk_moe_bias_update(ctx, load.dl(), b16.dl(), 0.001f), {"bias"});
  expect_invalid(dsk_moe_bias_update(ctx, load.dl(), b5.dl(), 0.001f), {"bias|load"});
  expect_invalid(dsk_moe_bias_update(ctx, l32.dl(), bias.dl(), 0.001f), {"load"});
  expect_invalid(dsk_moe_bias_update(ctx, lbf.dl(), bias.dl(), 0.001f), {"load"});
  View bias_on_load(load.data(), DSK_DTYPE_F32, {4}, {2});
  expect_invalid(dsk_moe_bias_update(ctx, load.dl(), bias_on_load.get(), 0.001f), {"bias|load"});
}

TEST_CASE("moe ep_layout rejects bad arguments and out of range ids before writing") {
  CpuContext ctx;
  Host ids = ints({3, 2}, DSK_DTYPE_INT64, {0, 7, -1, 3, 5, 5});
  Host per_rank({4}, DSK_DTYPE_INT32), per_expert({8}, DSK_DTYPE_INT32),
      in_rank({3, 4}, DSK_DTYPE_BOOL);
  auto run = [&](const DLTensor* i, int32_t e, int32_t r, const DLTensor* pr, const DLTensor* pe,
                 const DLTensor* ir) { return dsk_moe_ep_layout(ctx, i, e, r, pr, pe, ir); };
  const DLTensor *I = ids.dl(), *PR = per_rank.dl(), *PE = per_expert.dl(), *IR = in_rank.dl();
  MOE_REQUIRE_OK(run(I, 8, 4, PR, PE, IR));
  expect_invalid(dsk_moe_ep_layout(nullptr, I, 8, 4, PR, PE, IR), {"ctx"});
  expect_invalid(run(nullptr, 8, 4, PR, PE, IR), {"ids"});
  expect_invalid(run(I, 8, 4, nullptr, PE, IR), {"tokens_per_rank"});
  expect_invalid(run(I, 8, 4, PR, nullptr, IR), {"tokens_per_expert"});
  expect_invalid(run(I, 8, 4, PR, PE, nullptr), {"is_token_in_rank"});
  expect_invalid(run(I, 0, 4, PR, PE, IR), {"num_experts"});
  expect_invalid(run(I, 8, 0, PR, PE, IR), {"num_ranks"});
  expect_invalid(run(I, 8, 3, PR, PE, IR), {"num_ranks"});  // E % R != 0
  Host pr64({4}, DSK_DTYPE_INT64), pr3({3}, DSK_DTYPE_INT32), pe7({8}, DSK_DTYPE_INT64),
      pe9({9}, DSK_DTYPE_INT32), irf({3, 4}, DSK_DTYPE_F32), ir5({3, 5}, DSK_DTYPE_UINT8),
      idf({3, 2}, DSK_DTYPE_F32);
  expect_invalid(run(I, 8, 4, pr64.dl(), PE, IR), {"tokens_per_rank"});
  expect_invalid(run(I, 8, 4, pr3.dl(), PE, IR), {"tokens_per_rank"});
  expect_invalid(run(I, 8, 4, PR, pe7.dl(), IR), {"tokens_per_expert"});
  expect_invalid(run(I, 8, 4, PR, pe9.dl(), IR), {"tokens_per_expert"});
  expect_invalid(run(I, 8, 4, PR, PE, irf.dl()), {"is_token_in_rank"});
  expect_invalid(run(I, 8, 4, PR, PE, ir5.dl()), {"is_token_in_rank"});
  expect_invalid(run(idf.dl(), 8, 4, PR, PE, IR), {"ids"});
  // ids outside [-1, E): the element is named, nothing is written.
  for (int32_t dt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
    for (int64_t bad : {8, -2, 1000}) {
      INFO(moe_test::label(dt) << " ids[2, 0] = " << bad);
      Host b = ints({3, 2}, dt, {0, 7, -1, 3, bad, 5});
      for (Host* h : {&per_rank, &per_expert, &in_rank}) h->fill_bytes(0x77);
      const std::vector<uint8_t> r0 = per_rank.raw(), e0 = per_expert.raw(), i0 = in_rank.raw();
      expect_invalid(run(b.dl(), 8, 4, PR, PE, IR), {"ids"},
                     {"ids[2, 0]", std::to_string(bad).c_str()});
      CHECK(per_rank.raw() == r0);
      CHECK(per_expert.raw() == e0);
      CHECK(in_rank.raw() == i0);
    }
  }
}
