// golden.h - the Hugging Face golden fixture (tests/golden/tiny_v3.golden.json, format
// "dsk-golden-1") and the comparison of a dsk run against it.
#ifndef DSK_EXAMPLES_DEEPSEEK_GOLDEN_H_
#define DSK_EXAMPLES_DEEPSEEK_GOLDEN_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace deepseek {

struct GoldenRun {
  std::vector<std::vector<std::vector<float>>> logits;  // [step][request][V]
  std::vector<std::vector<int32_t>> tokens;             // [step][request]: argmax of logits
};

struct GoldenFixture {
  std::string config_json;  // the "config" object, as text for parse_config
  uint64_t seed = 0;
  std::vector<std::vector<int32_t>> requests;
  int64_t decode_steps = 0;
  std::map<std::string, GoldenRun> runs;  // "float32", "bfloat16"
  std::string versions;                   // "transformers X, torch Y"
};

// Reads and validates a fixture (format, generator, shapes of every run). Throws
// std::runtime_error naming the file and the field.
GoldenFixture load_golden(const std::string& path);

// Logit differences of a run against a reference, over every step and request.
struct LogitDiff {
  double max_abs_err = 0.0;  // max |a - b|
  double max_abs_ref = 0.0;  // max |b|
  double rms_err = 0.0;      // sqrt(mean (a - b)^2)
  double rms_ref = 0.0;      // sqrt(mean b^2)
  int64_t worst_step = 0, worst_request = 0;
  bool finite = true;  // a is finite everywhere
};
LogitDiff compare_logits(const std::vector<std::vector<std::vector<float>>>& a,
                         const std::vector<std::vector<std::vector<float>>>& b);

// tokens[b][s] (a generate() result) against ref[s][b] (a fixture run): how many agree.
int64_t matching_tokens(const std::vector<std::vector<int32_t>>& tokens,
                        const std::vector<std::vector<int32_t>>& ref, int64_t* total);

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_GOLDEN_H_
