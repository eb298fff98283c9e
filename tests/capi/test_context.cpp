#include <cstdint>
#include <cstdlib>
#include <map>

#include "test_util.h"

using dsk_test::expect_error;

TEST_CASE("a default context resolves AUTO to an available backend") {
  dsk_context* ctx = nullptr;
  REQUIRE(dsk_context_create(nullptr, &ctx) == DSK_OK);
  int32_t backend = 0;
  REQUIRE(dsk_context_get_backend(ctx, &backend) == DSK_OK);
  CHECK(backend == dsk_backend_default());
  DLDevice dev{};
  REQUIRE(dsk_context_get_device(ctx, &dev) == DSK_OK);
  CHECK(dev.device_type == (backend == DSK_BACKEND_CUDA ? kDLCUDA : kDLCPU));
  CHECK(dev.device_id == 0);
  void* stream = reinterpret_cast<void*>(1);
  REQUIRE(dsk_context_get_stream(ctx, &stream) == DSK_OK);
  CHECK(stream == nullptr);
  CHECK(dsk_context_synchronize(ctx) == DSK_OK);
  dsk_context_destroy(ctx);
  dsk_context_destroy(nullptr);  // ignored
}

TEST_CASE("context options are validated") {
  dsk_context_options o;
  REQUIRE(dsk_context_options_init(&o) == DSK_OK);
  CHECK(o.struct_size == sizeof(o));
  CHECK(o.backend == DSK_BACKEND_AUTO);
  CHECK(o.device_id == 0);
  CHECK(o.stream == nullptr);
  CHECK(o.allocator == nullptr);
  dsk_context* ctx = reinterpret_cast<dsk_context*>(0x1);

  dsk_context_options bad = o;
  bad.backend = 5;
  expect_error(dsk_context_create(&bad, &ctx), DSK_ERR_INVALID_ARGUMENT,
               {"options->backend = 5", "DSK_BACKEND_AUTO"});
  CHECK(ctx == nullptr);  // out is cleared on failure

  bad = o;
  bad.backend = DSK_BACKEND_CPU;
  bad.device_id = 3;
  expect_error(dsk_context_create(&bad, &ctx), DSK_ERR_INVALID_ARGUMENT,
               {"options->device_id = 3", "0 <= device_id < 1"});

  bad = o;
  bad.backend = DSK_BACKEND_CPU;
  bad.stream = reinterpret_cast<void*>(0x10);
  expect_error(dsk_context_create(&bad, &ctx), DSK_ERR_INVALID_ARGUMENT,
               {"options->stream", "CPU context"});

  bad = o;
  bad.struct_size = 4;
  expect_error(dsk_context_create(&bad, &ctx), DSK_ERR_VERSION_MISMATCH,
               {"options->struct_size = 4"});

  bad = o;
  bad.backend = DSK_BACKEND_CPU;
  bad.reserved = 7;
  expect_error(dsk_context_create(&bad, &ctx), DSK_ERR_INVALID_ARGUMENT,
               {"options->reserved = 7", "expected 0"});

  expect_error(dsk_context_options_init(nullptr), DSK_ERR_INVALID_ARGUMENT, {"options is NULL"});
  expect_error(dsk_context_get_backend(nullptr, nullptr), DSK_ERR_INVALID_ARGUMENT,
               {"ctx is NULL"});
  expect_error(dsk_context_synchronize(nullptr), DSK_ERR_INVALID_ARGUMENT, {"ctx is NULL"});

  if (dsk_device_count(DSK_BACKEND_CUDA) == 0) {
    bad = o;
    bad.backend = DSK_BACKEND_CUDA;
    expect_error(dsk_context_create(&bad, &ctx), DSK_ERR_BACKEND_UNAVAILABLE,
                 {"cuda backend is unavailable"});
  }
}

TEST_CASE("a CPU context refuses a stream") {
  dsk_test::CpuContext ctx;
  expect_error(dsk_context_set_stream(ctx, reinterpret_cast<void*>(0x10)), DSK_ERR_INVALID_ARGUMENT,
               {"CPU context"});
  CHECK(dsk_context_set_stream(ctx, nullptr) == DSK_OK);
}

namespace {
struct CountingAllocator {
  std::map<void*, size_t> live;
  int allocs = 0;
  int frees = 0;
  bool fail = false;
  size_t last_alignment = 0;
};
void* counting_alloc(void* user, size_t bytes, size_t alignment, DLDevice, void*) {
  auto* a = static_cast<CountingAllocator*>(user);
  if (a->fail) return nullptr;
  void* p = std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
  a->live[p] = bytes;
  a->allocs++;
  a->last_alignment = alignment;
  return p;
}
void counting_free(void* user, void* ptr, size_t bytes, DLDevice, void*) {
  auto* a = static_cast<CountingAllocator*>(user);
  CHECK(a->live.count(ptr) == 1);
  CHECK(a->live[ptr] == bytes);
  a->live.erase(ptr);
  a->frees++;
  std::free(ptr);
}
}  // namespace

TEST_CASE("the allocator hook serves every tensor and workspace, and frees each exactly once") {
  CountingAllocator counter;
  dsk_allocator hook{};
  hook.struct_size = sizeof(hook);
  hook.user = &counter;
  hook.alloc = counting_alloc;
  hook.free = counting_free;
  dsk_context_options o;
  dsk_context_options_init(&o);
  o.backend = DSK_BACKEND_CPU;
  o.allocator = &hook;
  dsk_context* ctx = nullptr;
  REQUIRE(dsk_context_create(&o, &ctx) == DSK_OK);

  dsk_tensor* t = dsk_test::make(ctx, {16, 16}, DSK_DTYPE_F32);
  CHECK(counter.allocs == 1);
  CHECK(counter.last_alignment == 64);
  REQUIRE(dsk_context_reserve_workspace(ctx, 4096) == DSK_OK);
  CHECK(counter.allocs == 2);
  size_t ws = 0;
  REQUIRE(dsk_context_get_workspace_size(ctx, &ws) == DSK_OK);
  CHECK(ws == 4096);
  REQUIRE(dsk_context_reserve_workspace(ctx, 100) == DSK_OK);  // already large enough
  CHECK(counter.allocs == 2);

  dsk_context_destroy(ctx);   // the tensor outlives its context
  CHECK(counter.frees == 1);  // the workspace
  dsk_tensor_release(t);
  CHECK(counter.frees == 2);
  CHECK(counter.live.empty());

  counter.fail = true;
  REQUIRE(dsk_context_create(&o, &ctx) == DSK_OK);
  dsk_tensor* none = nullptr;
  const int64_t shape[1] = {10};
  expect_error(dsk_tensor_create(ctx, 1, shape, dsk_test::dtype(DSK_DTYPE_F32), &none),
               DSK_ERR_OUT_OF_MEMORY, {"allocator hook returned NULL"});
  CHECK(none == nullptr);
  dsk_context_destroy(ctx);

  hook.reserved = 1;
  expect_error(dsk_context_create(&o, &ctx), DSK_ERR_INVALID_ARGUMENT,
               {"options->allocator->reserved = 1"});
  hook.reserved = 0;
  hook.free = nullptr;
  expect_error(dsk_context_create(&o, &ctx), DSK_ERR_INVALID_ARGUMENT, {"alloc or free"});
}

TEST_CASE("a caller-provided workspace is used as given") {
  dsk_test::CpuContext ctx;
  alignas(256) static unsigned char buffer[1024];
  REQUIRE(dsk_context_set_workspace(ctx, buffer, sizeof(buffer)) == DSK_OK);
  size_t ws = 0;
  REQUIRE(dsk_context_get_workspace_size(ctx, &ws) == DSK_OK);
  CHECK(ws == 1024);
  expect_error(dsk_context_reserve_workspace(ctx, 4096), DSK_ERR_INVALID_ARGUMENT,
               {"dsk_context_set_workspace"});
  expect_error(dsk_context_set_workspace(ctx, buffer + 1, 16), DSK_ERR_INVALID_ARGUMENT, {"256"});
  expect_error(dsk_context_set_workspace(ctx, nullptr, 16), DSK_ERR_INVALID_ARGUMENT,
               {"ptr is NULL"});
  REQUIRE(dsk_context_set_workspace(ctx, nullptr, 0) == DSK_OK);
  REQUIRE(dsk_context_reserve_workspace(ctx, 4096) == DSK_OK);
  REQUIRE(dsk_context_get_workspace_size(ctx, &ws) == DSK_OK);
  CHECK(ws == 4096);
}
