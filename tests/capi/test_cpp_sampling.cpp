// dsk.hpp: the C++ wrappers of token sampling (dsk_sampling.h) on a CPU context, with small
// examples whose results follow from the header's definitions by hand (greedy = argmax with ties
// to the lower id, top-k 1 = argmax, seeds reproduce, penalties flip a close argmax, the greedy
// verification chain). The C functions themselves are tested in test_sampling*.cpp; this checks
// that each wrapper passes its arguments through in order, that the struct helpers start from the
// library's defaults, and that failures come back as dsk::Error naming the argument.
#include <doctest/doctest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <dsk/dsk.hpp>
#include <limits>
#include <string>
#include <vector>

#include "cpp_test_util.h"

namespace {

using cpp_test::expect_invalid;
using cpp_test::make_int;

const DLDataType kF32 = dsk::dtype(DSK_DTYPE_F32);
const DLDataType kI32 = dsk::dtype(DSK_DTYPE_INT32);
const DLDataType kI64 = dsk::dtype(DSK_DTYPE_INT64);
const DLDataType kU8 = dsk::dtype(DSK_DTYPE_UINT8);
const float kInf = std::numeric_limits<float>::infinity();

dsk::Tensor make_f32(dsk::Context& ctx, const std::vector<int64_t>& shape,
                     const std::vector<float>& v) {
  dsk::Tensor t = dsk::Tensor::empty(ctx, shape, kF32);
  REQUIRE(static_cast<size_t>(t.numel()) == v.size());
  if (!v.empty()) std::memcpy(t.data<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

// log_softmax of one row in double.
std::vector<double> log_softmax_ref(const std::vector<float>& x) {
  double m = -std::numeric_limits<double>::infinity();
  for (float v : x) m = std::fmax(m, static_cast<double>(v));
  double s = 0;
  for (float v : x) s += std::exp(static_cast<double>(v) - m);
  std::vector<double> out;
  for (float v : x) out.push_back(static_cast<double>(v) - m - std::log(s));
  return out;
}

// Two rows of 6 logits: row 0 has a tie for the maximum at ids 1 and 4; row 1's maximum is id 5.
const std::vector<float> kLogits = {0.5f,  2.0f,  -1.0f, 1.0f,  2.0f,  0.0f,
                                    -3.0f, 0.25f, 1.5f,  0.75f, -0.5f, 1.75f};

}  // namespace

TEST_CASE("cpp sampling: the struct helpers start from the library's defaults") {
  const dsk_sampling_params p = dsk::sampling_params();
  CHECK(p.struct_size == sizeof(dsk_sampling_params));
  CHECK(p.temperature == 1.0f);
  CHECK(p.top_k == 0);
  CHECK(p.top_p == 1.0f);
  CHECK(p.min_p == 0.0f);
  CHECK(p.repetition_penalty == 1.0f);
  CHECK(p.frequency_penalty == 0.0f);
  CHECK(p.presence_penalty == 0.0f);
  CHECK(p.seed == 0);
  CHECK(p.offset == 0);
  const DLTensor* const tensors[] = {p.temperatures,
                                     p.top_ks,
                                     p.top_ps,
                                     p.min_ps,
                                     p.repetition_penalties,
                                     p.frequency_penalties,
                                     p.presence_penalties,
                                     p.seeds,
                                     p.offsets,
                                     p.output_offsets,
                                     p.output_ids,
                                     p.prompt_offsets,
                                     p.prompt_ids,
                                     p.bias_offsets,
                                     p.bias_ids,
                                     p.bias_values,
                                     p.allowed_mask};
  for (const DLTensor* t : tensors) CHECK(t == nullptr);

  CHECK(dsk::greedy_params().temperature == 0.0f);
  const dsk_sampling_params q = dsk::sampling_params(0.7f, 50, 0.9f, 0.05f, 42, 7);
  CHECK(q.struct_size == sizeof(dsk_sampling_params));
  CHECK(q.temperature == 0.7f);
  CHECK(q.top_k == 50);
  CHECK(q.top_p == 0.9f);
  CHECK(q.min_p == 0.05f);
  CHECK(q.seed == 42);
  CHECK(q.offset == 7);
  CHECK(q.repetition_penalty == 1.0f);

  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {2}, kI32);
  dsk::Tensor lp = dsk::Tensor::empty(ctx, {2}, kF32);
  const dsk_sampling_outputs o = dsk::sampling_outputs(ids, lp);
  CHECK(o.struct_size == sizeof(dsk_sampling_outputs));
  CHECK(o.top_source == DSK_LOGPROBS_PROCESSED);
  CHECK(o.ids == static_cast<const DLTensor*>(ids));
  CHECK(o.logprobs == static_cast<const DLTensor*>(lp));
  CHECK(o.top_ids == nullptr);
  CHECK(o.top_logprobs == nullptr);
  CHECK(o.raw_logprobs == nullptr);
  CHECK(o.status == nullptr);
  CHECK(dsk::sampling_outputs(ids, nullptr, nullptr, nullptr, nullptr, nullptr, DSK_LOGPROBS_RAW)
            .top_source == DSK_LOGPROBS_RAW);

  const dsk_verify_params v = dsk::verify_params();
  CHECK(v.struct_size == sizeof(dsk_verify_params));
  CHECK(v.mode == DSK_VERIFY_SAMPLE);
  CHECK(v.seed == 0);
  CHECK(v.offset == 0);
  CHECK(v.seeds == nullptr);
  CHECK(v.offsets == nullptr);
  const dsk_verify_params g = dsk::verify_params(DSK_VERIFY_GREEDY, 3, 4);
  CHECK(g.mode == DSK_VERIFY_GREEDY);
  CHECK(g.seed == 3);
  CHECK(g.offset == 4);
}

TEST_CASE("cpp sampling: greedy is the argmax with ties to the lower id; top-k 1 too") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor logits = make_f32(ctx, {2, 6}, kLogits);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {2}, kI32);
  dsk::sample(ctx, dsk::greedy_params(), logits, ids);
  CHECK(cpp_test::host_values<int32_t>(ids) == std::vector<int32_t>{1, 5});

  // top-k 1 keeps only the argmax, whatever the temperature and the noise.
  for (uint64_t seed = 0; seed < 8; ++seed) {
    dsk::sample(ctx, dsk::sampling_params(1.5f, 1, 1.0f, 0.0f, seed), logits, ids);
    CHECK(cpp_test::host_values<int32_t>(ids) == std::vector<int32_t>{1, 5});
  }

  // B = 0 is a valid, empty batch.
  dsk::Tensor none = dsk::Tensor::empty(ctx, {0, 6}, kF32);
  dsk::Tensor no_ids = dsk::Tensor::empty(ctx, {0}, kI32);
  dsk::sample(ctx, dsk::sampling_params(), none, no_ids);
}

TEST_CASE("cpp sampling: seeds reproduce and rows do not depend on the batch") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  const int64_t B = 16, V = 64;
  std::vector<float> x(static_cast<size_t>(B * V));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 23) * 0.125f;
  dsk::Tensor logits = make_f32(ctx, {B, V}, x);
  dsk::Tensor a = dsk::Tensor::empty(ctx, {B}, kI32);
  dsk::Tensor b = dsk::Tensor::empty(ctx, {B}, kI32);
  dsk_sampling_params p = dsk::sampling_params(1.0f, 0, 1.0f, 0.0f, 1234, 5);
  dsk::sample(ctx, p, logits, a);
  dsk::sample(ctx, p, logits, b);
  CHECK(cpp_test::host_values<int32_t>(a) == cpp_test::host_values<int32_t>(b));
  for (int32_t id : cpp_test::host_values<int32_t>(a)) CHECK((id >= 0 && id < V));

  // Per-row seeds and offsets: row r samples as a batch of one with the scalar seed and offset.
  std::vector<int64_t> seeds, offsets;
  for (int64_t r = 0; r < B; ++r) {
    seeds.push_back(1000 + 17 * r);
    offsets.push_back(r % 3);
  }
  dsk::Tensor seeds_t = make_int(ctx, {B}, seeds);
  dsk::Tensor offsets_t = make_int(ctx, {B}, offsets);
  dsk_sampling_params per_row = dsk::sampling_params();
  per_row.seeds = seeds_t;
  per_row.offsets = offsets_t;
  dsk::sample(ctx, per_row, logits, a);
  const std::vector<int32_t> batch = cpp_test::host_values<int32_t>(a);
  dsk::Tensor one = dsk::Tensor::empty(ctx, {1}, kI32);
  for (int64_t r = 0; r < B; ++r) {
    dsk::Tensor row = logits.view({1, V}, {V, 1}, r * V);
    dsk_sampling_params single = dsk::sampling_params();
    single.seed = static_cast<uint64_t>(seeds[static_cast<size_t>(r)]);
    single.offset = static_cast<uint64_t>(offsets[static_cast<size_t>(r)]);
    dsk::sample(ctx, single, row, one);
    CHECK_MESSAGE(one.data<int32_t>()[0] == batch[static_cast<size_t>(r)], "row ", r);
  }
}

TEST_CASE("cpp sampling: mask, bias and penalties move the greedy choice") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  // One row, V = 40 (two mask words): x_0 = 1.0 is the argmax, x_1 = 0.9 the runner-up.
  const int64_t V = 40;
  std::vector<float> x(static_cast<size_t>(V), -1.0f);
  x[0] = 1.0f;
  x[1] = 0.9f;
  dsk::Tensor logits = make_f32(ctx, {1, V}, x);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {1}, kI32);
  dsk::sample(ctx, dsk::greedy_params(), logits, ids);
  CHECK(ids.data<int32_t>()[0] == 0);

  // Only token 33 allowed (bit 1 of word 1).
  dsk::Tensor mask = make_int<int32_t>(ctx, {1, 2}, {0, 2});
  dsk_sampling_params masked = dsk::greedy_params();
  masked.allowed_mask = mask;
  dsk::sample(ctx, masked, logits, ids);
  CHECK(ids.data<int32_t>()[0] == 33);

  // A bias of +3 on token 7.
  dsk::Tensor bias_offs = make_int<int32_t>(ctx, {2}, {0, 1});
  dsk::Tensor bias_ids = make_int<int32_t>(ctx, {1}, {7});
  dsk::Tensor bias_vals = make_f32(ctx, {1}, {3.0f});
  dsk_sampling_params biased = dsk::greedy_params();
  biased.bias_offsets = bias_offs;
  biased.bias_ids = bias_ids;
  biased.bias_values = bias_vals;
  dsk::sample(ctx, biased, logits, ids);
  CHECK(ids.data<int32_t>()[0] == 7);

  // Token 0 generated twice: repetition 2 (1.0 -> 0.5), presence 0.2 (-> 0.8) or frequency 0.1
  // (2 * 0.1 -> 0.8) each drops it below token 1's 0.9.
  dsk::Tensor out_offs = make_int<int64_t>(ctx, {2}, {0, 2});
  dsk::Tensor out_ids = make_int<int64_t>(ctx, {2}, {0, 0});
  for (int which = 0; which < 3; ++which) {
    dsk_sampling_params p = dsk::greedy_params();
    p.output_offsets = out_offs;
    p.output_ids = out_ids;
    if (which == 0) p.repetition_penalty = 2.0f;
    if (which == 1) p.presence_penalty = 0.2f;
    if (which == 2) p.frequency_penalty = 0.1f;
    dsk::sample(ctx, p, logits, ids);
    CHECK_MESSAGE(ids.data<int32_t>()[0] == 1, "penalty ", which);
  }
  // The prompt counts for repetition only.
  dsk_sampling_params prompt = dsk::greedy_params();
  prompt.prompt_offsets = out_offs;
  prompt.prompt_ids = out_ids;
  prompt.presence_penalty = 0.5f;
  dsk::sample(ctx, prompt, logits, ids);
  CHECK(ids.data<int32_t>()[0] == 0);
  prompt.repetition_penalty = 2.0f;
  dsk::sample(ctx, prompt, logits, ids);
  CHECK(ids.data<int32_t>()[0] == 1);
}

TEST_CASE("cpp sampling: logprobs, top lists and status") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  // Row 0: kLogits row 1; row 1: every token masked out by -inf.
  std::vector<float> x(kLogits.begin() + 6, kLogits.end());
  x.insert(x.end(), 6, -kInf);
  dsk::Tensor logits = make_f32(ctx, {2, 6}, x);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {2}, kI32);
  dsk::Tensor lp = dsk::Tensor::empty(ctx, {2}, kF32);
  dsk::Tensor top_ids = dsk::Tensor::empty(ctx, {2, 4}, kI32);
  dsk::Tensor top_lp = dsk::Tensor::empty(ctx, {2, 4}, kF32);
  dsk::Tensor raw = dsk::Tensor::empty(ctx, {2}, kF32);
  dsk::Tensor status = dsk::Tensor::empty(ctx, {2}, kU8);

  // Greedy over the whole row: the logprob is log_softmax's; top-3 of the processed distribution
  // with top-k 3 leaves the 4th slot padded.
  dsk_sampling_params p = dsk::greedy_params();
  p.top_k = 3;
  dsk::sample(ctx, p, logits, dsk::sampling_outputs(ids, lp, top_ids, top_lp, raw, status));
  const std::vector<double> ref = log_softmax_ref(std::vector<float>(x.begin(), x.begin() + 6));
  CHECK(ids.data<int32_t>()[0] == 5);
  CHECK(status.data<uint8_t>()[0] == DSK_SAMPLE_OK);
  CHECK(cpp_test::host_values<int32_t>(top_ids) ==
        std::vector<int32_t>{5, 2, 3, -1, -1, -1, -1, -1});
  CHECK(top_lp.data<float>()[3] == -kInf);
  // Kept {5, 2, 3}: logprobs over those three.
  const std::vector<double> kept = log_softmax_ref({x[5], x[2], x[3]});
  for (int i = 0; i < 3; ++i)
    CHECK(std::fabs(top_lp.data<float>()[i] - kept[static_cast<size_t>(i)]) < 1e-5);
  CHECK(std::fabs(lp.data<float>()[0] - kept[0]) < 1e-5);
  CHECK(std::fabs(raw.data<float>()[0] - ref[5]) < 1e-5);
  // The masked row.
  CHECK(ids.data<int32_t>()[1] == 0);
  CHECK(status.data<uint8_t>()[1] == DSK_SAMPLE_ALL_MASKED);
  CHECK(std::isnan(lp.data<float>()[1]));
  CHECK(std::isnan(raw.data<float>()[1]));
  for (int i = 4; i < 8; ++i) {
    CHECK(top_ids.data<int32_t>()[i] == -1);
    CHECK(std::isnan(top_lp.data<float>()[i]));
  }

  // The raw distribution's top list ignores the filters.
  dsk::sample(
      ctx, p, logits,
      dsk::sampling_outputs(ids, nullptr, top_ids, top_lp, nullptr, nullptr, DSK_LOGPROBS_RAW));
  CHECK(cpp_test::host_values<int32_t>(top_ids)[3] == 1);
  for (int i = 0; i < 4; ++i) {
    const size_t id = static_cast<size_t>(top_ids.data<int32_t>()[i]);
    CHECK(std::fabs(top_lp.data<float>()[i] - ref[id]) < 1e-5);
  }
}

TEST_CASE("cpp sampling: processed logits and probabilities") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor logits = make_f32(ctx, {2, 6}, kLogits);
  dsk::Tensor out = dsk::Tensor::empty(ctx, {2, 6}, kF32);
  dsk::Tensor probs = dsk::Tensor::empty(ctx, {2, 6}, kF32);
  dsk::Tensor status = dsk::Tensor::empty(ctx, {2}, kU8);
  dsk_sampling_params p = dsk::sampling_params(2.0f, 2, 1.0f, 0.0f, 0);
  dsk::sampling_logits(ctx, p, logits, out, status);
  // Row 0 keeps ids 1 and 4 (the tie), row 1 ids 5 and 2; kept z = x / 2 exactly.
  const std::vector<float> z = cpp_test::host_values<float>(out);
  for (size_t i = 0; i < 12; ++i) {
    const bool kept = i == 1 || i == 4 || i == 6 + 5 || i == 6 + 2;
    if (kept)
      CHECK(z[i] == kLogits[i] / 2.0f);
    else
      CHECK(z[i] == -kInf);
  }
  CHECK(cpp_test::host_values<uint8_t>(status) ==
        std::vector<uint8_t>{DSK_SAMPLE_OK, DSK_SAMPLE_OK});

  dsk::sampling_probs(ctx, p, logits, probs);
  const std::vector<float> pr = cpp_test::host_values<float>(probs);
  CHECK(std::fabs(pr[1] - 0.5f) < 1e-6f);
  CHECK(std::fabs(pr[4] - 0.5f) < 1e-6f);
  const double e = std::exp((1.75 - 1.5) / 2.0);
  CHECK(std::fabs(pr[6 + 5] - e / (1.0 + e)) < 1e-6);
  CHECK(std::fabs(pr[6 + 2] - 1.0 / (1.0 + e)) < 1e-6);
  CHECK(pr[0] == 0.0f);
  CHECK(pr[6] == 0.0f);
}

TEST_CASE("cpp sampling: greedy speculative verification") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  // B 3, n 3, V 5; target row i's argmax: row 0: 2, 4, 1, 3; row 1: 0, 0, 0, 0; row 2: 1, 1, 1, 1.
  const int64_t B = 3, n = 3, V = 5;
  const int32_t argmax[3][4] = {{2, 4, 1, 3}, {0, 0, 0, 0}, {1, 1, 1, 1}};
  std::vector<float> target(static_cast<size_t>(B * (n + 1) * V), 0.0f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i <= n; ++i)
      target[static_cast<size_t>((b * (n + 1) + i) * V + argmax[b][i])] = 1.0f;
  dsk::Tensor target_t = make_f32(ctx, {B, n + 1, V}, target);
  // Row 0 accepts 2, 4 then mismatches (emits 1); row 1 accepts all (bonus 0); row 2's chain ends
  // at the -1 after one accepted draft (emits row 1's argmax).
  dsk::Tensor drafts = make_int<int32_t>(ctx, {B, n}, {2, 4, 0, 0, 0, 0, 1, -1, 3});
  dsk::Tensor out_ids = dsk::Tensor::empty(ctx, {B, n + 1}, kI32);
  dsk::Tensor accepted = dsk::Tensor::empty(ctx, {B}, kI32);
  dsk::Tensor emitted = dsk::Tensor::empty(ctx, {B}, kI32);
  dsk::speculative_verify(ctx, dsk::verify_params(DSK_VERIFY_GREEDY), drafts, nullptr, target_t,
                          out_ids, accepted, emitted);
  CHECK(cpp_test::host_values<int32_t>(out_ids) ==
        std::vector<int32_t>{2, 4, 1, -1, 0, 0, 0, 0, 1, 1, -1, -1});
  CHECK(cpp_test::host_values<int32_t>(accepted) == std::vector<int32_t>{2, 3, 1});
  CHECK(cpp_test::host_values<int32_t>(emitted) == std::vector<int32_t>{3, 4, 2});

  // SAMPLE mode with one-hot targets and a deterministic draft: a draft with p = 1 is always
  // accepted, one with p = 0 never, and the resample is the one-hot token.
  dsk::speculative_verify(ctx, dsk::verify_params(DSK_VERIFY_SAMPLE, 9, 2), drafts, nullptr,
                          target_t, out_ids, accepted);
  CHECK(cpp_test::host_values<int32_t>(out_ids) ==
        std::vector<int32_t>{2, 4, 1, -1, 0, 0, 0, 0, 1, 1, -1, -1});
  CHECK(cpp_test::host_values<int32_t>(accepted) == std::vector<int32_t>{2, 3, 1});
}

TEST_CASE("cpp sampling: errors name the argument") {
  dsk::Context ctx(DSK_BACKEND_CPU);
  dsk::Tensor logits = make_f32(ctx, {2, 6}, kLogits);
  dsk::Tensor ids = dsk::Tensor::empty(ctx, {2}, kI32);
  dsk::Tensor wrong = dsk::Tensor::empty(ctx, {3}, kI32);
  expect_invalid(
      [&] { dsk::sample(ctx, dsk::sampling_params(1.0f, 0, 1.5f, 0.0f, 0), logits, ids); },
      "top_p");
  expect_invalid(
      [&] { dsk::sample(ctx, dsk::sampling_params(-1.0f, 0, 1.0f, 0.0f, 0), logits, ids); },
      "temperature");
  expect_invalid([&] { dsk::sample(ctx, dsk::sampling_params(), logits, wrong); }, "ids");
  dsk::Tensor top_ps = make_f32(ctx, {2}, {0.5f, 1.5f});
  dsk_sampling_params p = dsk::sampling_params();
  p.top_ps = top_ps;
  expect_invalid([&] { dsk::sample(ctx, p, logits, ids); }, "top_ps");
  dsk::Tensor out = dsk::Tensor::empty(ctx, {2, 5}, kF32);
  expect_invalid([&] { dsk::sampling_logits(ctx, dsk::sampling_params(), logits, out); }, "out");
  expect_invalid([&] { dsk::sampling_probs(ctx, dsk::sampling_params(), logits, out); }, "probs");

  dsk::Tensor drafts = make_int<int32_t>(ctx, {1, 1}, {9});
  dsk::Tensor target = make_f32(ctx, {1, 2, 6}, std::vector<float>(12, 0.0f));
  dsk::Tensor out_ids = dsk::Tensor::empty(ctx, {1, 2}, kI32);
  dsk::Tensor accepted = dsk::Tensor::empty(ctx, {1}, kI32);
  expect_invalid(
      [&] {
        dsk::speculative_verify(ctx, dsk::verify_params(), drafts, nullptr, target, out_ids,
                                accepted);
      },
      "draft_ids");
}
