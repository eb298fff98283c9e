// Context creation, stream, synchronization and workspace.
#include "core/context.h"

#include <memory>
#include <string>

#include "capi/guard.h"
#include "dsk/dsk_backend.h"
#include "dsk/dsk_context.h"

namespace {

dsk_context_options default_options() {
  dsk_context_options o{};
  o.struct_size = sizeof(o);
  o.backend = DSK_BACKEND_AUTO;
  return o;
}

// Drops an owned workspace after the work queued on the context (which may still read it) has
// finished: an allocator hook's free need not wait for the stream.
void release_workspace(dsk_context& ctx) {
  if (ctx.workspace_storage == nullptr) return;
  const dsk::Backend& b = *ctx.backend;
  dsk::check_backend_call(b, b.iface->synchronize(ctx.device_id, ctx.stream), "synchronize");
  ctx.workspace_storage.reset();
  ctx.workspace = nullptr;
  ctx.workspace_bytes = 0;
}

}  // namespace

extern "C" {

DSK_API dsk_status dsk_context_options_init(dsk_context_options* options) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(options != nullptr, "options is NULL, expected a dsk_context_options");
    *options = default_options();
  });
}

DSK_API dsk_status dsk_context_create(const dsk_context_options* options, dsk_context** out) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(out != nullptr, "out is NULL, expected a dsk_context* to write");
    *out = nullptr;
    dsk_context_options o = default_options();
    if (options != nullptr)
      dsk::read_versioned(options, &o, sizeof(dsk_context_options), "options");
    dsk::check_arg(o.backend >= DSK_BACKEND_AUTO && o.backend < DSK_BACKEND_COUNT,
                   "options->backend = {}, expected DSK_BACKEND_AUTO (0), _CPU (1) or _CUDA (2)",
                   o.backend);
    dsk::check_arg(o.reserved == 0, "options->reserved = {}, expected 0", o.reserved);
    if (o.backend == DSK_BACKEND_AUTO) {
      std::string env_error = dsk::backend_env_error();
      dsk::check_arg(env_error.empty(), "options->backend is DSK_BACKEND_AUTO but {}", env_error);
    }
    int32_t kind = o.backend == DSK_BACKEND_AUTO ? dsk::default_backend() : o.backend;
    const dsk::Backend& b = dsk::backend(kind);
    if (!b.available()) {
      dsk::fail(DSK_ERR_BACKEND_UNAVAILABLE, "the {} backend is unavailable: {}", b.name, b.reason);
    }
    dsk::check_arg(o.device_id >= 0 && o.device_id < b.device_count,
                   "options->device_id = {}, expected 0 <= device_id < {} ({} devices)",
                   o.device_id, b.device_count, b.name);
    dsk::check_arg(kind == DSK_BACKEND_CUDA || o.stream == nullptr,
                   "options->stream is set, expected NULL for a CPU context");
    if (kind == DSK_BACKEND_CUDA) {
      // dsk's kernels are built for sm_80 and newer; an older GPU would fail at every launch.
      dsk_device_props props{};
      props.struct_size = sizeof(props);
      dsk::check_backend_call(b, b.iface->device_props(o.device_id, &props), "device_props");
      if (props.compute_capability_major < 8) {
        dsk::fail(DSK_ERR_UNSUPPORTED,
                  "cuda:{} ({}) has compute capability {}.{}, expected 8.0 or newer", o.device_id,
                  props.name, props.compute_capability_major, props.compute_capability_minor);
      }
    }
    auto ctx = std::make_unique<dsk_context>();
    ctx->backend = &b;
    ctx->device_id = o.device_id;
    ctx->stream = o.stream;
    if (o.allocator != nullptr) {
      dsk_allocator a{};
      dsk::read_versioned(o.allocator, &a, sizeof(dsk_allocator), "options->allocator");
      dsk::check_arg(a.reserved == 0, "options->allocator->reserved = {}, expected 0", a.reserved);
      dsk::check_arg(a.alloc != nullptr && a.free != nullptr,
                     "options->allocator has a NULL alloc or free, expected both functions");
      ctx->has_allocator = true;
      ctx->allocator = a;
    }
    *out = ctx.release();
  });
}

DSK_API void dsk_context_destroy(dsk_context* ctx) {
  if (ctx == nullptr) return;
  if (ctx->backend != nullptr && ctx->backend->iface != nullptr) {
    // Queued work may still read the workspace; errors surface nowhere else, so they are logged.
    dsk_status s = ctx->backend->iface->synchronize(ctx->device_id, ctx->stream);
    if (s != DSK_OK) dsk::log(DSK_LOG_WARN, "dsk_context_destroy: synchronize failed ({})", s);
  }
  delete ctx;
}

DSK_API dsk_status dsk_context_get_backend(const dsk_context* ctx, int32_t* backend) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::check_arg(backend != nullptr, "backend is NULL, expected an int32_t to write");
    *backend = ctx->backend->kind;
  });
}

DSK_API dsk_status dsk_context_get_device(const dsk_context* ctx, DLDevice* device) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::check_arg(device != nullptr, "device is NULL, expected a DLDevice to write");
    *device = dsk::context_device(*ctx);
  });
}

DSK_API dsk_status dsk_context_set_stream(dsk_context* ctx, void* stream) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::check_arg(ctx->backend->kind == DSK_BACKEND_CUDA || stream == nullptr,
                   "stream is set, expected NULL for a CPU context");
    ctx->stream = stream;
  });
}

DSK_API dsk_status dsk_context_get_stream(const dsk_context* ctx, void** stream) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::check_arg(stream != nullptr, "stream is NULL, expected a void* to write");
    *stream = ctx->stream;
  });
}

DSK_API dsk_status dsk_context_synchronize(dsk_context* ctx) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    const dsk::Backend& b = *ctx->backend;
    dsk::check_backend_call(b, b.iface->synchronize(ctx->device_id, ctx->stream), "synchronize");
  });
}

DSK_API dsk_status dsk_context_set_workspace(dsk_context* ctx, void* ptr, size_t bytes) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::check_arg(ptr != nullptr || bytes == 0, "ptr is NULL with bytes = {}, expected bytes 0",
                   bytes);
    dsk::check_arg(reinterpret_cast<uintptr_t>(ptr) % 256 == 0,
                   "ptr is not aligned to 256 bytes, expected 256-byte alignment");
    release_workspace(*ctx);
    ctx->workspace = ptr;
    ctx->workspace_bytes = bytes;
  });
}

DSK_API dsk_status dsk_context_reserve_workspace(dsk_context* ctx, size_t bytes) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    if (bytes <= ctx->workspace_bytes) return;
    dsk::check_arg(ctx->workspace == nullptr || ctx->workspace_storage != nullptr,
                   "the workspace was set by dsk_context_set_workspace with {} bytes, expected "
                   "bytes <= that, or set a larger one",
                   ctx->workspace_bytes);
    dsk::StoragePtr grown = dsk::allocate(*ctx, bytes);
    release_workspace(*ctx);
    ctx->workspace_storage = std::move(grown);
    ctx->workspace = ctx->workspace_storage->data;
    ctx->workspace_bytes = bytes;
  });
}

DSK_API dsk_status dsk_context_get_workspace_size(const dsk_context* ctx, size_t* bytes) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_context(ctx);
    dsk::check_arg(bytes != nullptr, "bytes is NULL, expected a size_t to write");
    *bytes = ctx->workspace_bytes;
  });
}

}  // extern "C"
