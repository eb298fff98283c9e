// checkpoint_spec.h - the Hugging Face tensor names and shapes of a DeepSeek-V3 checkpoint, derived
// from its config. The tiny-model writer produces exactly these tensors and the loader expects
// them.
#ifndef DSK_EXAMPLES_DEEPSEEK_CHECKPOINT_SPEC_H_
#define DSK_EXAMPLES_DEEPSEEK_CHECKPOINT_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "config.h"

namespace deepseek {

enum class TensorRole {
  kLinear,     // [out, in] projection; fp8 checkpoints store it as e4m3 + weight_scale_inv
  kNorm,       // RMSNorm weight [D]
  kEmbedding,  // model.embed_tokens.weight [V, D]
  kLmHead,     // lm_head.weight [V, D] (kept in bf16 by fp8 checkpoints)
  kRouter,     // mlp.gate.weight [E, D] (kept in bf16 by fp8 checkpoints)
  kBias,       // mlp.gate.e_score_correction_bias [E], f32
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dims;  // the shape in config terms, for messages: "[q_lora_rank, hidden_size]"
  TensorRole role;
};

// Every tensor the forward pass reads, in a fixed order (embedding, layers, norm, lm_head).
std::vector<TensorSpec> checkpoint_tensors(const ModelConfig& c);

// Helpers for per-layer names: "model.layers.<i>.<suffix>", and the expert's prefix.
std::string layer_name(int64_t layer, const std::string& suffix);
std::string expert_name(int64_t layer, int64_t expert, const std::string& proj);

std::string shape_text(const std::vector<int64_t>& shape);

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_CHECKPOINT_SPEC_H_
