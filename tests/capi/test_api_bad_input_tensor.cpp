// Bad-input sweep (sweep_test_util.h) over the tensor functions of dsk_tensor.h that take a
// DLTensor: copy, clone, fill, random fill, validation and DLPack import. These accept any shape
// and most dtypes, so only the limits at the top of dsk_tensor.h make a tensor invalid here.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "sweep_test_util.h"

using sweep::Case;
using sweep::Expect;

namespace {

constexpr int32_t kF32 = DSK_DTYPE_F32, kBF16 = DSK_DTYPE_BF16;

// Shapes and dtypes any tensor may have (smaller than the buffer: safe to run), and larger ones
// that are just as valid but describe memory the test does not own.
void any_shape_or_dtype(Case& c, int i) {
  c.expect(i, {sweep::kScalar, sweep::kExtraDim, sweep::kDropDim, sweep::kLastMinus1, sweep::kE5M2},
           Expect::kOk);
  c.expect(i, {sweep::kFirstPlus1, sweep::kLastPlus1, sweep::kHugeShape}, Expect::kSkip);
}

// Nothing is read and no context is involved (validation, zero-copy import): only the limits
// apply, whatever the shape, dtype, layout or device type.
void only_limits_apply(Case& c, int i) {
  any_shape_or_dtype(c, i);
  c.expect(i,
           {sweep::kFirstPlus1, sweep::kLastPlus1, sweep::kHugeShape, sweep::kWrongClass,
            sweep::kCuda, sweep::kCudaManaged, sweep::kZeroStride, sweep::kOverlapStride},
           Expect::kOk);
  c.all_cuda(Expect::kOk);
}

}  // namespace

TEST_CASE("bad input sweep: dsk_copy") {
  Case c("dsk_copy");
  const int src = c.in("src", {3, 4}, kF32), dst = c.out("dst", {3, 4}, kBF16);
  c.call = [&] { return dsk_copy(c.ctx, c[src], c[dst]); };
  // Conversions between any supported dtypes; src may overlap itself.
  c.expect(src, {sweep::kE5M2, sweep::kWrongClass, sweep::kZeroStride, sweep::kOverlapStride},
           Expect::kOk);
  c.expect(dst, sweep::kE5M2, Expect::kOk);
  c.expect(dst, sweep::kWrongClass, Expect::kSkip);  // int32 is wider than the bf16 buffer
  c.run();
}

TEST_CASE("bad input sweep: dsk_tensor_clone") {
  Case c("dsk_tensor_clone");
  const int src = c.in("src", {3, 4}, kF32);
  DLDataType to = dsk_test::dtype(kBF16);
  c.call = [&] {
    dsk_tensor* out = nullptr;
    const dsk_status s = dsk_tensor_clone(c.ctx, c[src], to, &out);
    dsk_tensor_release(out);
    return s;
  };
  any_shape_or_dtype(c, src);
  c.expect(src, {sweep::kWrongClass, sweep::kZeroStride, sweep::kOverlapStride}, Expect::kOk);
  c.bad("dtype f64", {"dtype"}, [&] {
    dsk_tensor* out = nullptr;
    return dsk_tensor_clone(c.ctx, c[src], DLDataType{kDLFloat, 64, 1}, &out);
  });
  c.bad("out NULL", {"out"}, [&] { return dsk_tensor_clone(c.ctx, c[src], to, nullptr); });
  c.run();
}

TEST_CASE("bad input sweep: dsk_fill and dsk_fill_random") {
  {
    Case c("dsk_fill");
    const int dst = c.out("dst", {3, 4}, kF32);
    c.call = [&] { return dsk_fill(c.ctx, c[dst], 1.5); };
    any_shape_or_dtype(c, dst);
    c.expect(dst, sweep::kWrongClass, Expect::kOk);  // int32: as wide as f32
    c.run();
  }
  {
    Case c("dsk_fill_random");
    const int dst = c.out("dst", {3, 4}, kBF16);
    dsk_random_params params;
    REQUIRE(dsk_random_params_init(&params) == DSK_OK);
    const dsk_random_params* p = &params;
    c.call = [&] { return dsk_fill_random(c.ctx, c[dst], p); };
    any_shape_or_dtype(c, dst);
    c.expect(dst, sweep::kE5M2, Expect::kAny);  // "floating dtypes": fp8 is not named either way
    c.versioned("params", p, params);
    c.bad("distribution 3", {"distribution"}, [&] {
      dsk_random_params bad = params;
      bad.distribution = 3;
      return dsk_fill_random(c.ctx, c[dst], &bad);
    });
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_dltensor_validate") {
  Case c("dsk_dltensor_validate");
  const int t = c.in("t", {3, 4}, kF32);
  c.call = [&] { return dsk_dltensor_validate(c[t], "t"); };
  only_limits_apply(c, t);
  c.run();
}

// A lone size-2 dim with stride INT64_MAX puts the last element at exactly INT64_MAX: its span
// (last offset + 1) overflows int64, and once wrapped a 1-byte tensor used to pass validation and
// crash the op that wrote it. Spans above 2^56 bytes cannot be real memory either.
TEST_CASE("tensors whose strides reach past any address space are rejected") {
  dsk_test::CpuContext ctx;
  uint8_t buf[8] = {};
  for (int32_t id : {DSK_DTYPE_UINT8, DSK_DTYPE_BOOL, DSK_DTYPE_FP8_E4M3FN, kF32}) {
    const dsk_test::Borrowed t(buf, {2}, id, {INT64_MAX});
    const std::string dtype = dsk_dtype_name(t.dl.dtype);
    INFO(dtype);
    CHECK(dsk_dltensor_validate(&t, "t") == DSK_ERR_INVALID_ARGUMENT);
    const dsk_test::Borrowed near(buf, {2}, id, {(int64_t{1} << 56) + 1});
    CHECK(dsk_dltensor_validate(&near, "t") == DSK_ERR_INVALID_ARGUMENT);
  }
  const dsk_test::Borrowed u8(buf, {2}, DSK_DTYPE_UINT8, {INT64_MAX});
  CHECK(dsk_fill(ctx, &u8, 1.0) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(std::string(dsk_last_error_message()).find("2^56 bytes") != std::string::npos);
  // The largest span that may be real memory still validates (nothing is read).
  const dsk_test::Borrowed edge(buf, {2}, DSK_DTYPE_UINT8, {(int64_t{1} << 56) - 1});
  CHECK(dsk_dltensor_validate(&edge, "t") == DSK_OK);
}

// dsk_dtype.h: src and dst of dsk_convert_host must not overlap unless they are the same pointer
// with equal dtypes (a widening conversion in place would overwrite values before reading them:
// f32 {1, 2, 3, 4} to int64 gave {1, 0, 0, 0}).
TEST_CASE("dsk_convert_host rejects overlapping buffers") {
  alignas(8) unsigned char buf[64] = {};
  const float values[4] = {1, 2, 3, 4};
  std::memcpy(buf, values, sizeof(values));
  const DLDataType f32 = dsk_test::dtype(kF32), bf16 = dsk_test::dtype(kBF16),
                   i64 = dsk_test::dtype(DSK_DTYPE_INT64);
  CHECK(dsk_convert_host(f32, buf, i64, buf, 4) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_convert_host(f32, buf, bf16, buf + 2, 4) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(dsk_convert_host(f32, buf + 4, f32, buf, 4) == DSK_ERR_INVALID_ARGUMENT);
  CHECK(std::string(dsk_last_error_message()).find("overlap") != std::string::npos);
  float same[4] = {1, 2, 3, 4};
  CHECK(dsk_convert_host(f32, same, f32, same, 4) == DSK_OK);  // documented as allowed
  CHECK(same[3] == 4.0f);
  float out[4] = {};
  CHECK(dsk_convert_host(f32, buf, f32, out, 4) == DSK_OK);
  CHECK(out[2] == 3.0f);
}

TEST_CASE("bad input sweep: DLPack import") {
  for (bool versioned : {true, false}) {
    Case c(versioned ? "dsk_tensor_from_dlpack_versioned" : "dsk_tensor_from_dlpack");
    const int t = c.in("managed->dl_tensor", {3, 4}, kF32);
    int deletes = 0;
    // Ownership moves only on success: the deleter runs once, at the release, or never.
    auto import = [&](const DLTensor* dl) {
      DLManagedTensorVersioned mv{};
      DLManagedTensor ml{};
      mv.version = DLPackVersion{1, 1};
      mv.manager_ctx = ml.manager_ctx = &deletes;
      mv.deleter = [](DLManagedTensorVersioned* m) { ++*static_cast<int*>(m->manager_ctx); };
      ml.deleter = [](DLManagedTensor* m) { ++*static_cast<int*>(m->manager_ctx); };
      if (dl != nullptr) mv.dl_tensor = ml.dl_tensor = *dl;
      dsk_tensor* out = nullptr;
      deletes = 0;
      const dsk_status s = versioned ? dsk_tensor_from_dlpack_versioned(dl ? &mv : nullptr, &out)
                                     : dsk_tensor_from_dlpack(dl ? &ml : nullptr, &out);
      CHECK(deletes == 0);
      dsk_tensor_release(out);
      CHECK(deletes == (s == DSK_OK ? 1 : 0));
      return s;
    };
    c.call = [&] { return import(c[t]); };
    c.expect(t, sweep::kNull, Expect::kSkip);  // the NULL managed struct, below
    c.bad("managed NULL", {"managed"}, [&] { return import(nullptr); });
    only_limits_apply(c, t);  // zero-copy
    c.run();
  }
}
