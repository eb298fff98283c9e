// guard.h - the one place where C++ exceptions turn into dsk_status codes.
//
// Every extern "C" function body runs inside capi_call(), which catches everything (dsk::Error,
// std::bad_alloc, anything else), records "function: message" as the thread's last error, and
// returns the status. Nothing is thrown across the ABI and nothing is printed.
#ifndef DSK_CAPI_GUARD_H_
#define DSK_CAPI_GUARD_H_

#include <cstring>
#include <new>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace dsk {

inline dsk_status report(const char* function, dsk_status status, const char* message) noexcept {
  try {
    std::string text = std::string(function) + ": " + message;
    set_last_error(text);
    log(DSK_LOG_DEBUG, "{}", text);
  } catch (...) {
    set_last_error(std::string());
  }
  return status;
}

template <typename F>
dsk_status capi_call(const char* function, F&& body) noexcept {
  try {
    body();
    return DSK_OK;
  } catch (const Error& e) {
    return report(function, e.status(), e.what());
  } catch (const std::bad_alloc&) {
    return report(function, DSK_ERR_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return report(function, DSK_ERR_INTERNAL, e.what());
  } catch (...) {
    return report(function, DSK_ERR_INTERNAL, "unknown exception");
  }
}

// Reads a caller's versioned struct (struct_size first): fields the caller's version lacks keep
// the defaults already in *out. Throws DSK_ERR_VERSION_MISMATCH when struct_size is below the
// first released size `min_size`.
template <typename T>
void read_versioned(const T* in, T* out, size_t min_size, const char* name) {
  check_arg(in != nullptr, "{} is NULL, expected a struct initialized by its _init function", name);
  if (in->struct_size < min_size) {
    fail(DSK_ERR_VERSION_MISMATCH, "{}->struct_size = {}, expected at least {}", name,
         in->struct_size, min_size);
  }
  size_t n = in->struct_size < sizeof(T) ? in->struct_size : sizeof(T);
  std::memcpy(static_cast<void*>(out), in, n);
  out->struct_size = static_cast<uint32_t>(sizeof(T));
}

// Writes a full struct into a caller's versioned struct, as much as its struct_size holds.
template <typename T>
void write_versioned(const T& full, T* out, size_t min_size, const char* name) {
  check_arg(out != nullptr, "{} is NULL, expected a struct initialized by its _init function",
            name);
  uint32_t caller_size = out->struct_size;
  if (caller_size < min_size) {
    fail(DSK_ERR_VERSION_MISMATCH, "{}->struct_size = {}, expected at least {}", name, caller_size,
         min_size);
  }
  size_t n = caller_size < sizeof(T) ? caller_size : sizeof(T);
  std::memcpy(static_cast<void*>(out), &full, n);
  out->struct_size = caller_size;
}

}  // namespace dsk

#endif  // DSK_CAPI_GUARD_H_
