// Bad-input sweep (sweep_test_util.h) over dsk_sampling.h: every tensor of dsk_sample's call, the
// per-row parameters, token lists and mask of dsk_sampling_params and the outputs of
// dsk_sampling_outputs included, then the processed logits and probabilities and speculative
// verification.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include "sweep_test_util.h"

using sweep::Case;
using sweep::Expect;

namespace {

constexpr int32_t kF32 = DSK_DTYPE_F32, kBF16 = DSK_DTYPE_BF16, kI32 = DSK_DTYPE_INT32,
                  kI64 = DSK_DTYPE_INT64, kU8 = DSK_DTYPE_UINT8;

}  // namespace

TEST_CASE("bad input sweep: dsk_sample") {
  // B 2, V 40; every optional tensor present.
  Case c("dsk_sample");
  const int logits = c.in("logits", {2, 40}, kBF16);
  const int temps = c.in("params->temperatures", {2}, kF32, {1.0, 0.5}),
            top_ks = c.in("params->top_ks", {2}, kI32, {0, 5}),
            top_ps = c.in("params->top_ps", {2}, kF32, {1.0, 0.9}),
            min_ps = c.in("params->min_ps", {2}, kF32, {0.0, 0.1}),
            rep = c.in("params->repetition_penalties", {2}, kF32, {1.0, 1.1}),
            freq = c.in("params->frequency_penalties", {2}, kF32, {0.0, 0.1}),
            pres = c.in("params->presence_penalties", {2}, kF32, {0.0, 0.1}),
            seeds = c.in("params->seeds", {2}, kI64, {1, 2}),
            offs = c.in("params->offsets", {2}, kI64, {0, 3}),
            out_offs = c.in("params->output_offsets", {3}, kI32, {0, 1, 2}),
            out_ids = c.in("params->output_ids", {2}, kI32, {1, 2}),
            pr_offs = c.in("params->prompt_offsets", {3}, kI64, {0, 1, 1}),
            pr_ids = c.in("params->prompt_ids", {1}, kI64, {3}),
            b_offs = c.in("params->bias_offsets", {3}, kI32, {0, 1, 2}),
            b_ids = c.in("params->bias_ids", {2}, kI32, {4, 5}),
            b_vals = c.in("params->bias_values", {2}, kF32, {1.0, -1.0}),
            mask = c.in("params->allowed_mask", {2, 2}, kI32, {-1});
  const int ids = c.out("outputs->ids", {2}, kI32), lp = c.out("outputs->logprobs", {2}, kF32),
            top_ids = c.out("outputs->top_ids", {2, 3}, kI32),
            top_lp = c.out("outputs->top_logprobs", {2, 3}, kF32),
            raw = c.out("outputs->raw_logprobs", {2}, kF32),
            status = c.out("outputs->status", {2}, kU8);
  dsk_sampling_params params;
  dsk_sampling_outputs outputs;
  REQUIRE(dsk_sampling_params_init(&params) == DSK_OK);
  REQUIRE(dsk_sampling_outputs_init(&outputs) == DSK_OK);
  const dsk_sampling_params* p = &params;
  const dsk_sampling_outputs* o = &outputs;
  c.call = [&] {
    params.temperatures = c[temps];
    params.top_ks = c[top_ks];
    params.top_ps = c[top_ps];
    params.min_ps = c[min_ps];
    params.repetition_penalties = c[rep];
    params.frequency_penalties = c[freq];
    params.presence_penalties = c[pres];
    params.seeds = c[seeds];
    params.offsets = c[offs];
    params.output_offsets = c[out_offs];
    params.output_ids = c[out_ids];
    params.prompt_offsets = c[pr_offs];
    params.prompt_ids = c[pr_ids];
    params.bias_offsets = c[b_offs];
    params.bias_ids = c[b_ids];
    params.bias_values = c[b_vals];
    params.allowed_mask = c[mask];
    outputs.ids = c[ids];
    outputs.logprobs = c[lp];
    outputs.top_ids = c[top_ids];
    outputs.top_logprobs = c[top_lp];
    outputs.raw_logprobs = c[raw];
    outputs.status = c[status];
    return dsk_sample(c.ctx, p, c[logits], o);
  };
  // Per-row tensors replace their scalars, so each may be NULL on its own...
  for (int i :
       {temps, top_ks, top_ps, min_ps, rep, freq, pres, seeds, offs, mask, lp, raw, status}) {
    c.expect(i, sweep::kNull, Expect::kOk);
  }
  // ... but token lists come in pairs (offsets with ids, bias ids with values) and top_ids with
  // top_logprobs.
  for (int i : {out_offs, out_ids, pr_offs, pr_ids, b_offs, b_ids, b_vals, top_ids, top_lp}) {
    c.expect(i, sweep::kNull, Expect::kFail);
  }
  // A token list may be longer than its offsets use (offs[B] <= N); V is the logits' own, and 39 or
  // 41 tokens need the same two mask words.
  c.expect(out_ids, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
  c.expect(pr_ids, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
  c.expect(logits, sweep::kLastPlus1, Expect::kSkip);
  c.expect(logits, sweep::kLastMinus1, Expect::kOk);
  // Any top_k >= 0 (k >= V keeps every token), any seed and offset (read as uint64), any mask bits.
  c.expect(top_ks, sweep::kMaxValue, Expect::kOk);
  for (int i : {seeds, offs, mask}) c.expect(i, {sweep::kMinValue, sweep::kMaxValue}, Expect::kOk);
  c.versioned("params", p, params);
  c.versioned("outputs", o, outputs);
  c.run();
}

TEST_CASE("bad input sweep: dsk_sampling_logits and dsk_sampling_probs") {
  dsk_sampling_params params;
  REQUIRE(dsk_sampling_params_init(&params) == DSK_OK);
  params.top_k = 5;
  for (bool probs : {false, true}) {
    Case c(probs ? "dsk_sampling_probs" : "dsk_sampling_logits");
    const dsk_sampling_params* p = &params;
    const int l = c.in("logits", {2, 40}, kF32),
              out = c.out(probs ? "probs" : "out", {2, 40}, probs ? kF32 : kBF16),
              st = c.opt_out("status", {2}, kU8);
    c.call = [&] {
      return probs ? dsk_sampling_probs(c.ctx, p, c[l], c[out], c[st])
                   : dsk_sampling_logits(c.ctx, p, c[l], c[out], c[st]);
    };
    c.versioned("params", p, params);
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_speculative_verify") {
  // B 2, n 2 drafts, V 10.
  Case c("dsk_speculative_verify");
  const int seeds = c.opt_in("params->seeds", {2}, kI64, {1, 2}),
            offs = c.opt_in("params->offsets", {2}, kI64, {0, 7}),
            drafts = c.in("draft_ids", {2, 2}, kI32, {1, 2, 3, -1}),
            q = c.opt_in("draft_probs", {2, 2, 10}, kF32, {0.1}),
            t = c.in("target", {2, 3, 10}, kBF16, {0.1}), out = c.out("out_ids", {2, 3}, kI32),
            acc = c.out("accepted", {2}, kI32), emi = c.opt_out("emitted", {2}, kI32);
  dsk_verify_params params;
  REQUIRE(dsk_verify_params_init(&params) == DSK_OK);
  const dsk_verify_params* p = &params;
  c.call = [&] {
    params.seeds = c[seeds];
    params.offsets = c[offs];
    return dsk_speculative_verify(c.ctx, p, c[drafts], c[q], c[t], c[out], c[acc], c[emi]);
  };
  for (int i : {seeds, offs}) c.expect(i, {sweep::kMinValue, sweep::kMaxValue}, Expect::kOk);
  c.versioned("params", p, params);
  c.bad("mode -1", {"mode"}, [&] {
    dsk_verify_params bad = params;
    bad.mode = -1;
    return dsk_speculative_verify(c.ctx, &bad, c[drafts], c[q], c[t], c[out], c[acc], c[emi]);
  });
  c.run();
}
