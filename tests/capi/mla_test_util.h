// mla_test_util.h - helpers shared by the MLA C API tests (test_mla_*.cpp): host tensors over
// std::vector storage with their own bf16/f16/e4m3 encoders and decoders (written here, from the
// format definitions, independently of dsk), strided views, error checks that look for argument
// names, and element-wise comparisons against double references.
#ifndef DSK_TESTS_CAPI_MLA_TEST_UTIL_H_
#define DSK_TESTS_CAPI_MLA_TEST_UTIL_H_

#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"

namespace mla_test {

// ---- number formats ----

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// f32 -> bf16 bits, round to nearest even (NaN stays a quiet NaN).
inline uint16_t bf16_bits(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_value(uint16_t b) { return f32_from_bits(static_cast<uint32_t>(b) << 16); }

// f32 -> f16 bits, round to nearest even, overflow to infinity.
inline uint16_t f16_bits(float f) {
  const uint32_t u = f32_bits(f);
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 -> inf
  if (a < 0x38800000u) {
    // Below 2^-14: a multiple of 2^-24 (exact in double; nearbyint rounds half to even).
    const double q = std::nearbyint(static_cast<double>(f32_from_bits(a)) * 16777216.0);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(q));
  }
  const uint32_t mant = a & 0x7FFFFFu;
  const uint32_t exp = (a >> 23) - 127u + 15u;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0)) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float f16_value(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) ? 1u : 0u;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  double v;
  if (e == 0) {
    v = std::ldexp(static_cast<double>(m), -24);
  } else if (e == 31) {
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(1.0 + m / 1024.0, static_cast<int>(e) - 15);
  }
  return static_cast<float>(sign ? -v : v);
}

// e4m3fn code -> value (no infinities; 0x7F / 0xFF are NaN).
inline double e4m3_value(uint8_t code) {
  const uint32_t mag = code & 0x7Fu;
  if (mag == 0x7Fu) return std::numeric_limits<double>::quiet_NaN();
  const uint32_t e = mag >> 3;
  const uint32_t m = mag & 7u;
  const double v =
      e == 0 ? std::ldexp(static_cast<double>(m), -9) : std::ldexp(1.0 + m / 8.0, int(e) - 7);
  return (code & 0x80u) ? -v : v;
}

inline size_t dtype_bytes(int32_t id) {
  switch (id) {
    case DSK_DTYPE_F32:
    case DSK_DTYPE_INT32:
      return 4;
    case DSK_DTYPE_F16:
    case DSK_DTYPE_BF16:
      return 2;
    case DSK_DTYPE_INT64:
      return 8;
    default:
      return 1;
  }
}

inline const char* dtype_label(int32_t id) {
  switch (id) {
    case DSK_DTYPE_F32:
      return "f32";
    case DSK_DTYPE_F16:
      return "f16";
    case DSK_DTYPE_BF16:
      return "bf16";
    case DSK_DTYPE_FP8_E4M3FN:
      return "fp8_e4m3fn";
    case DSK_DTYPE_INT32:
      return "int32";
    case DSK_DTYPE_INT64:
      return "int64";
    default:
      return "?";
  }
}

// The value `v` takes once stored in dtype `id` (round to nearest even).
inline double rounded(double v, int32_t id) {
  const auto f = static_cast<float>(v);
  switch (id) {
    case DSK_DTYPE_BF16:
      return bf16_value(bf16_bits(f));
    case DSK_DTYPE_F16:
      return f16_value(f16_bits(f));
    case DSK_DTYPE_F32:
      return f;
    default:
      return v;
  }
}

// ---- host tensors ----

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

inline std::vector<int64_t> row_major(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

// A DLTensor over memory owned elsewhere, with its own shape and strides (in elements).
struct View {
  std::vector<int64_t> shape, strides;
  DLTensor dl{};
  View() = default;
  View(void* data, int32_t dtype_id, std::vector<int64_t> s, std::vector<int64_t> st)
      : shape(std::move(s)), strides(std::move(st)) {
    dl.data = data;
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = dsk_test::dtype(dtype_id);
    dl.shape = shape.data();
    dl.strides = strides.data();
  }
  View(View&& o) noexcept : shape(std::move(o.shape)), strides(std::move(o.strides)), dl(o.dl) {
    dl.shape = shape.data();
    dl.strides = strides.data();
  }
  View& operator=(View&& o) noexcept {
    shape = std::move(o.shape);
    strides = std::move(o.strides);
    dl = o.dl;
    dl.shape = shape.data();
    dl.strides = strides.data();
    return *this;
  }
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  const DLTensor* get() const { return &dl; }
};

// A contiguous host tensor of any dsk dtype. Element i is the i-th in row-major order.
class Host {
 public:
  Host() = default;
  Host(std::vector<int64_t> shape, int32_t dtype_id) : shape_(std::move(shape)), dtype_(dtype_id) {
    const size_t bytes = static_cast<size_t>(numel(shape_)) * dtype_bytes(dtype_);
    // No slack past the end, so that an address sanitizer sees any overread.
    storage_.assign(std::max<size_t>((bytes + 7) / 8, 1), 0);
  }
  Host(Host&&) = default;
  Host& operator=(Host&&) = default;
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  int32_t dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t size() const { return numel(shape_); }
  size_t bytes() const { return static_cast<size_t>(size()) * dtype_bytes(dtype_); }
  void* data() { return storage_.data(); }
  const void* data() const { return storage_.data(); }

  // Stores v rounded to the dtype (integers: truncated to the integer type).
  void set(int64_t i, double v) {
    auto* p = reinterpret_cast<uint8_t*>(storage_.data()) + i * int64_t(dtype_bytes(dtype_));
    switch (dtype_) {
      case DSK_DTYPE_F32: {
        const auto f = static_cast<float>(v);
        std::memcpy(p, &f, 4);
        break;
      }
      case DSK_DTYPE_BF16: {
        const uint16_t b = bf16_bits(static_cast<float>(v));
        std::memcpy(p, &b, 2);
        break;
      }
      case DSK_DTYPE_F16: {
        const uint16_t b = f16_bits(static_cast<float>(v));
        std::memcpy(p, &b, 2);
        break;
      }
      case DSK_DTYPE_INT32: {
        const auto x = static_cast<int32_t>(v);
        std::memcpy(p, &x, 4);
        break;
      }
      case DSK_DTYPE_INT64: {
        const auto x = static_cast<int64_t>(v);
        std::memcpy(p, &x, 8);
        break;
      }
      default:
        FAIL("Host::set: unsupported dtype " << dtype_label(dtype_));
    }
  }

  double get(int64_t i) const {
    const auto* p =
        reinterpret_cast<const uint8_t*>(storage_.data()) + i * int64_t(dtype_bytes(dtype_));
    switch (dtype_) {
      case DSK_DTYPE_F32: {
        float f;
        std::memcpy(&f, p, 4);
        return f;
      }
      case DSK_DTYPE_BF16: {
        uint16_t b;
        std::memcpy(&b, p, 2);
        return bf16_value(b);
      }
      case DSK_DTYPE_F16: {
        uint16_t b;
        std::memcpy(&b, p, 2);
        return f16_value(b);
      }
      case DSK_DTYPE_FP8_E4M3FN:
        return e4m3_value(*p);
      case DSK_DTYPE_INT32: {
        int32_t x;
        std::memcpy(&x, p, 4);
        return x;
      }
      case DSK_DTYPE_INT64: {
        int64_t x;
        std::memcpy(&x, p, 8);
        return static_cast<double>(x);
      }
      default:
        FAIL("Host::get: unsupported dtype " << dtype_label(dtype_));
        return 0;
    }
  }

  std::vector<double> values() const {
    std::vector<double> v(static_cast<size_t>(size()));
    for (int64_t i = 0; i < size(); ++i) v[static_cast<size_t>(i)] = get(i);
    return v;
  }

  void fill(double v) {
    for (int64_t i = 0; i < size(); ++i) set(i, v);
  }
  void fill_nan() { fill(std::numeric_limits<double>::quiet_NaN()); }
  // Uniform values in [lo, hi], rounded to the dtype.
  void fill_random(uint64_t seed, double lo = -1.0, double hi = 1.0) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> dist(lo, hi);
    for (int64_t i = 0; i < size(); ++i) set(i, dist(rng));
  }
  // Every byte set to `b` (a recognizable sentinel for "left untouched" checks).
  void fill_bytes(uint8_t b) { std::memset(storage_.data(), b, storage_.size() * 8); }
  std::vector<uint8_t> raw() const {
    const auto* p = reinterpret_cast<const uint8_t*>(storage_.data());
    return std::vector<uint8_t>(p, p + bytes());
  }

  // The whole tensor, row-major strides.
  const DLTensor* dl() {
    whole_ = View(data(), dtype_, shape_, row_major(shape_));
    return whole_.get();
  }
  // A view `element_offset` elements in, with its own shape and strides.
  View view(std::vector<int64_t> shape, std::vector<int64_t> strides, int64_t element_offset = 0) {
    auto* p =
        reinterpret_cast<uint8_t*>(storage_.data()) + element_offset * int64_t(dtype_bytes(dtype_));
    return View(p, dtype_, std::move(shape), std::move(strides));
  }
  // The same memory with another (row-major) shape of the same size.
  View reshaped(std::vector<int64_t> shape) {
    REQUIRE(numel(shape) == size());
    std::vector<int64_t> st = row_major(shape);
    return View(data(), dtype_, std::move(shape), std::move(st));
  }

 private:
  std::vector<int64_t> shape_;
  int32_t dtype_ = DSK_DTYPE_F32;
  std::vector<uint64_t> storage_;
  View whole_;
};

// Visits every multi-index of `shape` in row-major order with its element offset under `strides`.
template <typename Fn>
void for_each_index(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                    int64_t offset, Fn fn) {
  const int64_t n = numel(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = offset;
    for (size_t d = 0; d < shape.size(); ++d) off += idx[d] * strides[d];
    fn(i, off);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// The elements of a strided window of `h`, row-major over `shape`.
inline std::vector<double> gather(const Host& h, const std::vector<int64_t>& shape,
                                  const std::vector<int64_t>& strides, int64_t offset) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for_each_index(shape, strides, offset,
                 [&](int64_t i, int64_t off) { v[static_cast<size_t>(i)] = h.get(off); });
  return v;
}

inline void scatter(Host& h, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                    int64_t offset, const std::vector<double>& v) {
  REQUIRE(static_cast<int64_t>(v.size()) == numel(shape));
  for_each_index(shape, strides, offset,
                 [&](int64_t i, int64_t off) { h.set(off, v[static_cast<size_t>(i)]); });
}

// How an activation tensor lies in memory.
enum class Form {
  kContiguous,  // its own row-major buffer
  kSliced,  // columns 8 .. 8 + N of a row-major buffer 24 columns wider (a view like q_nope in q)
  kHeadMajor,    // the first two dims swapped in memory (for 2-D: column-major)
  kInterleaved,  // every other element of the last dim (last stride 2)
};

inline const char* form_label(Form f) {
  switch (f) {
    case Form::kContiguous:
      return "contiguous";
    case Form::kSliced:
      return "sliced";
    case Form::kHeadMajor:
      return "head-major";
    default:
      return "interleaved";
  }
}

// A float tensor of `shape` in form `form`; every buffer element outside the tensor holds NaN
// (inputs must not read it, outputs must not write it).
class Act {
 public:
  Act(std::vector<int64_t> shape, int32_t dtype_id, Form form) : shape_(std::move(shape)) {
    std::vector<int64_t> bshape = shape_;
    switch (form) {
      case Form::kContiguous:
        strides_ = row_major(bshape);
        break;
      case Form::kSliced:
        bshape.back() += 24;
        strides_ = row_major(bshape);
        offset_ = 8;
        break;
      case Form::kHeadMajor: {
        std::swap(bshape[0], bshape[1]);
        strides_ = row_major(bshape);
        std::swap(strides_[0], strides_[1]);
        break;
      }
      case Form::kInterleaved:
        bshape.back() *= 2;
        strides_ = row_major(bshape);
        strides_.back() = 2;
        offset_ = 1;
        break;
    }
    buf_ = Host(bshape, dtype_id);
    buf_.fill_nan();
    view_ = buf_.view(shape_, strides_, offset_);
  }
  Act(const Act&) = delete;
  Act& operator=(const Act&) = delete;

  const DLTensor* dl() const { return view_.get(); }
  const std::vector<int64_t>& shape() const { return shape_; }
  int32_t dtype() const { return buf_.dtype(); }
  std::vector<double> values() const { return gather(buf_, shape_, strides_, offset_); }
  void set(const std::vector<double>& v) { scatter(buf_, shape_, strides_, offset_, v); }
  void fill_random(uint64_t seed, double lo = -1.0, double hi = 1.0) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<double> v(static_cast<size_t>(numel(shape_)));
    for (double& x : v) x = dist(rng);
    set(v);
  }
  // Buffer elements outside the tensor that no longer hold NaN.
  int64_t padding_written() const {
    std::vector<char> inside(static_cast<size_t>(buf_.size()), 0);
    for_each_index(shape_, strides_, offset_,
                   [&](int64_t, int64_t off) { inside[static_cast<size_t>(off)] = 1; });
    int64_t n = 0;
    for (int64_t i = 0; i < buf_.size(); ++i) {
      if (!inside[static_cast<size_t>(i)] && !std::isnan(buf_.get(i))) ++n;
    }
    return n;
  }

 private:
  std::vector<int64_t> shape_, strides_;
  int64_t offset_ = 0;
  Host buf_;
  View view_;
};

inline Host ints(std::vector<int64_t> shape, int32_t dtype_id, const std::vector<int64_t>& v) {
  Host h(std::move(shape), dtype_id);
  REQUIRE(static_cast<int64_t>(v.size()) == h.size());
  for (size_t i = 0; i < v.size(); ++i) h.set(static_cast<int64_t>(i), static_cast<double>(v[i]));
  return h;
}

// ---- errors ----

inline bool is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// True when `name` occurs in `message` as a whole identifier (so "q" matches "q.shape[3]" or
// "q has" but not "seqlens").
inline bool names(const std::string& message, const std::string& name) {
  for (size_t pos = message.find(name); pos != std::string::npos;
       pos = message.find(name, pos + 1)) {
    const bool left = pos == 0 || !is_ident_char(message[pos - 1]);
    const size_t end = pos + name.size();
    const bool right = end >= message.size() || !is_ident_char(message[end]);
    if (left && right) return true;
  }
  return false;
}

// True when `message` names at least one of the '|'-separated identifiers in `alternatives`.
inline bool names_any(const std::string& message, const std::string& alternatives) {
  size_t start = 0;
  while (true) {
    const size_t bar = alternatives.find('|', start);
    if (names(message, alternatives.substr(start, bar - start))) return true;
    if (bar == std::string::npos) return false;
    start = bar + 1;
  }
}

// Asserts DSK_ERR_INVALID_ARGUMENT with a message naming every entry of `idents` (an entry "a|b"
// is satisfied by either name: for mismatches between two arguments, naming one suffices) and
// containing every fragment in `fragments`.
inline void expect_invalid(dsk_status status, std::initializer_list<const char*> idents,
                           std::initializer_list<const char*> fragments = {}) {
  const std::string message = dsk_last_error_message();
  CHECK_MESSAGE(status == DSK_ERR_INVALID_ARGUMENT, "status ", status, " (",
                dsk_status_string(status), "), message: ", message);
  for (const char* n : idents) {
    CHECK_MESSAGE(names_any(message, n), "message \"", message, "\" does not name \"",
                  std::string(n), "\"");
  }
  for (const char* f : fragments) {
    CHECK_MESSAGE(message.find(f) != std::string::npos, "message \"", message, "\" lacks \"",
                  std::string(f), "\"");
  }
}

#define MLA_REQUIRE_OK(call)                                                                    \
  do {                                                                                          \
    const dsk_status mla_status_ = (call);                                                      \
    REQUIRE_MESSAGE(mla_status_ == DSK_OK, #call, " -> ", dsk_status_string(mla_status_), ": ", \
                    dsk_last_error_message());                                                  \
  } while (0)

// ---- comparisons ----

// |got - want| <= atol + rtol * |want| for every element (NaN fails); -inf must match -inf.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want,
                        double atol, double rtol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    bool ok;
    if (std::isinf(want[i])) {
      ok = got[i] == want[i];
    } else {
      const double err = std::fabs(got[i] - want[i]);
      ok = err <= atol + rtol * std::fabs(want[i]);
      if (ok) worst = std::max(worst, err);
    }
    if (!ok && bad++ == 0) {
      FAIL_CHECK(what << ": element " << i << " is " << got[i] << ", expected " << want[i]
                      << " (atol " << atol << ", rtol " << rtol << ")");
    }
  }
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " of ", got.size(), " elements off");
}

// Element i compared with a tolerance of its own.
template <typename Tol>
void check_within(const std::vector<double>& got, const std::vector<double>& want, Tol tol,
                  const std::string& what) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::isinf(want[i]) ? got[i] == want[i] : std::fabs(got[i] - want[i]) <= tol(i);
    if (!ok && bad++ == 0) {
      FAIL_CHECK(what << ": element " << i << " is " << got[i] << ", expected " << want[i]
                      << " (tolerance " << tol(i) << ")");
    }
  }
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " of ", got.size(), " elements off");
}

// FlashMLA's output tolerance for bf16 (abs 8e-4, rel 2/128); for f16 the same form with f16's
// 3 more mantissa bits. The references here take the same rounded inputs, so the differences are
// the final rounding (half an ulp: 2^-9 bf16, 2^-11 f16, relative) plus f32 accumulation.
inline double out_atol(int32_t dtype_id) { return dtype_id == DSK_DTYPE_BF16 ? 8e-4 : 1e-4; }
inline double out_rtol(int32_t dtype_id) {
  return dtype_id == DSK_DTYPE_BF16 ? 2.0 / 128 : 2.0 / 1024;
}
// lse in f32 against a double reference: a few f32 ulps of |lse| <= ~10 plus the f32 rounding of
// the scores.
constexpr double kLseAtol = 1e-5;

// Random permutation of 0..n-1.
inline std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(p.begin(), p.end(), rng);
  return p;
}

}  // namespace mla_test

#endif  // DSK_TESTS_CAPI_MLA_TEST_UTIL_H_
