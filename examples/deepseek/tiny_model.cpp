// tiny_model.cpp - the tiny model's config, generated weights and checkpoint directory.
#include "tiny_model.h"

#include <dsk/dsk.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "checkpoint_spec.h"
#include "generator.h"

namespace deepseek {

const std::string& tiny_config_json() {
  // The brief's config verbatim (tests/golden/README.md documents the same text).
  static const std::string text = R"({
  "architectures": ["DeepseekV3ForCausalLM"],
  "model_type": "deepseek_v3",
  "vocab_size": 1024,
  "hidden_size": 256,
  "intermediate_size": 512,
  "moe_intermediate_size": 128,
  "num_hidden_layers": 4,
  "first_k_dense_replace": 1,
  "moe_layer_freq": 1,
  "num_attention_heads": 8,
  "num_key_value_heads": 8,
  "q_lora_rank": 128,
  "kv_lora_rank": 512,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "v_head_dim": 128,
  "n_routed_experts": 16,
  "n_shared_experts": 1,
  "num_experts_per_tok": 4,
  "n_group": 4,
  "topk_group": 2,
  "routed_scaling_factor": 2.5,
  "norm_topk_prob": true,
  "scoring_func": "sigmoid",
  "topk_method": "noaux_tc",
  "hidden_act": "silu",
  "rms_norm_eps": 1e-06,
  "rope_theta": 10000.0,
  "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                   "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
  "max_position_embeddings": 128,
  "attention_bias": false,
  "tie_word_embeddings": false,
  "torch_dtype": "float32"
}
)";
  return text;
}

std::vector<SafetensorsEntry> generate_checkpoint(const ModelConfig& config, uint64_t seed,
                                                  bool bf16) {
  DLDataType f32{}, bf16_type{};
  dsk_dtype_from_id(DSK_DTYPE_F32, &f32);
  dsk_dtype_from_id(DSK_DTYPE_BF16, &bf16_type);
  std::vector<SafetensorsEntry> entries;
  for (const TensorSpec& spec : checkpoint_tensors(config)) {
    int64_t count = 1;
    for (int64_t s : spec.shape) count *= s;
    const std::vector<float> values = generate_tensor(spec.name, spec.shape.back(), count, seed);
    SafetensorsEntry e{spec.name, "F32", spec.shape, {}};
    if (bf16 && spec.role != TensorRole::kBias) {
      e.dtype = "BF16";
      e.bytes.resize(values.size() * 2);
      // dsk's host conversion rounds to nearest even, the rule the golden script uses.
      if (dsk_convert_host(f32, values.data(), bf16_type, e.bytes.data(), values.size()) !=
          DSK_OK) {
        throw std::runtime_error(std::string("dsk_convert_host: ") + dsk_last_error_message());
      }
    } else {
      e.bytes.resize(values.size() * 4);
      std::memcpy(e.bytes.data(), values.data(), e.bytes.size());
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

void write_checkpoint_dir(const std::string& dir, const std::string& config_json,
                          const std::vector<SafetensorsEntry>& entries) {
  const std::string config_path = dir + "/config.json";
  std::ofstream out(config_path, std::ios::binary | std::ios::trunc);
  out << config_json;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + config_path);
  write_safetensors(dir + "/model.safetensors", entries, {{"format", "pt"}});
}

void write_tiny_checkpoint(const std::string& dir, uint64_t seed, bool bf16) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(tiny_config_json());
  j["torch_dtype"] = bf16 ? "bfloat16" : "float32";
  const ModelConfig config = parse_config(tiny_config_json(), "tiny config");
  write_checkpoint_dir(dir, j.dump(2) + "\n", generate_checkpoint(config, seed, bf16));
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("cannot create a temporary directory " + pattern + ": " +
                             std::strerror(errno));
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ignored;  // best effort: a leftover temp dir must not turn success into failure
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace deepseek
