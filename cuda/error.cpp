#include "cuda/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

namespace dsk {
namespace cuda {
namespace {

// A fixed buffer rather than std::string: recording an error must not allocate (the failure may
// be an out-of-memory one) and must not throw into the C callers.
thread_local char t_message[1024];

}  // namespace

const char* last_error() noexcept { return t_message; }

dsk_status fail(dsk_status status, const char* format, ...) noexcept {
  va_list args;
  va_start(args, format);
  vsnprintf(t_message, sizeof(t_message), format, args);
  va_end(args);
  return status;
}

dsk_status cuda_failure(cudaError_t error, const char* what) noexcept {
  (void)cudaGetLastError();
  const int name_length = static_cast<int>(strcspn(what, "("));
  const dsk_status status =
      error == cudaErrorMemoryAllocation ? DSK_ERR_OUT_OF_MEMORY : DSK_ERR_DEVICE_ERROR;
  return fail(status, "%.*s: %s (%s)", name_length, what, cudaGetErrorString(error),
              cudaGetErrorName(error));
}

dsk_status check_launch(const char* what) noexcept {
  const cudaError_t error = cudaGetLastError();
  if (error == cudaSuccess) return DSK_OK;
  char text[128];
  snprintf(text, sizeof(text), "%s kernel launch", what);
  return cuda_failure(error, text);
}

}  // namespace cuda
}  // namespace dsk
