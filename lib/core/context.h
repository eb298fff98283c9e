// context.h - the definition behind the opaque dsk_context handle, and allocation through it.
#ifndef DSK_LIB_CORE_CONTEXT_H_
#define DSK_LIB_CORE_CONTEXT_H_

#include "core/layout.h"
#include "core/registry.h"
#include "core/storage.h"
#include "dsk/dsk_context.h"

struct dsk_context {
  const dsk::Backend* backend = nullptr;
  int32_t device_id = 0;
  void* stream = nullptr;
  bool has_allocator = false;
  dsk_allocator allocator{};
  // Workspace: either owned (workspace_storage set) or borrowed from the caller.
  dsk::StoragePtr workspace_storage;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace dsk {

DLDevice context_device(const dsk_context& ctx) noexcept;

// Allocates `bytes` on the context's device through its allocator hook or backend (64-byte aligned
// on CPU, 256 on CUDA). Throws DSK_ERR_OUT_OF_MEMORY. The storage frees itself, even after the
// context is gone.
StoragePtr allocate(const dsk_context& ctx, size_t bytes);

// Temporary host memory for staging copies (64-byte aligned), independent of any context.
StoragePtr allocate_host(size_t bytes);

// Throws unless the tensor's memory belongs to the context's backend and device.
void check_on_context_device(const dsk_context& ctx, const Layout& l, const char* name);

// Where an op on memory described by `l` runs: the dispatch rule of docs/ARCHITECTURE.md. Host
// memory runs on the CPU backend under any context; CUDA memory needs the context's device and
// runs on its stream. Throws naming `name` when the tensor is not on the context's device.
struct ExecTarget {
  const Backend& backend;
  int32_t device;
  void* stream;
};
ExecTarget exec_target(const dsk_context& ctx, const Layout& l, const char* name);

// Throws unless ctx is non-NULL.
void check_context(const dsk_context* ctx);

}  // namespace dsk

#endif  // DSK_LIB_CORE_CONTEXT_H_
