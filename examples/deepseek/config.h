// config.h - the model configuration of a Hugging Face DeepSeek-V3 checkpoint (config.json).
#ifndef DSK_EXAMPLES_DEEPSEEK_CONFIG_H_
#define DSK_EXAMPLES_DEEPSEEK_CONFIG_H_

#include <cstdint>
#include <string>

namespace deepseek {

// rope_scaling of config.json. Without it (or with another type than "yarn") RoPE is plain.
struct RopeScaling {
  bool yarn = false;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;  // Hugging Face: 0 (absent) keeps the plain softmax scale
};

// The fields of DeepseekV3Config that the forward pass needs, validated (see parse_config).
struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;            // D
  int64_t intermediate_size = 0;      // dense MLP width
  int64_t moe_intermediate_size = 0;  // routed expert width
  int64_t num_hidden_layers = 0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  int64_t num_attention_heads = 0;  // H
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;  // Dc
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;  // 0: every layer dense
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = false;
  bool sigmoid_scores = true;  // scoring_func "sigmoid" (V3) or "softmax" (V2)
  bool score_bias = true;      // topk_method "noaux_tc": e_score_correction_bias exists
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  // quantization_config of fp8 checkpoints (DeepSeek-V3's published weights).
  bool fp8_checkpoint = false;
  bool ue8m0_scales = false;  // "scale_fmt": "ue8m0" (V3.1): power-of-two activation scales

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Hugging Face's rule (the original modeling_deepseek.py; transformers' own class ignores the
  // frequency, which is 1 in every published config).
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
};

// Parses config.json text. `source` names the file in messages. Throws std::runtime_error naming
// the field for a missing, mistyped or out-of-range value, or for a feature the runner does not
// implement (attention_bias, another activation, another architecture).
ModelConfig parse_config(const std::string& json_text, const std::string& source);

// Reads and parses `path` (throws std::runtime_error when it cannot be read).
ModelConfig load_config(const std::string& path);

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_CONFIG_H_
