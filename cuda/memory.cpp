// Device memory and host<->device transfers.
#include <cuda_runtime_api.h>

#include "core/backend_iface.h"
#include "cuda/backend.h"
#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"

namespace dsk {
namespace cuda {
namespace {

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// cudaMemcpyAsync returns before it has read page-locked (pinned or registered) host memory, but
// only after staging pageable memory. The table's memcpy promises the source is consumed on
// return, so pinned sources need a wait; unknown answers are treated as pinned to stay safe.
bool host_source_may_be_read_later(const void* src) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, src) != cudaSuccess) {
    (void)cudaGetLastError();
    return true;
  }
  return attributes.type != cudaMemoryTypeUnregistered;
}

}  // namespace

dsk_status malloc_device(int32_t device, size_t bytes, void* /*stream*/, void** ptr) noexcept {
  *ptr = nullptr;
  if (bytes == 0) return DSK_OK;
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(device));
  // cudaMalloc rather than the stream-ordered allocator: libdsk frees temporaries right after
  // queueing the work that reads them and relies on cudaFree waiting for that work.
  const cudaError_t error = cudaMalloc(ptr, bytes);
  if (error == cudaSuccess) return DSK_OK;
  *ptr = nullptr;
  if (error == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return fail(DSK_ERR_OUT_OF_MEMORY, "cudaMalloc: out of memory allocating %zu bytes on cuda:%d",
                bytes, device);
  }
  return cuda_failure(error, "cudaMalloc");
}

void free_device(int32_t device, void* ptr, void* /*stream*/) noexcept {
  if (ptr == nullptr) return;
  DeviceGuard guard;
  if (guard.set(device) != DSK_OK) return;
  // No one to report to (this runs from tensor destructors, possibly at process exit after the
  // runtime has shut down); the runtime's error slot is cleared so later calls are not blamed.
  if (cudaFree(ptr) != cudaSuccess) (void)cudaGetLastError();
}

dsk_status memcpy_device(int32_t device, void* dst, const void* src, size_t bytes,
                         int32_t direction, void* stream) noexcept {
  if (bytes == 0) return DSK_OK;
  cudaMemcpyKind kind;
  switch (direction) {
    case DSK_MEMCPY_HOST_TO_DEVICE:
      kind = cudaMemcpyHostToDevice;
      break;
    case DSK_MEMCPY_DEVICE_TO_HOST:
      kind = cudaMemcpyDeviceToHost;
      break;
    case DSK_MEMCPY_DEVICE_TO_DEVICE:
      kind = cudaMemcpyDeviceToDevice;
      break;
    default:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "memcpy direction = %d, expected DSK_MEMCPY_HOST_TO_DEVICE (1), "
                  "_DEVICE_TO_HOST (2) or _DEVICE_TO_DEVICE (3)",
                  direction);
  }
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(device));
  DSK_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, kind, as_stream(stream)));
  const bool wait = direction == DSK_MEMCPY_DEVICE_TO_HOST ||
                    (direction == DSK_MEMCPY_HOST_TO_DEVICE && host_source_may_be_read_later(src));
  if (wait) DSK_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(as_stream(stream)));
  return DSK_OK;
}

dsk_status synchronize(int32_t device, void* stream) noexcept {
  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(device));
  // Also surfaces errors of kernels queued earlier (illegal address, ...), which is the only
  // place asynchronous failures can be reported.
  DSK_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(as_stream(stream)));
  // Index errors that asynchronous MLA kernels found on the device (cuda/deferred_error.h).
  return take_deferred_error(device);
}

}  // namespace cuda
}  // namespace dsk
