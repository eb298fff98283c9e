// test_util.h - shared helpers of the DeepSeek runner tests: the tiny model on a CPU context.
#ifndef DSK_TESTS_DEEPSEEK_TEST_UTIL_H_
#define DSK_TESTS_DEEPSEEK_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "checkpoint_spec.h"
#include "generate.h"
#include "generator.h"
#include "runner.h"
#include "tiny_model.h"

namespace deepseek_test {

// The golden requests' shape: two prompts of different lengths (7 and 13 tokens).
inline std::vector<std::vector<int32_t>> two_prompts() {
  return {{1, 17, 300, 5, 999, 42, 7}, {3, 1023, 0, 512, 64, 8, 77, 91, 100, 256, 128, 2, 11}};
}

// Runs the tiny checkpoint in `dir` with `dtype` on `ctx`: `tokens` tokens per request, logits
// kept, optionally teacher-forced.
inline deepseek::GenerateResult run_tiny(dsk::Context& ctx, const std::string& dir,
                                         const std::string& dtype,
                                         const std::vector<std::vector<int32_t>>& prompts,
                                         int64_t tokens,
                                         const std::vector<std::vector<int32_t>>* forced = nullptr,
                                         deepseek::MoeMode moe = deepseek::MoeMode::kPieces) {
  deepseek::OpTimer timer(ctx, false);
  auto model = deepseek::load_model(ctx, dir, deepseek::make_precision(dtype), timer, 64, moe);
  deepseek::GenerateOptions opt;
  opt.tokens = tokens;
  opt.keep_logits = true;
  opt.forced = forced;
  return deepseek::generate(*model, timer, prompts, opt);
}

// A CPU context and the tiny checkpoint (f32 or bf16 weights) in a temporary directory.
struct TinyCheckpoint {
  explicit TinyCheckpoint(bool bf16) {
    deepseek::write_tiny_checkpoint(dir.path(), deepseek::kDefaultWeightSeed, bf16);
  }
  deepseek::GenerateResult run(const std::string& dtype,
                               const std::vector<std::vector<int32_t>>& prompts, int64_t tokens,
                               const std::vector<std::vector<int32_t>>* forced = nullptr,
                               deepseek::MoeMode moe = deepseek::MoeMode::kPieces) {
    return run_tiny(cpu, dir.path(), dtype, prompts, tokens, forced, moe);
  }
  dsk::Context cpu{DSK_BACKEND_CPU};
  deepseek::TempDir dir;
};

// tokens[b][s] -> [s][b] for teacher forcing.
inline std::vector<std::vector<int32_t>> by_step(const std::vector<std::vector<int32_t>>& t) {
  std::vector<std::vector<int32_t>> out(t.empty() ? 0 : t[0].size());
  for (size_t s = 0; s < out.size(); ++s) {
    for (const auto& row : t) out[s].push_back(row[s]);
  }
  return out;
}

}  // namespace deepseek_test

#endif  // DSK_TESTS_DEEPSEEK_TEST_UTIL_H_
