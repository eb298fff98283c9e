/* dsk_context.h - the execution context: backend, device, stream, allocator and workspace.
 *
 * A context binds work to one backend and one device. On CUDA, work is ordered on the context's
 * stream (the legacy default stream unless one is given) and is asynchronous: call
 * dsk_context_synchronize() before reading results on the host. One context per thread; a
 * context may move between threads but must not be used by two threads at once.
 */
#ifndef DSK_CONTEXT_H_
#define DSK_CONTEXT_H_

#include <stddef.h>
#include <stdint.h>

#include "dsk_dlpack.h"
#include "dsk_export.h"
#include "dsk_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsk_context dsk_context;

/* Optional allocator hook. dsk calls alloc for every tensor and workspace buffer it creates through
 * a context that carries the hook, and free with the same bytes, device and stream when that
 * buffer dies (possibly on another thread, after the context is gone). alloc returns NULL on
 * failure (dsk then reports DSK_ERR_OUT_OF_MEMORY). alignment is a power of two (64 on CPU, 256 on
 * CUDA). stream is the context's CUDA stream (NULL on CPU). */
typedef struct dsk_allocator {
  uint32_t struct_size;
  uint32_t reserved; /* always 0 */
  void* user;
  void* (*alloc)(void* user, size_t bytes, size_t alignment, DLDevice device, void* stream);
  void (*free)(void* user, void* ptr, size_t bytes, DLDevice device, void* stream);
} dsk_allocator;

/* Options for dsk_context_create. Initialize with dsk_context_options_init (or DSK_CONTEXT_OPTIONS
 * fields by hand, struct_size first); fields are only ever appended. */
typedef struct dsk_context_options {
  uint32_t struct_size;
  int32_t backend;   /* DSK_BACKEND_AUTO (default), DSK_BACKEND_CPU or DSK_BACKEND_CUDA */
  int32_t device_id; /* device index within the backend; default 0 */
  int32_t reserved;  /* always 0 */
  void* stream;      /* CUDA: a cudaStream_t to order work on (not owned); NULL = default stream */
  const dsk_allocator* allocator; /* NULL = built-in allocator; copied at create time */
} dsk_context_options;

/* Sets struct_size and the defaults above. Errors: DSK_ERR_INVALID_ARGUMENT for NULL. */
DSK_API dsk_status dsk_context_options_init(dsk_context_options* options);

/* Creates a context. options may be NULL for the defaults. Resolves DSK_BACKEND_AUTO (honouring the
 * DSK_BACKEND environment variable), loads the CUDA module when needed and checks device_id.
 * Errors: DSK_ERR_INVALID_ARGUMENT (NULL out, bad backend kind, device_id out of range, allocator
 * without alloc/free), DSK_ERR_VERSION_MISMATCH (struct_size too small),
 * DSK_ERR_BACKEND_UNAVAILABLE (CUDA asked for but not usable: the message says why),
 * DSK_ERR_OUT_OF_MEMORY. */
DSK_API dsk_status dsk_context_create(const dsk_context_options* options, dsk_context** out);

/* Destroys a context after finishing its queued work. Tensors created with it stay valid (they keep
 * what they need). NULL is ignored. */
DSK_API void dsk_context_destroy(dsk_context* ctx);

/* The backend kind (DSK_BACKEND_CPU or DSK_BACKEND_CUDA) and the DLDevice of the context. */
DSK_API dsk_status dsk_context_get_backend(const dsk_context* ctx, int32_t* backend);
DSK_API dsk_status dsk_context_get_device(const dsk_context* ctx, DLDevice* device);

/* Replaces the CUDA stream work is ordered on (NULL = default stream). Work already queued on the
 * old stream is not waited for. On CPU contexts the stream must be NULL. */
DSK_API dsk_status dsk_context_set_stream(dsk_context* ctx, void* stream);
DSK_API dsk_status dsk_context_get_stream(const dsk_context* ctx, void** stream);

/* Blocks until all work queued through this context has finished. Reports asynchronous device
 * errors (DSK_ERR_DEVICE_ERROR) raised by earlier calls. */
DSK_API dsk_status dsk_context_synchronize(dsk_context* ctx);

/* Workspace: scratch memory on the context's device that ops use instead of allocating.
 * dsk_context_set_workspace hands dsk caller-owned memory (ptr may be NULL with bytes 0 to go back
 * to an owned workspace); it must stay valid while the context uses it and be aligned to 256 bytes.
 * dsk_context_reserve_workspace grows the owned workspace to at least `bytes` now, so that later
 * ops need not allocate. dsk_context_get_workspace_size reports the current capacity. */
DSK_API dsk_status dsk_context_set_workspace(dsk_context* ctx, void* ptr, size_t bytes);
DSK_API dsk_status dsk_context_reserve_workspace(dsk_context* ctx, size_t bytes);
DSK_API dsk_status dsk_context_get_workspace_size(const dsk_context* ctx, size_t* bytes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_CONTEXT_H_ */
