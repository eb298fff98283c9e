// ops_test_util.h - helpers shared by the core ops C API tests (test_ops_*.cpp): element counts,
// and moving values into and out of tensors of any float dtype through dsk_copy (to and from f32),
// so the tests depend on nothing but the public API.
#ifndef DSK_TESTS_CAPI_OPS_TEST_UTIL_H_
#define DSK_TESTS_CAPI_OPS_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace ops_test {

// The float dtypes the ops compute in.
constexpr int32_t kFloats[] = {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16};

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

inline std::string dtype_name(int32_t dtype_id) {
  return dsk_dtype_name(dsk_test::dtype(dtype_id));
}

// A contiguous CPU tensor of `dtype_id` holding `values` (rounded to the dtype by dsk_copy).
inline dsk_tensor* from_f32(dsk_context* ctx, const std::vector<int64_t>& shape, int32_t dtype_id,
                            const std::vector<float>& values) {
  REQUIRE(static_cast<int64_t>(values.size()) == numel(shape));
  dsk_test::Owned f32(dsk_test::make(ctx, shape, DSK_DTYPE_F32));
  if (!values.empty()) std::memcpy(f32.data<float>(), values.data(), values.size() * 4);
  dsk_tensor* t = dsk_test::make(ctx, shape, dtype_id);
  REQUIRE_MESSAGE(dsk_copy(ctx, f32.dl(), dsk_tensor_dltensor(t)) == DSK_OK,
                  dsk_last_error_message());
  return t;
}

// The elements of any float tensor (any strides) as f32, in row-major order.
inline std::vector<float> to_f32(dsk_context* ctx, const DLTensor* t) {
  std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
  dsk_test::Owned f32(dsk_test::make(ctx, shape, DSK_DTYPE_F32));
  REQUIRE_MESSAGE(dsk_copy(ctx, t, f32.dl()) == DSK_OK, dsk_last_error_message());
  const float* p = f32.data<float>();
  return std::vector<float>(p, p + numel(shape));
}

}  // namespace ops_test

#endif  // DSK_TESTS_CAPI_OPS_TEST_UTIL_H_
