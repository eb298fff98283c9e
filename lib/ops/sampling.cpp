// Token sampling (dsk_sampling.h): argument checks and dispatch to the backends' sample,
// sampling_transform and speculative_verify entries, which hold the math (shared by CPU and CUDA
// in lib/common/sampling_math.h).
#include "ops/sampling.h"

#include <stdint.h>

#include <vector>

#include "common/sampling_math.h"
#include "dsk/dsk_dtype.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

constexpr int64_t kMaxVocab = INT32_MAX;

// The logits-like input [B, V] (or [B, n + 1, V]) and its vocabulary size.
int64_t checked_vocab(const Arg& a) {
  const int64_t v = a.l.shape[a.l.ndim - 1];
  check_arg(v >= 1 && v <= kMaxVocab, "{}.shape[{}] = {} (the vocabulary), expected 1..{}", a.name,
            a.l.ndim - 1, v, kMaxVocab);
  return v;
}

// A per-row parameter tensor: NULL, or 1-D [B] of `dtype`.
Arg row_param(const DLTensor* t, const char* name, int32_t dtype, int64_t rows) {
  Arg a = optional_input(t, name);
  if (a.present) {
    check_dtype(a, dtype);
    const int64_t shape[1] = {rows};
    check_shape(a, shape, 1, "[B] (logits.shape[0])");
  }
  return a;
}

// A CSR token list: offsets [B + 1] and ids [N], index dtypes, both or neither.
void csr_pair(const DLTensor* offs_t, const DLTensor* ids_t, const char* offs_name,
              const char* ids_name, int64_t rows, Arg* offs, Arg* ids) {
  *offs = optional_input(offs_t, offs_name);
  *ids = optional_input(ids_t, ids_name);
  check_arg(offs->present == ids->present, "{} is {} but {} is {}, expected both or neither",
            offs_name, offs->present ? "given" : "NULL", ids_name, ids->present ? "given" : "NULL");
  if (!offs->present) return;
  check_index(*offs);
  check_index(*ids);
  const int64_t shape[1] = {rows + 1};
  check_shape(*offs, shape, 1, "[B + 1] (logits.shape[0] + 1)");
  check_ndim(*ids, 1);
}

void check_scalar(int32_t id, float value, const char* name, const char* expected) {
  check_arg(sample_param_ok(id, value), "params->{} = {}, expected {}", name, value, expected);
}

void check_scalars(const dsk_sampling_params& p) {
  check_scalar(kSampleParamTemperature, p.temperature, "temperature", "a finite value >= 0");
  check_arg(sample_top_k_ok(p.top_k), "params->top_k = {}, expected >= 0 (0 = off)", p.top_k);
  check_scalar(kSampleParamTopP, p.top_p, "top_p", "(0, 1]");
  check_scalar(kSampleParamMinP, p.min_p, "min_p", "[0, 1]");
  check_scalar(kSampleParamRepetition, p.repetition_penalty, "repetition_penalty",
               "a finite value > 0");
  check_scalar(kSampleParamFrequency, p.frequency_penalty, "frequency_penalty", "a finite value");
  check_scalar(kSampleParamPresence, p.presence_penalty, "presence_penalty", "a finite value");
}

// Every input of a sampling call, checked against logits [B, V].
struct Inputs {
  Arg logits;
  Arg temperature, top_k, top_p, min_p, repetition, frequency, presence, seed, offset;
  Arg out_offs, out_ids, prompt_offs, prompt_ids, bias_offs, bias_ids, bias_values, mask;
  int64_t rows = 0;
  int64_t vocab = 0;

  std::vector<const Arg*> all() const {
    return {&logits,      &temperature, &top_k,     &top_p,    &min_p,       &repetition,
            &frequency,   &presence,    &seed,      &offset,   &out_offs,    &out_ids,
            &prompt_offs, &prompt_ids,  &bias_offs, &bias_ids, &bias_values, &mask};
  }
};

Inputs check_inputs(const dsk_sampling_params& p, const DLTensor* logits_t) {
  check_scalars(p);
  Inputs in;
  in.logits = input(logits_t, "logits");
  check_ndim(in.logits, 2);
  check_float(in.logits);
  in.rows = in.logits.l.shape[0];
  in.vocab = checked_vocab(in.logits);
  const int64_t b = in.rows;
  in.temperature = row_param(p.temperatures, "params->temperatures", DSK_DTYPE_F32, b);
  in.top_k = row_param(p.top_ks, "params->top_ks", DSK_DTYPE_INT32, b);
  in.top_p = row_param(p.top_ps, "params->top_ps", DSK_DTYPE_F32, b);
  in.min_p = row_param(p.min_ps, "params->min_ps", DSK_DTYPE_F32, b);
  in.repetition =
      row_param(p.repetition_penalties, "params->repetition_penalties", DSK_DTYPE_F32, b);
  in.frequency = row_param(p.frequency_penalties, "params->frequency_penalties", DSK_DTYPE_F32, b);
  in.presence = row_param(p.presence_penalties, "params->presence_penalties", DSK_DTYPE_F32, b);
  in.seed = row_param(p.seeds, "params->seeds", DSK_DTYPE_INT64, b);
  in.offset = row_param(p.offsets, "params->offsets", DSK_DTYPE_INT64, b);
  csr_pair(p.output_offsets, p.output_ids, "params->output_offsets", "params->output_ids", b,
           &in.out_offs, &in.out_ids);
  csr_pair(p.prompt_offsets, p.prompt_ids, "params->prompt_offsets", "params->prompt_ids", b,
           &in.prompt_offs, &in.prompt_ids);
  csr_pair(p.bias_offsets, p.bias_ids, "params->bias_offsets", "params->bias_ids", b, &in.bias_offs,
           &in.bias_ids);
  in.bias_values = optional_input(p.bias_values, "params->bias_values");
  check_arg(in.bias_values.present == in.bias_ids.present,
            "params->bias_values is {} but params->bias_ids is {}, expected both or neither",
            in.bias_values.present ? "given" : "NULL", in.bias_ids.present ? "given" : "NULL");
  if (in.bias_values.present) {
    check_dtype(in.bias_values, DSK_DTYPE_F32);
    const int64_t shape[1] = {in.bias_ids.l.shape[0]};
    check_shape(in.bias_values, shape, 1, "[N] (params->bias_ids.shape[0])");
  }
  in.mask = optional_input(p.allowed_mask, "params->allowed_mask");
  if (in.mask.present) {
    check_dtype(in.mask, DSK_DTYPE_INT32);
    const int64_t shape[2] = {b, (in.vocab + 31) / 32};
    check_shape(in.mask, shape, 2, "[B, ceil(V / 32)] (logits.shape)");
  }
  return in;
}

// Views of the inputs in the backend's form, and the args struct pointing at them.
struct InputViews {
  View logits, temperature, top_k, top_p, min_p, repetition, frequency, presence, seed, offset;
  View out_offs, out_ids, prompt_offs, prompt_ids, bias_offs, bias_ids, bias_values, mask;
};

void fill_inputs(const dsk_sampling_params& p, const Inputs& in, InputViews& v,
                 dsk_sampling_args* a) {
  as_is(in.logits, v.logits);
  as_is(in.temperature, v.temperature);
  as_is(in.top_k, v.top_k);
  as_is(in.top_p, v.top_p);
  as_is(in.min_p, v.min_p);
  as_is(in.repetition, v.repetition);
  as_is(in.frequency, v.frequency);
  as_is(in.presence, v.presence);
  as_is(in.seed, v.seed);
  as_is(in.offset, v.offset);
  as_is(in.out_offs, v.out_offs);
  as_is(in.out_ids, v.out_ids);
  as_is(in.prompt_offs, v.prompt_offs);
  as_is(in.prompt_ids, v.prompt_ids);
  as_is(in.bias_offs, v.bias_offs);
  as_is(in.bias_ids, v.bias_ids);
  as_is(in.bias_values, v.bias_values);
  as_is(in.mask, v.mask);
  *a = dsk_sampling_args{};
  a->logits = v.logits.get();
  a->temperature = v.temperature.get();
  a->top_k = v.top_k.get();
  a->top_p = v.top_p.get();
  a->min_p = v.min_p.get();
  a->repetition = v.repetition.get();
  a->frequency = v.frequency.get();
  a->presence = v.presence.get();
  a->seed = v.seed.get();
  a->offset = v.offset.get();
  a->temperature_value = p.temperature;
  a->top_k_value = p.top_k;
  a->top_p_value = p.top_p;
  a->min_p_value = p.min_p;
  a->repetition_value = p.repetition_penalty;
  a->frequency_value = p.frequency_penalty;
  a->presence_value = p.presence_penalty;
  a->seed_value = p.seed;
  a->offset_value = p.offset;
  a->output_offsets = v.out_offs.get();
  a->output_ids = v.out_ids.get();
  a->prompt_offsets = v.prompt_offs.get();
  a->prompt_ids = v.prompt_ids.get();
  a->bias_offsets = v.bias_offs.get();
  a->bias_ids = v.bias_ids.get();
  a->bias_values = v.bias_values.get();
  a->allowed_mask = v.mask.get();
}

// The target of an op whose outputs never overlap an input or each other (checked first).
Target target_apart(const dsk_context& ctx, const std::vector<const Arg*>& ins,
                    const std::vector<const Arg*>& outs) {
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!outs[i]->present) continue;
    for (const Arg* in : ins) {
      if (in->present) check_no_overlap(*outs[i], *in);
    }
    for (size_t j = 0; j < i; ++j) {
      if (outs[j]->present) check_no_overlap(*outs[i], *outs[j]);
    }
  }
  std::vector<const Arg*> every = ins;
  every.insert(every.end(), outs.begin(), outs.end());
  return target(ctx, every);
}

Arg row_output(const DLTensor* t, const char* name, int32_t dtype, int64_t rows, bool required) {
  Arg a = required ? output(t, name) : optional_output(t, name);
  if (a.present) {
    check_dtype(a, dtype);
    const int64_t shape[1] = {rows};
    check_shape(a, shape, 1, "[B] (logits.shape[0])");
  }
  return a;
}

}  // namespace

void sampling_params_init(dsk_sampling_params* params) {
  *params = dsk_sampling_params{};
  params->struct_size = sizeof(dsk_sampling_params);
  params->temperature = 1.0f;
  params->top_k = 0;
  params->top_p = 1.0f;
  params->min_p = 0.0f;
  params->repetition_penalty = 1.0f;
  params->frequency_penalty = 0.0f;
  params->presence_penalty = 0.0f;
}

void sampling_outputs_init(dsk_sampling_outputs* outputs) {
  *outputs = dsk_sampling_outputs{};
  outputs->struct_size = sizeof(dsk_sampling_outputs);
  outputs->top_source = DSK_LOGPROBS_PROCESSED;
}

void verify_params_init(dsk_verify_params* params) {
  *params = dsk_verify_params{};
  params->struct_size = sizeof(dsk_verify_params);
  params->mode = DSK_VERIFY_SAMPLE;
}

void sample(dsk_context& ctx, const dsk_sampling_params& params, const DLTensor* logits_t,
            const dsk_sampling_outputs& outputs) {
  const Inputs in = check_inputs(params, logits_t);
  const int64_t b = in.rows;
  check_arg(outputs.top_source == DSK_LOGPROBS_PROCESSED || outputs.top_source == DSK_LOGPROBS_RAW,
            "outputs->top_source = {}, expected DSK_LOGPROBS_PROCESSED (0) or DSK_LOGPROBS_RAW (1)",
            outputs.top_source);
  const Arg ids = row_output(outputs.ids, "outputs->ids", DSK_DTYPE_INT32, b, true);
  const Arg logprobs = row_output(outputs.logprobs, "outputs->logprobs", DSK_DTYPE_F32, b, false);
  const Arg raw =
      row_output(outputs.raw_logprobs, "outputs->raw_logprobs", DSK_DTYPE_F32, b, false);
  const Arg status = row_output(outputs.status, "outputs->status", DSK_DTYPE_UINT8, b, false);
  const Arg top_ids = optional_output(outputs.top_ids, "outputs->top_ids");
  const Arg top_lp = optional_output(outputs.top_logprobs, "outputs->top_logprobs");
  check_arg(top_ids.present == top_lp.present,
            "outputs->top_ids is {} but outputs->top_logprobs is {}, expected both or neither",
            top_ids.present ? "given" : "NULL", top_lp.present ? "given" : "NULL");
  if (top_ids.present) {
    check_dtype(top_ids, DSK_DTYPE_INT32);
    check_ndim(top_ids, 2);
    const int64_t n = top_ids.l.shape[1];
    check_arg(n >= 1 && n <= DSK_SAMPLE_MAX_TOP_LOGPROBS,
              "outputs->top_ids.shape[1] = {}, expected 1..{} (DSK_SAMPLE_MAX_TOP_LOGPROBS)", n,
              DSK_SAMPLE_MAX_TOP_LOGPROBS);
    const int64_t shape[2] = {b, n};
    check_shape(top_ids, shape, 2, "[B, n]: logits.shape[0], then n");
    check_dtype(top_lp, DSK_DTYPE_F32);
    check_shape(top_lp, shape, 2, "[B, n] (outputs->top_ids.shape)");
  }
  const std::vector<const Arg*> ins = in.all();
  const Target t = target_apart(ctx, ins, {&ids, &logprobs, &raw, &status, &top_ids, &top_lp});
  if (b == 0) return;
  InputViews iv;
  dsk_sampling_args a;
  fill_inputs(params, in, iv, &a);
  View idv, lpv, rawv, stv, tiv, tlv;
  as_is(ids, idv);
  as_is(logprobs, lpv);
  as_is(raw, rawv);
  as_is(status, stv);
  as_is(top_ids, tiv);
  as_is(top_lp, tlv);
  a.ids = idv.get();
  a.logprobs = lpv.get();
  a.raw_logprobs = rawv.get();
  a.status = stv.get();
  a.top_ids = tiv.get();
  a.top_logprobs = tlv.get();
  a.top_source = outputs.top_source;
  auto fn = entry(t, t.backend->iface->sample, "sample");
  call(t, fn(&t.exec, &a), "sample");
}

void sampling_transform(dsk_context& ctx, const dsk_sampling_params& params,
                        const DLTensor* logits_t, const DLTensor* out_t, const DLTensor* status_t,
                        bool probs) {
  const Inputs in = check_inputs(params, logits_t);
  const int64_t b = in.rows;
  const Arg out = output(out_t, probs ? "probs" : "out");
  if (probs) {
    check_dtype(out, DSK_DTYPE_F32);
  } else {
    check_float(out);
  }
  check_same_shape(out, in.logits);
  const Arg status = row_output(status_t, "status", DSK_DTYPE_UINT8, b, false);
  const std::vector<const Arg*> ins = in.all();
  const Target t = target_apart(ctx, ins, {&out, &status});
  if (b == 0) return;
  InputViews iv;
  dsk_sampling_args a;
  fill_inputs(params, in, iv, &a);
  View ov, stv;
  as_is(out, ov);
  as_is(status, stv);
  a.status = stv.get();
  auto fn = entry(t, t.backend->iface->sampling_transform, "sampling_transform");
  call(t, fn(&t.exec, &a, ov.get(), probs ? 1 : 0), "sampling_transform");
}

void speculative_verify(dsk_context& ctx, const dsk_verify_params& params,
                        const DLTensor* draft_ids_t, const DLTensor* draft_probs_t,
                        const DLTensor* target_t, const DLTensor* out_ids_t,
                        const DLTensor* accepted_t, const DLTensor* emitted_t) {
  check_arg(params.mode == DSK_VERIFY_SAMPLE || params.mode == DSK_VERIFY_GREEDY,
            "params->mode = {}, expected DSK_VERIFY_SAMPLE (0) or DSK_VERIFY_GREEDY (1)",
            params.mode);
  const Arg draft_ids = input(draft_ids_t, "draft_ids");
  check_index(draft_ids);
  check_ndim(draft_ids, 2);
  const int64_t b = draft_ids.l.shape[0];
  const int64_t n = draft_ids.l.shape[1];
  const Arg tgt = input(target_t, "target");
  check_float(tgt);
  check_ndim(tgt, 3);
  const int64_t v = checked_vocab(tgt);
  const int64_t t_shape[3] = {b, n + 1, v};
  check_shape(tgt, t_shape, 3, "[B, n + 1, V]: draft_ids.shape[0], draft_ids.shape[1] + 1, then V");
  const Arg draft_probs = optional_input(draft_probs_t, "draft_probs");
  if (draft_probs.present) {
    check_float(draft_probs);
    const int64_t q_shape[3] = {b, n, v};
    check_shape(draft_probs, q_shape, 3, "[B, n, V] (draft_ids.shape, target.shape[2])");
  }
  const Arg seed = row_param(params.seeds, "params->seeds", DSK_DTYPE_INT64, b);
  const Arg offset = row_param(params.offsets, "params->offsets", DSK_DTYPE_INT64, b);
  const Arg out_ids = output(out_ids_t, "out_ids");
  check_dtype(out_ids, DSK_DTYPE_INT32);
  const int64_t o_shape[2] = {b, n + 1};
  check_shape(out_ids, o_shape, 2, "[B, n + 1] (draft_ids.shape[0], draft_ids.shape[1] + 1)");
  const Arg accepted = row_output(accepted_t, "accepted", DSK_DTYPE_INT32, b, true);
  const Arg emitted = row_output(emitted_t, "emitted", DSK_DTYPE_INT32, b, false);
  const std::vector<const Arg*> ins = {&draft_ids, &tgt, &draft_probs, &seed, &offset};
  const Target t = target_apart(ctx, ins, {&out_ids, &accepted, &emitted});
  if (b == 0) return;
  View dv, qv, tv, sv, ofv, ov, av, ev;
  as_is(draft_ids, dv);
  as_is(draft_probs, qv);
  as_is(tgt, tv);
  as_is(seed, sv);
  as_is(offset, ofv);
  as_is(out_ids, ov);
  as_is(accepted, av);
  as_is(emitted, ev);
  dsk_verify_args a{};
  a.mode = params.mode;
  a.seed = sv.get();
  a.offset = ofv.get();
  a.seed_value = params.seed;
  a.offset_value = params.offset;
  a.draft_ids = dv.get();
  a.draft_probs = params.mode == DSK_VERIFY_GREEDY ? nullptr : qv.get();
  a.target = tv.get();
  a.out_ids = ov.get();
  a.accepted = av.get();
  a.emitted = ev.get();
  auto fn = entry(t, t.backend->iface->speculative_verify, "speculative_verify");
  call(t, fn(&t.exec, &a), "speculative_verify");
}

}  // namespace ops
}  // namespace dsk
