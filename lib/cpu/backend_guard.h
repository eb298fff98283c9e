// backend_guard.h - how the CPU backend's table functions report failures.
//
// The table functions are called through C function pointers and must not throw: guarded() turns
// dsk::Error (and anything else) into a status plus a message for the table's last_error().
#ifndef DSK_LIB_CPU_BACKEND_GUARD_H_
#define DSK_LIB_CPU_BACKEND_GUARD_H_

#include <new>

#include "core/error.h"

namespace dsk {
namespace cpu {

// Records the calling thread's CPU backend error (truncated, never allocates).
void set_error(const char* message) noexcept;
// The calling thread's last CPU backend error ("" if none).
const char* last_error() noexcept;

template <typename F>
dsk_status guarded(F&& f) noexcept {
  try {
    f();
    return DSK_OK;
  } catch (const Error& e) {
    set_error(e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    set_error("out of host memory");
    return DSK_ERR_OUT_OF_MEMORY;
  } catch (...) {
    set_error("unexpected exception in the CPU backend");
    return DSK_ERR_INTERNAL;
  }
}

inline dsk_status fail_unimplemented(const char* op) noexcept {
  return guarded([&] { fail(DSK_ERR_UNSUPPORTED, "{} is not implemented yet", op); });
}

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_BACKEND_GUARD_H_
