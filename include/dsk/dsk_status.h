/* dsk_status.h - status codes, the per-thread error message and the log hook.
 *
 * Every fallible dsk function returns a dsk_status. DSK_OK is 0; the other codes are stable and
 * never renumbered. On failure the calling thread's dsk_last_error_message() names the function,
 * the argument and the value that was expected. The library never prints, never aborts and never
 * lets a C++ exception escape; diagnostics go to the log callback, which is silent by default.
 */
#ifndef DSK_STATUS_H_
#define DSK_STATUS_H_

#include <stdint.h>

#include "dsk_export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t dsk_status;

#define DSK_OK 0
/* An argument is NULL, out of range, of the wrong shape, dtype, device or stride. */
#define DSK_ERR_INVALID_ARGUMENT 1
/* The request is valid but not implemented for this dtype/shape/backend/architecture. */
#define DSK_ERR_UNSUPPORTED 2
/* Host or device memory could not be allocated. Nothing was leaked. */
#define DSK_ERR_OUT_OF_MEMORY 3
/* The requested backend is not built, could not be loaded, or has no usable device. */
#define DSK_ERR_BACKEND_UNAVAILABLE 4
/* The CUDA runtime, driver or a CUDA library reported an error. */
#define DSK_ERR_DEVICE_ERROR 5
/* A struct_size, DLPack version or ABI version is not one this library understands. */
#define DSK_ERR_VERSION_MISMATCH 6
/* A bug in dsk. Please report it with dsk_last_error_message(). */
#define DSK_ERR_INTERNAL 7
/* A file could not be opened, inspected, mapped or read (the message names the path and the
 * operating system's reason). */
#define DSK_ERR_IO 8
/* A name looked up in a container (a tensor, a metadata key) is not there; the message names it. */
#define DSK_ERR_NOT_FOUND 9

/* Static text for a status code ("ok", "invalid argument", ...; "unknown status" otherwise). */
DSK_API const char* dsk_status_string(dsk_status status);

/* The message of the last failed dsk call on this thread ("" if none failed yet). The pointer stays
 * valid until the next dsk call on the same thread; copy it if you need it longer. Never NULL. A
 * successful call does not clear it: test the returned status, not the message. */
DSK_API const char* dsk_last_error_message(void);

/* Log levels, most severe first. */
#define DSK_LOG_ERROR 1
#define DSK_LOG_WARN 2
#define DSK_LOG_INFO 3
#define DSK_LOG_DEBUG 4

/* Receives one complete message (no trailing newline) at a time. May be called from any thread that
 * calls into dsk; calls are serialized, and the callback must not call dsk functions itself. */
typedef void (*dsk_log_fn)(int32_t level, const char* message, void* user);

/* Installs (fn != NULL) or removes (fn == NULL) the process-wide log callback and its user pointer.
 * Messages above max_level (e.g. DSK_LOG_DEBUG when max_level is DSK_LOG_INFO) are not delivered.
 * Thread-safe. */
DSK_API void dsk_log_set(dsk_log_fn fn, void* user, int32_t max_level);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DSK_STATUS_H_ */
