// test_util.h - small helpers shared by the C API tests.
#ifndef DSK_TESTS_CAPI_TEST_UTIL_H_
#define DSK_TESTS_CAPI_TEST_UTIL_H_

#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

namespace dsk_test {

// Asserts `status` equals `expected` and the thread's message contains every fragment.
inline void expect_error(dsk_status status, dsk_status expected,
                         std::initializer_list<const char*> fragments) {
  CHECK_MESSAGE(status == expected, "status ", status, " (", dsk_status_string(status),
                "), message: ", dsk_last_error_message());
  std::string message = dsk_last_error_message();
  for (const char* f : fragments) {
    CHECK_MESSAGE(message.find(f) != std::string::npos, "message \"", message, "\" lacks \"",
                  std::string(f), "\"");
  }
}

// Sets DSK_NUM_THREADS for the scope (the CPU backend reads it per call) and restores it after.
struct Threads {
  std::string saved;
  bool had = false;
  explicit Threads(const char* n) {
    const char* old = std::getenv("DSK_NUM_THREADS");
    had = old != nullptr;
    if (had) saved = old;
    setenv("DSK_NUM_THREADS", n, 1);
  }
  ~Threads() {
    if (had) {
      setenv("DSK_NUM_THREADS", saved.c_str(), 1);
    } else {
      unsetenv("DSK_NUM_THREADS");
    }
  }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
};

inline DLDataType dtype(int32_t id) {
  DLDataType t{};
  REQUIRE(dsk_dtype_from_id(id, &t) == DSK_OK);
  return t;
}

// A CPU context released at scope exit.
struct CpuContext {
  dsk_context* ctx = nullptr;
  CpuContext() {
    dsk_context_options o;
    dsk_context_options_init(&o);
    o.backend = DSK_BACKEND_CPU;
    REQUIRE(dsk_context_create(&o, &ctx) == DSK_OK);
  }
  ~CpuContext() { dsk_context_destroy(ctx); }
  operator dsk_context*() const { return ctx; }
};

// A tensor reference released at scope exit.
struct Owned {
  dsk_tensor* t = nullptr;
  Owned() = default;
  explicit Owned(dsk_tensor* tensor) : t(tensor) {}
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { dsk_tensor_release(t); }
  const DLTensor* dl() const { return dsk_tensor_dltensor(t); }
  template <typename T>
  T* data() const {
    return static_cast<T*>(dl()->data);
  }
};

inline dsk_tensor* make(dsk_context* ctx, std::vector<int64_t> shape, int32_t dtype_id) {
  dsk_tensor* t = nullptr;
  REQUIRE_MESSAGE(dsk_tensor_create(ctx, static_cast<int32_t>(shape.size()), shape.data(),
                                    dtype(dtype_id), &t) == DSK_OK,
                  dsk_last_error_message());
  return t;
}

// A DLTensor over caller memory (strides may be empty for NULL).
struct Borrowed {
  std::vector<int64_t> shape, strides;
  DLTensor dl{};
  Borrowed(void* data, std::vector<int64_t> s, int32_t dtype_id, std::vector<int64_t> st = {})
      : shape(std::move(s)), strides(std::move(st)) {
    dl.data = data;
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = dtype(dtype_id);
    dl.shape = shape.data();
    dl.strides = strides.empty() ? nullptr : strides.data();
  }
  const DLTensor* operator&() const { return &dl; }
};

}  // namespace dsk_test

#endif  // DSK_TESTS_CAPI_TEST_UTIL_H_
