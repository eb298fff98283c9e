// dsk_argmax / dsk_topk on the CPU backend: worked examples with ties, NaN, infinities and signed
// zeros, against an independent stable sort, and every bad argument.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using dsk_test::CpuContext;
using dsk_test::expect_error;

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// The expected order of one row, written independently of the library: a stable sort (ties keep
// the lower index first) by "NaN first, then larger value"; -0.0 == +0.0 compare equal.
std::vector<int64_t> expected_order(const std::vector<float>& row) {
  std::vector<int64_t> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
    const double va = row[static_cast<size_t>(a)];
    const double vb = row[static_cast<size_t>(b)];
    if (std::isnan(va) || std::isnan(vb)) return std::isnan(va) && !std::isnan(vb);
    return va > vb;
  });
  return idx;
}

bool same_bits(float a, float b) {
  uint32_t ua;
  uint32_t ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  return ua == ub;
}

}  // namespace

TEST_CASE("ops.topk worked example with ties NaN infinities and signed zeros") {
  CpuContext ctx;
  //                       0     1     2     3     4      5     6      7     8     9
  std::vector<float> x = {3.0f, 1.0f, 3.0f, kNaN, -kInf, kInf, -0.0f, 0.0f, 2.0f, kNaN};
  const std::vector<int64_t> order = {3, 9, 5, 0, 2, 8, 1, 6, 7, 4};
  CHECK(expected_order(x) == order);
  Borrowed xt(x.data(), {10}, DSK_DTYPE_F32);
  for (int32_t k : {1, 2, 4, 7, 10}) {
    CAPTURE(k);
    std::vector<int64_t> i64(static_cast<size_t>(k), -1);
    std::vector<int32_t> i32(static_cast<size_t>(k), -1);
    std::vector<float> vals(static_cast<size_t>(k));
    Borrowed it64(i64.data(), {k}, DSK_DTYPE_INT64);
    Borrowed it32(i32.data(), {k}, DSK_DTYPE_INT32);
    Borrowed vt(vals.data(), {k}, DSK_DTYPE_F32);
    REQUIRE(dsk_topk(ctx, &xt, k, &vt, &it64) == DSK_OK);
    REQUIRE(dsk_topk(ctx, &xt, k, nullptr, &it32) == DSK_OK);
    for (int32_t i = 0; i < k; ++i) {
      const auto s = static_cast<size_t>(i);
      CHECK(i64[s] == order[s]);
      CHECK(i32[s] == order[s]);
      // Values are the selected elements themselves (NaN payload and the sign of zero kept).
      CHECK(same_bits(vals[s], x[static_cast<size_t>(order[s])]));
    }
  }
  // argmax: a NaN wins (first NaN); without NaN +inf; equal maxima give the lower index.
  int64_t a64 = -1;
  Borrowed a64t(&a64, {}, DSK_DTYPE_INT64);
  REQUIRE(dsk_argmax(ctx, &xt, &a64t) == DSK_OK);
  CHECK(a64 == 3);
  std::vector<float> y = {-0.0f, 0.0f, -1.0f};
  Borrowed yt(y.data(), {3}, DSK_DTYPE_F32);
  REQUIRE(dsk_argmax(ctx, &yt, &a64t) == DSK_OK);
  CHECK(a64 == 0);
  std::vector<float> z = {-kInf, -kInf, -kInf};
  Borrowed zt(z.data(), {3}, DSK_DTYPE_F32);
  int32_t a32 = -1;
  Borrowed a32t(&a32, {}, DSK_DTYPE_INT32);
  REQUIRE(dsk_argmax(ctx, &zt, &a32t) == DSK_OK);
  CHECK(a32 == 0);
  std::vector<float> w = {1.0f, 5.0f, kInf, 5.0f, kInf};
  Borrowed wt(w.data(), {5}, DSK_DTYPE_F32);
  REQUIRE(dsk_argmax(ctx, &wt, &a32t) == DSK_OK);
  CHECK(a32 == 2);
}

TEST_CASE("ops.topk rows, dtypes and strides against a stable sort") {
  CpuContext ctx;
  const int64_t rows = 6;
  const int64_t n = 300;
  // Few distinct values (many ties), a NaN and infinities sprinkled in.
  std::vector<float> x(static_cast<size_t>(rows * n));
  uint32_t s = 5;
  for (float& v : x) {
    s = s * 1664525u + 1013904223u;
    const uint32_t r = (s >> 8) % 23u;
    v = r == 0   ? kNaN
        : r == 1 ? kInf
        : r == 2 ? -kInf
        : r == 3 ? -0.0f
                 : static_cast<float>(r % 7) - 3.0f;
  }
  for (int32_t xd : {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16}) {
    // x in its dtype (all values are exact in each), as [2, 3, N] with a row stride of N + 5 and a
    // column stride of 2: the leading dims merge into one stride of 2 * (N + 5).
    const int64_t rs = 2 * n + 5;
    DLDataType dt{};
    REQUIRE(dsk_dtype_from_id(xd, &dt) == DSK_OK);
    const size_t es = dsk_dtype_size(dt);
    std::vector<unsigned char> xs(static_cast<size_t>(rows * rs) * es, 0);
    {
      std::vector<float> staged(static_cast<size_t>(rows * rs), 0.0f);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < n; ++j) {
          staged[static_cast<size_t>(r * rs + 2 * j)] = x[static_cast<size_t>(r * n + j)];
        }
      }
      Borrowed src(staged.data(), {rows * rs}, DSK_DTYPE_F32);
      Borrowed dst(xs.data(), {rows * rs}, xd);
      REQUIRE(dsk_copy(ctx, &src, &dst) == DSK_OK);
    }
    Borrowed xt(xs.data(), {2, 3, n}, xd, {3 * rs, rs, 2});
    for (int32_t k : {1, 8, 50, 299, 300}) {
      for (int32_t idd : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
        for (int32_t vd : {0, DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
          CAPTURE(xd);
          CAPTURE(k);
          CAPTURE(idd);
          CAPTURE(vd);
          // indices [2, 3, k] with a padded row stride of k + 3.
          std::vector<int64_t> ibuf(static_cast<size_t>(rows * (k + 3)), -1);
          Borrowed it(ibuf.data(), {2, 3, k}, idd, {3 * (k + 3), k + 3, 1});
          std::vector<float> vbuf(static_cast<size_t>(rows * k), 0.0f);
          Borrowed vt(vbuf.data(), {2, 3, k}, vd == 0 ? DSK_DTYPE_F32 : vd);
          REQUIRE(dsk_topk(ctx, &xt, k, vd == 0 ? nullptr : &vt, &it) == DSK_OK);
          std::vector<float> vals(static_cast<size_t>(rows * k));
          if (vd != 0) {
            Borrowed vf(vals.data(), {2, 3, k}, DSK_DTYPE_F32);
            REQUIRE(dsk_copy(ctx, &vt, &vf) == DSK_OK);
          }
          for (int64_t r = 0; r < rows; ++r) {
            std::vector<float> row(x.begin() + r * n, x.begin() + (r + 1) * n);
            const std::vector<int64_t> want = expected_order(row);
            for (int64_t i = 0; i < k; ++i) {
              const size_t at = static_cast<size_t>(r * (k + 3) + i);
              int64_t got = 0;
              if (idd == DSK_DTYPE_INT32) {
                int32_t g;
                std::memcpy(&g, reinterpret_cast<int32_t*>(ibuf.data()) + at, 4);
                got = g;
              } else {
                got = ibuf[at];
              }
              REQUIRE_MESSAGE(got == want[static_cast<size_t>(i)], "row ", r, " rank ", i);
              if (vd != 0) {
                const float v = vals[static_cast<size_t>(r * k + i)];
                const float e = row[static_cast<size_t>(want[static_cast<size_t>(i)])];
                CHECK((same_bits(v, e) || (std::isnan(v) && std::isnan(e))));
              }
            }
            // The padding after k stays untouched (int32 view: 2 per int64 slot).
            if (idd == DSK_DTYPE_INT64) {
              CHECK(ibuf[static_cast<size_t>(r * (k + 3) + k)] == -1);
            }
          }
        }
      }
    }
    // argmax [2, 3] of the same rows.
    std::vector<int64_t> am(6, -1);
    Borrowed amt(am.data(), {2, 3}, DSK_DTYPE_INT64);
    REQUIRE(dsk_argmax(ctx, &xt, &amt) == DSK_OK);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> row(x.begin() + r * n, x.begin() + (r + 1) * n);
      CHECK(am[static_cast<size_t>(r)] == expected_order(row)[0]);
    }
  }
}

TEST_CASE("ops.topk ties created by rounding to bf16") {
  CpuContext ctx;
  // 1.0, 1.001, 1.002 all round to bf16 1.0: the lower index wins; values compare after conversion.
  std::vector<float> f = {0.5f, 1.0f, 1.001f, 1.002f, 0.9f};
  std::vector<uint16_t> b(5);
  Borrowed ft(f.data(), {5}, DSK_DTYPE_F32);
  Borrowed bt(b.data(), {5}, DSK_DTYPE_BF16);
  REQUIRE(dsk_copy(ctx, &ft, &bt) == DSK_OK);
  std::vector<int32_t> idx(3);
  Borrowed it(idx.data(), {3}, DSK_DTYPE_INT32);
  REQUIRE(dsk_topk(ctx, &bt, 3, nullptr, &it) == DSK_OK);
  CHECK(idx == std::vector<int32_t>{1, 2, 3});
  REQUIRE(dsk_topk(ctx, &ft, 3, nullptr, &it) == DSK_OK);
  CHECK(idx == std::vector<int32_t>{3, 2, 1});
}

TEST_CASE("ops.topk bad arguments") {
  CpuContext ctx;
  std::vector<float> x(12, 0.0f);
  std::vector<int64_t> idx(12);
  std::vector<float> vals(12);
  Borrowed xt(x.data(), {3, 4}, DSK_DTYPE_F32);
  Borrowed it(idx.data(), {3, 2}, DSK_DTYPE_INT64);
  Borrowed vt(vals.data(), {3, 2}, DSK_DTYPE_F32);
  expect_error(dsk_topk(nullptr, &xt, 2, &vt, &it), DSK_ERR_INVALID_ARGUMENT, {"ctx"});
  expect_error(dsk_topk(ctx, nullptr, 2, &vt, &it), DSK_ERR_INVALID_ARGUMENT, {"x"});
  expect_error(dsk_topk(ctx, &xt, 2, &vt, nullptr), DSK_ERR_INVALID_ARGUMENT, {"indices"});
  for (int32_t k : {0, -1, 5}) {
    CAPTURE(k);
    expect_error(dsk_topk(ctx, &xt, k, &vt, &it), DSK_ERR_INVALID_ARGUMENT,
                 {"k = ", "1 <= k <= N = 4"});
  }
  Borrowed i3(idx.data(), {3, 3}, DSK_DTYPE_INT64);
  expect_error(dsk_topk(ctx, &xt, 2, nullptr, &i3), DSK_ERR_INVALID_ARGUMENT,
               {"indices.shape[1] = 3", "expected 2"});
  Borrowed i42(idx.data(), {4, 2}, DSK_DTYPE_INT64);
  expect_error(dsk_topk(ctx, &xt, 2, nullptr, &i42), DSK_ERR_INVALID_ARGUMENT,
               {"indices has shape [4, 2]", "leading dimensions of x"});
  Borrowed ifl(idx.data(), {3, 2}, DSK_DTYPE_F32);
  expect_error(dsk_topk(ctx, &xt, 2, nullptr, &ifl), DSK_ERR_INVALID_ARGUMENT,
               {"indices.dtype", "int32 or int64"});
  Borrowed vint(vals.data(), {3, 2}, DSK_DTYPE_INT32);
  expect_error(dsk_topk(ctx, &xt, 2, &vint, &it), DSK_ERR_INVALID_ARGUMENT, {"values.dtype"});
  Borrowed v23(vals.data(), {2, 3}, DSK_DTYPE_F32);
  expect_error(dsk_topk(ctx, &xt, 2, &v23, &it), DSK_ERR_INVALID_ARGUMENT,
               {"values has shape [2, 3]"});
  std::vector<int32_t> ints(12);
  Borrowed xi(ints.data(), {3, 4}, DSK_DTYPE_INT32);
  expect_error(dsk_topk(ctx, &xi, 2, &vt, &it), DSK_ERR_INVALID_ARGUMENT, {"x.dtype"});
  Borrowed x0(x.data(), {3, 0}, DSK_DTYPE_F32);
  expect_error(dsk_topk(ctx, &x0, 1, nullptr, &it), DSK_ERR_INVALID_ARGUMENT, {"x.shape[1] = 0"});
  // Overlaps: indices inside x, values inside indices.
  Borrowed ix(x.data(), {3, 2}, DSK_DTYPE_INT32);
  expect_error(dsk_topk(ctx, &xt, 2, nullptr, &ix), DSK_ERR_INVALID_ARGUMENT,
               {"indices overlaps x"});
  Borrowed vi(idx.data() + 1, {3, 2}, DSK_DTYPE_F32);
  expect_error(dsk_topk(ctx, &xt, 2, &vi, &it), DSK_ERR_INVALID_ARGUMENT,
               {"values overlaps indices"});
  Borrowed vx(x.data(), {3, 2}, DSK_DTYPE_F32);
  expect_error(dsk_topk(ctx, &xt, 2, &vx, &it), DSK_ERR_INVALID_ARGUMENT, {"values overlaps x"});
  // Mixed devices.
  int64_t dummy[6];
  Borrowed ic(dummy, {3, 2}, DSK_DTYPE_INT64);
  ic.dl.device = DLDevice{kDLCUDA, 0};
  expect_error(dsk_topk(ctx, &xt, 2, &vt, &ic), DSK_ERR_INVALID_ARGUMENT, {"indices is on cuda:0"});
  // int32 indices cannot address a row longer than 2^31 (a stride-0 broadcast row).
  Borrowed huge(x.data(), {1, int64_t{1} << 32}, DSK_DTYPE_F32, {0, 0});
  int32_t one = 0;
  Borrowed o32(&one, {1}, DSK_DTYPE_INT32);
  expect_error(dsk_argmax(ctx, &huge, &o32), DSK_ERR_INVALID_ARGUMENT,
               {"indices.dtype is int32", "int64"});

  // argmax shapes.
  expect_error(dsk_argmax(nullptr, &xt, &it), DSK_ERR_INVALID_ARGUMENT, {"ctx"});
  expect_error(dsk_argmax(ctx, &xt, nullptr), DSK_ERR_INVALID_ARGUMENT, {"indices"});
  Borrowed a4(idx.data(), {4}, DSK_DTYPE_INT64);
  expect_error(dsk_argmax(ctx, &xt, &a4), DSK_ERR_INVALID_ARGUMENT,
               {"indices has shape [4]", "expected [3]"});
  Borrowed a31(idx.data(), {3, 1}, DSK_DTYPE_INT64);
  expect_error(dsk_argmax(ctx, &xt, &a31), DSK_ERR_INVALID_ARGUMENT, {"indices has shape [3, 1]"});
  Borrowed af(idx.data(), {3}, DSK_DTYPE_F32);
  expect_error(dsk_argmax(ctx, &xt, &af), DSK_ERR_INVALID_ARGUMENT, {"indices.dtype"});
  Borrowed xs(x.data(), {}, DSK_DTYPE_F32);
  Borrowed as(idx.data(), {}, DSK_DTYPE_INT64);
  expect_error(dsk_argmax(ctx, &xs, &as), DSK_ERR_INVALID_ARGUMENT, {"x is a scalar"});
  // argmax indices that do not merge into one stride.
  std::vector<float> x3(2 * 2 * 3);
  Borrowed x223(x3.data(), {2, 2, 3}, DSK_DTYPE_F32);
  Borrowed am(idx.data(), {2, 2}, DSK_DTYPE_INT64, {1, 2});
  expect_error(dsk_argmax(ctx, &x223, &am), DSK_ERR_INVALID_ARGUMENT,
               {"indices", "cannot be merged"});
  // Empty rows are fine.
  Borrowed xe(x.data(), {0, 4}, DSK_DTYPE_F32);
  Borrowed ie(idx.data(), {0, 2}, DSK_DTYPE_INT64);
  CHECK(dsk_topk(ctx, &xe, 2, nullptr, &ie) == DSK_OK);
  Borrowed ae(idx.data(), {0}, DSK_DTYPE_INT64);
  CHECK(dsk_argmax(ctx, &xe, &ae) == DSK_OK);
}
