// tiny_model.h - the embedded default model: a DeepSeek-V3-shaped config small enough for a 2-core
// CPU (4 layers, the first dense, hidden 256, 8 heads with V3's per-head widths, 16 experts in 4
// groups, top-4, 1 shared expert, vocabulary 1024) with "dsk-tiny-v1" weights, written as a
// Hugging Face checkpoint directory that the ordinary loader then reads.
#ifndef DSK_EXAMPLES_DEEPSEEK_TINY_MODEL_H_
#define DSK_EXAMPLES_DEEPSEEK_TINY_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "config.h"
#include "safetensors_writer.h"

namespace deepseek {

// config.json of the tiny model, exactly as tests/golden/make_golden.py uses it.
const std::string& tiny_config_json();

// The generated tensors of `config` (every tensor of checkpoint_tensors) in f32, or rounded to
// bf16 (round to nearest even; e_score_correction_bias stays f32, as in Hugging Face checkpoints).
std::vector<SafetensorsEntry> generate_checkpoint(const ModelConfig& config, uint64_t seed,
                                                  bool bf16);

// Writes `dir`/config.json and `dir`/model.safetensors (dir must exist).
void write_checkpoint_dir(const std::string& dir, const std::string& config_json,
                          const std::vector<SafetensorsEntry>& entries);

// The tiny model with `seed` into `dir`: config.json (torch_dtype set to the weights' dtype) and
// model.safetensors.
void write_tiny_checkpoint(const std::string& dir, uint64_t seed, bool bf16);

// A directory under $TMPDIR (or /tmp) removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "dsk-run-");
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_TINY_MODEL_H_
