#include "core/context.h"

#include "core/error.h"

namespace dsk {

DLDevice context_device(const dsk_context& ctx) noexcept {
  DLDevice d{};
  d.device_type = ctx.backend->kind == DSK_BACKEND_CUDA ? kDLCUDA : kDLCPU;
  d.device_id = ctx.device_id;
  return d;
}

// Memory from a backend's own allocator (64-byte aligned on CPU, 256 on CUDA), freed through the
// same backend table, which outlives every storage (modules are never unloaded).
static StoragePtr allocate_on(const Backend& b, DLDevice device, size_t bytes, void* stream) {
  auto s = std::make_shared<Storage>();
  s->device = device;
  s->bytes = bytes;
  // The release action exists before the memory does, so no later failure can leak it (backends
  // accept freeing NULL).
  const dsk_backend_iface* iface = b.iface;
  const int32_t dev = device.device_id;
  Storage* self = s.get();
  s->release = [iface, dev, self] { iface->free(dev, self->data, nullptr); };
  check_backend_call(b, b.iface->malloc(dev, bytes, stream, &s->data),
                     fmt::format("allocating {} bytes", bytes).c_str());
  return s;
}

StoragePtr allocate_host(size_t bytes) {
  return allocate_on(backend(DSK_BACKEND_CPU), DLDevice{kDLCPU, 0}, bytes, nullptr);
}

StoragePtr allocate(const dsk_context& ctx, size_t bytes) {
  const Backend& b = *ctx.backend;
  DLDevice device = context_device(ctx);
  if (!ctx.has_allocator) return allocate_on(b, device, bytes, ctx.stream);
  auto s = std::make_shared<Storage>();
  s->device = device;
  s->bytes = bytes;
  if (bytes == 0) return s;
  size_t alignment = b.kind == DSK_BACKEND_CPU ? 64 : 256;
  dsk_allocator a = ctx.allocator;
  void* stream = ctx.stream;
  s->release = [a, self = s.get(), bytes, device, stream] {
    if (self->data != nullptr) a.free(a.user, self->data, bytes, device, stream);
  };
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
  return s;
}

ExecTarget exec_target(const dsk_context& ctx, const Layout& l, const char* name) {
  if (l.backend == DSK_BACKEND_CPU) return ExecTarget{backend(DSK_BACKEND_CPU), 0, nullptr};
  check_on_context_device(ctx, l, name);
  return ExecTarget{*ctx.backend, ctx.device_id, ctx.stream};
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
