// dsk_embedding on the CPU backend: exact row copies (with dtype conversion), id dtypes, shapes,
// strides, out-of-range ids and every bad argument.
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using dsk_test::CpuContext;
using dsk_test::expect_error;
using ops_test::to_f32;

constexpr int64_t kV = 5;
constexpr int64_t kD = 3;

// table[v][d] = v + d / 4 (exact in every float dtype).
std::vector<float> table_values() {
  std::vector<float> t(static_cast<size_t>(kV * kD));
  for (int64_t v = 0; v < kV; ++v) {
    for (int64_t d = 0; d < kD; ++d) {
      t[static_cast<size_t>(v * kD + d)] = static_cast<float>(v) + static_cast<float>(d) / 4.0f;
    }
  }
  return t;
}

}  // namespace

TEST_CASE("ops.embedding rows, dtypes and id dtypes") {
  CpuContext ctx;
  const std::vector<float> tf = table_values();
  const std::vector<int64_t> ids = {4, 0, 2, 2, 1, 3};
  for (int32_t td : {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16}) {
    for (int32_t od : {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16}) {
      for (int32_t idd : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
        CAPTURE(td);
        CAPTURE(od);
        CAPTURE(idd);
        std::vector<uint32_t> tbuf(tf.size());
        Borrowed tsrc(const_cast<float*>(tf.data()), {kV, kD}, DSK_DTYPE_F32);
        Borrowed table(tbuf.data(), {kV, kD}, td);
        REQUIRE(dsk_copy(ctx, &tsrc, &table) == DSK_OK);
        std::vector<int64_t> ibuf(ids.size());
        for (size_t i = 0; i < ids.size(); ++i) {
          if (idd == DSK_DTYPE_INT32) {
            const auto v = static_cast<int32_t>(ids[i]);
            std::memcpy(reinterpret_cast<int32_t*>(ibuf.data()) + i, &v, 4);
          } else {
            ibuf[i] = ids[i];
          }
        }
        Borrowed it(ibuf.data(), {2, 3}, idd);
        std::vector<uint32_t> obuf(ids.size() * kD);
        Borrowed ot(obuf.data(), {2, 3, kD}, od);
        REQUIRE(dsk_embedding(ctx, &table, &it, &ot) == DSK_OK);
        const std::vector<float> got = to_f32(ctx, &ot);
        for (size_t t = 0; t < ids.size(); ++t) {
          for (int64_t d = 0; d < kD; ++d) {
            CHECK(got[t * kD + static_cast<size_t>(d)] == tf[static_cast<size_t>(ids[t] * kD + d)]);
          }
        }
      }
    }
  }
}

TEST_CASE("ops.embedding conversion rounds once") {
  CpuContext ctx;
  // An f32 table row that is not exact in bf16: out holds the bf16 rounding of each element.
  std::vector<float> table = {
      1.0f + 1.0f / 512.0f + 1.0f / 4096.0f, -3.14159f, 65504.0f, 1e-3f, 2.0f, 3.0f};
  std::vector<uint16_t> want(3);
  Borrowed row(table.data(), {3}, DSK_DTYPE_F32);
  Borrowed wt(want.data(), {3}, DSK_DTYPE_BF16);
  REQUIRE(dsk_copy(ctx, &row, &wt) == DSK_OK);
  int32_t id = 0;
  Borrowed tt(table.data(), {2, 3}, DSK_DTYPE_F32);
  Borrowed it(&id, {}, DSK_DTYPE_INT32);  // a 0-d id gives out [D]
  std::vector<uint16_t> out(3);
  Borrowed ot(out.data(), {3}, DSK_DTYPE_BF16);
  REQUIRE(dsk_embedding(ctx, &tt, &it, &ot) == DSK_OK);
  CHECK(out == want);
}

TEST_CASE("ops.embedding strided table, ids and out") {
  CpuContext ctx;
  const std::vector<float> tf = table_values();
  // table rows 8 elements apart, columns 2 apart; ids every other element; out rows 5 apart.
  std::vector<float> tbuf(static_cast<size_t>(kV * 8), -1.0f);
  for (int64_t v = 0; v < kV; ++v) {
    for (int64_t d = 0; d < kD; ++d) {
      tbuf[static_cast<size_t>(v * 8 + 2 * d)] = tf[static_cast<size_t>(v * kD + d)];
    }
  }
  Borrowed table(tbuf.data(), {kV, kD}, DSK_DTYPE_F32, {8, 2});
  std::vector<int64_t> ibuf = {3, 99, 1, 99, 4, 99, 0, 99};
  Borrowed it(ibuf.data(), {4}, DSK_DTYPE_INT64, {2});
  std::vector<float> obuf(20, 7.0f);
  Borrowed ot(obuf.data(), {4, kD}, DSK_DTYPE_F32, {5, 1});
  REQUIRE(dsk_embedding(ctx, &table, &it, &ot) == DSK_OK);
  const int64_t ids[4] = {3, 1, 4, 0};
  for (int64_t t = 0; t < 4; ++t) {
    for (int64_t d = 0; d < kD; ++d) {
      CHECK(obuf[static_cast<size_t>(t * 5 + d)] == tf[static_cast<size_t>(ids[t] * kD + d)]);
    }
    CHECK(obuf[static_cast<size_t>(t * 5 + 3)] == 7.0f);
    CHECK(obuf[static_cast<size_t>(t * 5 + 4)] == 7.0f);
  }
}

TEST_CASE("ops.embedding out of range ids") {
  CpuContext ctx;
  std::vector<float> tf = table_values();
  Borrowed table(tf.data(), {kV, kD}, DSK_DTYPE_F32);
  for (int64_t bad : {int64_t{-1}, kV, int64_t{1} << 40}) {
    for (int32_t idd : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
      if (idd == DSK_DTYPE_INT32 && bad > INT32_MAX) continue;
      CAPTURE(bad);
      CAPTURE(idd);
      std::vector<int64_t> ids = {0, 1, 2, bad};
      std::vector<int32_t> ids32 = {0, 1, 2, static_cast<int32_t>(bad)};
      Borrowed it(idd == DSK_DTYPE_INT32 ? static_cast<void*>(ids32.data()) : ids.data(), {2, 2},
                  idd);
      std::vector<float> out(4 * kD, 42.0f);
      Borrowed ot(out.data(), {2, 2, kD}, DSK_DTYPE_F32);
      const std::string value = std::to_string(bad);
      expect_error(dsk_embedding(ctx, &table, &it, &ot), DSK_ERR_INVALID_ARGUMENT,
                   {"ids[3] = ", value.c_str(), "[0, 5)"});
      // Ids are all checked before anything is written.
      for (float v : out) CHECK(v == 42.0f);
    }
  }
}

TEST_CASE("ops.embedding bad arguments") {
  CpuContext ctx;
  std::vector<float> tf = table_values();
  std::vector<int64_t> ids = {0, 1};
  std::vector<float> out(2 * kD);
  Borrowed table(tf.data(), {kV, kD}, DSK_DTYPE_F32);
  Borrowed it(ids.data(), {2}, DSK_DTYPE_INT64);
  Borrowed ot(out.data(), {2, kD}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(nullptr, &table, &it, &ot), DSK_ERR_INVALID_ARGUMENT, {"ctx"});
  expect_error(dsk_embedding(ctx, nullptr, &it, &ot), DSK_ERR_INVALID_ARGUMENT, {"table"});
  expect_error(dsk_embedding(ctx, &table, nullptr, &ot), DSK_ERR_INVALID_ARGUMENT, {"ids"});
  expect_error(dsk_embedding(ctx, &table, &it, nullptr), DSK_ERR_INVALID_ARGUMENT, {"out"});
  Borrowed t1(tf.data(), {kV * kD}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(ctx, &t1, &it, &ot), DSK_ERR_INVALID_ARGUMENT,
               {"table has 1 dimensions", "expected 2"});
  Borrowed ti(tf.data(), {kV, kD}, DSK_DTYPE_INT32);
  expect_error(dsk_embedding(ctx, &ti, &it, &ot), DSK_ERR_INVALID_ARGUMENT, {"table.dtype"});
  Borrowed idf(ids.data(), {2}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(ctx, &table, &idf, &ot), DSK_ERR_INVALID_ARGUMENT,
               {"ids.dtype", "int32 or int64"});
  Borrowed oi(out.data(), {2, kD}, DSK_DTYPE_INT32);
  expect_error(dsk_embedding(ctx, &table, &it, &oi), DSK_ERR_INVALID_ARGUMENT, {"out.dtype"});
  Borrowed o2(out.data(), {2, 2}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(ctx, &table, &it, &o2), DSK_ERR_INVALID_ARGUMENT,
               {"out has shape [2, 2]", "expected [2, 3]"});
  Borrowed o3(out.data(), {1, 2, kD}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(ctx, &table, &it, &o3), DSK_ERR_INVALID_ARGUMENT,
               {"out has shape [1, 2, 3]"});
  // out overlapping the table or the ids.
  Borrowed ob(tf.data() + 1, {2, kD}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(ctx, &table, &it, &ob), DSK_ERR_INVALID_ARGUMENT,
               {"out overlaps table"});
  Borrowed oid(ids.data(), {2, 2}, DSK_DTYPE_F32);
  Borrowed t2(tf.data(), {kV, 2}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(ctx, &t2, &it, &oid), DSK_ERR_INVALID_ARGUMENT, {"out overlaps ids"});
  // Mixed devices.
  int64_t dummy[2];
  Borrowed ic(dummy, {2}, DSK_DTYPE_INT64);
  ic.dl.device = DLDevice{kDLCUDA, 0};
  expect_error(dsk_embedding(ctx, &table, &ic, &ot), DSK_ERR_INVALID_ARGUMENT,
               {"ids is on cuda:0"});
  // ids whose dims do not merge into one stride.
  std::vector<int64_t> id4 = {0, 1, 2, 3};
  Borrowed itr(id4.data(), {2, 2}, DSK_DTYPE_INT64, {1, 2});
  std::vector<float> o4(4 * kD);
  Borrowed ot4(o4.data(), {2, 2, kD}, DSK_DTYPE_F32);
  expect_error(dsk_embedding(ctx, &table, &itr, &ot4), DSK_ERR_INVALID_ARGUMENT,
               {"ids", "cannot be merged"});
  // No ids: nothing to do.
  Borrowed ie(ids.data(), {0}, DSK_DTYPE_INT64);
  Borrowed oe(out.data(), {0, kD}, DSK_DTYPE_F32);
  CHECK(dsk_embedding(ctx, &table, &ie, &oe) == DSK_OK);
}
