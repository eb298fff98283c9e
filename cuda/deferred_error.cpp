// The per-device deferred error records (see deferred_error.h).
#include "cuda/deferred_error.h"

#include <cuda_runtime_api.h>
#include <stdio.h>

#include <mutex>

#include "common/sampling_math.h"
#include "cuda/error.h"

namespace dsk {
namespace cuda {
namespace {

constexpr int kMaxDevices = 64;

std::mutex g_mutex;

// The parameter names of dsk_sampling_params' per-row tensors, by SampleParamId.
const char* sample_param_name(long long id) {
  switch (id) {
    case kSampleParamTemperature:
      return "temperatures";
    case kSampleParamTopK:
      return "top_ks";
    case kSampleParamTopP:
      return "top_ps";
    case kSampleParamMinP:
      return "min_ps";
    case kSampleParamRepetition:
      return "repetition_penalties";
    case kSampleParamFrequency:
      return "frequency_penalties";
    case kSampleParamPresence:
      return "presence_penalties";
    default:
      return "?";
  }
}

const char* sample_param_range(long long id) {
  switch (id) {
    case kSampleParamTemperature:
      return "finite >= 0";
    case kSampleParamTopK:
      return ">= 0";
    case kSampleParamTopP:
      return "(0, 1]";
    case kSampleParamMinP:
      return "[0, 1]";
    case kSampleParamRepetition:
      return "finite > 0";
    default:
      return "finite";
  }
}

// The CSR list names by SampleListId.
const char* sample_list_name(long long id) {
  switch (id) {
    case kSampleListOutput:
      return "output";
    case kSampleListPrompt:
      return "prompt";
    case kSampleListBias:
      return "bias";
    default:
      return "?";
  }
}
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
    case kDeferredSampleParam: {
      char value[48];
      if (r.b == kSampleParamTopK) {
        snprintf(value, sizeof(value), "%d",
                 static_cast<int>(static_cast<int32_t>(static_cast<uint32_t>(r.c))));
      } else {
        const float f = f32_from_bits(static_cast<uint32_t>(r.c));
        snprintf(value, sizeof(value), "%.9g", static_cast<double>(f));
      }
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier sampling call found params->%s[%lld] = %s, expected %s (checked on "
                  "the device; the row got status DSK_SAMPLE_INVALID and id 0)",
                  sample_param_name(r.b), r.a, value, sample_param_range(r.b));
    }
    case kDeferredSampleTokenId:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier sampling call found params->%s_ids = %lld (row %lld), expected "
                  "[0, V) (checked on the device; the row got status DSK_SAMPLE_INVALID and id 0)",
                  sample_list_name(r.b), r.c, r.a);
    case kDeferredSampleCsr:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier sampling call found params->%s_offsets[%lld..%lld] out of order or "
                  "range (offset %lld; expected nondecreasing within [0, N]; checked on the "
                  "device, every row got status DSK_SAMPLE_INVALID and id 0)",
                  sample_list_name(r.b), r.a, r.a + 1, r.c);
    case kDeferredVerifyDraftId:
      return fail(DSK_ERR_INVALID_ARGUMENT,
                  "an earlier speculative verification found draft_ids[%lld, %lld] = %lld outside "
                  "[-1, V) (checked on the device; the row emitted nothing, accepted 0)",
                  r.a, r.b, r.c);
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
