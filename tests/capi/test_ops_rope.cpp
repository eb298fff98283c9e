// RoPE with YaRN on the CPU: dsk_rope_config_init, the table against DeepSeek-V3's formula in
// double (and worked values: V3's correction range 10..23, freq[0] = 1, row 0, plain RoPE for
// factor <= 1, the mscale ratio), dsk_rope_apply against a complex multiplication in double in
// both layouts with int32/int64 positions, strided q_pe views and in place; every bad argument.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <string>
#include <vector>

#include "ops_norm_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using dsk_test::expect_error;
using dsk_test::Owned;
using norm_test::kFloats;
using norm_test::make_values;
using norm_test::random_values;
using norm_test::read;

const double kPi = std::acos(-1.0);

double correction_dim(double rotations, double dim, double theta, double orig) {
  return dim * std::log(orig / (rotations * 2 * kPi)) / (2 * std::log(theta));
}

double mscale_of(double factor, double s) {
  return factor <= 1 ? 1.0 : 0.1 * s * std::log(factor) + 1.0;
}

// precompute_freqs_cis (DeepSeek-V3 inference/model.py) in double.
std::vector<double> ref_freqs(const dsk_rope_config& c) {
  const int half = c.dim / 2;
  std::vector<double> f(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) f[i] = 1.0 / std::pow(c.theta, 2.0 * i / c.dim);
  if (c.factor > 1) {
    const double orig = static_cast<double>(c.original_seq_len);
    const double low = std::max(std::floor(correction_dim(c.beta_fast, c.dim, c.theta, orig)), 0.0);
    double high = std::min(std::ceil(correction_dim(c.beta_slow, c.dim, c.theta, orig)),
                           static_cast<double>(c.dim - 1));
    if (low == high) high += 0.001;
    for (int i = 0; i < half; ++i) {
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      const double smooth = 1 - ramp;
      f[i] = f[i] / c.factor * (1 - smooth) + f[i] * smooth;
    }
  }
  return f;
}

struct Table {
  Owned cos;
  Owned sin;
};

void make_table(dsk_context* ctx, const dsk_rope_config& c, int64_t positions, Table& t) {
  t.cos.t = dsk_test::make(ctx, {positions, c.dim / 2}, DSK_DTYPE_F32);
  t.sin.t = dsk_test::make(ctx, {positions, c.dim / 2}, DSK_DTYPE_F32);
  REQUIRE_MESSAGE(dsk_rope_table(ctx, &c, t.cos.dl(), t.sin.dl()) == DSK_OK,
                  dsk_last_error_message());
}

// The table of the default (DeepSeek-V3) config for `positions` positions, and its values.
struct DefaultTable {
  dsk_rope_config c;
  Table t;
  std::vector<double> cs;
  std::vector<double> sn;
  DefaultTable(dsk_context* ctx, int64_t positions) {
    dsk_rope_config_init(&c);
    make_table(ctx, c, positions, t);
    cs = read(ctx, t.cos.dl());
    sn = read(ctx, t.sin.dl());
  }
};

void check_table(const dsk_rope_config& c, const Table& t, int64_t positions) {
  const auto f = ref_freqs(c);
  const double scale = mscale_of(c.factor, c.mscale) / mscale_of(c.factor, c.mscale_all_dim);
  const int64_t half = c.dim / 2;
  const float* cs = t.cos.data<float>();
  const float* sn = t.sin.data<float>();
  size_t bad = 0;
  for (int64_t p = 0; p < positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * f[i];
      // f32 steps: the angle is good to ~6e-7 of itself, cos/sin then to 2^-24.
      const double tol = (2.5e-7 + angle * 1e-6) * std::fabs(scale);
      const double want_c = std::cos(angle) * scale;
      const double want_s = std::sin(angle) * scale;
      if (!(std::fabs(cs[p * half + i] - want_c) <= tol) ||
          !(std::fabs(sn[p * half + i] - want_s) <= tol)) {
        if (bad++ == 0) {
          FAIL_CHECK("position " << p << " i " << i << ": cos " << cs[p * half + i] << " sin "
                                 << sn[p * half + i] << ", expected " << want_c << " " << want_s);
        }
      }
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("rope config init gives DeepSeek-V3's values") {
  dsk_rope_config c;
  std::memset(&c, 0xAB, sizeof(c));
  dsk_rope_config_init(&c);
  CHECK(c.struct_size == sizeof(dsk_rope_config));
  CHECK(c.dim == 64);
  CHECK(c.theta == 10000.0);
  CHECK(c.factor == 40.0);
  CHECK(c.original_seq_len == 4096);
  CHECK(c.beta_fast == 32.0);
  CHECK(c.beta_slow == 1.0);
  CHECK(c.mscale == 1.0);
  CHECK(c.mscale_all_dim == 1.0);
  expect_error(dsk_rope_config_init(nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"dsk_rope_config_init: config is NULL"});
}

TEST_CASE("rope table follows the DeepSeek-V3 formula") {
  CpuContext ctx;
  dsk_rope_config c;
  dsk_rope_config_init(&c);
  Table t;
  make_table(ctx, c, 4500, t);
  check_table(c, t, 4500);
  // Other configs: plain RoPE, a wide rotation, a non-trivial mscale ratio, equal low and high.
  dsk_rope_config plain = c;
  plain.factor = 1.0;
  Table tp;
  make_table(ctx, plain, 300, tp);
  check_table(plain, tp, 300);
  dsk_rope_config wide = c;
  wide.dim = 128;
  wide.theta = 50000.0;
  wide.factor = 8.0;
  wide.original_seq_len = 8192;
  wide.mscale = 0.707;
  wide.mscale_all_dim = 0.5;
  Table tw;
  make_table(ctx, wide, 700, tw);
  check_table(wide, tw, 700);
  dsk_rope_config narrow = c;
  narrow.dim = 2;
  Table tn;
  make_table(ctx, narrow, 10, tn);
  check_table(narrow, tn, 10);
}

TEST_CASE("rope table worked values") {
  CpuContext ctx;
  dsk_rope_config c;
  dsk_rope_config_init(&c);
  // V3's correction range: cd(32) = 10.47 -> low 10, cd(1) = 22.51 -> high 23.
  CHECK(std::floor(correction_dim(32, 64, 10000, 4096)) == 10);
  CHECK(std::ceil(correction_dim(1, 64, 10000, 4096)) == 23);
  Table yarn;
  make_table(ctx, c, 3, yarn);
  dsk_rope_config plain = c;
  plain.factor = 1.0;
  Table base;
  make_table(ctx, plain, 3, base);
  const float* ys = yarn.sin.data<float>();
  const float* bs = base.sin.data<float>();
  // Row 0: angle 0 -> cos 1, sin 0 (scale 1).
  for (int i = 0; i < 32; ++i) {
    CHECK(yarn.cos.data<float>()[i] == 1.0f);
    CHECK(ys[i] == 0.0f);
  }
  // freq[0] = 1 exactly, so row 1 column 0 is cos(1), sin(1) rounded to f32.
  CHECK(yarn.cos.data<float>()[32] == static_cast<float>(std::cos(1.0)));
  CHECK(ys[32] == static_cast<float>(std::sin(1.0)));
  // Row 1 holds sin(freq): up to i = low = 10 YaRN keeps the frequency, from 11 it blends, from
  // high = 23 on it is freq / 40.
  for (int i = 0; i <= 10; ++i) CHECK(ys[32 + i] == bs[32 + i]);
  CHECK(ys[32 + 11] < bs[32 + 11]);
  const auto f = ref_freqs(plain);
  CHECK(ys[32 + 22] > 1.5 * std::sin(f[22] / 40));
  for (int i = 23; i < 32; ++i) {
    CHECK(ys[32 + i] == doctest::Approx(std::sin(f[i] / 40)).epsilon(1e-6));
  }
  // factor <= 1 is plain RoPE.
  dsk_rope_config low = c;
  low.factor = 0.5;
  low.beta_fast = 0;  // betas are not used (nor checked) without YaRN
  Table tl;
  make_table(ctx, low, 3, tl);
  CHECK(read(ctx, tl.cos.dl()) == read(ctx, base.cos.dl()));
  CHECK(read(ctx, tl.sin.dl()) == read(ctx, base.sin.dl()));
  // The mscale ratio multiplies every entry: row 0 holds it.
  dsk_rope_config ms = c;
  ms.mscale_all_dim = 0.5;
  Table tm;
  make_table(ctx, ms, 2, tm);
  const double ratio = (0.1 * std::log(40.0) + 1) / (0.05 * std::log(40.0) + 1);
  CHECK(tm.cos.data<float>()[0] == static_cast<float>(ratio));
  CHECK(tm.cos.data<float>()[32] == static_cast<float>(std::cos(1.0)) * static_cast<float>(ratio));
}

TEST_CASE("rope table into strided and empty outputs") {
  CpuContext ctx;
  dsk_rope_config c;
  dsk_rope_config_init(&c);
  Table t;
  make_table(ctx, c, 20, t);
  Owned base(dsk_test::make(ctx, {20 * 64 * 2}, DSK_DTYPE_F32));
  Owned cs(norm_test::view(base.t, {20, 32}, {64, 2}));
  Owned sn(norm_test::view(base.t, {20, 32}, {64, 2}, 20 * 64 + 1));
  REQUIRE(dsk_rope_table(ctx, &c, cs.dl(), sn.dl()) == DSK_OK);
  CHECK(read(ctx, cs.dl()) == read(ctx, t.cos.dl()));
  CHECK(read(ctx, sn.dl()) == read(ctx, t.sin.dl()));
  Owned e1(dsk_test::make(ctx, {0, 32}, DSK_DTYPE_F32));
  Owned e2(dsk_test::make(ctx, {0, 32}, DSK_DTYPE_F32));
  CHECK(dsk_rope_table(ctx, &c, e1.dl(), e2.dl()) == DSK_OK);
}

namespace {

// y = x rotated, in double: pair (a, b) -> (a + ib)(c + is) with the table's own values.
std::vector<double> rope_ref(const std::vector<double>& x, int64_t t_count, int64_t heads,
                             int64_t d, const std::vector<int64_t>& pos,
                             const std::vector<double>& cs, const std::vector<double>& sn,
                             int32_t layout, std::vector<double>* bound) {
  std::vector<double> y(x.size());
  bound->assign(x.size(), 0.0);
  const int64_t half = d / 2;
  for (int64_t t = 0; t < t_count; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t row = (t * heads + h) * d;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t ia = layout == DSK_ROPE_INTERLEAVED ? 2 * i : i;
        const int64_t ib = layout == DSK_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
        const double c = cs[pos[t] * half + i];
        const double s = sn[pos[t] * half + i];
        const std::complex<double> z =
            std::complex<double>(x[row + ia], x[row + ib]) * std::complex<double>(c, s);
        y[row + ia] = z.real();
        y[row + ib] = z.imag();
        const double mag = std::fabs(x[row + ia]) + std::fabs(x[row + ib]);
        (*bound)[row + ia] = mag;
        (*bound)[row + ib] = mag;
      }
    }
  }
  return y;
}

void check_rope(const std::vector<double>& got, const std::vector<double>& want,
                const std::vector<double>& bound, int32_t dtype, const std::string& what) {
  const double rel = norm_test::rel_tolerance(dtype);
  norm_test::check_within(got, want, what, [&](size_t i) {
    return std::ldexp(bound[i], -22) + rel * std::fabs(want[i]);
  });
}

std::vector<int64_t> random_positions(size_t n, int64_t limit, uint64_t seed) {
  const auto v = random_values(n, seed, 0.0f, static_cast<float>(limit));
  std::vector<int64_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = std::min<int64_t>(static_cast<int64_t>(v[i]), limit - 1);
  return p;
}

dsk_tensor* make_positions(dsk_context* ctx, const std::vector<int64_t>& p, int32_t dtype) {
  dsk_tensor* t = dsk_test::make(ctx, {static_cast<int64_t>(p.size())}, dtype);
  for (size_t i = 0; i < p.size(); ++i) {
    if (dtype == DSK_DTYPE_INT32) {
      static_cast<int32_t*>(dsk_tensor_dltensor(t)->data)[i] = static_cast<int32_t>(p[i]);
    } else {
      static_cast<int64_t*>(dsk_tensor_dltensor(t)->data)[i] = p[i];
    }
  }
  return t;
}

const char* layout_label(int32_t layout) {
  return layout == DSK_ROPE_INTERLEAVED ? "interleaved" : "half-split";
}

}  // namespace

TEST_CASE("rope apply is the complex product in both layouts") {
  CpuContext ctx;
  const int64_t p_count = 50;
  const DefaultTable v3(ctx, p_count);
  const auto& [config, t, cs, sn] = v3;
  const int64_t tokens = 7;
  const int64_t heads = 3;
  const int64_t d = 64;
  const auto xv = random_values(tokens * heads * d, 41, -3, 3);
  const auto pos = random_positions(tokens, p_count, 42);
  for (int32_t layout : {DSK_ROPE_INTERLEAVED, DSK_ROPE_HALF_SPLIT}) {
    for (int32_t pt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
      for (int32_t xt : kFloats) {
        for (int32_t yt : kFloats) {
          Owned x(make_values(ctx, {tokens, heads, d}, xt, xv));
          Owned y(dsk_test::make(ctx, {tokens, heads, d}, yt));
          Owned p(make_positions(ctx, pos, pt));
          REQUIRE(dsk_rope_apply(ctx, x.dl(), p.dl(), t.cos.dl(), t.sin.dl(), y.dl(), layout) ==
                  DSK_OK);
          std::vector<double> bound;
          const auto want =
              rope_ref(read(ctx, x.dl()), tokens, heads, d, pos, cs, sn, layout, &bound);
          check_rope(read(ctx, y.dl()), want, bound, yt,
                     std::string(layout_label(layout)) + " x " + norm_test::dtype_label(xt) +
                         " y " + norm_test::dtype_label(yt) +
                         (pt == DSK_DTYPE_INT32 ? " int32" : " int64"));
        }
      }
    }
  }
}

TEST_CASE("rope apply worked values") {
  CpuContext ctx;
  // A hand-made table: position 1 rotates pair 0 by 90 degrees and pair 1 by 180.
  Owned cs(make_values(ctx, {2, 2}, DSK_DTYPE_F32, {1, 1, 0, -1}));
  Owned sn(make_values(ctx, {2, 2}, DSK_DTYPE_F32, {0, 0, 1, 0}));
  Owned x(make_values(ctx, {2, 4}, DSK_DTYPE_F32, {1, 2, 3, 4, 1, 2, 3, 4}));
  Owned y(dsk_test::make(ctx, {2, 4}, DSK_DTYPE_F32));
  Owned p(make_positions(ctx, {0, 1}, DSK_DTYPE_INT64));
  REQUIRE(dsk_rope_apply(ctx, x.dl(), p.dl(), cs.dl(), sn.dl(), y.dl(), DSK_ROPE_INTERLEAVED) ==
          DSK_OK);
  // Interleaved pairs (1, 2) and (3, 4): (1 + 2i) * i = -2 + i; (3 + 4i) * -1 = -3 - 4i.
  CHECK(read(ctx, y.dl()) == std::vector<double>{1, 2, 3, 4, -2, 1, -3, -4});
  REQUIRE(dsk_rope_apply(ctx, x.dl(), p.dl(), cs.dl(), sn.dl(), y.dl(), DSK_ROPE_HALF_SPLIT) ==
          DSK_OK);
  // Half-split pairs (1, 3) and (2, 4): (1 + 3i) * i = -3 + i; (2 + 4i) * -1 = -2 - 4i.
  CHECK(read(ctx, y.dl()) == std::vector<double>{1, 2, 3, 4, -3, -2, 1, -4});
}

TEST_CASE("rope apply on strided q_pe views, in place, and [T, D] keys") {
  CpuContext ctx;
  const int64_t p_count = 4096;
  const DefaultTable v3(ctx, p_count);
  const auto& [config, t, cs, sn] = v3;
  const int64_t tokens = 5;
  const int64_t heads = 4;
  const int64_t d = 64;
  const int64_t qk = 192;
  const auto pos = random_positions(tokens, p_count, 43);
  for (int32_t layout : {DSK_ROPE_INTERLEAVED, DSK_ROPE_HALF_SPLIT}) {
    // q [T, H, 192] bf16; q_pe = q[..., 128:] rotated in place.
    const auto qv = random_values(tokens * heads * qk, 44);
    Owned q(make_values(ctx, {tokens, heads, qk}, DSK_DTYPE_BF16, qv));
    Owned q_pe(norm_test::view(q.t, {tokens, heads, d}, {heads * qk, qk, 1}, qk - d));
    const auto before = read(ctx, q.dl());
    const auto x = read(ctx, q_pe.dl());
    // Strided positions: every other element of an int32 buffer.
    Owned pb(make_positions(ctx, std::vector<int64_t>(2 * tokens, 0), DSK_DTYPE_INT32));
    for (int64_t i = 0; i < tokens; ++i) {
      static_cast<int32_t*>(pb.dl()->data)[2 * i + 1] = static_cast<int32_t>(pos[i]);
    }
    Owned p(norm_test::view(pb.t, {tokens}, {2}, 1));
    REQUIRE(dsk_rope_apply(ctx, q_pe.dl(), p.dl(), t.cos.dl(), t.sin.dl(), q_pe.dl(), layout) ==
            DSK_OK);
    std::vector<double> bound;
    const auto want = rope_ref(x, tokens, heads, d, pos, cs, sn, layout, &bound);
    check_rope(read(ctx, q_pe.dl()), want, bound, DSK_DTYPE_BF16,
               std::string("q_pe in place ") + layout_label(layout));
    const auto after = read(ctx, q.dl());
    bool nope_kept = true;
    for (int64_t r = 0; r < tokens * heads; ++r) {
      for (int64_t i = 0; i < qk - d; ++i) nope_kept &= after[r * qk + i] == before[r * qk + i];
    }
    CHECK(nope_kept);
    // k_pe [T, 64] (2-D) out of place into f32, from a strided [T, 576] latent.
    Owned kv(make_values(ctx, {tokens, 576}, DSK_DTYPE_BF16, random_values(tokens * 576, 45)));
    Owned k_pe(norm_test::view(kv.t, {tokens, d}, {576, 1}, 512));
    Owned k_out(dsk_test::make(ctx, {tokens, d}, DSK_DTYPE_F32));
    REQUIRE(dsk_rope_apply(ctx, k_pe.dl(), p.dl(), t.cos.dl(), t.sin.dl(), k_out.dl(), layout) ==
            DSK_OK);
    const auto kw = rope_ref(read(ctx, k_pe.dl()), tokens, 1, d, pos, cs, sn, layout, &bound);
    check_rope(read(ctx, k_out.dl()), kw, bound, DSK_DTYPE_F32,
               std::string("k_pe ") + layout_label(layout));
  }
}

TEST_CASE("rope table rejects bad configs and tables") {
  CpuContext ctx;
  dsk_rope_config good;
  dsk_rope_config_init(&good);
  Owned cs(dsk_test::make(ctx, {4, 32}, DSK_DTYPE_F32));
  Owned sn(dsk_test::make(ctx, {4, 32}, DSK_DTYPE_F32));
  const auto bad = DSK_ERR_INVALID_ARGUMENT;
  auto with = [&](auto change) {
    dsk_rope_config c = good;
    change(c);
    return dsk_rope_table(ctx, &c, cs.dl(), sn.dl());
  };
  expect_error(with([](dsk_rope_config& c) { c.dim = 63; }), bad, {"config->dim = 63", "even"});
  expect_error(with([](dsk_rope_config& c) { c.dim = 0; }), bad, {"config->dim = 0"});
  expect_error(with([](dsk_rope_config& c) { c.theta = 1.0; }), bad, {"config->theta = 1"});
  expect_error(with([](dsk_rope_config& c) { c.theta = NAN; }), bad, {"config->theta = nan"});
  expect_error(with([](dsk_rope_config& c) { c.factor = INFINITY; }), bad,
               {"config->factor = inf"});
  expect_error(with([](dsk_rope_config& c) { c.original_seq_len = 0; }), bad,
               {"config->original_seq_len = 0"});
  expect_error(with([](dsk_rope_config& c) { c.beta_fast = 1.0; }), bad,
               {"config->beta_fast = 1", "beta_slow"});
  expect_error(with([](dsk_rope_config& c) { c.beta_slow = 0.0; }), bad, {"config->beta_slow = 0"});
  expect_error(with([](dsk_rope_config& c) { c.beta_fast = NAN; }), bad, {"config->beta_fast"});
  expect_error(with([](dsk_rope_config& c) { c.mscale = NAN; }), bad, {"config->mscale = nan"});
  expect_error(with([](dsk_rope_config& c) { c.mscale_all_dim = INFINITY; }), bad,
               {"config->mscale_all_dim = inf"});
  expect_error(with([](dsk_rope_config& c) { c.struct_size = 4; }), DSK_ERR_VERSION_MISMATCH,
               {"config->struct_size = 4"});
  expect_error(dsk_rope_table(ctx, nullptr, cs.dl(), sn.dl()), bad, {"config is NULL"});
  expect_error(dsk_rope_table(nullptr, &good, cs.dl(), sn.dl()), bad, {"ctx"});
  // Without YaRN the betas are not used.
  CHECK(with([](dsk_rope_config& c) {
          c.factor = 1.0;
          c.beta_fast = -1.0;
        }) == DSK_OK);
  Owned c16(dsk_test::make(ctx, {4, 32}, DSK_DTYPE_BF16));
  expect_error(dsk_rope_table(ctx, &good, c16.dl(), sn.dl()), bad, {"cos.dtype is bf16"});
  expect_error(dsk_rope_table(ctx, &good, cs.dl(), c16.dl()), bad, {"sin.dtype"});
  Owned c31(dsk_test::make(ctx, {4, 31}, DSK_DTYPE_F32));
  expect_error(dsk_rope_table(ctx, &good, c31.dl(), sn.dl()), bad, {"cos.shape[1] = 31", "32"});
  Owned c1(dsk_test::make(ctx, {128}, DSK_DTYPE_F32));
  expect_error(dsk_rope_table(ctx, &good, c1.dl(), sn.dl()), bad, {"cos has 1 dimensions"});
  Owned s5(dsk_test::make(ctx, {5, 32}, DSK_DTYPE_F32));
  expect_error(dsk_rope_table(ctx, &good, cs.dl(), s5.dl()), bad, {"sin has shape [5, 32]"});
  expect_error(dsk_rope_table(ctx, &good, cs.dl(), cs.dl()), bad, {"sin overlaps cos"});
  expect_error(dsk_rope_table(ctx, &good, nullptr, sn.dl()), bad, {"cos is NULL"});
  expect_error(dsk_rope_table(ctx, &good, cs.dl(), nullptr), bad, {"sin is NULL"});
}

TEST_CASE("rope apply rejects bad arguments") {
  CpuContext ctx;
  dsk_rope_config c;
  dsk_rope_config_init(&c);
  Table t;
  make_table(ctx, c, 8, t);
  Owned x(make_values(ctx, {3, 2, 64}, DSK_DTYPE_F32, random_values(3 * 2 * 64, 46)));
  Owned y(dsk_test::make(ctx, {3, 2, 64}, DSK_DTYPE_F32));
  Owned p(make_positions(ctx, {0, 7, 3}, DSK_DTYPE_INT32));
  const auto bad = DSK_ERR_INVALID_ARGUMENT;
  const auto il = DSK_ROPE_INTERLEAVED;
  // Positions out of range: nothing is written.
  REQUIRE(dsk_fill(ctx, y.dl(), 5.0) == DSK_OK);
  for (int32_t pt : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
    Owned p8(make_positions(ctx, {0, 1, 8}, pt));
    expect_error(dsk_rope_apply(ctx, x.dl(), p8.dl(), t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
                 {"dsk_rope_apply", "positions[2] = 8", "[0, 8)"});
    Owned pn(make_positions(ctx, {0, -1, 2}, pt));
    expect_error(dsk_rope_apply(ctx, x.dl(), pn.dl(), t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
                 {"positions[1] = -1"});
  }
  const auto ys = read(ctx, y.dl());
  CHECK(std::all_of(ys.begin(), ys.end(), [](double v) { return v == 5.0; }));
  Owned c8(dsk_test::make(ctx, {8, 16}, DSK_DTYPE_F32));
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), c8.dl(), c8.dl(), y.dl(), il), bad,
               {"x.shape[2] = 64", "2 * cos.shape[1] = 32"});
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), t.cos.dl(), t.sin.dl(), y.dl(), 2), bad,
               {"layout = 2"});
  expect_error(dsk_rope_apply(nullptr, x.dl(), p.dl(), t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
               {"ctx"});
  expect_error(dsk_rope_apply(ctx, nullptr, p.dl(), t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
               {"x is NULL"});
  expect_error(dsk_rope_apply(ctx, x.dl(), nullptr, t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
               {"positions is NULL"});
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), nullptr, t.sin.dl(), y.dl(), il), bad,
               {"cos is NULL"});
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), t.cos.dl(), nullptr, y.dl(), il), bad,
               {"sin is NULL"});
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), t.cos.dl(), t.sin.dl(), nullptr, il), bad,
               {"y is NULL"});
  Owned x4(dsk_test::make(ctx, {1, 3, 2, 64}, DSK_DTYPE_F32));
  expect_error(dsk_rope_apply(ctx, x4.dl(), p.dl(), t.cos.dl(), t.sin.dl(), x4.dl(), il), bad,
               {"x has 4 dimensions", "[T, H, D] or [T, D]"});
  Owned x62(dsk_test::make(ctx, {3, 2, 62}, DSK_DTYPE_F32));
  expect_error(dsk_rope_apply(ctx, x62.dl(), p.dl(), t.cos.dl(), t.sin.dl(), x62.dl(), il), bad,
               {"x.shape[2] = 62", "2 * cos.shape[1] = 64"});
  Owned p4(make_positions(ctx, {0, 1, 2, 3}, DSK_DTYPE_INT32));
  expect_error(dsk_rope_apply(ctx, x.dl(), p4.dl(), t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
               {"positions.shape[0] = 4", "3"});
  Owned pf(dsk_test::make(ctx, {3}, DSK_DTYPE_F32));
  expect_error(dsk_rope_apply(ctx, x.dl(), pf.dl(), t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
               {"positions.dtype is f32", "int32 or int64"});
  Owned p2(dsk_test::make(ctx, {3, 1}, DSK_DTYPE_INT32));
  expect_error(dsk_rope_apply(ctx, x.dl(), p2.dl(), t.cos.dl(), t.sin.dl(), y.dl(), il), bad,
               {"positions has 2 dimensions"});
  Owned c16(dsk_test::make(ctx, {8, 32}, DSK_DTYPE_F16));
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), c16.dl(), t.sin.dl(), y.dl(), il), bad,
               {"cos.dtype is f16", "f32"});
  Owned s9(dsk_test::make(ctx, {9, 32}, DSK_DTYPE_F32));
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), t.cos.dl(), s9.dl(), y.dl(), il), bad,
               {"sin has shape [9, 32]"});
  Owned y2(dsk_test::make(ctx, {3, 128}, DSK_DTYPE_F32));
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), t.cos.dl(), t.sin.dl(), y2.dl(), il), bad,
               {"y has shape [3, 128]"});
  Owned yi(dsk_test::make(ctx, {3, 2, 64}, DSK_DTYPE_INT32));
  expect_error(dsk_rope_apply(ctx, x.dl(), p.dl(), t.cos.dl(), t.sin.dl(), yi.dl(), il), bad,
               {"y.dtype"});
  // Overlaps: y shifted by one element against x; y on the table.
  Owned xb(make_values(ctx, {3 * 128 + 1}, DSK_DTYPE_F32, random_values(3 * 128 + 1, 47)));
  Owned xa(norm_test::view(xb.t, {3, 2, 64}, {128, 64, 1}));
  Owned xs(norm_test::view(xb.t, {3, 2, 64}, {128, 64, 1}, 1));
  expect_error(dsk_rope_apply(ctx, xa.dl(), p.dl(), t.cos.dl(), t.sin.dl(), xs.dl(), il), bad,
               {"y overlaps x"});
  Owned tc(norm_test::view(t.cos.t, {3, 64}, {64, 1}));
  Owned xk(dsk_test::make(ctx, {3, 64}, DSK_DTYPE_F32));
  expect_error(dsk_rope_apply(ctx, xk.dl(), p.dl(), t.cos.dl(), t.sin.dl(), tc.dl(), il), bad,
               {"y overlaps cos"});
}
