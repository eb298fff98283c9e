#include "core/context.h"

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace dsk {

DLDevice context_device(const dsk_context& ctx) noexcept {
  DLDevice d{};
  d.device_type = ctx.backend->kind == DSK_BACKEND_CUDA ? kDLCUDA : kDLCPU;
  d.device_id = ctx.device_id;
  return d;
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

StoragePtr allocate_host(size_t bytes) {
  auto s = std::make_shared<Storage>();
  s->device = DLDevice{kDLCPU, 0};
  s->bytes = bytes;
  if (bytes == 0) return s;
  // aligned_alloc needs a size that is a multiple of the alignment.
  s->data = std::aligned_alloc(64, round_up(bytes, 64));
  if (s->data == nullptr)
    fail(DSK_ERR_OUT_OF_MEMORY, "out of host memory allocating {} bytes", bytes);
  void* p = s->data;
  s->release = [p] { std::free(p); };
  return s;
}

StoragePtr allocate(const dsk_context& ctx, size_t bytes) {
  const Backend& b = *ctx.backend;
  DLDevice device = context_device(ctx);
  if (!ctx.has_allocator) {
    if (b.kind == DSK_BACKEND_CPU) return allocate_host(bytes);
    auto s = std::make_shared<Storage>();
    s->device = device;
    s->bytes = bytes;
    void* p = nullptr;
    check_backend_call(b, b.iface->malloc(ctx.device_id, bytes, ctx.stream, &p),
                       fmt::format("allocating {} bytes", bytes).c_str());
    s->data = p;
    const dsk_backend_iface* iface = b.iface;
    int32_t dev = ctx.device_id;
    if (p != nullptr) s->release = [iface, dev, p] { iface->free(dev, p, nullptr); };
    return s;
  }
  auto s = std::make_shared<Storage>();
  s->device = device;
  s->bytes = bytes;
  if (bytes == 0) return s;
  size_t alignment = b.kind == DSK_BACKEND_CPU ? 64 : 256;
  dsk_allocator a = ctx.allocator;
  void* stream = ctx.stream;
  void* p = a.alloc(a.user, bytes, alignment, device, stream);
  if (p == nullptr) {
    fail(DSK_ERR_OUT_OF_MEMORY, "the allocator hook returned NULL for {} bytes on {}", bytes,
         device_string(device));
  }
  if (reinterpret_cast<uintptr_t>(p) % alignment != 0) {
    a.free(a.user, p, bytes, device, stream);
    fail(DSK_ERR_INVALID_ARGUMENT, "the allocator hook returned {} bytes not aligned to {}", bytes,
         alignment);
  }
  s->data = p;
  s->release = [a, p, bytes, device, stream] { a.free(a.user, p, bytes, device, stream); };
  return s;
}

void check_context(const dsk_context* ctx) {
  check_arg(ctx != nullptr, "ctx is NULL, expected a context from dsk_context_create");
}

void check_on_context_device(const dsk_context& ctx, const Layout& l, const char* name) {
  DLDevice want = context_device(ctx);
  bool same = l.backend == ctx.backend->kind &&
              (l.backend == DSK_BACKEND_CPU || l.device.device_id == ctx.device_id);
  check_arg(same, "{} is on {}, expected the context's device {}", name, device_string(l.device),
            device_string(want));
}

}  // namespace dsk
