#include "core/error.h"

namespace dsk {
namespace {
// A fixed buffer instead of std::string: the pointer handed out stays valid until the next
// failure on this thread, and setting it never allocates (so it works while out of memory).
constexpr size_t kMessageCapacity = 1024;
thread_local char t_last_error[kMessageCapacity] = "";
}  // namespace

void set_last_error(const std::string& message) noexcept {
  size_t n = message.size() < kMessageCapacity - 1 ? message.size() : kMessageCapacity - 1;
  message.copy(t_last_error, n);
  t_last_error[n] = '\0';
}

const char* last_error() noexcept { return t_last_error; }

}  // namespace dsk
