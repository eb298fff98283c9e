#include <cstring>
#include <thread>
#include <vector>

#include "test_util.h"

using dsk_test::CpuContext;
using dsk_test::dtype;
using dsk_test::expect_error;
using dsk_test::make;

namespace {

// A producer-side managed tensor over a std::vector, counting deleter calls.
struct Producer {
  std::vector<float> data;
  std::vector<int64_t> shape, strides;
  int deletes = 0;
  DLManagedTensorVersioned versioned{};
  DLManagedTensor legacy{};

  Producer(std::vector<int64_t> s, std::vector<int64_t> st = {})
      : shape(std::move(s)), strides(std::move(st)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    data.resize(static_cast<size_t>(n) + 4);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
    DLTensor t{};
    t.data = data.data();
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = DLDataType{kDLFloat, 32, 1};
    t.shape = shape.data();
    t.strides = strides.empty() ? nullptr : strides.data();
    versioned.version = DLPackVersion{1, 0};
    versioned.manager_ctx = this;
    versioned.deleter = [](DLManagedTensorVersioned* self) {
      static_cast<Producer*>(self->manager_ctx)->deletes++;
    };
    versioned.dl_tensor = t;
    legacy.dl_tensor = t;
    legacy.manager_ctx = this;
    legacy.deleter = [](DLManagedTensor* self) {
      static_cast<Producer*>(self->manager_ctx)->deletes++;
    };
  }
};

}  // namespace

TEST_CASE("versioned export describes the tensor and holds a reference") {
  CpuContext ctx;
  dsk_tensor* t = make(ctx, {2, 3}, DSK_DTYPE_BF16);
  DLManagedTensorVersioned* m = nullptr;
  REQUIRE(dsk_tensor_to_dlpack_versioned(t, &m) == DSK_OK);
  CHECK(m->version.major == 1);
  CHECK(m->version.minor >= 0);
  CHECK(m->flags == 0);
  CHECK((m->deleter != nullptr));
  CHECK(m->dl_tensor.data == dsk_tensor_dltensor(t)->data);
  CHECK(m->dl_tensor.byte_offset == 0);
  CHECK(m->dl_tensor.ndim == 2);
  CHECK(m->dl_tensor.shape[1] == 3);
  REQUIRE(m->dl_tensor.strides != nullptr);
  CHECK(m->dl_tensor.strides[0] == 3);
  CHECK(m->dl_tensor.dtype.code == kDLBfloat);
  CHECK(m->dl_tensor.device.device_type == kDLCPU);
  void* data = dsk_tensor_dltensor(t)->data;
  dsk_tensor_release(t);  // the export keeps the storage alive
  std::memset(data, 0, 12);
  // The deleter may run on another thread.
  std::thread([m] { m->deleter(m); }).join();
}

TEST_CASE("legacy export works for pre-1.0 consumers") {
  CpuContext ctx;
  dsk_tensor* t = make(ctx, {4}, DSK_DTYPE_INT64);
  DLManagedTensor* m = nullptr;
  REQUIRE(dsk_tensor_to_dlpack(t, &m) == DSK_OK);
  CHECK(m->dl_tensor.shape[0] == 4);
  CHECK(m->dl_tensor.dtype.code == kDLInt);
  CHECK(m->dl_tensor.dtype.bits == 64);
  dsk_tensor_release(t);
  m->deleter(m);
  expect_error(dsk_tensor_to_dlpack(nullptr, &m), DSK_ERR_INVALID_ARGUMENT, {"tensor is NULL"});
  expect_error(dsk_tensor_to_dlpack_versioned(nullptr, nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"out is NULL"});
}

TEST_CASE("import takes ownership and calls the deleter exactly once, after the last view") {
  Producer p({3, 4});
  dsk_tensor* t = nullptr;
  REQUIRE(dsk_tensor_from_dlpack_versioned(&p.versioned, &t) == DSK_OK);
  CHECK(dsk_tensor_dltensor(t)->data == p.data.data());
  CHECK(dsk_tensor_dltensor(t)->strides[0] == 4);  // NULL strides read as row-major
  CHECK(dsk_tensor_is_read_only(t) == 0);
  const int64_t row[1] = {4};
  dsk_tensor* view = nullptr;
  REQUIRE(dsk_tensor_view(t, 1, row, nullptr, 8, &view) == DSK_OK);
  CHECK(static_cast<float*>(dsk_tensor_dltensor(view)->data)[0] == 8.0f);
  const int64_t too_far[1] = {5};
  dsk_tensor* bad = nullptr;
  expect_error(dsk_tensor_view(t, 1, too_far, nullptr, 8, &bad), DSK_ERR_INVALID_ARGUMENT,
               {"storage"});
  DLManagedTensorVersioned* again = nullptr;
  REQUIRE(dsk_tensor_to_dlpack_versioned(view, &again) == DSK_OK);
  dsk_tensor_release(t);
  dsk_tensor_release(view);
  CHECK(p.deletes == 0);
  again->deleter(again);
  CHECK(p.deletes == 1);
}

TEST_CASE("import honours byte_offset, strides and the read-only flag") {
  Producer p({2, 2}, {1, 2});
  p.versioned.dl_tensor.byte_offset = 2 * sizeof(float);
  p.versioned.flags = DLPACK_FLAG_BITMASK_READ_ONLY;
  dsk_tensor* t = nullptr;
  REQUIRE(dsk_tensor_from_dlpack_versioned(&p.versioned, &t) == DSK_OK);
  CHECK(dsk_tensor_is_read_only(t) == 1);
  CHECK(dsk_tensor_is_contiguous(t) == 0);
  CpuContext ctx;
  std::vector<float> out(4);
  dsk_test::Borrowed o(out.data(), {2, 2}, DSK_DTYPE_F32);
  REQUIRE(dsk_copy(ctx, dsk_tensor_dltensor(t), &o) == DSK_OK);
  CHECK(out == std::vector<float>{2, 4, 3, 5});  // element [r][c] = data[2 + r + 2c]
  DLManagedTensorVersioned* m = nullptr;
  REQUIRE(dsk_tensor_to_dlpack_versioned(t, &m) == DSK_OK);
  CHECK((m->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0);
  m->deleter(m);
  DLManagedTensor* legacy_export = nullptr;
  expect_error(dsk_tensor_to_dlpack(t, &legacy_export), DSK_ERR_UNSUPPORTED,
               {"read-only", "dsk_tensor_to_dlpack_versioned"});
  CHECK(legacy_export == nullptr);
  dsk_tensor_release(t);
  CHECK(p.deletes == 1);

  Producer legacy({5});
  REQUIRE(dsk_tensor_from_dlpack(&legacy.legacy, &t) == DSK_OK);
  CHECK(dsk_tensor_numel(t) == 5);
  dsk_tensor_release(t);
  CHECK(legacy.deletes == 1);
}

TEST_CASE("a rejected import leaves ownership with the caller") {
  dsk_tensor* t = nullptr;
  Producer major2({2});
  major2.versioned.version.major = 2;
  expect_error(dsk_tensor_from_dlpack_versioned(&major2.versioned, &t), DSK_ERR_VERSION_MISMATCH,
               {"version.major = 2", "expected 1"});
  CHECK(major2.deletes == 0);

  Producer lanes({2});
  lanes.versioned.dl_tensor.dtype.lanes = 2;
  expect_error(dsk_tensor_from_dlpack_versioned(&lanes.versioned, &t), DSK_ERR_INVALID_ARGUMENT,
               {"lanes = 2"});
  Producer f64({2});
  f64.legacy.dl_tensor.dtype.bits = 64;
  expect_error(dsk_tensor_from_dlpack(&f64.legacy, &t), DSK_ERR_INVALID_ARGUMENT, {"bits 64"});
  Producer vulkan({2});
  vulkan.versioned.dl_tensor.device.device_type = kDLVulkan;
  expect_error(dsk_tensor_from_dlpack_versioned(&vulkan.versioned, &t), DSK_ERR_INVALID_ARGUMENT,
               {"device type 7"});
  Producer ndim({2});
  ndim.versioned.dl_tensor.ndim = 12;
  expect_error(dsk_tensor_from_dlpack_versioned(&ndim.versioned, &t), DSK_ERR_INVALID_ARGUMENT,
               {"ndim = 12"});
  Producer negative({2, 2}, {-2, 1});
  expect_error(dsk_tensor_from_dlpack_versioned(&negative.versioned, &t), DSK_ERR_INVALID_ARGUMENT,
               {"strides[0] = -2"});
  expect_error(dsk_tensor_from_dlpack_versioned(nullptr, &t), DSK_ERR_INVALID_ARGUMENT,
               {"managed is NULL"});
  expect_error(dsk_tensor_from_dlpack(nullptr, &t), DSK_ERR_INVALID_ARGUMENT, {"managed is NULL"});
  CHECK(t == nullptr);
  CHECK(lanes.deletes + f64.deletes + vulkan.deletes + ndim.deletes + negative.deletes == 0);
}

TEST_CASE("export then import round-trips without copying") {
  CpuContext ctx;
  dsk_tensor* t = make(ctx, {8}, DSK_DTYPE_F32);
  REQUIRE(dsk_fill(ctx, dsk_tensor_dltensor(t), 4.0) == DSK_OK);
  DLManagedTensorVersioned* m = nullptr;
  REQUIRE(dsk_tensor_to_dlpack_versioned(t, &m) == DSK_OK);
  dsk_tensor* back = nullptr;
  REQUIRE(dsk_tensor_from_dlpack_versioned(m, &back) == DSK_OK);
  CHECK(dsk_tensor_dltensor(back)->data == dsk_tensor_dltensor(t)->data);
  dsk_tensor_release(t);
  CHECK(static_cast<float*>(dsk_tensor_dltensor(back)->data)[7] == 4.0f);
  dsk_tensor_release(back);  // runs the export's deleter, which frees the storage
}
