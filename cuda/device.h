// device.h - device selection and device queries for the CUDA module.
#ifndef DSK_CUDA_DEVICE_H_
#define DSK_CUDA_DEVICE_H_

#include <stdint.h>

#include "dsk/dsk_backend.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// Makes `device` current for the calling thread for the guard's lifetime, then restores the
// previous one: dsk is embedded in programs that manage devices themselves, and a library call
// must not silently move their thread to another GPU.
class DeviceGuard {
 public:
  DeviceGuard() = default;
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard();

  dsk_status set(int32_t device) noexcept;

 private:
  int previous_ = -1;  // -1: nothing to restore
};

// Number of CUDA devices the runtime sees; 0 when the driver or devices are missing.
int32_t device_count() noexcept;

// Fills *props (all fields but struct_size) for `device`.
// Errors: DSK_ERR_INVALID_ARGUMENT (device out of range), DSK_ERR_DEVICE_ERROR.
dsk_status device_props(int32_t device, dsk_device_props* props) noexcept;

// Streaming multiprocessors of the current device (at least 1), for sizing grids.
dsk_status current_multiprocessor_count(int32_t* count) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_DEVICE_H_
