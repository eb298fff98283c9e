// ops_norm_util.h - helpers shared by the RMSNorm, SwiGLU and RoPE C API tests.
//
// Values enter and leave tensors only through dsk_copy (to and from f32), so the tests depend on
// nothing but the public API; references are computed in double from the values actually stored.
#ifndef DSK_TESTS_CAPI_OPS_NORM_UTIL_H_
#define DSK_TESTS_CAPI_OPS_NORM_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops_test_util.h"
#include "test_util.h"

namespace norm_test {

using dsk_test::Owned;

using ops_test::kFloats;
using ops_test::numel;

inline std::vector<float> random_values(size_t n, uint64_t seed, float lo = -2.0f,
                                        float hi = 2.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A contiguous CPU tensor of `dtype_id` holding `values` (rounded to the dtype by dsk_copy).
inline dsk_tensor* make_values(dsk_context* ctx, const std::vector<int64_t>& shape,
                               int32_t dtype_id, const std::vector<float>& values) {
  return ops_test::from_f32(ctx, shape, dtype_id, values);
}

// The elements of any float tensor in row-major order, as doubles (exact).
inline std::vector<double> read(dsk_context* ctx, const DLTensor* t) {
  const std::vector<float> f = ops_test::to_f32(ctx, t);
  return std::vector<double>(f.begin(), f.end());
}

inline dsk_tensor* view(dsk_tensor* base, const std::vector<int64_t>& shape,
                        const std::vector<int64_t>& strides, int64_t offset = 0) {
  dsk_tensor* t = nullptr;
  REQUIRE_MESSAGE(dsk_tensor_view(base, static_cast<int32_t>(shape.size()), shape.data(),
                                  strides.empty() ? nullptr : strides.data(), offset, &t) == DSK_OK,
                  dsk_last_error_message());
  return t;
}

// Relative error allowed against a double reference: the output's rounding (half an ulp) plus
// the f32 arithmetic before it.
inline double rel_tolerance(int32_t out_dtype) {
  switch (out_dtype) {
    case DSK_DTYPE_BF16:
      return std::ldexp(1.0, -8);
    case DSK_DTYPE_F16:
      return std::ldexp(1.0, -10);
    default:
      return 1e-5;
  }
}

// Checks |got[i] - want[i]| <= tol(i) for every element; reports the first failure and the count.
template <typename Tol>
void check_within(const std::vector<double>& got, const std::vector<double>& want,
                  const std::string& what, Tol tol) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= tol(i))) {
      if (bad++ == 0) {
        FAIL_CHECK(what << ": element " << i << " is " << got[i] << ", expected " << want[i]);
      }
    }
  }
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " elements off");
}

// Within rel_tolerance(dtype) of want, plus 1e-6 absolute.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want,
                        int32_t dtype, const std::string& what) {
  const double rel = rel_tolerance(dtype);
  check_within(got, want, what, [&](size_t i) { return rel * std::fabs(want[i]) + 1e-6; });
}

// f32 -> bf16 -> f32 with round to nearest even (finite values), written independently of dsk.
inline float round_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

inline const char* dtype_label(int32_t id) {
  return id == DSK_DTYPE_F32 ? "f32" : id == DSK_DTYPE_F16 ? "f16" : "bf16";
}

}  // namespace norm_test

#endif  // DSK_TESTS_CAPI_OPS_NORM_UTIL_H_
