#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "test_util.h"

using dsk_test::dtype;
using dsk_test::expect_error;

TEST_CASE("dtype ids map to DLPack codes and back") {
  struct Row {
    int32_t id;
    DLDataType dl;
    size_t size;
    const char* name;
  };
  const Row rows[] = {
      {DSK_DTYPE_F32, {kDLFloat, 32, 1}, 4, "f32"},
      {DSK_DTYPE_F16, {kDLFloat, 16, 1}, 2, "f16"},
      {DSK_DTYPE_BF16, {kDLBfloat, 16, 1}, 2, "bf16"},
      {DSK_DTYPE_FP8_E4M3FN, {kDLFloat8_e4m3fn, 8, 1}, 1, "fp8_e4m3fn"},
      {DSK_DTYPE_FP8_E5M2, {kDLFloat8_e5m2, 8, 1}, 1, "fp8_e5m2"},
      {DSK_DTYPE_INT32, {kDLInt, 32, 1}, 4, "int32"},
      {DSK_DTYPE_INT64, {kDLInt, 64, 1}, 8, "int64"},
      {DSK_DTYPE_UINT8, {kDLUInt, 8, 1}, 1, "uint8"},
      {DSK_DTYPE_BOOL, {kDLBool, 8, 1}, 1, "bool"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    DLDataType t{};
    REQUIRE(dsk_dtype_from_id(r.id, &t) == DSK_OK);
    CHECK(t.code == r.dl.code);
    CHECK(t.bits == r.dl.bits);
    CHECK(t.lanes == 1);
    int32_t id = 0;
    REQUIRE(dsk_dtype_to_id(r.dl, &id) == DSK_OK);
    CHECK(id == r.id);
    CHECK(dsk_dtype_size(r.dl) == r.size);
    CHECK(std::string(dsk_dtype_name(r.dl)) == r.name);
  }
}

TEST_CASE("unsupported dtypes are rejected with the field that is off") {
  int32_t id = 0;
  expect_error(dsk_dtype_to_id(DLDataType{kDLFloat, 32, 4}, &id), DSK_ERR_INVALID_ARGUMENT,
               {"dtype.lanes = 4", "expected 1"});
  expect_error(dsk_dtype_to_id(DLDataType{kDLFloat, 64, 1}, &id), DSK_ERR_INVALID_ARGUMENT,
               {"code 2, bits 64", "expected one of f32"});
  expect_error(dsk_dtype_to_id(DLDataType{kDLFloat8_e4m3fnuz, 8, 1}, &id), DSK_ERR_INVALID_ARGUMENT,
               {"code 11"});
  expect_error(dsk_dtype_to_id(DLDataType{kDLFloat, 32, 1}, nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"out is NULL"});
  DLDataType t{};
  expect_error(dsk_dtype_from_id(0, &t), DSK_ERR_INVALID_ARGUMENT, {"id = 0"});
  expect_error(dsk_dtype_from_id(DSK_DTYPE_COUNT, &t), DSK_ERR_INVALID_ARGUMENT, {"id = 10"});
  CHECK(dsk_dtype_size(DLDataType{kDLFloat, 64, 1}) == 0);
  CHECK(std::string(dsk_dtype_name(DLDataType{kDLInt, 16, 1})) == "unsupported");
}

TEST_CASE("host conversion follows the documented rules") {
  const float in[] = {1.0f, -2.5f, 448.0f, 1000.0f, -1e30f, NAN, 0.1f, 3.75f};
  uint8_t e4m3[8];
  REQUIRE(dsk_convert_host(dtype(DSK_DTYPE_F32), in, dtype(DSK_DTYPE_FP8_E4M3FN), e4m3, 8) ==
          DSK_OK);
  CHECK(e4m3[0] == 0x38);           // 1.0 = 2^0: exponent bias 7 -> 0111 000
  CHECK(e4m3[1] == 0xC2);           // -2.5 = -1.25 * 2^1
  CHECK(e4m3[2] == 0x7E);           // 448, the largest finite value
  CHECK(e4m3[3] == 0x7E);           // saturates
  CHECK(e4m3[4] == 0xFE);           // saturates negative
  CHECK((e4m3[5] & 0x7F) == 0x7F);  // NaN stays NaN
  float back[8];
  REQUIRE(dsk_convert_host(dtype(DSK_DTYPE_FP8_E4M3FN), e4m3, dtype(DSK_DTYPE_F32), back, 8) ==
          DSK_OK);
  CHECK(back[0] == 1.0f);
  CHECK(back[1] == -2.5f);
  CHECK(back[3] == 448.0f);
  CHECK(std::isnan(back[5]));
  CHECK(back[6] == 0.1015625f);  // nearest e4m3fn value to 0.1 is 13/128
  CHECK(back[7] == 3.75f);

  uint16_t bf[2];
  const float two[] = {1.00390625f, 1.01171875f};  // exact ties between bf16 neighbours
  REQUIRE(dsk_convert_host(dtype(DSK_DTYPE_F32), two, dtype(DSK_DTYPE_BF16), bf, 2) == DSK_OK);
  CHECK(bf[0] == 0x3F80);  // tie rounds to even (down)
  CHECK(bf[1] == 0x3F82);  // tie rounds to even (up)

  const float f[] = {-3.9f, 3e10f, NAN, 0.0f};
  int32_t i32[4];
  REQUIRE(dsk_convert_host(dtype(DSK_DTYPE_F32), f, dtype(DSK_DTYPE_INT32), i32, 4) == DSK_OK);
  CHECK(i32[0] == -3);
  CHECK(i32[1] == INT32_MAX);
  CHECK(i32[2] == 0);
  uint8_t b[4];
  REQUIRE(dsk_convert_host(dtype(DSK_DTYPE_F32), f, dtype(DSK_DTYPE_BOOL), b, 4) == DSK_OK);
  CHECK(b[0] == 1);
  CHECK(b[2] == 1);
  CHECK(b[3] == 0);
}

TEST_CASE("host conversion rejects bad arguments") {
  float x = 0;
  expect_error(dsk_convert_host(dtype(DSK_DTYPE_F32), nullptr, dtype(DSK_DTYPE_F16), &x, 1),
               DSK_ERR_INVALID_ARGUMENT, {"src is NULL"});
  expect_error(dsk_convert_host(dtype(DSK_DTYPE_F32), &x, dtype(DSK_DTYPE_F16), nullptr, 1),
               DSK_ERR_INVALID_ARGUMENT, {"dst is NULL"});
  expect_error(dsk_convert_host(DLDataType{kDLFloat, 64, 1}, &x, dtype(DSK_DTYPE_F16), &x, 1),
               DSK_ERR_INVALID_ARGUMENT, {"src_dtype"});
  CHECK(dsk_convert_host(dtype(DSK_DTYPE_F32), nullptr, dtype(DSK_DTYPE_F16), nullptr, 0) ==
        DSK_OK);
}
