// blas.h - per-device cuBLAS / cuBLASLt handles and the cuBLASLt workspace, shared by the GEMM
// and FP8 GEMM paths.
//
// Handles are created on first use for each device (with that device current) and kept for the
// life of the process, like the module itself: creating a handle costs milliseconds and cuBLAS
// recommends reusing one. A handle is not bound to a stream; callers pass the context's stream to
// each call (cublasLtMatmul) or set it right before use under the returned lock (cublas).
#ifndef DSK_CUDA_BLAS_H_
#define DSK_CUDA_BLAS_H_

#include <cublasLt.h>
#include <cublas_v2.h>
#include <stddef.h>
#include <stdint.h>

#include <mutex>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// Bytes of the per-device cuBLASLt workspace (32 MiB, what cuBLAS asks for on Hopper).
constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

struct BlasHandles {
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  void* lt_workspace = nullptr;  // kLtWorkspaceBytes of device memory
  // cublasHandle_t carries a stream and workspace: hold this while using `blas`. cublasLtMatmul
  // takes everything per call, so `lt` needs no lock; the workspace does, as two streams must not
  // use it at once.
  std::mutex* mutex = nullptr;
};

// The handles of `device` (must be current). Errors: DSK_ERR_DEVICE_ERROR, DSK_ERR_OUT_OF_MEMORY.
dsk_status blas_handles(int32_t device, BlasHandles* out) noexcept;

// Records a cuBLAS failure (with the call text `what`) and maps it to a status.
dsk_status blas_failure(cublasStatus_t status, const char* what) noexcept;

// cuBLASLt version (cublasLtGetVersion, e.g. 120900 for 12.9.0).
size_t lt_version() noexcept;

}  // namespace cuda
}  // namespace dsk

#define DSK_CUBLAS_RETURN_IF_ERROR(expr)                         \
  do {                                                           \
    const cublasStatus_t dsk_blas_status_ = (expr);              \
    if (dsk_blas_status_ != CUBLAS_STATUS_SUCCESS) {             \
      return ::dsk::cuda::blas_failure(dsk_blas_status_, #expr); \
    }                                                            \
  } while (0)

#endif  // DSK_CUDA_BLAS_H_
