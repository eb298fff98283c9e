// cpp_test_util.h - helpers the dsk.hpp wrapper tests share: host tensors from vectors, vectors
// back, and the check that a wrapper failure is dsk::Error naming the argument.
#ifndef DSK_TESTS_CAPI_CPP_TEST_UTIL_H_
#define DSK_TESTS_CAPI_CPP_TEST_UTIL_H_

#include <doctest/doctest.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <dsk/dsk.hpp>
#include <string>
#include <vector>

namespace cpp_test {

// A host tensor of int32 (T = int32_t) or int64 holding v.
template <typename T>
dsk::Tensor make_int(dsk::Context& ctx, const std::vector<int64_t>& shape,
                     const std::vector<T>& v) {
  dsk::Tensor t = dsk::Tensor::empty(
      ctx, shape, dsk::dtype(sizeof(T) == 4 ? DSK_DTYPE_INT32 : DSK_DTYPE_INT64));
  REQUIRE(static_cast<size_t>(t.numel()) == v.size());
  if (!v.empty()) std::memcpy(t.data<T>(), v.data(), v.size() * sizeof(T));
  return t;
}

// The elements of a contiguous host tensor.
template <typename T>
std::vector<T> host_values(const dsk::Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

// Whether `message` contains `name` as a whole word (not as part of a longer identifier).
inline bool names(const std::string& message, const std::string& name) {
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t pos = message.find(name); pos != std::string::npos;
       pos = message.find(name, pos + 1)) {
    const size_t end = pos + name.size();
    if ((pos == 0 || !ident(message[pos - 1])) && (end == message.size() || !ident(message[end])))
      return true;
  }
  return false;
}

// f() throws dsk::Error with DSK_ERR_INVALID_ARGUMENT and a message naming `name`.
template <typename F>
void expect_invalid(F&& f, const std::string& name) {
  try {
    f();
    FAIL("expected dsk::Error naming ", name);
  } catch (const dsk::Error& e) {
    const std::string message = e.what();
    CHECK_MESSAGE(e.status() == DSK_ERR_INVALID_ARGUMENT, message);
    CHECK_MESSAGE(names(message, name), "the message does not name ", name, ": ", message);
  }
}

}  // namespace cpp_test

#endif  // DSK_TESTS_CAPI_CPP_TEST_UTIL_H_
