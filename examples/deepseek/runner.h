// runner.h - what dsk-run does, as functions the tests call too: open a checkpoint into a Model,
// and check a run against the golden fixture.
#ifndef DSK_EXAMPLES_DEEPSEEK_RUNNER_H_
#define DSK_EXAMPLES_DEEPSEEK_RUNNER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "golden.h"
#include "model.h"

namespace deepseek {

// config.json next to the checkpoint: DIR/config.json for a directory, else in the file's
// directory.
std::string config_path_for(const std::string& checkpoint);

// Loads config and weights from `checkpoint` and builds the model.
std::unique_ptr<Model> load_model(dsk::Context& ctx, const std::string& checkpoint,
                                  const Precision& precision, OpTimer& timer, int64_t max_positions,
                                  MoeMode moe, const LoadProgress& progress = nullptr);

struct GoldenReport {
  std::string reference;  // the fixture run compared against: "float32" or "bfloat16"
  LogitDiff diff;
  double tolerance = 0.0;  // the bound on diff.max_abs_err
  int64_t tokens_same = 0, tokens_total = 0, tokens_needed = 0;
  bool pass = false;
  std::string text;  // a human-readable account, one line per check
};

// Regenerates the fixture's tiny checkpoint (f32 weights for --dtype f32, bf16 for bf16 and fp8),
// runs its requests as one batch with teacher forcing on the reference run's tokens, and compares
// (tolerances in docs/deepseek.md):
//   f32  vs float32:  max |err| <= 1e-3 * max |logit|, every greedy token equal;
//   bf16 vs bfloat16: max |err| <= 2 * (the fixture's own max |float32 - bfloat16| over the steps
//                     where both runs fed the same tokens), every greedy token equal;
//   fp8  vs bfloat16: fp8_close below, at least 3/4 of the greedy tokens equal.
GoldenReport run_golden(dsk::Context& ctx, const GoldenFixture& fixture, const std::string& dtype,
                        MoeMode moe, OpTimer& timer);

constexpr double kF32RelTol = 1e-3;

// fp8 against a bf16 run. e4m3 keeps 3 mantissa bits: each weight and each activation (quantized
// per 1 x 128 tile) carries up to 2^-4 relative rounding error, about 2.5% RMS, so a projection's
// output is off by about 3.5% RMS, compounding over the layers; and a routing decision whose
// margin is below that noise (the tiny model has margins down to 0.003) may pick another expert
// for a token, which moves that token's logits much more. Bound: RMS error <= 15% of the RMS logit
// and max error <= 30% of the largest |logit|. Measured on the tiny model (CPU): 5.5% / 7.2%
// (tests' prompts, vs dsk bf16) and 10.1% / 17.7% (golden prompts, vs Hugging Face bf16).
constexpr double kFp8RmsTol = 0.15;
constexpr double kFp8MaxTol = 0.3;
inline bool fp8_close(const LogitDiff& d) {
  return d.finite && d.rms_err <= kFp8RmsTol * d.rms_ref &&
         d.max_abs_err <= kFp8MaxTol * d.max_abs_ref;
}

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_RUNNER_H_
