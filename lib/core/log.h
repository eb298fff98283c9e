// log.h - delivery of diagnostics to the user's callback (silent when none is installed).
#ifndef DSK_LIB_CORE_LOG_H_
#define DSK_LIB_CORE_LOG_H_

#include <fmt/format.h>

#include <string>
#include <utility>

#include "dsk/dsk_status.h"

namespace dsk {

void log_set(dsk_log_fn fn, void* user, int32_t max_level) noexcept;
bool log_enabled(int32_t level) noexcept;
void log_message(int32_t level, const std::string& message) noexcept;

template <typename... Args>
void log(int32_t level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!log_enabled(level)) return;
  try {
    log_message(level, fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {
    // Formatting can only fail by running out of memory; a lost log line is acceptable.
  }
}

}  // namespace dsk

#endif  // DSK_LIB_CORE_LOG_H_
