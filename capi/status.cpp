// Status text, the per-thread error message, logging and version queries.
#include "capi/guard.h"
#include "dsk/dsk_status.h"
#include "dsk/dsk_version.h"

extern "C" {

DSK_API const char* dsk_status_string(dsk_status status) {
  switch (status) {
    case DSK_OK:
      return "ok";
    case DSK_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case DSK_ERR_UNSUPPORTED:
      return "unsupported";
    case DSK_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case DSK_ERR_BACKEND_UNAVAILABLE:
      return "backend unavailable";
    case DSK_ERR_DEVICE_ERROR:
      return "device error";
    case DSK_ERR_VERSION_MISMATCH:
      return "version mismatch";
    case DSK_ERR_INTERNAL:
      return "internal error";
    case DSK_ERR_IO:
      return "i/o error";
    case DSK_ERR_NOT_FOUND:
      return "not found";
    default:
      return "unknown status";
  }
}

DSK_API const char* dsk_last_error_message(void) { return dsk::last_error(); }

DSK_API void dsk_log_set(dsk_log_fn fn, void* user, int32_t max_level) {
  dsk::log_set(fn, user, max_level);
}

DSK_API uint32_t dsk_version_number(void) { return DSK_VERSION_NUMBER; }

DSK_API const char* dsk_version_string(void) { return DSK_VERSION_STRING; }

DSK_API uint32_t dsk_abi_version(void) { return DSK_ABI_VERSION; }

}  // extern "C"
