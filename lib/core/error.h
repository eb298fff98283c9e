// error.h - dsk's internal error type and argument-check helpers.
//
// Internals report failures by throwing dsk::Error; the C API layer (capi/guard.h) is the only
// place that catches, so no exception ever crosses the ABI. Messages name the argument and what was
// expected; the C API prefixes the function name.
#ifndef DSK_LIB_CORE_ERROR_H_
#define DSK_LIB_CORE_ERROR_H_

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "dsk/dsk_status.h"

namespace dsk {

class Error : public std::runtime_error {
 public:
  Error(dsk_status status, std::string message)
      : std::runtime_error(std::move(message)), status_(status) {}
  dsk_status status() const noexcept { return status_; }

 private:
  dsk_status status_;
};

template <typename... Args>
[[noreturn]] void fail(dsk_status status, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(status, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void check_arg(bool ok, fmt::format_string<Args...> format, Args&&... args) {
  if (!ok) fail(DSK_ERR_INVALID_ARGUMENT, format, std::forward<Args>(args)...);
}

// The thread's last error message (see dsk_last_error_message).
void set_last_error(const std::string& message) noexcept;
const char* last_error() noexcept;

}  // namespace dsk

#endif  // DSK_LIB_CORE_ERROR_H_
