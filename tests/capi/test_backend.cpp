#include <cstring>
#include <string>

#include "test_util.h"

using dsk_test::expect_error;

TEST_CASE("the CPU backend is always available with one device") {
  dsk_backend_info info;
  REQUIRE(dsk_backend_info_init(&info) == DSK_OK);
  REQUIRE(dsk_backend_get_info(DSK_BACKEND_CPU, &info) == DSK_OK);
  CHECK(info.struct_size == sizeof(info));
  CHECK(info.backend == DSK_BACKEND_CPU);
  CHECK(info.available == 1);
  CHECK(info.score > 0);
  CHECK(info.device_count == 1);
  CHECK(std::string(info.name) == "cpu");
  CHECK(std::string(info.reason).empty());
  CHECK(dsk_device_count(DSK_BACKEND_CPU) == 1);

  dsk_device_props p;
  REQUIRE(dsk_device_props_init(&p) == DSK_OK);
  REQUIRE(dsk_device_get_props(DSK_BACKEND_CPU, 0, &p) == DSK_OK);
  CHECK(p.backend == DSK_BACKEND_CPU);
  CHECK(p.multiprocessor_count >= 1);
  CHECK(p.total_memory_bytes > 0);
  CHECK(std::strlen(p.name) > 0);
}

TEST_CASE("the CUDA backend is either usable or says why not") {
  dsk_backend_info info;
  dsk_backend_info_init(&info);
  REQUIRE(dsk_backend_get_info(DSK_BACKEND_CUDA, &info) == DSK_OK);
  CHECK(std::string(info.name) == "cuda");
  if (info.available) {
    CHECK(info.device_count >= 1);
    CHECK(dsk_backend_default() == DSK_BACKEND_CUDA);
  } else {
    CHECK(info.device_count == 0);
    CHECK(info.score == 0);
    CHECK(std::strlen(info.reason) > 0);
    CHECK(dsk_device_count(DSK_BACKEND_CUDA) == 0);
    CHECK(dsk_backend_default() == DSK_BACKEND_CPU);
    dsk_device_props p;
    dsk_device_props_init(&p);
    expect_error(dsk_device_get_props(DSK_BACKEND_CUDA, 0, &p), DSK_ERR_BACKEND_UNAVAILABLE,
                 {"cuda backend is unavailable"});
  }
}

TEST_CASE("backend queries validate their arguments") {
  dsk_backend_info info;
  dsk_backend_info_init(&info);
  expect_error(dsk_backend_get_info(7, &info), DSK_ERR_INVALID_ARGUMENT,
               {"backend = 7", "DSK_BACKEND_CPU"});
  expect_error(dsk_backend_get_info(DSK_BACKEND_AUTO, &info), DSK_ERR_INVALID_ARGUMENT,
               {"backend = 0"});
  expect_error(dsk_backend_get_info(DSK_BACKEND_CPU, nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"info is NULL"});
  info.struct_size = 8;
  expect_error(dsk_backend_get_info(DSK_BACKEND_CPU, &info), DSK_ERR_VERSION_MISMATCH,
               {"info->struct_size = 8", "expected at least"});
  CHECK(dsk_device_count(-1) == 0);
  CHECK(dsk_device_count(99) == 0);

  dsk_device_props p;
  dsk_device_props_init(&p);
  expect_error(dsk_device_get_props(DSK_BACKEND_CPU, 1, &p), DSK_ERR_INVALID_ARGUMENT,
               {"device_id = 1", "0 <= device_id < 1"});
  expect_error(dsk_device_get_props(DSK_BACKEND_CPU, -1, &p), DSK_ERR_INVALID_ARGUMENT,
               {"device_id = -1"});
  p.struct_size = 0;
  expect_error(dsk_device_get_props(DSK_BACKEND_CPU, 0, &p), DSK_ERR_VERSION_MISMATCH,
               {"props->struct_size = 0"});
  expect_error(dsk_backend_info_init(nullptr), DSK_ERR_INVALID_ARGUMENT, {"info is NULL"});
  expect_error(dsk_device_props_init(nullptr), DSK_ERR_INVALID_ARGUMENT, {"props is NULL"});
}

TEST_CASE("a larger struct_size from a newer caller keeps its extra bytes untouched") {
  struct Bigger {
    dsk_backend_info info;
    uint32_t future_field;
  } big{};
  dsk_backend_info_init(&big.info);
  big.info.struct_size = sizeof(big);
  big.future_field = 0xABCDu;
  REQUIRE(dsk_backend_get_info(DSK_BACKEND_CPU, &big.info) == DSK_OK);
  CHECK(big.info.struct_size == sizeof(big));
  CHECK(big.future_field == 0xABCDu);
  CHECK(big.info.available == 1);
}
