// blas.h - per-device cuBLASLt handles, shared by the GEMM and FP8 GEMM paths.
//
// A handle is created on first use for each device (with that device current) and kept for the
// life of the process, like the module itself: creating one costs milliseconds and cuBLAS
// recommends reusing it. cublasLtMatmul takes the stream and the workspace per call, so one handle
// serves every stream; the workspace of each call is stream-ordered memory of the size the chosen
// algorithm asks for (cuda/stream_temp.h), never shared between streams.
#ifndef DSK_CUDA_BLAS_H_
#define DSK_CUDA_BLAS_H_

#include <cublasLt.h>
#include <stddef.h>
#include <stdint.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// Largest workspace a cuBLASLt algorithm may ask for (32 MiB, what cuBLAS suggests on Hopper).
constexpr size_t kLtMaxWorkspaceBytes = size_t{32} << 20;

struct BlasHandles {
  cublasLtHandle_t lt = nullptr;
  // 256 bytes of device memory for arguments that must be valid device addresses but are never
  // read (the scale pointers of a heuristic probe).
  void* probe = nullptr;
};

// The handles of `device` (must be current). Errors: DSK_ERR_DEVICE_ERROR, DSK_ERR_OUT_OF_MEMORY.
dsk_status blas_handles(int32_t device, BlasHandles* out) noexcept;

// Records a cuBLAS failure (with the call text `what`) and maps it to a status.
dsk_status blas_failure(cublasStatus_t status, const char* what) noexcept;

// cuBLASLt version (cublasLtGetVersion, e.g. 120900 for 12.9.0).
size_t lt_version() noexcept;

// The largest power of two up to 256 dividing the address.
uint32_t pointer_alignment(const void* p) noexcept;

// The preferences every cuBLASLt heuristic query of dsk makes:
// - the workspace cap, max_workspace bytes;
// - the actual alignment of the A, B, C and D pointers (the largest power of two up to 256 dividing
//   each). Without it cuBLASLt assumes 256-byte aligned matrices and may choose an algorithm that a
//   view at a smaller alignment cannot run (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES, default
//   256);
// - split-K partial sums only in the compute type (or no split). By default cuBLASLt may also add
//   them in the output buffer or in workspace of the output type: for bf16 outputs with a long K
//   and few rows (MLA absorb_out, decompress_kv per head) that rounds every partial sum to bf16,
//   several roundings where dsk promises one (docs/ops/gemm.md).
dsk_status set_lt_preferences(cublasLtMatmulPreference_t pref, uint64_t max_workspace,
                              const void* a, const void* b, const void* c, const void* d) noexcept;

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
