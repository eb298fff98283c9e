#include "core/log.h"

#include <mutex>

namespace dsk {
namespace {
struct LogSink {
  std::mutex mutex;
  dsk_log_fn fn = nullptr;
  void* user = nullptr;
  int32_t max_level = 0;
};

LogSink& sink() {
  static LogSink instance;
  return instance;
}
}  // namespace

void log_set(dsk_log_fn fn, void* user, int32_t max_level) noexcept {
  LogSink& s = sink();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.fn = fn;
  s.user = user;
  s.max_level = fn ? max_level : 0;
}

bool log_enabled(int32_t level) noexcept {
  LogSink& s = sink();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.fn != nullptr && level <= s.max_level;
}

void log_message(int32_t level, const std::string& message) noexcept {
  LogSink& s = sink();
  // Holding the lock during the callback serializes messages and guarantees a callback is never
  // called after dsk_log_set replaced it.
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.fn != nullptr && level <= s.max_level) s.fn(level, message.c_str(), s.user);
}

}  // namespace dsk
