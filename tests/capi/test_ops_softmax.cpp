// dsk_softmax / dsk_log_softmax on the CPU backend against double-precision formulas.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ops_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using dsk_test::CpuContext;
using dsk_test::expect_error;
using dsk_test::Owned;
using ops_test::from_f32;
using ops_test::kFloats;
using ops_test::to_f32;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Reference rows [R, N] in double from the f32 products z = x * (1 / temperature).
std::vector<double> reference(const std::vector<float>& x, int64_t n, float temperature,
                              bool is_log) {
  const float inv = 1.0f / temperature;
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / static_cast<size_t>(n); ++r) {
    const float* xr = x.data() + r * static_cast<size_t>(n);
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < n; ++j) m = std::max(m, static_cast<double>(xr[j] * inv));
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(xr[j] * inv) - m);
    for (int64_t j = 0; j < n; ++j) {
      const double z = static_cast<double>(xr[j] * inv) - m;
      y[r * static_cast<size_t>(n) + static_cast<size_t>(j)] =
          is_log ? z - std::log(s) : std::exp(z) / s;
    }
  }
  return y;
}

// Relative tolerance of one rounding to `dtype_id` plus the f32 computation.
double tolerance(int32_t dtype_id) {
  return dtype_id == DSK_DTYPE_BF16 ? 1.0 / 256 : dtype_id == DSK_DTYPE_F16 ? 1.0 / 2048 : 2e-6;
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, int32_t y_dtype,
                 bool is_log) {
  REQUIRE(got.size() == want.size());
  const double tol = tolerance(y_dtype);
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      CHECK_MESSAGE(std::isnan(got[i]), "element ", i, " = ", got[i], ", expected NaN");
      continue;
    }
    if (std::isinf(want[i])) {
      CHECK_MESSAGE(static_cast<double>(got[i]) == want[i], "element ", i, " = ", got[i]);
      continue;
    }
    // log_softmax values are differences: their error scales with the row's terms (|z - m|).
    // Below the dtype's normal range precision is absolute (f16 subnormals step by 2^-24).
    const double floor = y_dtype == DSK_DTYPE_F16 ? 6e-8 : 2.4e-38;
    const double bound = is_log ? tol * (std::fabs(want[i]) + 1.0) : tol * want[i] + floor;
    CHECK_MESSAGE(std::fabs(static_cast<double>(got[i]) - want[i]) <= bound, "element ", i, " = ",
                  got[i], ", expected ", want[i]);
  }
}

// Values k/16 for k in [-64, 64]: exact in f16 and bf16.
std::vector<float> grid_values(size_t count, uint32_t seed) {
  std::vector<float> v(count);
  uint32_t s = seed;
  for (float& f : v) {
    s = s * 1664525u + 1013904223u;
    f = static_cast<float>(static_cast<int32_t>((s >> 8) % 129u) - 64) / 16.0f;
  }
  return v;
}

dsk_status run(dsk_context* ctx, const DLTensor* x, const DLTensor* y, float temperature,
               bool is_log) {
  return is_log ? dsk_log_softmax(ctx, x, y, temperature) : dsk_softmax(ctx, x, y, temperature);
}

}  // namespace

TEST_CASE("ops.softmax worked example") {
  CpuContext ctx;
  std::vector<float> x = {1.0f, 2.0f, 3.0f};
  std::vector<float> y(3);
  Borrowed xt(x.data(), {3}, DSK_DTYPE_F32);
  Borrowed yt(y.data(), {3}, DSK_DTYPE_F32);
  REQUIRE(dsk_softmax(ctx, &xt, &yt, 1.0f) == DSK_OK);
  CHECK(y[0] == doctest::Approx(0.09003057317038046).epsilon(1e-6));
  CHECK(y[1] == doctest::Approx(0.24472847105479767).epsilon(1e-6));
  CHECK(y[2] == doctest::Approx(0.6652409557748219).epsilon(1e-6));
  REQUIRE(dsk_log_softmax(ctx, &xt, &yt, 1.0f) == DSK_OK);
  CHECK(y[0] == doctest::Approx(-2.4076059644443806).epsilon(1e-6));
  CHECK(y[1] == doctest::Approx(-1.4076059644443806).epsilon(1e-6));
  CHECK(y[2] == doctest::Approx(-0.4076059644443806).epsilon(1e-6));
  // temperature 2: softmax of [0.5, 1, 1.5].
  REQUIRE(dsk_softmax(ctx, &xt, &yt, 2.0f) == DSK_OK);
  const double e[3] = {std::exp(0.5), std::exp(1.0), std::exp(1.5)};
  for (int i = 0; i < 3; ++i) {
    CHECK(y[i] == doctest::Approx(e[i] / (e[0] + e[1] + e[2])).epsilon(1e-6));
  }
  // N == 1: softmax 1, log_softmax 0.
  Borrowed x1(x.data(), {3, 1}, DSK_DTYPE_F32);
  Borrowed y1(y.data(), {3, 1}, DSK_DTYPE_F32);
  REQUIRE(dsk_softmax(ctx, &x1, &y1, 1.0f) == DSK_OK);
  CHECK(y == std::vector<float>{1.0f, 1.0f, 1.0f});
  REQUIRE(dsk_log_softmax(ctx, &x1, &y1, 1.0f) == DSK_OK);
  CHECK(y == std::vector<float>{0.0f, 0.0f, 0.0f});
}

TEST_CASE("ops.softmax every dtype pair, temperatures, leading dims") {
  CpuContext ctx;
  const std::vector<int64_t> shape = {2, 3, 37};
  const std::vector<float> x = grid_values(2 * 3 * 37, 7);
  for (bool is_log : {false, true}) {
    for (int32_t xd : kFloats) {
      for (int32_t yd : kFloats) {
        for (float temperature : {1.0f, 0.5f, 2.7f, 0.05f}) {
          CAPTURE(is_log);
          CAPTURE(xd);
          CAPTURE(yd);
          CAPTURE(temperature);
          Owned xt(from_f32(ctx, shape, xd, x));
          Owned yt(dsk_test::make(ctx, shape, yd));
          REQUIRE(run(ctx, xt.dl(), yt.dl(), temperature, is_log) == DSK_OK);
          check_close(to_f32(ctx, yt.dl()), reference(x, 37, temperature, is_log), yd, is_log);
        }
      }
    }
  }
}

TEST_CASE("ops.softmax strided rows and in place") {
  CpuContext ctx;
  const int64_t rows = 4;
  const int64_t n = 50;
  const std::vector<float> x = grid_values(static_cast<size_t>(rows * n), 11);
  for (bool is_log : {false, true}) {
    CAPTURE(is_log);
    // x: rows 130 elements apart, columns 2 apart; y: rows 64 apart, columns 1.
    std::vector<float> xs(static_cast<size_t>(rows * 130), 1e9f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < n; ++j)
        xs[static_cast<size_t>(r * 130 + 2 * j)] = x[static_cast<size_t>(r * n + j)];
    }
    std::vector<float> ys(static_cast<size_t>(rows * 64), -7.0f);
    Borrowed xt(xs.data(), {rows, n}, DSK_DTYPE_F32, {130, 2});
    Borrowed yt(ys.data(), {rows, n}, DSK_DTYPE_F32, {64, 1});
    REQUIRE(run(ctx, &xt, &yt, 1.5f, is_log) == DSK_OK);
    check_close(to_f32(ctx, &yt), reference(x, n, 1.5f, is_log), DSK_DTYPE_F32, is_log);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = n; j < 64; ++j) CHECK(ys[static_cast<size_t>(r * 64 + j)] == -7.0f);
    }
    // A transposed view: x^T [n, rows] -> softmax over the original row index.
    std::vector<float> xtr(x);
    std::vector<float> col(static_cast<size_t>(rows * n));
    Borrowed xv(xtr.data(), {n, rows}, DSK_DTYPE_F32, {1, n});
    Borrowed cv(col.data(), {n, rows}, DSK_DTYPE_F32, {1, n});
    REQUIRE(run(ctx, &xv, &cv, 1.0f, is_log) == DSK_OK);
    std::vector<float> xt_rows(static_cast<size_t>(rows * n));
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t r = 0; r < rows; ++r)
        xt_rows[static_cast<size_t>(i * rows + r)] = x[static_cast<size_t>(r * n + i)];
    }
    check_close(to_f32(ctx, &cv), reference(xt_rows, rows, 1.0f, is_log), DSK_DTYPE_F32, is_log);
    // In place, bf16 and f32.
    for (int32_t d : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
      Owned t(from_f32(ctx, {rows, n}, d, x));
      REQUIRE(run(ctx, t.dl(), t.dl(), 0.75f, is_log) == DSK_OK);
      check_close(to_f32(ctx, t.dl()), reference(x, n, 0.75f, is_log), d, is_log);
    }
  }
}

TEST_CASE("ops.softmax infinities, NaN and large magnitudes") {
  CpuContext ctx;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Rows: some -inf; all -inf; a +inf; a NaN; huge values; a plain row after them.
  std::vector<float> x = {-kInf,   0.0f,    1.0f,     -kInf,  //
                          -kInf,   -kInf,   -kInf,    -kInf,  //
                          kInf,    0.0f,    1.0f,     2.0f,   //
                          0.0f,    nan,     1.0f,     2.0f,   //
                          3e38f,   3e38f,   -3e38f,   1e30f,  //
                          1000.0f, 1001.0f, -1000.0f, 1000.0f};
  std::vector<float> y(x.size());
  Borrowed xt(x.data(), {6, 4}, DSK_DTYPE_F32);
  Borrowed yt(y.data(), {6, 4}, DSK_DTYPE_F32);
  REQUIRE(dsk_softmax(ctx, &xt, &yt, 1.0f) == DSK_OK);
  const double e1 = std::exp(1.0);
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == doctest::Approx(1.0 / (1.0 + e1)).epsilon(1e-6));
  CHECK(y[2] == doctest::Approx(e1 / (1.0 + e1)).epsilon(1e-6));
  CHECK(y[3] == 0.0f);
  for (size_t i = 4; i < 16; ++i) CHECK_MESSAGE(std::isnan(y[i]), "element ", i);
  CHECK(y[16] == 0.5f);
  CHECK(y[17] == 0.5f);
  CHECK(y[18] == 0.0f);
  CHECK(y[19] == 0.0f);
  const double b = 2.0 + e1;  // m = 1001: s = 1 + 2 / e (+ e^-2001)
  CHECK(y[20] == doctest::Approx(1.0 / b).epsilon(1e-6));
  CHECK(y[21] == doctest::Approx(e1 / b).epsilon(1e-6));
  CHECK(y[22] == 0.0f);
  CHECK(y[23] == doctest::Approx(1.0 / b).epsilon(1e-6));
  REQUIRE(dsk_log_softmax(ctx, &xt, &yt, 1.0f) == DSK_OK);
  CHECK(y[0] == -kInf);
  CHECK(y[1] == doctest::Approx(-std::log(1.0 + e1)).epsilon(1e-6));
  CHECK(y[3] == -kInf);
  for (size_t i = 4; i < 16; ++i) CHECK_MESSAGE(std::isnan(y[i]), "element ", i);
  CHECK(y[16] == doctest::Approx(-std::log(2.0)).epsilon(1e-6));
  CHECK(y[18] == -kInf);  // -6e38 - log 2 overflows to -inf in f32
  CHECK(y[21] == doctest::Approx(-std::log(b / e1)).epsilon(1e-6));
  CHECK(y[22] == doctest::Approx(-2001.0 - std::log(b / e1)).epsilon(1e-6));
  // A tiny temperature scales into large exponents without overflow.
  std::vector<float> x2 = {1.0f, 1.001f};
  std::vector<float> y2(2);
  Borrowed x2t(x2.data(), {2}, DSK_DTYPE_F32);
  Borrowed y2t(y2.data(), {2}, DSK_DTYPE_F32);
  REQUIRE(dsk_softmax(ctx, &x2t, &y2t, 1e-4f) == DSK_OK);
  check_close(y2, reference(x2, 2, 1e-4f, false), DSK_DTYPE_F32, false);
}

TEST_CASE("ops.softmax bad arguments") {
  CpuContext ctx;
  std::vector<float> x(12, 0.0f);
  std::vector<float> y(12);
  std::vector<int32_t> ints(12);
  Borrowed xt(x.data(), {3, 4}, DSK_DTYPE_F32);
  Borrowed yt(y.data(), {3, 4}, DSK_DTYPE_F32);
  for (bool is_log : {false, true}) {
    CAPTURE(is_log);
    expect_error(run(nullptr, &xt, &yt, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"ctx"});
    expect_error(run(ctx, nullptr, &yt, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"x"});
    expect_error(run(ctx, &xt, nullptr, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"y"});
    Borrowed xi(ints.data(), {3, 4}, DSK_DTYPE_INT32);
    expect_error(run(ctx, &xi, &yt, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT,
                 {"x.dtype", "int32", "f32, f16 or bf16"});
    Borrowed y8(y.data(), {3, 4}, DSK_DTYPE_FP8_E4M3FN);
    expect_error(run(ctx, &xt, &y8, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"y.dtype"});
    Borrowed y34(y.data(), {4, 3}, DSK_DTYPE_F32);
    expect_error(run(ctx, &xt, &y34, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT,
                 {"y has shape [4, 3]", "[3, 4]"});
    Borrowed x0(x.data(), {3, 0}, DSK_DTYPE_F32);
    Borrowed y0(y.data(), {3, 0}, DSK_DTYPE_F32);
    expect_error(run(ctx, &x0, &y0, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"x.shape[1] = 0"});
    Borrowed xs(x.data(), {}, DSK_DTYPE_F32);
    Borrowed ys(y.data(), {}, DSK_DTYPE_F32);
    expect_error(run(ctx, &xs, &ys, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"x is a scalar"});
    for (float t : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(), kInf, 1e-45f}) {
      CAPTURE(t);
      expect_error(run(ctx, &xt, &yt, t, is_log), DSK_ERR_INVALID_ARGUMENT, {"temperature"});
    }
    // Partial overlap (y one element past x) is rejected; the exact alias is fine.
    Borrowed yo(x.data() + 1, {2, 4}, DSK_DTYPE_F32);
    Borrowed x24(x.data(), {2, 4}, DSK_DTYPE_F32);
    expect_error(run(ctx, &x24, &yo, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"y overlaps x"});
    // Same memory under another dtype is not the same view.
    Borrowed xb(x.data(), {3, 4}, DSK_DTYPE_BF16);
    Borrowed yb(x.data(), {3, 4}, DSK_DTYPE_F16);
    expect_error(run(ctx, &xb, &yb, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT, {"y overlaps x"});
    // Leading dims that do not merge into one stride.
    std::vector<float> big(64);
    Borrowed xm(big.data(), {2, 2, 2}, DSK_DTYPE_F32, {2, 8, 1});
    Borrowed ym(y.data(), {2, 2, 2}, DSK_DTYPE_F32);
    expect_error(run(ctx, &xm, &ym, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT,
                 {"x", "cannot be merged"});
    // Mixed devices: y claims to be CUDA memory.
    float device_dummy[12];
    Borrowed yc(device_dummy, {3, 4}, DSK_DTYPE_F32);
    yc.dl.device = DLDevice{kDLCUDA, 0};
    expect_error(run(ctx, &xt, &yc, 1.0f, is_log), DSK_ERR_INVALID_ARGUMENT,
                 {"y is on cuda:0", "x"});
  }
  // Empty leading dims are fine and touch nothing.
  Borrowed xe(x.data(), {0, 4}, DSK_DTYPE_F32);
  Borrowed ye(y.data(), {0, 4}, DSK_DTYPE_F32);
  CHECK(dsk_softmax(ctx, &xe, &ye, 1.0f) == DSK_OK);
}

TEST_CASE("ops.softmax long rows stay within the f32 tolerance") {
  CpuContext ctx;
  const int64_t n = 129280;  // DeepSeek-V3's vocabulary
  const std::vector<float> x = grid_values(static_cast<size_t>(2 * n), 3);
  std::vector<float> y(x.size());
  Borrowed xt(const_cast<float*>(x.data()), {2, n}, DSK_DTYPE_F32);
  Borrowed yt(y.data(), {2, n}, DSK_DTYPE_F32);
  for (bool is_log : {false, true}) {
    CAPTURE(is_log);
    REQUIRE(run(ctx, &xt, &yt, 0.8f, is_log) == DSK_OK);
    check_close(y, reference(x, n, 0.8f, is_log), DSK_DTYPE_F32, is_log);
  }
}
