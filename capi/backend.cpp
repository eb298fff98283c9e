// Backend and device queries.
#include <cstring>

#include "capi/guard.h"
#include "core/registry.h"
#include "dsk/dsk_backend.h"

namespace {

void copy_text(char* dst, size_t capacity, const std::string& text) {
  size_t n = text.size() < capacity - 1 ? text.size() : capacity - 1;
  std::memcpy(dst, text.data(), n);
  dst[n] = '\0';
}

void check_kind(int32_t backend) {
  dsk::check_arg(backend == DSK_BACKEND_CPU || backend == DSK_BACKEND_CUDA,
                 "backend = {}, expected DSK_BACKEND_CPU (1) or DSK_BACKEND_CUDA (2)", backend);
}

}  // namespace

extern "C" {

DSK_API dsk_status dsk_backend_info_init(dsk_backend_info* info) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(info != nullptr, "info is NULL, expected a dsk_backend_info");
    std::memset(static_cast<void*>(info), 0, sizeof(*info));
    info->struct_size = sizeof(*info);
  });
}

DSK_API dsk_status dsk_device_props_init(dsk_device_props* props) {
  return dsk::capi_call(__func__, [&] {
    dsk::check_arg(props != nullptr, "props is NULL, expected a dsk_device_props");
    std::memset(static_cast<void*>(props), 0, sizeof(*props));
    props->struct_size = sizeof(*props);
  });
}

DSK_API dsk_status dsk_backend_get_info(int32_t backend, dsk_backend_info* info) {
  return dsk::capi_call(__func__, [&] {
    check_kind(backend);
    dsk::check_arg(info != nullptr, "info is NULL, expected a dsk_backend_info");
    const dsk::Backend& b = dsk::backend(backend);
    dsk_backend_info full{};
    full.struct_size = sizeof(full);
    full.backend = backend;
    full.available = b.available() ? 1 : 0;
    full.score = b.available() ? b.score : 0;
    full.device_count = b.available() ? b.device_count : 0;
    copy_text(full.name, sizeof(full.name), b.name);
    copy_text(full.reason, sizeof(full.reason), b.available() ? std::string() : b.reason);
    dsk::write_versioned(full, info, sizeof(dsk_backend_info), "info");
  });
}

DSK_API int32_t dsk_device_count(int32_t backend) {
  if (backend != DSK_BACKEND_CPU && backend != DSK_BACKEND_CUDA) return 0;
  const dsk::Backend& b = dsk::backend(backend);
  return b.available() ? b.device_count : 0;
}

DSK_API dsk_status dsk_device_get_props(int32_t backend, int32_t device_id,
                                        dsk_device_props* props) {
  return dsk::capi_call(__func__, [&] {
    check_kind(backend);
    dsk::check_arg(props != nullptr, "props is NULL, expected a dsk_device_props");
    const dsk::Backend& b = dsk::backend(backend);
    if (!b.available()) {
      dsk::fail(DSK_ERR_BACKEND_UNAVAILABLE, "the {} backend is unavailable: {}", b.name, b.reason);
    }
    dsk::check_arg(device_id >= 0 && device_id < b.device_count,
                   "device_id = {}, expected 0 <= device_id < {} ({} devices)", device_id,
                   b.device_count, b.name);
    dsk_device_props full{};
    full.struct_size = sizeof(full);
    dsk::check_backend_call(b, b.iface->device_props(device_id, &full), "device_props");
    full.struct_size = sizeof(full);
    full.backend = backend;
    full.device_id = device_id;
    dsk::write_versioned(full, props, sizeof(dsk_device_props), "props");
  });
}

DSK_API int32_t dsk_backend_default(void) { return dsk::default_backend(); }

}  // extern "C"
