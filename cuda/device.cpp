#include "cuda/device.h"

#include <cuda_runtime_api.h>
#include <stdint.h>
#include <string.h>

#include <atomic>

#include "cuda/error.h"

namespace dsk {
namespace cuda {

DeviceGuard::~DeviceGuard() {
  // Failing to restore can only mean the context is already broken; the caller has its status.
  if (previous_ >= 0 && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
}

namespace {

constexpr int kMaxPoolDevices = 64;
std::atomic<bool> g_pool_configured[kMaxPoolDevices] = {};

// Stream-ordered temporaries (stream_temp.h) come from the device's default memory pool, whose
// release threshold is 0: every synchronize hands the pool's memory back to the driver, and the
// next cudaMallocAsync maps it again inside the stream, which measured ~50 us per GEMM on an H100
// (a 1-token linear layer took 55 us for 8 MB of weights). Keeping what the pool has reserved
// (it never exceeds the peak of dsk's temporaries plus the caller's own pool use) removes that.
// Best effort: a failure leaves the default behavior.
void keep_pool_memory(int32_t device) noexcept {
  if (device < 0 || device >= kMaxPoolDevices) return;
  if (g_pool_configured[device].load(std::memory_order_acquire)) return;
  cudaMemPool_t pool = nullptr;
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
    uint64_t threshold = UINT64_MAX;
    if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold) != cudaSuccess) {
      (void)cudaGetLastError();
    }
  } else {
    (void)cudaGetLastError();
  }
  g_pool_configured[device].store(true, std::memory_order_release);
}

}  // namespace

dsk_status DeviceGuard::set(int32_t device) noexcept {
  int current = 0;
  DSK_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
  if (current != device) {
    DSK_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
    if (previous_ < 0) previous_ = current;
  }
  keep_pool_memory(device);
  return DSK_OK;
}

int32_t device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

dsk_status device_props(int32_t device, dsk_device_props* props) noexcept {
  const int32_t count = device_count();
  if (device < 0 || device >= count) {
    return fail(DSK_ERR_INVALID_ARGUMENT, "device = %d, expected 0 <= device < %d", device, count);
  }
  cudaDeviceProp p;
  DSK_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&p, device));
  // CUDA 13 dropped memoryClockRate from cudaDeviceProp; the attribute API still has both.
  int clock_khz = 0;
  int bus_bits = 0;
  DSK_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device));
  DSK_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
  props->backend = DSK_BACKEND_CUDA;
  props->device_id = device;
  props->compute_capability_major = p.major;
  props->compute_capability_minor = p.minor;
  props->multiprocessor_count = p.multiProcessorCount;
  props->memory_bus_width_bits = bus_bits;
  props->memory_clock_khz = clock_khz;
  props->total_memory_bytes = static_cast<uint64_t>(p.totalGlobalMem);
  // Double data rate: two transfers per clock over bus_bits / 8 bytes.
  props->memory_bandwidth_gbps =
      2.0 * static_cast<double>(clock_khz) * 1e3 * static_cast<double>(bus_bits) / 8.0 / 1e9;
  static_assert(sizeof(props->name) >= sizeof(p.name), "device name would be truncated");
  memset(props->name, 0, sizeof(props->name));
  memcpy(props->name, p.name, sizeof(p.name));
  props->name[sizeof(props->name) - 1] = '\0';
  return DSK_OK;
}

dsk_status current_multiprocessor_count(int32_t* count) noexcept {
  int device = 0;
  int sms = 0;
  DSK_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  DSK_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  *count = sms > 0 ? sms : 1;
  return DSK_OK;
}

}  // namespace cuda
}  // namespace dsk
