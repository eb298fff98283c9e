// The per-device deferred error records (see deferred_error.h).
#include "cuda/deferred_error.h"

#include <cuda_runtime_api.h>

#include <mutex>

#include "cuda/error.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kMaxDevices = 64;

std::mutex g_mutex;
DeferredErrorRecord* g_records[kMaxDevices] = {};

dsk_status report(const DeferredErrorRecord& r) noexcept {
  switch (r.kind) {
    case kDeferredMlaBlockTable:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier MLA decode found block_table[%lld, %lld] = %lld outside "
                  "[0, num_pages) (checked on the device; that request's output is unspecified)",
                  r.a, r.b, r.c);
    case kDeferredMlaSeqlen:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier MLA decode found cache_seqlens[%lld] = %lld outside [0, %lld] "
                  "(max_pages * page_size; checked on the device, the request was skipped)",
                  r.a, r.b, r.c);
    case kDeferredMlaSlot:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier MLA cache append found slot_mapping[%lld] = %lld outside "
                  "[-1, %lld) (num_pages * page_size; checked on the device, the token was "
                  "skipped)",
                  r.a, r.b, r.c);
    case kDeferredMlaCuSeqlens:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier MLA prefill found %s[%lld] = %lld out of order or out of range "
                  "(expected 0 at index 0, non-decreasing, ending at the token count; checked on "
                  "the device, the request was skipped)",
                  r.c == 0 ? "cu_seqlens_q" : "cu_seqlens_k", r.a, r.b);
    case kDeferredMoeSortedRow:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier MoE permute found sorted_rows[%lld] = %lld outside [0, %lld] "
                  "(T * top_k marks padding; checked on the device, the row was zeroed)",
                  r.a, r.b, r.c);
    case kDeferredMoeDest:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier MoE combine found dest[%lld, %lld] = %lld outside [-1, %lld) "
                  "(checked on the device, the slot was skipped)",
                  r.a, r.b >> 32, r.c, r.b & 0xFFFFFFFFll);
    case kDeferredMoeEpId:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier MoE EP layout found ids[%lld, %lld] = %lld outside [-1, %lld) "
                  "(checked on the device, the id was skipped)",
                  r.a, r.b >> 32, r.c, r.b & 0xFFFFFFFFll);
    default:
      return fail(DSK_ERR_INTERNAL, "a kernel recorded an unknown deferred error (kind %d)",
                  static_cast<int>(r.kind));
  }
}

}  // namespace

dsk_status deferred_error_record(int32_t device, DeferredErrorRecord** record) noexcept {
  if (device < 0 || device >= kMaxDevices) {
    return fail(DSK_ERR_UNSUPPORTED, "device %d: at most %d CUDA devices are supported",
                static_cast<int>(device), kMaxDevices);
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_records[device] == nullptr) {
    void* p = nullptr;
    DSK_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, sizeof(DeferredErrorRecord)));
    // Synchronous so the record is clear before any stream uses it.
    const cudaError_t e = cudaMemset(p, 0, sizeof(DeferredErrorRecord));
    if (e != cudaSuccess) {
      cudaFree(p);
      return cuda_failure(e, "cudaMemset");
    }
    const cudaError_t s = cudaDeviceSynchronize();
    if (s != cudaSuccess) {
      cudaFree(p);
      return cuda_failure(s, "cudaDeviceSynchronize");
    }
    g_records[device] = static_cast<DeferredErrorRecord*>(p);
  }
  *record = g_records[device];
  return DSK_OK;
}

dsk_status take_deferred_error(int32_t device) noexcept {
  if (device < 0 || device >= kMaxDevices) return DSK_OK;
  DeferredErrorRecord* r = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    r = g_records[device];
  }
  if (r == nullptr) return DSK_OK;
  DeferredErrorRecord host{};
  DSK_CUDA_RETURN_IF_ERROR(cudaMemcpy(&host, r, sizeof(host), cudaMemcpyDeviceToHost));
  if (host.state == 0u) return DSK_OK;
  // state 1 cannot remain once the writing kernel has finished; report what is there either way.
  DSK_CUDA_RETURN_IF_ERROR(cudaMemset(r, 0, sizeof(DeferredErrorRecord)));
  DSK_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  return report(host);
}

}  // namespace cuda
}  // namespace dsk
