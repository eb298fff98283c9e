// dsk_rmsnorm and dsk_add_rmsnorm on the CPU: every dtype combination, leading dims, strided rows,
// in-place forms and the rounding of h to residual_out's dtype, against the formula in double;
// every bad argument.
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

// y = h / sqrt(mean(h^2) + eps) * w per row of d, in double.
std::vector<double> rmsnorm_ref(const std::vector<double>& h, const std::vector<double>& w,
                                int64_t d, double eps) {
  std::vector<double> y(h.size());
  for (size_t r = 0; r < h.size() / static_cast<size_t>(d); ++r) {
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += h[r * d + i] * h[r * d + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t i = 0; i < d; ++i) y[r * d + i] = h[r * d + i] * inv * w[i];
  }
  return y;
}

}  // namespace

TEST_CASE("rmsnorm matches the formula for every dtype combination") {
  CpuContext ctx;
  const std::vector<int64_t> shape = {3, 2, 37};
  const int64_t d = 37;
  const auto xv = random_values(3 * 2 * 37, 1);
  const auto wv = random_values(37, 2, 0.5f, 1.5f);
  for (int32_t xt : kFloats) {
    for (int32_t wt : kFloats) {
      for (int32_t yt : kFloats) {
        Owned x(make_values(ctx, shape, xt, xv));
        Owned w(make_values(ctx, {d}, wt, wv));
        Owned y(dsk_test::make(ctx, shape, yt));
        REQUIRE(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), 1e-6f) == DSK_OK);
        const auto want = rmsnorm_ref(read(ctx, x.dl()), read(ctx, w.dl()), d, 1e-6);
        check_close(read(ctx, y.dl()), want, yt,
                    std::string("x ") + norm_test::dtype_label(xt) + " w " +
                        norm_test::dtype_label(wt) + " y " + norm_test::dtype_label(yt));
      }
    }
  }
}

TEST_CASE("rmsnorm over 1-D, 4-D and wide rows, with eps") {
  CpuContext ctx;
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{7168}, std::vector<int64_t>{2, 1, 3, 16}, std::vector<int64_t>{4, 1},
        std::vector<int64_t>{2, 129}}) {
    const int64_t d = shape.back();
    const auto xv = random_values(static_cast<size_t>(norm_test::numel(shape)), 3, -0.01f, 0.01f);
    const auto wv = random_values(static_cast<size_t>(d), 4);
    Owned x(make_values(ctx, shape, DSK_DTYPE_F32, xv));
    Owned w(make_values(ctx, {d}, DSK_DTYPE_F32, wv));
    Owned y(dsk_test::make(ctx, shape, DSK_DTYPE_F32));
    // eps comparable to mean(x^2) matters.
    REQUIRE(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), 1e-5f) == DSK_OK);
    check_close(read(ctx, y.dl()),
                rmsnorm_ref(read(ctx, x.dl()), read(ctx, w.dl()), d, static_cast<double>(1e-5f)),
                DSK_DTYPE_F32, "shape of " + std::to_string(shape.size()) + " dims");
  }
}

TEST_CASE("rmsnorm worked numbers") {
  CpuContext ctx;
  // x = [3, 4]: mean(x^2) = 12.5, 1/sqrt(12.5) = 0.28284271; w = [1, 2].
  Owned x(make_values(ctx, {2}, DSK_DTYPE_F32, {3.0f, 4.0f}));
  Owned w(make_values(ctx, {2}, DSK_DTYPE_F32, {1.0f, 2.0f}));
  Owned y(dsk_test::make(ctx, {2}, DSK_DTYPE_F32));
  REQUIRE(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), 0.0f) == DSK_OK);
  CHECK(y.data<float>()[0] == doctest::Approx(0.848528137).epsilon(1e-7));
  CHECK(y.data<float>()[1] == doctest::Approx(2.262741700).epsilon(1e-7));
  // A zero row with eps = 0 gives 0 * inf = NaN (no special case), with eps > 0 gives 0.
  Owned z(make_values(ctx, {2}, DSK_DTYPE_F32, {0.0f, 0.0f}));
  REQUIRE(dsk_rmsnorm(ctx, z.dl(), w.dl(), y.dl(), 1e-6f) == DSK_OK);
  CHECK(y.data<float>()[0] == 0.0f);
  REQUIRE(dsk_rmsnorm(ctx, z.dl(), w.dl(), y.dl(), 0.0f) == DSK_OK);
  CHECK(std::isnan(y.data<float>()[0]));
  // Empty tensors are fine.
  Owned e(dsk_test::make(ctx, {0, 2}, DSK_DTYPE_F32));
  Owned e2(dsk_test::make(ctx, {0, 2}, DSK_DTYPE_BF16));
  CHECK(dsk_rmsnorm(ctx, e.dl(), w.dl(), e2.dl(), 1e-6f) == DSK_OK);
}

TEST_CASE("rmsnorm on strided rows and columns") {
  CpuContext ctx;
  const int64_t rows = 5;
  const int64_t d = 24;
  // x: the first d of each 2d-wide row; y: every other element of 2d-wide rows; w: stride 3.
  Owned xb(make_values(ctx, {rows * 2 * d}, DSK_DTYPE_BF16, random_values(rows * 2 * d, 5)));
  Owned wb(make_values(ctx, {3 * d}, DSK_DTYPE_F32, random_values(3 * d, 6)));
  Owned yb(dsk_test::make(ctx, {rows * 2 * d}, DSK_DTYPE_F16));
  Owned x(norm_test::view(xb.t, {rows, d}, {2 * d, 1}, 3));
  Owned w(norm_test::view(wb.t, {d}, {3}, 1));
  Owned y(norm_test::view(yb.t, {rows, d}, {2 * d, 2}, 1));
  REQUIRE(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), 1e-6f) == DSK_OK);
  check_close(read(ctx, y.dl()), rmsnorm_ref(read(ctx, x.dl()), read(ctx, w.dl()), d, 1e-6),
              DSK_DTYPE_F16, "strided");
  // Leading dims that merge into one stride: a [2, 3, d] view of rows 2d apart.
  Owned x3(norm_test::view(xb.t, {2, 2, d}, {4 * d, 2 * d, 1}));
  Owned y3(dsk_test::make(ctx, {2, 2, d}, DSK_DTYPE_F32));
  REQUIRE(dsk_rmsnorm(ctx, x3.dl(), w.dl(), y3.dl(), 1e-6f) == DSK_OK);
  check_close(read(ctx, y3.dl()), rmsnorm_ref(read(ctx, x3.dl()), read(ctx, w.dl()), d, 1e-6),
              DSK_DTYPE_F32, "merged leading dims");
}

TEST_CASE("rmsnorm in place gives the out-of-place result") {
  CpuContext ctx;
  for (int32_t dt : kFloats) {
    const auto xv = random_values(4 * 50, 7);
    Owned x(make_values(ctx, {4, 50}, dt, xv));
    Owned w(make_values(ctx, {50}, DSK_DTYPE_BF16, random_values(50, 8)));
    Owned y(dsk_test::make(ctx, {4, 50}, dt));
    REQUIRE(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), 1e-6f) == DSK_OK);
    REQUIRE(dsk_rmsnorm(ctx, x.dl(), w.dl(), x.dl(), 1e-6f) == DSK_OK);
    CHECK(read(ctx, x.dl()) == read(ctx, y.dl()));
  }
}

TEST_CASE("add_rmsnorm rounds h to residual_out and normalizes the rounded value") {
  CpuContext ctx;
  const std::vector<int64_t> shape = {3, 41};
  const int64_t d = 41;
  const auto xv = random_values(3 * 41, 9);
  const auto rv = random_values(3 * 41, 10);
  const auto wv = random_values(41, 11);
  for (int32_t xt : kFloats) {
    for (int32_t rt : kFloats) {
      for (int32_t rot : kFloats) {
        for (int32_t yt : kFloats) {
          Owned x(make_values(ctx, shape, xt, xv));
          Owned r(make_values(ctx, shape, rt, rv));
          Owned w(make_values(ctx, {d}, DSK_DTYPE_BF16, wv));
          Owned y(dsk_test::make(ctx, shape, yt));
          Owned ro(dsk_test::make(ctx, shape, rot));
          REQUIRE(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), ro.dl(), 1e-6f) == DSK_OK);
          // h = f32(x + r), rounded to residual_out's dtype (dsk_copy rounds f32 the same way).
          const auto xd = read(ctx, x.dl());
          const auto rd = read(ctx, r.dl());
          std::vector<float> hf(xd.size());
          for (size_t i = 0; i < hf.size(); ++i) {
            hf[i] = static_cast<float>(xd[i]) + static_cast<float>(rd[i]);
          }
          Owned h(make_values(ctx, shape, rot, hf));
          const auto hd = read(ctx, h.dl());
          CHECK(read(ctx, ro.dl()) == hd);
          check_close(read(ctx, y.dl()), rmsnorm_ref(hd, read(ctx, w.dl()), d, 1e-6), yt,
                      std::string("x ") + norm_test::dtype_label(xt) + " r " +
                          norm_test::dtype_label(rt) + " ro " + norm_test::dtype_label(rot) +
                          " y " + norm_test::dtype_label(yt));
        }
      }
    }
  }
}

TEST_CASE("add_rmsnorm with a bf16 residual stream uses the rounded h") {
  CpuContext ctx;
  const int64_t d = 64;
  const auto xv = random_values(d, 12);
  const auto rv = random_values(d, 13);
  Owned x(make_values(ctx, {d}, DSK_DTYPE_F32, xv));
  Owned r(make_values(ctx, {d}, DSK_DTYPE_F32, rv));
  Owned w(make_values(ctx, {d}, DSK_DTYPE_F32, std::vector<float>(d, 1.0f)));
  Owned y(dsk_test::make(ctx, {d}, DSK_DTYPE_F32));
  Owned ro(dsk_test::make(ctx, {d}, DSK_DTYPE_BF16));
  REQUIRE(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), ro.dl(), 0.0f) == DSK_OK);
  std::vector<double> rounded(d);
  std::vector<double> exact(d);
  for (int64_t i = 0; i < d; ++i) {
    const float h = xv[i] + rv[i];
    rounded[i] = norm_test::round_bf16(h);
    exact[i] = h;
  }
  CHECK(read(ctx, ro.dl()) == rounded);
  const auto got = read(ctx, y.dl());
  check_close(got, rmsnorm_ref(rounded, std::vector<double>(d, 1.0), d, 0.0), DSK_DTYPE_F32,
              "rounded h");
  // The unrounded h would give a visibly different y.
  const auto unrounded = rmsnorm_ref(exact, std::vector<double>(d, 1.0), d, 0.0);
  double diff = 0;
  for (int64_t i = 0; i < d; ++i) diff = std::fmax(diff, std::fabs(got[i] - unrounded[i]));
  CHECK(diff > 1e-4);
}

TEST_CASE("add_rmsnorm in place") {
  CpuContext ctx;
  for (int32_t dt : kFloats) {
    const auto xv = random_values(2 * 33, 14);
    const auto rv = random_values(2 * 33, 15);
    Owned x(make_values(ctx, {2, 33}, dt, xv));
    Owned r(make_values(ctx, {2, 33}, dt, rv));
    Owned x2(make_values(ctx, {2, 33}, dt, xv));
    Owned r2(make_values(ctx, {2, 33}, dt, rv));
    Owned w(make_values(ctx, {33}, DSK_DTYPE_F32, random_values(33, 16)));
    Owned y(dsk_test::make(ctx, {2, 33}, dt));
    Owned ro(dsk_test::make(ctx, {2, 33}, dt));
    REQUIRE(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), ro.dl(), 1e-6f) == DSK_OK);
    // y = x, residual_out = residual.
    REQUIRE(dsk_add_rmsnorm(ctx, x2.dl(), r2.dl(), w.dl(), x2.dl(), r2.dl(), 1e-6f) == DSK_OK);
    CHECK(read(ctx, x2.dl()) == read(ctx, y.dl()));
    CHECK(read(ctx, r2.dl()) == read(ctx, ro.dl()));
  }
}

TEST_CASE("rmsnorm rejects bad arguments") {
  CpuContext ctx;
  Owned x(make_values(ctx, {2, 8}, DSK_DTYPE_F32, random_values(16, 17)));
  Owned w(make_values(ctx, {8}, DSK_DTYPE_F32, random_values(8, 18)));
  Owned y(dsk_test::make(ctx, {2, 8}, DSK_DTYPE_F32));
  const auto bad = DSK_ERR_INVALID_ARGUMENT;
  expect_error(dsk_rmsnorm(nullptr, x.dl(), w.dl(), y.dl(), 1e-6f), bad, {"ctx"});
  expect_error(dsk_rmsnorm(ctx, nullptr, w.dl(), y.dl(), 1e-6f), bad, {"dsk_rmsnorm", "x"});
  expect_error(dsk_rmsnorm(ctx, x.dl(), nullptr, y.dl(), 1e-6f), bad, {"weight"});
  expect_error(dsk_rmsnorm(ctx, x.dl(), w.dl(), nullptr, 1e-6f), bad, {"y"});
  Owned xi(dsk_test::make(ctx, {2, 8}, DSK_DTYPE_INT32));
  expect_error(dsk_rmsnorm(ctx, xi.dl(), w.dl(), y.dl(), 1e-6f), bad, {"x.dtype", "int32"});
  Owned y8(dsk_test::make(ctx, {2, 8}, DSK_DTYPE_FP8_E4M3FN));
  expect_error(dsk_rmsnorm(ctx, x.dl(), w.dl(), y8.dl(), 1e-6f), bad, {"y.dtype"});
  Owned w9(dsk_test::make(ctx, {9}, DSK_DTYPE_F32));
  expect_error(dsk_rmsnorm(ctx, x.dl(), w9.dl(), y.dl(), 1e-6f), bad, {"weight.shape[0] = 9", "8"});
  Owned w2(dsk_test::make(ctx, {1, 8}, DSK_DTYPE_F32));
  expect_error(dsk_rmsnorm(ctx, x.dl(), w2.dl(), y.dl(), 1e-6f), bad, {"weight has 2 dimensions"});
  Owned y3(dsk_test::make(ctx, {3, 8}, DSK_DTYPE_F32));
  expect_error(dsk_rmsnorm(ctx, x.dl(), w.dl(), y3.dl(), 1e-6f), bad, {"y has shape [3, 8]"});
  Owned s(dsk_test::make(ctx, {}, DSK_DTYPE_F32));
  expect_error(dsk_rmsnorm(ctx, s.dl(), w.dl(), s.dl(), 1e-6f), bad, {"x is a scalar"});
  expect_error(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), -1e-6f), bad, {"eps", ">= 0"});
  expect_error(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), NAN), bad, {"eps = nan"});
  expect_error(dsk_rmsnorm(ctx, x.dl(), w.dl(), y.dl(), INFINITY), bad, {"eps = inf"});
  // Overlaps: y on weight, y on part of x (shifted by one element).
  Owned wb(make_values(ctx, {16}, DSK_DTYPE_F32, random_values(16, 19)));
  Owned wv(norm_test::view(wb.t, {8}, {1}));
  Owned yv(norm_test::view(wb.t, {1, 8}, {8, 1}, 4));
  Owned x1(make_values(ctx, {1, 8}, DSK_DTYPE_F32, random_values(8, 24)));
  expect_error(dsk_rmsnorm(ctx, x1.dl(), wv.dl(), yv.dl(), 1e-6f), bad, {"y overlaps weight"});
  Owned xb(make_values(ctx, {17}, DSK_DTYPE_F32, random_values(17, 20)));
  Owned xa(norm_test::view(xb.t, {2, 8}, {8, 1}));
  Owned xs(norm_test::view(xb.t, {2, 8}, {8, 1}, 1));
  expect_error(dsk_rmsnorm(ctx, xa.dl(), w.dl(), xs.dl(), 1e-6f), bad,
               {"y overlaps x", "exactly the same view"});
  // Leading dims that do not merge into one stride.
  Owned xt(norm_test::view(xb.t, {2, 2, 4}, {4, 8, 1}));
  Owned w4(dsk_test::make(ctx, {4}, DSK_DTYPE_F32));
  Owned y4(dsk_test::make(ctx, {2, 2, 4}, DSK_DTYPE_F32));
  expect_error(dsk_rmsnorm(ctx, xt.dl(), w4.dl(), y4.dl(), 1e-6f), bad, {"x", "merged"});
}

TEST_CASE("add_rmsnorm rejects bad arguments") {
  CpuContext ctx;
  Owned x(make_values(ctx, {2, 8}, DSK_DTYPE_F32, random_values(16, 21)));
  Owned r(make_values(ctx, {2, 8}, DSK_DTYPE_F32, random_values(16, 22)));
  Owned w(make_values(ctx, {8}, DSK_DTYPE_F32, random_values(8, 23)));
  Owned y(dsk_test::make(ctx, {2, 8}, DSK_DTYPE_F32));
  Owned ro(dsk_test::make(ctx, {2, 8}, DSK_DTYPE_F32));
  const auto bad = DSK_ERR_INVALID_ARGUMENT;
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), nullptr, w.dl(), y.dl(), ro.dl(), 1e-6f), bad,
               {"dsk_add_rmsnorm", "residual is NULL"});
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), nullptr, 1e-6f), bad,
               {"residual_out is NULL"});
  Owned r3(dsk_test::make(ctx, {2, 9}, DSK_DTYPE_F32));
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r3.dl(), w.dl(), y.dl(), ro.dl(), 1e-6f), bad,
               {"residual has shape [2, 9]"});
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), r3.dl(), 1e-6f), bad,
               {"residual_out has shape [2, 9]"});
  Owned ri(dsk_test::make(ctx, {2, 8}, DSK_DTYPE_INT64));
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), ri.dl(), w.dl(), y.dl(), ro.dl(), 1e-6f), bad,
               {"residual.dtype"});
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), ri.dl(), 1e-6f), bad,
               {"residual_out.dtype"});
  // Only y = x and residual_out = residual may alias.
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), r.dl(), ro.dl(), 1e-6f), bad,
               {"y overlaps residual"});
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), x.dl(), 1e-6f), bad,
               {"residual_out overlaps x"});
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), y.dl(), 1e-6f), bad,
               {"residual_out overlaps y"});
  expect_error(dsk_add_rmsnorm(ctx, x.dl(), r.dl(), w.dl(), y.dl(), ro.dl(), -1.0f), bad,
               {"eps = -1"});
}
