#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

using dsk_test::expect_error;

TEST_CASE("version queries match the header") {
  CHECK(dsk_version_number() == DSK_VERSION_NUMBER);
  CHECK(std::string(dsk_version_string()) == DSK_VERSION_STRING);
  CHECK(dsk_abi_version() == DSK_ABI_VERSION);
  CHECK(DSK_VERSION_NUMBER ==
        DSK_VERSION_MAJOR * 10000 + DSK_VERSION_MINOR * 100 + DSK_VERSION_PATCH);
}

TEST_CASE("status strings are stable and total") {
  CHECK(std::string(dsk_status_string(DSK_OK)) == "ok");
  CHECK(std::string(dsk_status_string(DSK_ERR_INVALID_ARGUMENT)) == "invalid argument");
  CHECK(std::string(dsk_status_string(DSK_ERR_OUT_OF_MEMORY)) == "out of memory");
  CHECK(std::string(dsk_status_string(DSK_ERR_BACKEND_UNAVAILABLE)) == "backend unavailable");
  CHECK(std::string(dsk_status_string(DSK_ERR_VERSION_MISMATCH)) == "version mismatch");
  CHECK(std::string(dsk_status_string(12345)) == "unknown status");
  CHECK(std::string(dsk_status_string(-1)) == "unknown status");
}

TEST_CASE("the last error message names the function and is per thread") {
  dsk_status s = dsk_context_create(nullptr, nullptr);
  expect_error(s, DSK_ERR_INVALID_ARGUMENT, {"dsk_context_create", "out is NULL"});
  std::string other;
  std::thread t([&] { other = dsk_last_error_message(); });
  t.join();
  CHECK(other.empty());  // a fresh thread has seen no failure
  CHECK(std::string(dsk_last_error_message()).find("dsk_context_create") == 0);
}

namespace {
struct Captured {
  std::vector<std::pair<int32_t, std::string>> lines;
};
void capture(int32_t level, const char* message, void* user) {
  static_cast<Captured*>(user)->lines.emplace_back(level, message);
}
}  // namespace

TEST_CASE("the log callback receives messages up to its level and is silent when removed") {
  Captured c;
  dsk_log_set(capture, &c, DSK_LOG_DEBUG);
  dsk_dtype_to_id(DLDataType{kDLFloat, 64, 1}, nullptr);
  REQUIRE(!c.lines.empty());
  CHECK(c.lines.back().first == DSK_LOG_DEBUG);
  CHECK(c.lines.back().second.find("dsk_dtype_to_id") != std::string::npos);

  c.lines.clear();
  dsk_log_set(capture, &c, DSK_LOG_WARN);  // failures are logged at debug level only
  dsk_dtype_to_id(DLDataType{kDLFloat, 64, 1}, nullptr);
  CHECK(c.lines.empty());

  dsk_log_set(nullptr, nullptr, DSK_LOG_DEBUG);
  dsk_dtype_to_id(DLDataType{kDLFloat, 64, 1}, nullptr);
  CHECK(c.lines.empty());
}
