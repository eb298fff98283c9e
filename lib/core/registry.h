// registry.h - the backends known to this process and how DSK_BACKEND_AUTO is resolved.
//
// The CPU backend is built in. The CUDA backend is a module (libdsk-cuda.so) loaded on first need
// and kept loaded for the life of the process (tensors may outlive every context, and their
// release calls back into the module, so it is never unloaded).
#ifndef DSK_LIB_CORE_REGISTRY_H_
#define DSK_LIB_CORE_REGISTRY_H_

#include <string>

#include "core/backend_iface.h"

namespace dsk {

struct Backend {
  int32_t kind = 0;  // DSK_BACKEND_CPU / DSK_BACKEND_CUDA
  std::string name;
  const dsk_backend_iface* iface = nullptr;  // NULL when unavailable
  int32_t score = 0;
  int32_t device_count = 0;
  std::string reason;  // why unavailable ("" when available)
  bool available() const { return iface != nullptr && device_count > 0; }
};

// The backend of `kind` (DSK_BACKEND_CPU or DSK_BACKEND_CUDA), loading the CUDA module on first
// use. Never throws; an unknown kind yields an unavailable backend.
const Backend& backend(int32_t kind) noexcept;

// Resolves DSK_BACKEND_AUTO using the DSK_BACKEND environment variable and availability.
int32_t default_backend() noexcept;

// Why DSK_BACKEND holds a value dsk does not understand ("" when it is fine).
std::string backend_env_error();

// Throws dsk::Error(status, iface->last_error()) when a backend call failed.
void check_backend_call(const Backend& b, dsk_status status, const char* what);

// The CPU backend's function table (lib/cpu).
const dsk_backend_iface* cpu_backend_iface() noexcept;

}  // namespace dsk

#endif  // DSK_LIB_CORE_REGISTRY_H_
