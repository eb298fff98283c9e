// error.h - how the CUDA module reports failures to libdsk.
//
// Every function of the backend table returns a dsk_status and leaves a message for
// dsk_backend_iface::last_error() on the calling thread. Nothing here throws, prints or aborts:
// the module runs inside a host process that may have no terminal and must survive device errors.
#ifndef DSK_CUDA_ERROR_H_
#define DSK_CUDA_ERROR_H_

#include <cuda_runtime_api.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// Message of the calling thread's last failure ("" if none). Never NULL; valid until the next
// failure on the same thread.
const char* last_error() noexcept;

// Records a printf-style message as the thread's last error and returns `status`.
dsk_status fail(dsk_status status, const char* format, ...) noexcept
    __attribute__((format(printf, 2, 3)));

// Records "<what>: <cudaGetErrorString> (<cudaGetErrorName>)" and maps `error` to a status:
// cudaErrorMemoryAllocation -> DSK_ERR_OUT_OF_MEMORY, everything else -> DSK_ERR_DEVICE_ERROR.
// `what` is cut at its first '(' so that the text of a call expression names just the function.
// Also resets the runtime's last-error slot, so that a recoverable error (an allocation failure,
// a bad launch configuration) is not reported a second time by an unrelated later check; errors
// that corrupt the CUDA context stay sticky and keep failing every call, as they must.
dsk_status cuda_failure(cudaError_t error, const char* what) noexcept;

// Reports a failed kernel launch (bad configuration, no kernel image for the device) for the
// kernel family `what`; DSK_OK when the launch was accepted.
dsk_status check_launch(const char* what) noexcept;

// DSK_ERR_UNSUPPORTED for an op this module does not implement yet.
inline dsk_status fail_unimplemented(const char* op) noexcept {
  return fail(DSK_ERR_UNSUPPORTED, "%s is not implemented by the CUDA backend yet", op);
}

}  // namespace cuda
}  // namespace dsk

// Returns from the enclosing function (which returns dsk_status) when a CUDA runtime call fails.
#define DSK_CUDA_RETURN_IF_ERROR(expr)                          \
  do {                                                          \
    const cudaError_t dsk_cuda_error_ = (expr);                 \
    if (dsk_cuda_error_ != cudaSuccess) {                       \
      return ::dsk::cuda::cuda_failure(dsk_cuda_error_, #expr); \
    }                                                           \
  } while (0)

// Returns from the enclosing function when a dsk_status-returning call fails (message already
// recorded by the callee).
#define DSK_RETURN_IF_FAILED(expr)                 \
  do {                                             \
    const dsk_status dsk_status_ = (expr);         \
    if (dsk_status_ != DSK_OK) return dsk_status_; \
  } while (0)

#endif  // DSK_CUDA_ERROR_H_
