// generate.h - a batch of requests: prefill all prompts together, then decode every request one
// token per step with the paged cache, sampling with dsk_sample (greedy by default).
#ifndef DSK_EXAMPLES_DEEPSEEK_GENERATE_H_
#define DSK_EXAMPLES_DEEPSEEK_GENERATE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "model.h"

namespace deepseek {

struct GenerateOptions {
  int64_t tokens = 16;       // tokens generated per request (1 = prefill only)
  float temperature = 0.0f;  // 0 = greedy
  int32_t top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;  // sampling seed; the step number is the Philox offset
  // Teacher forcing (golden tests): when set, step s >= 1 feeds forced[s - 1][b] instead of the
  // sampled token, so logits stay comparable even where a sampled token differs.
  const std::vector<std::vector<int32_t>>* forced = nullptr;
  bool keep_logits = false;  // copy every step's logits to the host
  // Called after each decode step with (steps done, steps in total, seconds so far).
  std::function<void(int64_t, int64_t, double)> progress;
};

struct GenerateResult {
  std::vector<std::vector<int32_t>> tokens;             // [B][tokens]: the sampled ids
  std::vector<std::vector<std::vector<float>>> logits;  // [step][B][V] when keep_logits
  int64_t prompt_tokens = 0, decode_tokens = 0;
  int64_t cache_bytes = 0;                             // the latent cache of all layers
  double prefill_seconds = 0.0, decode_seconds = 0.0;  // sampling included
};

GenerateResult generate(Model& model, OpTimer& timer,
                        const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& options);

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_GENERATE_H_
