// test_util.h - helpers for the CUDA backend tests: RAII handles over the C API, layouts, and
// "twins" (a CPU tensor and a CUDA tensor holding the same bytes) on which one operation is run
// through the CPU reference and through CUDA, then compared byte for byte.
//
// Only the public C API is used, so this suite builds without the CUDA toolkit.
#ifndef DSK_TESTS_CUDA_TEST_UTIL_H_
#define DSK_TESTS_CUDA_TEST_UTIL_H_

#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace dsk_test {

inline constexpr int32_t kAllDtypes[] = {DSK_DTYPE_F32,        DSK_DTYPE_F16,      DSK_DTYPE_BF16,
                                         DSK_DTYPE_FP8_E4M3FN, DSK_DTYPE_FP8_E5M2, DSK_DTYPE_INT32,
                                         DSK_DTYPE_INT64,      DSK_DTYPE_UINT8,    DSK_DTYPE_BOOL};
inline constexpr int32_t kFloatDtypes[] = {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16,
                                           DSK_DTYPE_FP8_E4M3FN, DSK_DTYPE_FP8_E5M2};

// Fails the current test with the call, the status and dsk's message when `status` is not OK.
inline void require_ok(dsk_status status, const char* call) {
  if (status != DSK_OK) {
    // One std::string: doctest prints a bare const char* in a message chain as a pointer.
    const std::string message = std::string(call) + " returned " + dsk_status_string(status) +
                                ": " + dsk_last_error_message();
    FAIL(message);
  }
}
#define DSK_REQUIRE_OK(expr) ::dsk_test::require_ok((expr), #expr)

inline DLDataType dtype(int32_t id) {
  DLDataType t{};
  require_ok(dsk_dtype_from_id(id, &t), "dsk_dtype_from_id");
  return t;
}

inline int32_t dtype_id_of(DLDataType t) {
  int32_t id = 0;
  require_ok(dsk_dtype_to_id(t, &id), "dsk_dtype_to_id");
  return id;
}

inline std::string dtype_name(int32_t id) { return dsk_dtype_name(dtype(id)); }

inline size_t dtype_size(int32_t id) { return dsk_dtype_size(dtype(id)); }

class Context {
 public:
  explicit Context(int32_t backend, int32_t device_id = 0) {
    dsk_context_options options;
    require_ok(dsk_context_options_init(&options), "dsk_context_options_init");
    options.backend = backend;
    options.device_id = device_id;
    require_ok(dsk_context_create(&options, &ctx_), "dsk_context_create");
  }
  ~Context() { dsk_context_destroy(ctx_); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  dsk_context* get() const { return ctx_; }

 private:
  dsk_context* ctx_ = nullptr;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(dsk_tensor* t) : t_(t) {}
  ~Tensor() { dsk_tensor_release(t_); }
  Tensor(Tensor&& other) noexcept : t_(std::exchange(other.t_, nullptr)) {}
  Tensor& operator=(Tensor&& other) noexcept {
    std::swap(t_, other.t_);
    return *this;
  }
  dsk_tensor* get() const { return t_; }
  const DLTensor* dl() const { return dsk_tensor_dltensor(t_); }
  int64_t numel() const { return dsk_tensor_numel(t_); }
  size_t nbytes() const { return static_cast<size_t>(dsk_tensor_nbytes(t_)); }
  // Host memory of a CPU tensor.
  uint8_t* host_bytes() const { return static_cast<uint8_t*>(dl()->data); }

 private:
  dsk_tensor* t_ = nullptr;
};

inline Tensor create(dsk_context* ctx, const std::vector<int64_t>& shape, int32_t dtype_id) {
  dsk_tensor* t = nullptr;
  require_ok(
      dsk_tensor_create(ctx, static_cast<int32_t>(shape.size()), shape.data(), dtype(dtype_id), &t),
      "dsk_tensor_create");
  return Tensor(t);
}

// A view description: shape, element strides and element offset into a 1-D base tensor.
struct Layout {
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int64_t offset = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  // Base elements the view needs.
  int64_t span() const {
    if (numel() == 0) return offset + 1;
    int64_t last = offset;
    for (size_t d = 0; d < shape.size(); ++d) last += (shape[d] - 1) * strides[d];
    return last + 1;
  }
};

inline Layout row_major(std::vector<int64_t> shape, int64_t offset = 0) {
  std::vector<int64_t> strides(shape.size());
  int64_t step = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = step;
    step *= shape[d] > 0 ? shape[d] : 1;
  }
  return Layout{std::move(shape), std::move(strides), offset};
}

inline Layout column_major(std::vector<int64_t> shape, int64_t offset = 0) {
  std::vector<int64_t> strides(shape.size());
  int64_t step = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    strides[d] = step;
    step *= shape[d] > 0 ? shape[d] : 1;
  }
  return Layout{std::move(shape), std::move(strides), offset};
}

inline std::string describe(const Layout& l) {
  std::string s = "shape {";
  for (size_t d = 0; d < l.shape.size(); ++d) s += (d ? "," : "") + std::to_string(l.shape[d]);
  s += "} strides {";
  for (size_t d = 0; d < l.strides.size(); ++d) {
    s += (d ? "," : "") + std::to_string(l.strides[d]);
  }
  return s + "} offset " + std::to_string(l.offset);
}

inline Tensor view(const Tensor& base, const Layout& l) {
  dsk_tensor* t = nullptr;
  require_ok(dsk_tensor_view(base.get(), static_cast<int32_t>(l.shape.size()), l.shape.data(),
                             l.strides.empty() ? nullptr : l.strides.data(), l.offset, &t),
             "dsk_tensor_view");
  return Tensor(t);
}

// A view that may broadcast (stride 0), which dsk_tensor_view refuses: a borrowed DLTensor over
// base's memory, for copy sources. Valid while `base` lives.
struct SourceView {
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  DLTensor tensor{};
  const DLTensor* dl() const { return &tensor; }
};

inline SourceView source_view(const Tensor& base, const Layout& l) {
  SourceView v{l.shape, l.strides, *base.dl()};
  v.tensor.ndim = static_cast<int32_t>(v.shape.size());
  v.tensor.shape = v.shape.data();
  v.tensor.strides = v.strides.empty() ? nullptr : v.strides.data();
  v.tensor.data = static_cast<char*>(v.tensor.data) +
                  l.offset * static_cast<int64_t>(dsk_dtype_size(v.tensor.dtype));
  return v;
}

inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t word = rng();
    std::memcpy(bytes.data() + i, &word, n - i < 8 ? n - i : 8);
  }
  return bytes;
}

// A CPU and a CUDA context on device 0, created per test.
struct Env {
  Context cpu{DSK_BACKEND_CPU};
  Context gpu{DSK_BACKEND_CUDA};
};

// Copies a CUDA tensor into a fresh CPU tensor of the same shape and dtype, returning its bytes.
inline std::vector<uint8_t> download(const Env& env, const Tensor& gpu) {
  const DLTensor* dl = gpu.dl();
  Tensor host = create(env.cpu.get(), std::vector<int64_t>(dl->shape, dl->shape + dl->ndim),
                       dtype_id_of(dl->dtype));
  require_ok(dsk_copy(env.gpu.get(), dl, host.dl()), "dsk_copy (download)");
  return std::vector<uint8_t>(host.host_bytes(), host.host_bytes() + host.nbytes());
}

// 1-D base tensors of `elements` elements on the CPU and on CUDA, both holding the same bytes.
struct Twin {
  int32_t dtype_id = 0;
  Tensor cpu;
  Tensor gpu;
};

inline Twin make_twin(const Env& env, int32_t dtype_id, int64_t elements, uint64_t seed) {
  Twin twin;
  twin.dtype_id = dtype_id;
  twin.cpu = create(env.cpu.get(), {elements}, dtype_id);
  twin.gpu = create(env.gpu.get(), {elements}, dtype_id);
  const std::vector<uint8_t> bytes = random_bytes(twin.cpu.nbytes(), seed);
  if (!bytes.empty()) std::memcpy(twin.cpu.host_bytes(), bytes.data(), bytes.size());
  require_ok(dsk_copy(env.gpu.get(), twin.cpu.dl(), twin.gpu.dl()), "dsk_copy (upload)");
  return twin;
}

// Checks that the CUDA side of `twin` holds exactly the CPU side's bytes; names the first
// differing element.
inline void check_twin(const Env& env, const Twin& twin) {
  const std::vector<uint8_t> got = download(env, twin.gpu);
  const uint8_t* want = twin.cpu.host_bytes();
  REQUIRE(got.size() == twin.cpu.nbytes());
  if (got.empty() || std::memcmp(got.data(), want, got.size()) == 0) return;
  const size_t elem = dtype_size(twin.dtype_id);
  size_t first = 0;
  while (got[first] == want[first]) ++first;
  const size_t element = first / elem;
  std::string cuda_hex;
  std::string cpu_hex;
  char buf[4];
  for (size_t b = elem; b-- > 0;) {
    std::snprintf(buf, sizeof(buf), "%02x", got[element * elem + b]);
    cuda_hex += buf;
    std::snprintf(buf, sizeof(buf), "%02x", want[element * elem + b]);
    cpu_hex += buf;
  }
  FAIL_CHECK("CUDA and CPU differ first at element "
             << element << " of " << twin.cpu.numel() << " (" << dtype_name(twin.dtype_id)
             << "): cuda 0x" << cuda_hex << ", cpu 0x" << cpu_hex);
}

// A CPU tensor and a CUDA tensor of one shape and dtype (the ops tests run one call on each).
struct Pair {
  Tensor cpu;
  Tensor gpu;
};

// A CPU tensor of `dtype_id` holding `values` (rounded by dsk_copy) and its CUDA copy.
inline Pair upload_values(const Env& env, const std::vector<float>& values,
                          const std::vector<int64_t>& shape, int32_t dtype_id) {
  Tensor f32 = create(env.cpu.get(), shape, DSK_DTYPE_F32);
  REQUIRE(static_cast<int64_t>(values.size()) == f32.numel());
  if (!values.empty()) std::memcpy(f32.host_bytes(), values.data(), values.size() * sizeof(float));
  Pair p;
  p.cpu = create(env.cpu.get(), shape, dtype_id);
  p.gpu = create(env.gpu.get(), shape, dtype_id);
  DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), f32.dl(), p.cpu.dl()));
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), p.cpu.dl(), p.gpu.dl()));
  return p;
}

// Raw bytes on both sides (no conversion).
template <typename T>
Pair upload_raw(const Env& env, const std::vector<T>& values, const std::vector<int64_t>& shape,
                int32_t dtype_id) {
  Pair p;
  p.cpu = create(env.cpu.get(), shape, dtype_id);
  p.gpu = create(env.gpu.get(), shape, dtype_id);
  REQUIRE(p.cpu.nbytes() == values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(p.cpu.host_bytes(), values.data(), p.cpu.nbytes());
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), p.cpu.dl(), p.gpu.dl()));
  return p;
}

// Outputs on both sides, filled with different sentinels so unwritten bytes cannot match.
inline Pair outputs(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id) {
  Pair p;
  p.cpu = create(env.cpu.get(), shape, dtype_id);
  p.gpu = create(env.gpu.get(), shape, dtype_id);
  DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), p.cpu.dl(), 7.0));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), p.gpu.dl(), 3.0));
  return p;
}

// Zero-filled tensors of one shape and dtype on both sides.
inline Pair zeros_pair(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id) {
  Pair p;
  p.cpu = create(env.cpu.get(), shape, dtype_id);
  p.gpu = create(env.gpu.get(), shape, dtype_id);
  DSK_REQUIRE_OK(dsk_fill(env.cpu.get(), p.cpu.dl(), 0.0));
  DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), p.gpu.dl(), 0.0));
  return p;
}

// The elements of any float tensor (CPU or CUDA, any strides) as f32, in row-major order.
inline std::vector<float> read_f32(const Env& env, const DLTensor* t) {
  Tensor f32 =
      create(env.cpu.get(), std::vector<int64_t>(t->shape, t->shape + t->ndim), DSK_DTYPE_F32);
  DSK_REQUIRE_OK(
      dsk_copy(t->device.device_type == kDLCPU ? env.cpu.get() : env.gpu.get(), t, f32.dl()));
  const float* p = reinterpret_cast<const float*>(f32.host_bytes());
  return std::vector<float>(p, p + f32.numel());
}

// Byte-exact comparison of a pair of contiguous tensors; names the first differing element.
inline void check_same_bytes(const Env& env, const Pair& p, const std::string& what) {
  const std::vector<uint8_t> got = download(env, p.gpu);
  const uint8_t* want = p.cpu.host_bytes();
  REQUIRE(got.size() == p.cpu.nbytes());
  if (got.empty() || std::memcmp(got.data(), want, got.size()) == 0) return;
  const size_t elem = dtype_size(dtype_id_of(p.cpu.dl()->dtype));
  size_t first = 0;
  while (got[first] == want[first]) ++first;
  FAIL_CHECK(what << ": CUDA and CPU differ first at element " << first / elem << " (byte " << first
                  << ") of " << p.cpu.numel());
}

}  // namespace dsk_test

#endif  // DSK_TESTS_CUDA_TEST_UTIL_H_
