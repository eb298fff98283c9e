// Bad input to the sampling functions (dsk_sampling.h): NULL arguments, struct_size below the
// first release (DSK_ERR_VERSION_MISMATCH), mismatched lengths and shapes, V beyond INT32_MAX,
// wrong dtypes, overlapping outputs, out-of-range scalars and per-row values (temperature, top_k,
// top_p, min_p, penalties), CSR token lists with ids out of range or offsets that decrease or
// overrun, top_ids wider than DSK_SAMPLE_MAX_TOP_LOGPROBS, bad draft ids and verify modes. Each
// is DSK_ERR_INVALID_ARGUMENT (unless stated) with a message naming the argument, and no output is
// written.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "mla_test_util.h"
#include "sampling_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using mla_test::expect_invalid;
using samp_test::Batch;
using samp_test::CpuContext;
using samp_test::kInf;
using samp_test::kNaN;
using samp_test::Outputs;
using samp_test::sz;

constexpr int64_t kB = 4, kV = 50;

// A valid call (B 4, V 50, every optional input and output present) that a test breaks in one
// place. check() runs dsk_sample, dsk_sampling_probs and dsk_sampling_logits on the broken
// params and expects every one to fail without writing.
struct Fixture {
  CpuContext ctx;
  Batch batch{kB, kV};
  Outputs out{kB, 3};
  std::vector<float> probs = std::vector<float>(sz(kB * kV), 77.0f);
  std::vector<uint8_t> pstatus = std::vector<uint8_t>(sz(kB), 0xEE);
  Borrowed t_probs{probs.data(), {kB, kV}, DSK_DTYPE_F32};
  Borrowed t_pstatus{pstatus.data(), {kB}, DSK_DTYPE_UINT8};

  Fixture() {
    batch.fill_normal(1, 1.0);
    for (int64_t i = 0; i < kB; ++i) {
      samp_test::RowSpec& r = batch.row(i);
      r.temperature = 0.8f;
      r.top_k = 10;
      r.top_p = 0.9f;
      r.min_p = 0.01f;
      r.repetition = 1.1f;
      r.frequency = 0.1f;
      r.presence = 0.1f;
      r.seed = 3;
      r.offset = 4;
      r.output_ids = {1, 2};
      r.prompt_ids = {3};
      r.bias = {{4, 1.0f}};
      r.mask = {0xFFFFFFFFu, 0x3FFFFu};
    }
    batch.build();
  }

  dsk_sampling_params params() const { return batch.params(); }

  dsk_status sample(const dsk_sampling_params& p) {
    return dsk_sample(ctx, &p, batch.logits(), out.get());
  }

  bool untouched() const {
    for (int64_t i = 0; i < kB; ++i) {
      if (out.ids[sz(i)] != -7 || out.status[sz(i)] != 0xEE || pstatus[sz(i)] != 0xEE) return false;
    }
    for (float p : probs) {
      if (p != 77.0f) return false;
    }
    return true;
  }

  // The three entry points with the same params.
  void check(const dsk_sampling_params& p, std::initializer_list<const char*> idents,
             std::initializer_list<const char*> fragments = {}) {
    expect_invalid(dsk_sample(ctx, &p, batch.logits(), out.get()), idents, fragments);
    expect_invalid(dsk_sampling_probs(ctx, &p, batch.logits(), &t_probs, &t_pstatus), idents,
                   fragments);
    expect_invalid(dsk_sampling_logits(ctx, &p, batch.logits(), &t_probs, &t_pstatus), idents,
                   fragments);
    CHECK_MESSAGE(untouched(), "an output was written before the error");
  }

  // Runs `edit` on a copy of the params and checks.
  void with(const std::function<void(dsk_sampling_params&)>& edit,
            std::initializer_list<const char*> idents,
            std::initializer_list<const char*> fragments = {}) {
    dsk_sampling_params p = params();
    edit(p);
    check(p, idents, fragments);
  }
};

}  // namespace

TEST_CASE("sampling errors: the fixture is valid") {
  Fixture f;
  SAMP_REQUIRE_OK(f.sample(f.params()));
  dsk_sampling_params p = f.params();
  SAMP_REQUIRE_OK(dsk_sampling_probs(f.ctx, &p, f.batch.logits(), &f.t_probs, &f.t_pstatus));
  SAMP_REQUIRE_OK(dsk_sampling_logits(f.ctx, &p, f.batch.logits(), &f.t_probs, &f.t_pstatus));
}

TEST_CASE("sampling errors: NULL arguments and struct versions") {
  Fixture f;
  const dsk_sampling_params p = f.params();
  expect_invalid(dsk_sample(nullptr, &p, f.batch.logits(), f.out.get()), {"ctx"});
  expect_invalid(dsk_sample(f.ctx, nullptr, f.batch.logits(), f.out.get()), {"params"});
  expect_invalid(dsk_sample(f.ctx, &p, nullptr, f.out.get()), {"logits"});
  expect_invalid(dsk_sample(f.ctx, &p, f.batch.logits(), nullptr), {"outputs"});
  expect_invalid(dsk_sampling_probs(f.ctx, &p, f.batch.logits(), nullptr, nullptr), {"probs"});
  expect_invalid(dsk_sampling_logits(f.ctx, &p, f.batch.logits(), nullptr, nullptr), {"out"});
  {
    dsk_sampling_outputs o = *f.out.get();
    o.ids = nullptr;
    expect_invalid(dsk_sample(f.ctx, &p, f.batch.logits(), &o), {"ids"});
  }
  CHECK(f.untouched());
  expect_invalid(dsk_sampling_params_init(nullptr), {"params"});
  expect_invalid(dsk_sampling_outputs_init(nullptr), {"outputs"});
  expect_invalid(dsk_verify_params_init(nullptr), {"params"});
  // struct_size below the first release.
  {
    dsk_sampling_params small = p;
    small.struct_size = 8;
    dsk_test::expect_error(dsk_sample(f.ctx, &small, f.batch.logits(), f.out.get()),
                           DSK_ERR_VERSION_MISMATCH, {"params->struct_size"});
    dsk_test::expect_error(
        dsk_sampling_probs(f.ctx, &small, f.batch.logits(), &f.t_probs, &f.t_pstatus),
        DSK_ERR_VERSION_MISMATCH, {"params->struct_size"});
    dsk_test::expect_error(
        dsk_sampling_logits(f.ctx, &small, f.batch.logits(), &f.t_probs, &f.t_pstatus),
        DSK_ERR_VERSION_MISMATCH, {"params->struct_size"});
    small.struct_size = 0;
    dsk_test::expect_error(dsk_sample(f.ctx, &small, f.batch.logits(), f.out.get()),
                           DSK_ERR_VERSION_MISMATCH, {"params->struct_size"});
    dsk_sampling_outputs o = *f.out.get();
    o.struct_size = 4;
    dsk_test::expect_error(dsk_sample(f.ctx, &p, f.batch.logits(), &o), DSK_ERR_VERSION_MISMATCH,
                           {"outputs->struct_size"});
  }
  CHECK(f.untouched());
  // A struct from a newer, larger header is read up to what the library knows.
  {
    struct Bigger {
      dsk_sampling_params p;
      int64_t extra[4];
    } big{};
    big.p = p;
    big.p.struct_size = sizeof(Bigger);
    SAMP_REQUIRE_OK(dsk_sample(f.ctx, &big.p, f.batch.logits(), f.out.get()));
  }
}

TEST_CASE("sampling errors: scalar parameters out of range") {
  Fixture f;
  f.batch.scalars = true;
  f.batch.build();
  using P = dsk_sampling_params;
  f.with([](P& p) { p.temperature = -0.5f; }, {"temperature"});
  f.with([](P& p) { p.temperature = kNaN; }, {"temperature"});
  f.with([](P& p) { p.temperature = kInf; }, {"temperature"});
  f.with([](P& p) { p.top_k = -1; }, {"top_k"});
  f.with([](P& p) { p.top_p = 0.0f; }, {"top_p"});
  f.with([](P& p) { p.top_p = -0.1f; }, {"top_p"});
  f.with([](P& p) { p.top_p = 1.5f; }, {"top_p"});
  f.with([](P& p) { p.top_p = kNaN; }, {"top_p"});
  f.with([](P& p) { p.min_p = -0.01f; }, {"min_p"});
  f.with([](P& p) { p.min_p = 1.01f; }, {"min_p"});
  f.with([](P& p) { p.min_p = kNaN; }, {"min_p"});
  f.with([](P& p) { p.repetition_penalty = 0.0f; }, {"repetition_penalty"});
  f.with([](P& p) { p.repetition_penalty = -1.0f; }, {"repetition_penalty"});
  f.with([](P& p) { p.repetition_penalty = kInf; }, {"repetition_penalty"});
  f.with([](P& p) { p.frequency_penalty = kNaN; }, {"frequency_penalty"});
  f.with([](P& p) { p.frequency_penalty = -kInf; }, {"frequency_penalty"});
  f.with([](P& p) { p.presence_penalty = kInf; }, {"presence_penalty"});
  // The edges of the ranges are fine.
  dsk_sampling_params ok = f.params();
  ok.temperature = 0.0f;
  ok.top_p = 1.0f;
  ok.min_p = 1.0f;
  ok.frequency_penalty = -3.0f;
  SAMP_REQUIRE_OK(f.sample(ok));
}

TEST_CASE("sampling errors: per-row values out of range (CPU: before writing anything)") {
  struct Bad {
    std::function<void(samp_test::RowSpec&)> edit;
    const char* name;
  };
  const Bad bads[] = {
      {[](samp_test::RowSpec& r) { r.temperature = -1.0f; }, "temperatures"},
      {[](samp_test::RowSpec& r) { r.temperature = kNaN; }, "temperatures"},
      {[](samp_test::RowSpec& r) { r.top_k = -3; }, "top_ks"},
      {[](samp_test::RowSpec& r) { r.top_p = 0.0f; }, "top_ps"},
      {[](samp_test::RowSpec& r) { r.top_p = 1.5f; }, "top_ps"},
      {[](samp_test::RowSpec& r) { r.min_p = 2.0f; }, "min_ps"},
      {[](samp_test::RowSpec& r) { r.min_p = -0.5f; }, "min_ps"},
      {[](samp_test::RowSpec& r) { r.repetition = 0.0f; }, "repetition_penalties"},
      {[](samp_test::RowSpec& r) { r.frequency = kInf; }, "frequency_penalties"},
      {[](samp_test::RowSpec& r) { r.presence = kNaN; }, "presence_penalties"},
  };
  for (const Bad& bad : bads) {
    INFO(bad.name);
    Fixture f;
    bad.edit(f.batch.row(2));  // a row after a good one: nothing may be written for row 0
    f.batch.build();
    f.check(f.params(), {bad.name});
  }
}

TEST_CASE("sampling errors: token lists") {
  struct Bad {
    std::function<void(samp_test::RowSpec&)> edit;
    const char* name;
  };
  const Bad bads[] = {
      {[](samp_test::RowSpec& r) { r.output_ids.push_back(kV); }, "output_ids"},
      {[](samp_test::RowSpec& r) { r.output_ids.push_back(-1); }, "output_ids"},
      {[](samp_test::RowSpec& r) { r.prompt_ids = {kV + 100}; }, "prompt_ids"},
      {[](samp_test::RowSpec& r) {
         r.bias = {{kV, 1.0f}};
       },
       "bias_ids"},
      {[](samp_test::RowSpec& r) {
         r.bias = {{-2, 1.0f}};
       },
       "bias_ids"},
  };
  for (int32_t dt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
    for (const Bad& bad : bads) {
      INFO(bad.name, " ", mla_test::dtype_label(dt));
      Fixture f;
      f.batch.csr_dtype = dt;
      bad.edit(f.batch.row(3));
      f.batch.build();
      f.check(f.params(), {bad.name});
    }
  }
  // Offsets that decrease, overrun N, or start below 0.
  Fixture f;
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  Borrowed t_ids(ids.data(), {6}, DSK_DTYPE_INT32);
  const std::vector<std::vector<int32_t>> bad_offsets = {
      {0, 3, 2, 4, 6}, {0, 1, 2, 3, 7}, {-1, 1, 2, 3, 4}, {0, 6, 6, 6, 5}};
  for (const auto& offs : bad_offsets) {
    std::vector<int32_t> o = offs;
    Borrowed t_offs(o.data(), {kB + 1}, DSK_DTYPE_INT32);
    INFO("offsets ", offs[0], " ", offs[1], " ", offs[2], " ", offs[3], " ", offs[4]);
    f.with(
        [&](dsk_sampling_params& p) {
          p.output_offsets = &t_offs;
          p.output_ids = &t_ids;
        },
        {"output_offsets"});
    f.with(
        [&](dsk_sampling_params& p) {
          p.prompt_offsets = &t_offs;
          p.prompt_ids = &t_ids;
        },
        {"prompt_offsets"});
  }
  // Offsets and ids given alone; lengths that do not match.
  std::vector<int32_t> o5 = {0, 1, 2, 3, 4}, o4 = {0, 1, 2, 3};
  Borrowed t_o5(o5.data(), {kB + 1}, DSK_DTYPE_INT32), t_o4(o4.data(), {kB}, DSK_DTYPE_INT32);
  f.with([&](dsk_sampling_params& p) { p.output_ids = nullptr; }, {"output_ids|output_offsets"});
  f.with([&](dsk_sampling_params& p) { p.prompt_offsets = nullptr; },
         {"prompt_ids|prompt_offsets"});
  f.with([&](dsk_sampling_params& p) { p.output_offsets = &t_o4; }, {"output_offsets"});
  f.with([&](dsk_sampling_params& p) { p.bias_values = nullptr; }, {"bias_values|bias_ids"});
  std::vector<float> bv = {1.0f, 2.0f, 3.0f};
  Borrowed t_bv(bv.data(), {3}, DSK_DTYPE_F32);
  f.with([&](dsk_sampling_params& p) { p.bias_values = &t_bv; }, {"bias_values"});
  std::vector<int32_t> bvi = {1, 2, 3, 4};
  Borrowed t_bvi(bvi.data(), {4}, DSK_DTYPE_INT32);
  f.with([&](dsk_sampling_params& p) { p.bias_values = &t_bvi; }, {"bias_values"});
  std::vector<float> fo = {0, 1, 2, 3, 4};
  Borrowed t_fo(fo.data(), {kB + 1}, DSK_DTYPE_F32);
  f.with([&](dsk_sampling_params& p) { p.output_offsets = &t_fo; }, {"output_offsets"});
}

TEST_CASE("sampling errors: shapes and dtypes of the inputs") {
  Fixture f;
  std::vector<float> f5(5, 1.0f);
  std::vector<int32_t> i4(4, 1), i5(5, 1);
  std::vector<int64_t> l4(4, 1), l3(3, 1);
  std::vector<uint16_t> h4(4, 0x3C00);
  Borrowed t_f5(f5.data(), {5}, DSK_DTYPE_F32), t_f4x1(f5.data(), {4, 1}, DSK_DTYPE_F32),
      t_i4(i4.data(), {4}, DSK_DTYPE_INT32), t_i5(i5.data(), {5}, DSK_DTYPE_INT32),
      t_l4(l4.data(), {4}, DSK_DTYPE_INT64), t_l3(l3.data(), {3}, DSK_DTYPE_INT64),
      t_h4(h4.data(), {4}, DSK_DTYPE_F16);
  using P = dsk_sampling_params;
  f.with([&](P& p) { p.temperatures = &t_f5; }, {"temperatures"});
  f.with([&](P& p) { p.temperatures = &t_f4x1; }, {"temperatures"});
  f.with([&](P& p) { p.temperatures = &t_h4; }, {"temperatures"});
  f.with([&](P& p) { p.top_ks = &t_i5; }, {"top_ks"});
  f.with([&](P& p) { p.top_ks = &t_l4; }, {"top_ks"});
  f.with([&](P& p) { p.top_ps = &t_i4; }, {"top_ps"});
  f.with([&](P& p) { p.min_ps = &t_f5; }, {"min_ps"});
  f.with([&](P& p) { p.repetition_penalties = &t_f5; }, {"repetition_penalties"});
  f.with([&](P& p) { p.frequency_penalties = &t_h4; }, {"frequency_penalties"});
  f.with([&](P& p) { p.presence_penalties = &t_i4; }, {"presence_penalties"});
  f.with([&](P& p) { p.seeds = &t_l3; }, {"seeds"});
  f.with([&](P& p) { p.seeds = &t_i4; }, {"seeds"});
  f.with([&](P& p) { p.offsets = &t_i4; }, {"offsets"});
  // The mask: [B, ceil(V / 32)] int32.
  std::vector<int32_t> m(sz(kB * 3), -1);
  Borrowed t_m3(m.data(), {kB, 3}, DSK_DTYPE_INT32), t_m1(m.data(), {kB, 1}, DSK_DTYPE_INT32),
      t_mb(m.data(), {kB - 1, 2}, DSK_DTYPE_INT32), t_mf(m.data(), {kB, 2}, DSK_DTYPE_F32),
      t_mu(m.data(), {kB, 8}, DSK_DTYPE_UINT8);
  f.with([&](P& p) { p.allowed_mask = &t_m3; }, {"allowed_mask"});
  f.with([&](P& p) { p.allowed_mask = &t_m1; }, {"allowed_mask"});
  f.with([&](P& p) { p.allowed_mask = &t_mb; }, {"allowed_mask"});
  f.with([&](P& p) { p.allowed_mask = &t_mf; }, {"allowed_mask"});
  f.with([&](P& p) { p.allowed_mask = &t_mu; }, {"allowed_mask"});
  // Logits: int32, 1-D, 3-D; V beyond INT32_MAX (a stride-0 row whose data is never read).
  const dsk_sampling_params p = f.params();
  std::vector<int32_t> li(sz(kB * kV), 0);
  Borrowed l_int(li.data(), {kB, kV}, DSK_DTYPE_INT32), l_1d(li.data(), {kV}, DSK_DTYPE_F32),
      l_3d(li.data(), {kB, 1, kV}, DSK_DTYPE_F32);
  float one = 0.0f;
  Borrowed l_huge(&one, {kB, int64_t{1} << 31}, DSK_DTYPE_F32, {0, 0});
  Borrowed l_empty(&one, {kB, 0}, DSK_DTYPE_F32);
  for (const DLTensor* bad : {&l_int.dl, &l_1d.dl, &l_3d.dl, &l_huge.dl, &l_empty.dl}) {
    INFO("logits ndim ", bad->ndim);
    expect_invalid(dsk_sample(f.ctx, &p, bad, f.out.get()), {"logits"});
    expect_invalid(dsk_sampling_probs(f.ctx, &p, bad, &f.t_probs, nullptr), {"logits|probs"});
  }
  CHECK(f.untouched());
  // A device other than the CPU.
  std::vector<float> dev(4, 1.0f);
  Borrowed t_dev(dev.data(), {4}, DSK_DTYPE_F32);
  t_dev.dl.device = DLDevice{kDLCUDA, 0};
  f.with([&](P& q) { q.temperatures = &t_dev; }, {"temperatures"});
}

TEST_CASE("sampling errors: outputs") {
  Fixture f;
  const dsk_sampling_params p = f.params();
  auto run = [&](const dsk_sampling_outputs& o) {
    return dsk_sample(f.ctx, &p, f.batch.logits(), &o);
  };
  const dsk_sampling_outputs base = *f.out.get();
  std::vector<int32_t> i5(5, -7);
  std::vector<int64_t> l4(4, -7);
  std::vector<float> f4(4, 77.0f);
  std::vector<int32_t> top65(sz(kB * 65), -7), top3(sz(kB * 3), -7);
  std::vector<float> lp65(sz(kB * 65), 77.0f), lp2(sz(kB * 2), 77.0f);
  Borrowed t_i5(i5.data(), {5}, DSK_DTYPE_INT32), t_l4(l4.data(), {4}, DSK_DTYPE_INT64),
      t_f4(f4.data(), {4}, DSK_DTYPE_F32), t_top65(top65.data(), {kB, 65}, DSK_DTYPE_INT32),
      t_lp65(lp65.data(), {kB, 65}, DSK_DTYPE_F32), t_lp2(lp2.data(), {kB, 2}, DSK_DTYPE_F32),
      t_top3f(lp2.data(), {kB, 2}, DSK_DTYPE_F32), t_top0(top3.data(), {kB, 0}, DSK_DTYPE_INT32),
      t_lp0(lp2.data(), {kB, 0}, DSK_DTYPE_F32);
  auto edit = [&](const std::function<void(dsk_sampling_outputs&)>& e) {
    dsk_sampling_outputs o = base;
    e(o);
    return run(o);
  };
  using O = dsk_sampling_outputs;
  expect_invalid(edit([&](O& o) { o.ids = &t_i5; }), {"ids"});
  expect_invalid(edit([&](O& o) { o.ids = &t_l4; }), {"ids"});
  expect_invalid(edit([&](O& o) { o.ids = &t_f4; }), {"ids"});
  expect_invalid(edit([&](O& o) { o.logprobs = &t_i5; }), {"logprobs"});
  expect_invalid(edit([&](O& o) { o.raw_logprobs = &t_l4; }), {"raw_logprobs"});
  expect_invalid(edit([&](O& o) { o.status = &t_f4; }), {"status"});
  expect_invalid(edit([&](O& o) {
                   o.top_ids = &t_top65;
                   o.top_logprobs = &t_lp65;
                 }),
                 {"top_ids"});
  expect_invalid(edit([&](O& o) {
                   o.top_ids = &t_top0;
                   o.top_logprobs = &t_lp0;
                 }),
                 {"top_ids"});
  expect_invalid(edit([&](O& o) { o.top_logprobs = &t_lp2; }), {"top_logprobs|top_ids"});
  expect_invalid(edit([&](O& o) { o.top_logprobs = nullptr; }), {"top_logprobs|top_ids"});
  expect_invalid(edit([&](O& o) { o.top_ids = nullptr; }), {"top_logprobs|top_ids"});
  expect_invalid(edit([&](O& o) { o.top_ids = &t_top3f; }), {"top_ids"});
  expect_invalid(edit([&](O& o) { o.top_source = 2; }), {"top_source"});
  expect_invalid(edit([&](O& o) { o.top_source = -1; }), {"top_source"});
  CHECK(f.untouched());
  // Overlaps: outputs with each other and with inputs.
  Borrowed ids_on_lp(f.out.logprobs.data(), {kB}, DSK_DTYPE_INT32);
  expect_invalid(edit([&](O& o) { o.ids = &ids_on_lp; }), {"ids|logprobs"});
  Borrowed st_on_ids(f.out.ids.data(), {kB}, DSK_DTYPE_UINT8);
  expect_invalid(edit([&](O& o) { o.status = &st_on_ids; }), {"ids|status"});
  Borrowed ids_on_logits(f.batch.logits()->data, {kB}, DSK_DTYPE_INT32);
  expect_invalid(edit([&](O& o) { o.ids = &ids_on_logits; }), {"ids|logits"});
  Borrowed lp_on_temps(p.temperatures->data, {kB}, DSK_DTYPE_F32);
  expect_invalid(edit([&](O& o) { o.logprobs = &lp_on_temps; }), {"logprobs|temperatures"});
  Borrowed top_on_top(f.out.top_ids.data(), {kB, 3}, DSK_DTYPE_F32);
  expect_invalid(edit([&](O& o) { o.top_logprobs = &top_on_top; }), {"top_ids|top_logprobs"});
  CHECK(f.untouched());
  // probs / logits outputs: shape, dtype, overlap with the logits.
  std::vector<float> pw(sz(kB * (kV + 1)));
  Borrowed p_wide(pw.data(), {kB, kV + 1}, DSK_DTYPE_F32),
      p_bf(pw.data(), {kB, kV}, DSK_DTYPE_BF16), p_int(pw.data(), {kB, kV}, DSK_DTYPE_INT32),
      p_alias(f.batch.logits()->data, {kB, kV}, DSK_DTYPE_F32, {kV, 1});
  expect_invalid(dsk_sampling_probs(f.ctx, &p, f.batch.logits(), &p_wide, nullptr), {"probs"});
  expect_invalid(dsk_sampling_probs(f.ctx, &p, f.batch.logits(), &p_bf, nullptr), {"probs"});
  expect_invalid(dsk_sampling_logits(f.ctx, &p, f.batch.logits(), &p_int, nullptr), {"out"});
  expect_invalid(dsk_sampling_logits(f.ctx, &p, f.batch.logits(), &p_wide, nullptr), {"out"});
  expect_invalid(dsk_sampling_probs(f.ctx, &p, f.batch.logits(), &p_alias, nullptr),
                 {"probs|logits"});
  Borrowed st_bad(f.pstatus.data(), {kB - 1}, DSK_DTYPE_UINT8);
  expect_invalid(dsk_sampling_probs(f.ctx, &p, f.batch.logits(), &f.t_probs, &st_bad), {"status"});
  CHECK(f.untouched());
}

TEST_CASE("speculative verify errors") {
  CpuContext ctx;
  const int64_t b = 2, n = 2, v = 10;
  std::vector<int32_t> drafts = {1, 2, 3, 4};
  std::vector<float> q(sz(b * n * v), 0.1f), target(sz(b * (n + 1) * v), 0.1f);
  std::vector<int32_t> out(sz(b * (n + 1)), -7), acc(sz(b), -7), emi(sz(b), -7);
  Borrowed d(drafts.data(), {b, n}, DSK_DTYPE_INT32), qt(q.data(), {b, n, v}, DSK_DTYPE_F32),
      t(target.data(), {b, n + 1, v}, DSK_DTYPE_F32), o(out.data(), {b, n + 1}, DSK_DTYPE_INT32),
      a(acc.data(), {b}, DSK_DTYPE_INT32), e(emi.data(), {b}, DSK_DTYPE_INT32);
  dsk_verify_params p;
  SAMP_REQUIRE_OK(dsk_verify_params_init(&p));
  CHECK(p.struct_size == sizeof(dsk_verify_params));
  CHECK(p.mode == DSK_VERIFY_SAMPLE);
  SAMP_REQUIRE_OK(dsk_speculative_verify(ctx, &p, &d, &qt, &t, &o, &a, &e));
  SAMP_REQUIRE_OK(dsk_context_synchronize(ctx));
  out.assign(out.size(), -7);
  acc.assign(acc.size(), -7);
  emi.assign(emi.size(), -7);
  auto untouched = [&] {
    for (int32_t x : out)
      if (x != -7) return false;
    for (int32_t x : acc)
      if (x != -7) return false;
    return true;
  };
  expect_invalid(dsk_speculative_verify(nullptr, &p, &d, &qt, &t, &o, &a, &e), {"ctx"});
  expect_invalid(dsk_speculative_verify(ctx, nullptr, &d, &qt, &t, &o, &a, &e), {"params"});
  expect_invalid(dsk_speculative_verify(ctx, &p, nullptr, &qt, &t, &o, &a, &e), {"draft_ids"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, nullptr, &o, &a, &e), {"target"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t, nullptr, &a, &e), {"out_ids"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t, &o, nullptr, &e), {"accepted"});
  {
    dsk_verify_params small = p;
    small.struct_size = 4;
    dsk_test::expect_error(dsk_speculative_verify(ctx, &small, &d, &qt, &t, &o, &a, &e),
                           DSK_ERR_VERSION_MISMATCH, {"params->struct_size"});
    dsk_verify_params bad_mode = p;
    bad_mode.mode = 2;
    expect_invalid(dsk_speculative_verify(ctx, &bad_mode, &d, &qt, &t, &o, &a, &e), {"mode"});
  }
  // Shapes.
  Borrowed t_short(target.data(), {b, n, v}, DSK_DTYPE_F32),
      q_wrong(q.data(), {b, n, v - 1}, DSK_DTYPE_F32), o_short(out.data(), {b, n}, DSK_DTYPE_INT32),
      a_long(acc.data(), {b + 1}, DSK_DTYPE_INT32), d_f(drafts.data(), {b, n}, DSK_DTYPE_F32),
      t_int(target.data(), {b, n + 1, v}, DSK_DTYPE_INT32),
      o_64(out.data(), {b, n + 1}, DSK_DTYPE_INT64);
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t, &o_64, &a, &e), {"out_ids"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t_short, &o, &a, &e), {"target"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &q_wrong, &t, &o, &a, &e), {"draft_probs"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t, &o_short, &a, &e), {"out_ids"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t, &o, &a_long, &e), {"accepted"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d_f, &qt, &t, &o, &a, &e), {"draft_ids"});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t_int, &o, &a, &e), {"target"});
  float one = 0.1f;
  Borrowed t_huge(&one, {b, n + 1, int64_t{1} << 31}, DSK_DTYPE_F32, {0, 0, 0});
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, nullptr, &t_huge, &o, &a, &e), {"target"});
  // Overlap of outputs.
  Borrowed a_on_out(out.data(), {b}, DSK_DTYPE_INT32);
  expect_invalid(dsk_speculative_verify(ctx, &p, &d, &qt, &t, &o, &a_on_out, &e),
                 {"accepted|out_ids"});
  CHECK(untouched());
  // Draft ids outside [-1, V): before anything is written.
  for (int32_t bad : {-2, static_cast<int32_t>(v), 1000}) {
    INFO("draft id ", bad);
    std::vector<int32_t> dd = {1, 2, 3, bad};
    Borrowed tdd(dd.data(), {b, n}, DSK_DTYPE_INT32);
    expect_invalid(dsk_speculative_verify(ctx, &p, &tdd, &qt, &t, &o, &a, &e), {"draft_ids"});
    dsk_verify_params g = p;
    g.mode = DSK_VERIFY_GREEDY;
    expect_invalid(dsk_speculative_verify(ctx, &g, &tdd, nullptr, &t, &o, &a, &e), {"draft_ids"});
    CHECK(untouched());
  }
}
