// dsk_swiglu and dsk_swiglu_fused on the CPU against silu(g) * u in double: every dtype
// combination, strided operands, the fused split, special values, bad arguments.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops_norm_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using dsk_test::expect_error;
using dsk_test::Owned;
using norm_test::check_close;
using norm_test::kFloats;
using norm_test::make_values;
using norm_test::random_values;
using norm_test::read;

std::vector<double> swiglu_ref(const std::vector<double>& g, const std::vector<double>& u) {
  std::vector<double> y(g.size());
  for (size_t i = 0; i < g.size(); ++i) y[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return y;
}

// The [..., :I] and [..., I:] halves of a row-major [R, 2I] value array.
std::vector<double> half_of(const std::vector<double>& gu, int64_t i_size, bool second) {
  std::vector<double> out;
  for (size_t r = 0; r < gu.size() / static_cast<size_t>(2 * i_size); ++r) {
    for (int64_t i = 0; i < i_size; ++i)
      out.push_back(gu[r * 2 * i_size + (second ? i_size : 0) + i]);
  }
  return out;
}

}  // namespace

TEST_CASE("swiglu matches silu(g) * u for every dtype combination") {
  CpuContext ctx;
  const std::vector<int64_t> shape = {4, 3, 33};
  const auto gv = random_values(4 * 3 * 33, 31, -8.0f, 8.0f);
  const auto uv = random_values(4 * 3 * 33, 32);
  for (int32_t gt : kFloats) {
    for (int32_t ut : kFloats) {
      for (int32_t yt : kFloats) {
        Owned g(make_values(ctx, shape, gt, gv));
        Owned u(make_values(ctx, shape, ut, uv));
        Owned y(dsk_test::make(ctx, shape, yt));
        REQUIRE(dsk_swiglu(ctx, g.dl(), u.dl(), y.dl()) == DSK_OK);
        check_close(read(ctx, y.dl()), swiglu_ref(read(ctx, g.dl()), read(ctx, u.dl())), yt,
                    std::string("g ") + norm_test::dtype_label(gt) + " u " +
                        norm_test::dtype_label(ut) + " y " + norm_test::dtype_label(yt));
      }
    }
  }
}

TEST_CASE("swiglu special values") {
  CpuContext ctx;
  Owned g(make_values(ctx, {5}, DSK_DTYPE_F32, {0.0f, 20.0f, -100.0f, -20.0f, 1.0f}));
  Owned u(make_values(ctx, {5}, DSK_DTYPE_F32, {3.0f, 2.0f, 5.0f, 1.0f, 1.0f}));
  Owned y(dsk_test::make(ctx, {5}, DSK_DTYPE_F32));
  REQUIRE(dsk_swiglu(ctx, g.dl(), u.dl(), y.dl()) == DSK_OK);
  const float* p = y.data<float>();
  CHECK(p[0] == 0.0f);
  CHECK(p[1] == doctest::Approx(40.0 / (1.0 + std::exp(-20.0))).epsilon(1e-7));
  CHECK(p[2] == 0.0f);  // exp(100) overflows f32: -100 / inf = -0
  CHECK(p[3] == doctest::Approx(-20.0 / (1.0 + std::exp(20.0))).epsilon(1e-6));
  CHECK(p[4] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-7));
}

TEST_CASE("swiglu on strided operands") {
  CpuContext ctx;
  const int64_t r = 3;
  const int64_t n = 20;
  Owned gb(make_values(ctx, {r * 2 * n}, DSK_DTYPE_BF16, random_values(r * 2 * n, 33, -4, 4)));
  Owned ub(make_values(ctx, {r * n * 3}, DSK_DTYPE_F32, random_values(r * n * 3, 34)));
  Owned yb(dsk_test::make(ctx, {r * n * 2}, DSK_DTYPE_F16));
  Owned g(norm_test::view(gb.t, {r, n}, {2 * n, 2}, 1));
  Owned u(norm_test::view(ub.t, {r, n}, {1, r}));  // column-major
  Owned y(norm_test::view(yb.t, {r, n}, {2 * n, 1}, n));
  REQUIRE(dsk_swiglu(ctx, g.dl(), u.dl(), y.dl()) == DSK_OK);
  check_close(read(ctx, y.dl()), swiglu_ref(read(ctx, g.dl()), read(ctx, u.dl())), DSK_DTYPE_F16,
              "strided");
}

TEST_CASE("swiglu_fused splits gate_up into gate and up") {
  CpuContext ctx;
  const int64_t i_size = 17;
  const std::vector<int64_t> shape = {2, 3, 2 * i_size};
  const auto v = random_values(2 * 3 * 2 * i_size, 35, -6, 6);
  for (int32_t gt : kFloats) {
    for (int32_t yt : kFloats) {
      Owned gu(make_values(ctx, shape, gt, v));
      Owned y(dsk_test::make(ctx, {2, 3, i_size}, yt));
      REQUIRE(dsk_swiglu_fused(ctx, gu.dl(), y.dl()) == DSK_OK);
      const auto gud = read(ctx, gu.dl());
      check_close(read(ctx, y.dl()),
                  swiglu_ref(half_of(gud, i_size, false), half_of(gud, i_size, true)), yt,
                  std::string("gate_up ") + norm_test::dtype_label(gt) + " y " +
                      norm_test::dtype_label(yt));
      // Bit for bit what dsk_swiglu gives on the two halves.
      Owned g(norm_test::view(gu.t, {6, i_size}, {2 * i_size, 1}));
      Owned u(norm_test::view(gu.t, {6, i_size}, {2 * i_size, 1}, i_size));
      Owned y2(dsk_test::make(ctx, {6, i_size}, yt));
      REQUIRE(dsk_swiglu(ctx, g.dl(), u.dl(), y2.dl()) == DSK_OK);
      CHECK(read(ctx, y2.dl()) == read(ctx, y.dl()));
    }
  }
  // A strided gate_up (every other column of a wider row) and a 1-D one.
  Owned base(make_values(ctx, {3 * 4 * i_size}, DSK_DTYPE_F32, random_values(3 * 4 * i_size, 36)));
  Owned gu(norm_test::view(base.t, {3, 2 * i_size}, {4 * i_size, 2}, 1));
  Owned y(dsk_test::make(ctx, {3, i_size}, DSK_DTYPE_F32));
  REQUIRE(dsk_swiglu_fused(ctx, gu.dl(), y.dl()) == DSK_OK);
  const auto gud = read(ctx, gu.dl());
  check_close(read(ctx, y.dl()),
              swiglu_ref(half_of(gud, i_size, false), half_of(gud, i_size, true)), DSK_DTYPE_F32,
              "strided gate_up");
  Owned gu1(make_values(ctx, {4}, DSK_DTYPE_F32, {1.0f, -2.0f, 3.0f, 4.0f}));
  Owned y1(dsk_test::make(ctx, {2}, DSK_DTYPE_F32));
  REQUIRE(dsk_swiglu_fused(ctx, gu1.dl(), y1.dl()) == DSK_OK);
  CHECK(y1.data<float>()[0] == doctest::Approx(3.0 / (1.0 + std::exp(-1.0))).epsilon(1e-7));
  CHECK(y1.data<float>()[1] == doctest::Approx(-8.0 / (1.0 + std::exp(2.0))).epsilon(1e-7));
}

TEST_CASE("swiglu rejects bad arguments") {
  CpuContext ctx;
  const auto bad = DSK_ERR_INVALID_ARGUMENT;
  Owned g(make_values(ctx, {2, 6}, DSK_DTYPE_F32, random_values(12, 37)));
  Owned u(make_values(ctx, {2, 6}, DSK_DTYPE_F32, random_values(12, 38)));
  Owned y(dsk_test::make(ctx, {2, 6}, DSK_DTYPE_F32));
  expect_error(dsk_swiglu(nullptr, g.dl(), u.dl(), y.dl()), bad, {"ctx"});
  expect_error(dsk_swiglu(ctx, nullptr, u.dl(), y.dl()), bad, {"dsk_swiglu", "gate"});
  expect_error(dsk_swiglu(ctx, g.dl(), nullptr, y.dl()), bad, {"up"});
  expect_error(dsk_swiglu(ctx, g.dl(), u.dl(), nullptr), bad, {"y"});
  Owned u5(dsk_test::make(ctx, {2, 5}, DSK_DTYPE_F32));
  expect_error(dsk_swiglu(ctx, g.dl(), u5.dl(), y.dl()), bad, {"up has shape [2, 5]"});
  expect_error(dsk_swiglu(ctx, g.dl(), u.dl(), u5.dl()), bad, {"y has shape [2, 5]"});
  Owned gi(dsk_test::make(ctx, {2, 6}, DSK_DTYPE_UINT8));
  expect_error(dsk_swiglu(ctx, gi.dl(), u.dl(), y.dl()), bad, {"gate.dtype"});
  expect_error(dsk_swiglu(ctx, g.dl(), u.dl(), g.dl()), bad, {"y overlaps gate"});
  expect_error(dsk_swiglu(ctx, g.dl(), u.dl(), u.dl()), bad, {"y overlaps up"});
  Owned s(dsk_test::make(ctx, {}, DSK_DTYPE_F32));
  expect_error(dsk_swiglu(ctx, s.dl(), s.dl(), y.dl()), bad, {"gate is a scalar"});

  Owned gu(make_values(ctx, {2, 7}, DSK_DTYPE_F32, random_values(14, 39)));
  Owned y3(dsk_test::make(ctx, {2, 3}, DSK_DTYPE_F32));
  expect_error(dsk_swiglu_fused(ctx, gu.dl(), y3.dl()), bad,
               {"dsk_swiglu_fused", "gate_up.shape[1] = 7", "even"});
  Owned gu8(make_values(ctx, {2, 8}, DSK_DTYPE_F32, random_values(16, 40)));
  expect_error(dsk_swiglu_fused(ctx, gu8.dl(), y3.dl()), bad, {"y.shape[1] = 3", "4"});
  Owned y4(dsk_test::make(ctx, {3, 4}, DSK_DTYPE_F32));
  expect_error(dsk_swiglu_fused(ctx, gu8.dl(), y4.dl()), bad, {"y has shape [3, 4]"});
  Owned gu8h(norm_test::view(gu8.t, {2, 4}, {8, 1}, 4));
  expect_error(dsk_swiglu_fused(ctx, gu8.dl(), gu8h.dl()), bad, {"y overlaps gate_up"});
  expect_error(dsk_swiglu_fused(ctx, nullptr, y4.dl()), bad, {"gate_up is NULL"});
  expect_error(dsk_swiglu_fused(ctx, s.dl(), y4.dl()), bad, {"gate_up is a scalar"});
  Owned gi8(dsk_test::make(ctx, {2, 8}, DSK_DTYPE_INT32));
  expect_error(dsk_swiglu_fused(ctx, gi8.dl(), y4.dl()), bad, {"gate_up.dtype"});
}
