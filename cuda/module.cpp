// The CUDA backend module's entry points: the only two symbols libdsk-cuda.so exports (see
// dsk-cuda.map and lib/core/registry.cpp, which dlopens this module and calls them).
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>

#include "core/backend_iface.h"
#include "cuda/backend.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/ops.h"

namespace dsk {
namespace cuda {
namespace {

// Every kernel is built for sm_80 and newer (CMAKE_CUDA_ARCHITECTURES); older devices would fail
// each launch with "no kernel image", so they do not count as usable.
constexpr int kMinComputeMajor = 8;

const char* iface_last_error() { return last_error(); }

const dsk_backend_iface kCudaIface = {
    DSK_BACKEND_IFACE_VERSION,
    sizeof(dsk_backend_iface),
    "cuda",
    iface_last_error,
    device_count,
    device_props,
    malloc_device,
    free_device,
    memcpy_device,
    synchronize,
    copy,
    fill,
    fill_random,
    gemm,
    quant_fp8,
    dequant_fp8,
    linear_fp8,
    linear_fp8_kernel,
    nullptr,  // gemm_fp8_weight: libdsk dequantizes the weight, then gemm (cuBLAS)
    rmsnorm,
    swiglu,
    rope,
    softmax,
    topk,
    embedding,
    mla_decode_plan,
    mla_decode,
    mla_cache_append,
    mla_prefill,
    moe_gate,
    moe_dispatch,
    moe_permute,
    moe_combine,
    moe_grouped_gemm,
    moe_load_accumulate,
    moe_bias_update,
    moe_ep_layout,
    sample,
    sampling_transform,
    speculative_verify,
};

void write_reason(char* reason, size_t reason_size, const char* format, ...)
    __attribute__((format(printf, 3, 4)));

void write_reason(char* reason, size_t reason_size, const char* format, ...) {
  if (reason == nullptr || reason_size == 0) return;
  va_list args;
  va_start(args, format);
  vsnprintf(reason, reason_size, format, args);
  va_end(args);
}

int32_t score(char* reason, size_t reason_size) noexcept {
  write_reason(reason, reason_size, "%s", "");
  // The static CUDA runtime loads the driver itself, but when it is missing it only reports an
  // "insufficient driver", which reads like a version problem. Asking first gives the real cause.
  // The handle is kept: the runtime holds the driver loaded for the life of the process anyway.
  if (dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) == nullptr) {
    const char* detail = dlerror();
    write_reason(reason, reason_size, "CUDA driver not found (%s)",
                 detail != nullptr ? detail : "libcuda.so.1 could not be loaded");
    return 0;
  }
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    (void)cudaGetLastError();
    write_reason(reason, reason_size, "cudaGetDeviceCount: %s", cudaGetErrorString(error));
    return 0;
  }
  if (count <= 0) {
    write_reason(reason, reason_size, "cudaGetDeviceCount: no CUDA-capable device is detected");
    return 0;
  }
  int best_major = -1;
  int best_minor = 0;
  for (int device = 0; device < count; ++device) {
    int major = 0;
    int minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    if (major > best_major || (major == best_major && minor > best_minor)) {
      best_major = major;
      best_minor = minor;
    }
  }
  if (best_major < kMinComputeMajor) {
    write_reason(reason, reason_size,
                 "no CUDA device with compute capability %d.0 or newer (the newest of %d is "
                 "%d.%d); libdsk-cuda.so is built for sm_80 and later",
                 kMinComputeMajor, count, best_major, best_minor);
    return 0;
  }
  return 100;
}

}  // namespace
}  // namespace cuda
}  // namespace dsk

extern "C" {

__attribute__((visibility("default"))) int32_t dsk_backend_module_score(char* reason,
                                                                        size_t reason_size) {
  return dsk::cuda::score(reason, reason_size);
}

__attribute__((visibility("default"))) const dsk_backend_iface* dsk_backend_module_init(
    uint32_t api_version) {
  return api_version == DSK_BACKEND_IFACE_VERSION ? &dsk::cuda::kCudaIface : nullptr;
}

}  // extern "C"
