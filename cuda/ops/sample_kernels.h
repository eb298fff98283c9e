// sample_kernels.h - host launcher of the token sampling kernels (sample_kernels.cu) behind the
// sample and sampling_transform entries (sample.cpp). Plain C++: no CUDA types beyond the stream.
//
// Every tensor is described by its first element and element strides; any alignment (the kernels
// read parameters, ids and outputs with byte copies, the logits with typed loads only when the row
// base is aligned). Per-row values and CSR lists are read on the device only.
#ifndef DSK_CUDA_OPS_SAMPLE_KERNELS_H_
#define DSK_CUDA_OPS_SAMPLE_KERNELS_H_

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "dsk/dsk_status.h"

namespace dsk {
namespace cuda {

// A per-row [B] tensor (data NULL: the scalar applies).
struct SampleVec {
  const char* data;
  int64_t stride;
};

// A CSR token list: offs [B + 1] and ids [n], int32 or int64 each (offs NULL: absent).
struct SampleList {
  const char* offs;
  int64_t offs_s;
  const char* ids;
  int64_t ids_s;
  int64_t n;
  int32_t offs64;
  int32_t ids64;
};

// An output (data NULL: not wanted), strides in elements.
struct SampleOut {
  char* data;
  int64_t s0;
  int64_t s1;
};

// The per-token record of a row's listed (biased, penalized or prompt) tokens, in scratch.
struct SampleSpecial {
  unsigned count;                 // occurrences in the output ids
  unsigned seen;                  // in the prompt or the output ids
  unsigned long long bias_first;  // the first bias list index naming the token
  unsigned bias_n;                // bias entries naming it
  unsigned reserved;
};

// One block's share of pass A over a slice of a row (see sample_splits).
struct SamplePassA {
  unsigned long long best_z;     // packed (key, id) max of the processed logits
  unsigned long long best_x;     // the same over the raw logits
  unsigned long long best_race;  // the Gumbel race's packed best score
  unsigned long long nfinite;
  unsigned long long raw_nfinite;
  unsigned bad;  // a NaN or +inf processed logit
  unsigned raw_bad;
};

constexpr int32_t kSampleModeSample = 0;
constexpr int32_t kSampleModeLogits = 1;
constexpr int32_t kSampleModeProbs = 2;

constexpr int32_t kSampleListCount = 3;  // output, prompt, bias (SampleListId order)

struct SampleLaunch {
  const char* logits;
  int64_t ls0;
  int64_t ls1;
  int64_t rows;
  int64_t vocab;
  int32_t dtype_id;
  int32_t mode;  // kSampleMode*
  SampleVec temperature, top_k, top_p, min_p, repetition, frequency, presence, seed, offset;
  float temperature_v;
  int32_t top_k_v;
  float top_p_v;
  float min_p_v;
  float repetition_v;
  float frequency_v;
  float presence_v;
  int32_t n_top;  // top_ids.shape[1], 0 without
  uint64_t seed_v;
  uint64_t offset_v;
  SampleList lists[kSampleListCount];
  const char* bias_values;  // f32 [n of the bias list]
  int64_t bias_values_s;
  const char* mask;  // int32 [B, ceil(V / 32)] or NULL
  int64_t mask_s0;
  int64_t mask_s1;
  SampleOut ids, logprobs, top_ids, top_logprobs, raw_logprobs, status;
  int32_t top_raw;  // top lists from the raw distribution
  int32_t out_dtype_id;
  SampleOut out;  // [B, V] for the transform modes
  // Scratch (NULL when no list is given): bitmap and prefix [B, ceil(V / 32)] uint32, table
  // [sum of the lists' n] entries, and list_ok [kSampleListCount] (1 when the list is absent or its
  // offsets are nondecreasing within [0, n], written by a check kernel before the rows run: row b
  // owns table entries [sum of offs[b], sum of offs[b + 1]), which rows share when some offsets
  // decrease, so then every row is INVALID).
  uint32_t* bitmap;
  uint32_t* prefix;
  SampleSpecial* table;
  int32_t* list_ok;
  DeferredErrorRecord* record;  // NULL when nothing per row can be invalid
  // Pass A split over `splits` blocks per row (slices of split_len tokens, a multiple of 4), their
  // results in partials [rows, splits] (scratch); splits 1 and partials NULL: the row's block.
  int32_t splits;
  int64_t split_len;
  SamplePassA* partials;
};

// Blocks per row for pass A, and the slice length: a batch with no token lists and fewer rows than
// fill the GPU splits its rows so that about kSampleSplitBlocks blocks read the logits at once, no
// slice shorter than kSampleSplitMinLen tokens. Sets a->splits and a->split_len.
constexpr int64_t kSampleSplitBlocks = 256;
constexpr int64_t kSampleSplitMinLen = 2048;
void sample_plan_splits(SampleLaunch* a) noexcept;

// Scratch bytes launch_sample needs for `a` (splits planned, scratch pointers unset), 0 for none.
size_t sample_scratch_bytes(const SampleLaunch& a) noexcept;

// Points a's scratch into `scratch` (256-byte aligned, sample_scratch_bytes(a) bytes).
void sample_set_scratch(SampleLaunch* a, char* scratch) noexcept;

dsk_status launch_sample(const SampleLaunch& a, cudaStream_t stream) noexcept;

}  // namespace cuda
}  // namespace dsk

#endif  // DSK_CUDA_OPS_SAMPLE_KERNELS_H_
