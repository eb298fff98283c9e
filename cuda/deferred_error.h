// deferred_error.h - errors found by kernels in data that lives on the device (MLA block tables,
// seqlens, cache slots, cu_seqlens; MoE sorted_rows, dest and EP ids), reported by the next
// synchronize instead of by the op.
//
// Ops that must stay asynchronous and capturable (dsk_mla.h, dsk_moe.h) cannot read their index
// data back. Their kernels skip the bad item, never reading out of bounds, and record the first
// error in a small per-device record; synchronize() (cuda/memory.cpp) reads the record after the
// stream has drained, clears it and returns DSK_ERR_INVALID_ARGUMENT with a message built from it.
// The record is per device, so any context's synchronize on that device reports it.
#ifndef DSK_CUDA_DEFERRED_ERROR_H_
#define DSK_CUDA_DEFERRED_ERROR_H_

#include <stdint.h>

#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// What was out of range; the values a..c are explained per kind in deferred_error.cpp.
enum DeferredErrorKind : int32_t {
  kDeferredNone = 0,
  kDeferredMlaBlockTable = 1,   // a = request, b = block_table column, c = the entry
  kDeferredMlaSeqlen = 2,       // a = request, b = seqlen, c = max_pages * page_size
  kDeferredMlaSlot = 3,         // a = token, b = slot, c = num_pages * page_size
  kDeferredMlaCuSeqlens = 4,    // a = index, b = value, c = 0 for cu_seqlens_q, 1 for _k
  kDeferredMoeSortedRow = 5,    // a = row, b = the sorted_rows value, c = T * top_k
  kDeferredMoeDest = 6,         // a = token, b = (slot << 32) | R, c = the dest value
  kDeferredMoeEpId = 7,         // a = token, b = (slot << 32) | E, c = the id
  kDeferredSampleParam = 8,     // a = row, b = SampleParamId (common/sampling_math.h), c = bits
  kDeferredSampleTokenId = 9,   // a = row, b = SampleListId, c = the id (list value)
  kDeferredSampleCsr = 10,      // a = row, b = SampleListId, c = the offset value
  kDeferredVerifyDraftId = 11,  // a = row, b = draft position, c = the id
};

// Device memory layout of the record. `state` is 0 (clear), 1 (being written) or 2 (written).
struct DeferredErrorRecord {
  unsigned int state;
  int32_t kind;
  long long a;
  long long b;
  long long c;
};

#ifdef __CUDACC__
// Records the first error of the device; later ones are dropped. Any thread may call it.
__device__ inline void report_deferred(DeferredErrorRecord* r, int32_t kind, long long a,
                                       long long b, long long c) {
  if (atomicCAS(&r->state, 0u, 1u) != 0u) return;
  r->kind = kind;
  r->a = a;
  r->b = b;
  r->c = c;
  __threadfence();
  atomicExch(&r->state, 2u);
}
#endif

// The record of `device` (the current device must be `device`), allocated and cleared on first
// use with a synchronous cudaMalloc: call it once outside graph capture (plan creation does) before
// a captured launch needs it.
dsk_status deferred_error_record(int32_t device, DeferredErrorRecord** record) noexcept;

// After the stream of a synchronize has drained: DSK_OK when `device` has no record or a clear
// one; otherwise clears it and returns DSK_ERR_INVALID_ARGUMENT with the recorded error.
dsk_status take_deferred_error(int32_t device) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_DEFERRED_ERROR_H_
