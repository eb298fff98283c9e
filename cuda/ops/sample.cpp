// The sampling entries of the CUDA backend (kernels in sample_kernels.cu). Per-row parameters and
// token lists stay on the device: a bad value marks its row DSK_SAMPLE_INVALID (list offsets out of
// order anywhere: every row) and is reported by the next synchronize (cuda/deferred_error.h).
// Scratch (the listed-token tables, pass A partials) comes from the context's workspace when it is
// large enough, else stream-ordered memory; nothing synchronizes, so the calls can be captured in a
// CUDA graph.
#include <stdint.h>

#include "cuda/deferred_error.h"
#include "cuda/device.h"
#include "cuda/error.h"
#include "cuda/ops/ops.h"
#include "cuda/ops/sample_kernels.h"
#include "cuda/ops/strided.h"
#include "cuda/stream_temp.h"
#include "dsk/dsk_dtype.h"

namespace dsk {
namespace cuda {
namespace {

SampleVec vec_of(const DLTensor* t) {
  SampleVec v{};
  if (t == nullptr) return v;
  const TensorInfo i = tensor_info(t);
  v.data = i.data;
  v.stride = i.ndim >= 1 ? i.strides[0] : 0;
  return v;
}

SampleOut out_of(const DLTensor* t) {
  SampleOut o{};
  if (t == nullptr) return o;
  const TensorInfo i = tensor_info(t);
  o.data = i.data;
  o.s0 = i.ndim >= 1 ? i.strides[0] : 0;
  o.s1 = i.ndim >= 2 ? i.strides[1] : 0;
  return o;
}

SampleList list_of(const DLTensor* offs, const DLTensor* ids) {
  SampleList l{};
  if (offs == nullptr || ids == nullptr) return l;
  const TensorInfo o = tensor_info(offs);
  const TensorInfo i = tensor_info(ids);
  l.offs = o.data;
  l.offs_s = o.ndim >= 1 ? o.strides[0] : 0;
  l.offs64 = o.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  l.ids = i.data;
  l.ids_s = i.ndim >= 1 ? i.strides[0] : 0;
  l.ids64 = i.dtype_id == DSK_DTYPE_INT64 ? 1 : 0;
  l.n = i.numel;
  return l;
}

bool any_per_row(const dsk_sampling_args* a) {
  return a->temperature != nullptr || a->top_k != nullptr || a->top_p != nullptr ||
         a->min_p != nullptr || a->repetition != nullptr || a->frequency != nullptr ||
         a->presence != nullptr || a->output_offsets != nullptr || a->prompt_offsets != nullptr ||
         a->bias_offsets != nullptr;
}

dsk_status run(const dsk_exec* ex, const dsk_sampling_args* a, const DLTensor* out, int32_t mode) {
  const TensorInfo lg = tensor_info(a->logits);
  if (lg.ndim != 2 || (lg.dtype_id != DSK_DTYPE_F32 && lg.dtype_id != DSK_DTYPE_F16 &&
                       lg.dtype_id != DSK_DTYPE_BF16)) {
    return fail(DSK_ERR_INVALID_ARGUMENT, "sample: expected logits [B, V] f32, f16 or bf16");
  }
  SampleLaunch s{};
  s.logits = lg.data;
  s.ls0 = lg.strides[0];
  s.ls1 = lg.strides[1];
  s.rows = lg.shape[0];
  s.vocab = lg.shape[1];
  s.dtype_id = lg.dtype_id;
  s.mode = mode;
  s.temperature = vec_of(a->temperature);
  s.top_k = vec_of(a->top_k);
  s.top_p = vec_of(a->top_p);
  s.min_p = vec_of(a->min_p);
  s.repetition = vec_of(a->repetition);
  s.frequency = vec_of(a->frequency);
  s.presence = vec_of(a->presence);
  s.seed = vec_of(a->seed);
  s.offset = vec_of(a->offset);
  s.temperature_v = a->temperature_value;
  s.top_k_v = a->top_k_value;
  s.top_p_v = a->top_p_value;
  s.min_p_v = a->min_p_value;
  s.repetition_v = a->repetition_value;
  s.frequency_v = a->frequency_value;
  s.presence_v = a->presence_value;
  s.seed_v = a->seed_value;
  s.offset_v = a->offset_value;
  s.lists[0] = list_of(a->output_offsets, a->output_ids);
  s.lists[1] = list_of(a->prompt_offsets, a->prompt_ids);
  s.lists[2] = list_of(a->bias_offsets, a->bias_ids);
  if (s.lists[2].offs != nullptr) {
    const SampleVec bv = vec_of(a->bias_values);
    s.bias_values = bv.data;
    s.bias_values_s = bv.stride;
  }
  if (a->allowed_mask != nullptr) {
    const SampleOut m = out_of(a->allowed_mask);
    s.mask = m.data;
    s.mask_s0 = m.s0;
    s.mask_s1 = m.s1;
  }
  if (mode == kSampleModeSample) {
    s.ids = out_of(a->ids);
    s.logprobs = out_of(a->logprobs);
    s.raw_logprobs = out_of(a->raw_logprobs);
    if (a->top_ids != nullptr && a->top_logprobs != nullptr) {
      s.top_ids = out_of(a->top_ids);
      s.top_logprobs = out_of(a->top_logprobs);
      const TensorInfo t = tensor_info(a->top_ids);
      s.n_top = t.ndim == 2 ? static_cast<int32_t>(t.shape[1]) : 0;
      if (s.n_top > DSK_SAMPLE_MAX_TOP_LOGPROBS) {
        return fail(DSK_ERR_INVALID_ARGUMENT, "sample: top_ids has more than %d columns",
                    DSK_SAMPLE_MAX_TOP_LOGPROBS);
      }
    }
    s.top_raw = a->top_source == DSK_LOGPROBS_RAW ? 1 : 0;
  } else {
    const TensorInfo o = tensor_info(out);
    if (o.ndim != 2 || o.shape[0] != s.rows || o.shape[1] != s.vocab) {
      return fail(DSK_ERR_INVALID_ARGUMENT, "sampling_transform: expected out [B, V]");
    }
    s.out = out_of(out);
    s.out_dtype_id = o.dtype_id;
  }
  s.status = out_of(a->status);
  if (s.rows == 0) return DSK_OK;
  if (s.vocab < 1 || s.vocab > INT32_MAX || s.rows > INT32_MAX) {
    return fail(DSK_ERR_INVALID_ARGUMENT, "sample: expected 1 <= V <= INT32_MAX, B <= INT32_MAX");
  }

  DeviceGuard guard;
  DSK_RETURN_IF_FAILED(guard.set(ex->device));
  if (any_per_row(a)) DSK_RETURN_IF_FAILED(deferred_error_record(ex->device, &s.record));
  const auto stream = static_cast<cudaStream_t>(ex->stream);
  StreamTemp temp(stream);
  sample_plan_splits(&s);
  const size_t bytes = sample_scratch_bytes(s);
  if (bytes > 0) {
    const auto base = reinterpret_cast<uintptr_t>(ex->workspace);
    const uintptr_t start = (base + 255u) / 256u * 256u;
    if (ex->workspace != nullptr && start - base + bytes <= ex->workspace_bytes) {
      sample_set_scratch(&s, reinterpret_cast<char*>(start));
    } else {
      DSK_RETURN_IF_FAILED(temp.alloc(bytes));
      sample_set_scratch(&s, temp.get());
    }
  }
  return launch_sample(s, stream);
}

}  // namespace

dsk_status sample(const dsk_exec* ex, const dsk_sampling_args* a) noexcept {
  return run(ex, a, nullptr, kSampleModeSample);
}

dsk_status sampling_transform(const dsk_exec* ex, const dsk_sampling_args* a, const DLTensor* out,
                              int32_t probs) noexcept {
  return run(ex, a, out, probs != 0 ? kSampleModeProbs : kSampleModeLogits);
}

}  // namespace cuda
}  // namespace dsk
