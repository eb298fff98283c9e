// The tiny model on the CPU: finite logits and valid ids in f32 and bf16, and three consistency
// checks of the forward pass that need no reference implementation: batching, absorbed decode vs
// MHA prefill, MoE pieces vs the fused layer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "golden.h"
#include "test_util.h"

using namespace deepseek;
using deepseek_test::by_step;
using deepseek_test::TinyCheckpoint;
using deepseek_test::two_prompts;

TEST_CASE("tiny model: f32 and bf16 on the CPU give finite logits and valid ids") {
  for (const bool bf16_weights : {false, true}) {
    TinyCheckpoint tiny(bf16_weights);
    for (const char* dtype : {"f32", "bf16"}) {
      INFO("checkpoint " << (bf16_weights ? "bf16" : "f32") << ", --dtype " << std::string(dtype));
      const GenerateResult r = tiny.run(dtype, two_prompts(), 4);
      REQUIRE(r.logits.size() == 4);
      double max_abs = 0.0;
      for (const auto& step : r.logits) {
        REQUIRE(step.size() == 2);
        for (const auto& row : step) {
          REQUIRE(row.size() == 1024);
          for (float v : row) {
            REQUIRE(std::isfinite(v));
            max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
          }
        }
      }
      CHECK(max_abs > 0.1);  // not a degenerate all-zero output
      for (const auto& ids : r.tokens) {
        REQUIRE(ids.size() == 4);
        for (int32_t id : ids) CHECK((id >= 0 && id < 1024));
      }
      // Greedy: each token is the argmax of its logits (lowest id on ties).
      for (size_t s = 0; s < 4; ++s) {
        for (size_t b = 0; b < 2; ++b) {
          const auto& row = r.logits[s][b];
          const auto best = std::max_element(row.begin(), row.end()) - row.begin();
          CHECK(r.tokens[b][s] == best);
        }
      }
    }
  }
}

TEST_CASE("tiny model: a request alone and in a batch give the same logits, bit for bit") {
  const auto prompts = two_prompts();
  for (const char* dtype : {"f32", "bf16", "fp8"}) {
    TinyCheckpoint tiny(std::string(dtype) != "f32");
    const GenerateResult both = tiny.run(dtype, prompts, 3);
    for (size_t b = 0; b < 2; ++b) {
      const auto forced = by_step({both.tokens[b]});
      const GenerateResult alone = tiny.run(dtype, {prompts[b]}, 3, &forced);
      std::vector<std::vector<std::vector<float>>> mine;
      for (const auto& step : both.logits) mine.push_back({step[b]});
      const LogitDiff d = compare_logits(alone.logits, mine);
      INFO(std::string(dtype) << " request " << b << ": max |err| " << d.max_abs_err << " of "
                              << d.max_abs_ref);
      // Every op on the path computes a row without looking at the other rows: the gate,
      // attention, sampling, and the CPU GEMM (one fixed order of operations per element,
      // lib/cpu/gemm_tile.h), also inside the experts, whose row counts change with the batch.
      CHECK(d.max_abs_err == 0);
    }
  }
}

TEST_CASE("tiny model: absorbed paged decode agrees with the MHA prefill of the same tokens") {
  TinyCheckpoint tiny(false);
  const auto prompts = two_prompts();
  // Decode three tokens, then prefill prompt + the first two generated tokens from scratch: its
  // last logits are step 2's logits, computed the other way (decompressed keys, 192/128 heads).
  const GenerateResult decoded = tiny.run("f32", prompts, 3);
  std::vector<std::vector<int32_t>> longer = prompts;
  for (size_t b = 0; b < 2; ++b) {
    longer[b].push_back(decoded.tokens[b][0]);
    longer[b].push_back(decoded.tokens[b][1]);
  }
  const GenerateResult prefilled = tiny.run("f32", longer, 1);
  const LogitDiff d = compare_logits(prefilled.logits, {decoded.logits[2]});
  MESSAGE("decode vs prefill: max |err| " << d.max_abs_err << " of max |logit| " << d.max_abs_ref);
  // Both forms round their attention operands to f16 (dsk's MLA kernels take bf16/f16): the
  // absorbed form rounds q_latent (512 wide) and the cached latent, the MHA form k and v.
  CHECK(d.max_abs_err <= 2e-3 * d.max_abs_ref);
  CHECK(prefilled.tokens[0][0] == decoded.tokens[0][2]);
  CHECK(prefilled.tokens[1][0] == decoded.tokens[1][2]);
}

TEST_CASE("tiny model: MoE pieces and the fused MoE layer agree") {
  TinyCheckpoint tiny(true);
  for (const char* dtype : {"bf16", "fp8"}) {
    const GenerateResult pieces = tiny.run(dtype, two_prompts(), 3);
    const auto forced = by_step(pieces.tokens);
    const GenerateResult layer = tiny.run(dtype, two_prompts(), 3, &forced, MoeMode::kLayer);
    const LogitDiff d = compare_logits(layer.logits, pieces.logits);
    MESSAGE("MoE layer vs pieces, " << std::string(dtype) << ": max |err| " << d.max_abs_err
                                    << " of max |logit| " << d.max_abs_ref);
    // The same operations with the same roundings (expert outputs rounded to the activation
    // dtype, an f32 combine): bitwise equal on the CPU as measured; allow summation-order noise.
    CHECK(d.max_abs_err <= 1e-5 * d.max_abs_ref);
  }
}
