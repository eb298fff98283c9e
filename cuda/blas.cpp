#include "cuda/blas.h"

#include <cuda_runtime_api.h>

#include <mutex>

#include "cuda/error.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kMaxDevices = 64;

struct Slot {
  std::once_flag once;
  dsk_status status = DSK_OK;
  char message[256] = "";
  BlasHandles handles;
};

Slot g_slots[kMaxDevices];

void create(Slot& s) {
  cublasStatus_t st = cublasLtCreate(&s.handles.lt);
  if (st != CUBLAS_STATUS_SUCCESS) {
    s.status = blas_failure(st, "cublasLtCreate");
    return;
  }
  cudaError_t e = cudaMalloc(&s.handles.probe, 256);
  if (e != cudaSuccess) {
    s.status = cuda_failure(e, "cudaMalloc (probe buffer)");
    return;
  }
}

}  // namespace

dsk_status blas_handles(int32_t device, BlasHandles* out) noexcept {
  if (device < 0 || device >= kMaxDevices) {
    return fail(DSK_ERR_UNSUPPORTED, "device %d: at most %d CUDA devices are supported", device,
                kMaxDevices);
  }
  Slot& s = g_slots[device];
  try {
    std::call_once(s.once, [&] {
      create(s);
      if (s.status != DSK_OK) {
        const char* m = last_error();
        size_t i = 0;
        for (; m[i] != '\0' && i + 1 < sizeof(s.message); ++i) s.message[i] = m[i];
        s.message[i] = '\0';
      }
    });
  } catch (...) {
    return fail(DSK_ERR_INTERNAL, "creating the cuBLAS handles failed");
  }
  if (s.status != DSK_OK) return fail(s.status, "%s", s.message);
  *out = s.handles;
  return DSK_OK;
}

dsk_status blas_failure(cublasStatus_t status, const char* what) noexcept {
  dsk_status code = status == CUBLAS_STATUS_ALLOC_FAILED    ? DSK_ERR_OUT_OF_MEMORY
                    : status == CUBLAS_STATUS_NOT_SUPPORTED ? DSK_ERR_UNSUPPORTED
                                                            : DSK_ERR_DEVICE_ERROR;
  return fail(code, "%s: %s (%s)", what, cublasGetStatusString(status),
              cublasGetStatusName(status));
}

size_t lt_version() noexcept { return cublasLtGetVersion(); }

uint32_t pointer_alignment(const void* p) noexcept {
  uint32_t align = 256;
  while (align > 1 && reinterpret_cast<uintptr_t>(p) % align != 0) align /= 2;
  return align;
}

dsk_status set_lt_preferences(cublasLtMatmulPreference_t pref, uint64_t max_workspace,
                              const void* a, const void* b, const void* c, const void* d) noexcept {
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof(max_workspace)));
  const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  DSK_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes)));
  const void* ptrs[4] = {a, b, c, d};
  const cublasLtMatmulPreferenceAttributes_t attrs[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i) {
    const uint32_t align = pointer_alignment(ptrs[i]);
    DSK_CUBLAS_RETURN_IF_ERROR(
        cublasLtMatmulPreferenceSetAttribute(pref, attrs[i], &align, sizeof(align)));
  }
  return DSK_OK;
}

}  // namespace cuda
}  // namespace dsk
