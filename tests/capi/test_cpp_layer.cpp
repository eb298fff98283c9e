// dsk.hpp: RAII ownership and exceptions over the C API.
#include <doctest/doctest.h>

#include <cstring>
#include <dsk/dsk.hpp>

TEST_CASE("dsk.hpp contexts and tensors own their handles") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  CHECK(ctx.backend() == DSK_BACKEND_CPU);
  CHECK(ctx.device().device_type == kDLCPU);
  dsk::Tensor a = dsk::Tensor::empty(ctx, {2, 3}, dsk::dtype(DSK_DTYPE_F32));
  dsk::fill(ctx, a, 2.5);
  dsk::Tensor b = a;  // shares the reference
  CHECK(b.data<float>() == a.data<float>());
  dsk::Tensor t = a.view({3, 2}, {1, 3});
  CHECK(!t.is_contiguous());
  dsk::Tensor c = dsk::Tensor::clone(ctx, t.dl(), dsk::dtype(DSK_DTYPE_BF16));
  CHECK(c.is_contiguous());
  CHECK(c.nbytes() == 12);
  DLManagedTensorVersioned* m = a.to_dlpack();
  dsk::Tensor imported = dsk::Tensor::from_dlpack(m);
  CHECK(imported.data<float>()[5] == 2.5f);
  dsk::fill_uniform(ctx, a, 7);
  dsk::fill_normal(ctx, b, 7, 0.0, 1.0, /*offset=*/3);
  dsk::Context moved = std::move(ctx);
  CHECK(moved.get() != nullptr);
}

TEST_CASE("dsk.hpp turns failures into dsk::Error with the library's message") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  try {
    dsk::Tensor::empty(ctx, {-1}, dsk::dtype(DSK_DTYPE_F32));
    FAIL("expected dsk::Error");
  } catch (const dsk::Error& e) {
    CHECK(e.status() == DSK_ERR_INVALID_ARGUMENT);
    CHECK(std::strstr(e.what(), "shape[0] = -1") != nullptr);
  }
  CHECK_THROWS_AS(dsk::dtype(0), dsk::Error);
  dsk::Tensor empty;
  CHECK_THROWS_AS(empty.dl(), dsk::Error);
  CHECK(empty.data<float>() == nullptr);
  CHECK_THROWS_AS(dsk::Context(42), dsk::Error);
}
