// checkpoint_spec.cpp - Hugging Face DeepseekV3ForCausalLM tensor names and shapes.
#include "checkpoint_spec.h"

namespace deepseek {

std::string layer_name(int64_t layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::string expert_name(int64_t layer, int64_t expert, const std::string& proj) {
  return layer_name(layer, "mlp.experts." + std::to_string(expert) + "." + proj + ".weight");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<TensorSpec> checkpoint_tensors(const ModelConfig& c) {
  using R = TensorRole;
  std::vector<TensorSpec> out;
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  out.push_back(
      {"model.embed_tokens.weight", {c.vocab_size, d}, "[vocab_size, hidden_size]", R::kEmbedding});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto add = [&](const std::string& suffix, std::vector<int64_t> shape, const char* dims,
                   R role) {
      out.push_back({layer_name(i, suffix), std::move(shape), dims, role});
    };
    add("input_layernorm.weight", {d}, "[hidden_size]", R::kNorm);
    add("post_attention_layernorm.weight", {d}, "[hidden_size]", R::kNorm);
    add("self_attn.q_a_proj.weight", {c.q_lora_rank, d}, "[q_lora_rank, hidden_size]", R::kLinear);
    add("self_attn.q_a_layernorm.weight", {c.q_lora_rank}, "[q_lora_rank]", R::kNorm);
    add("self_attn.q_b_proj.weight", {h * c.qk_head_dim(), c.q_lora_rank},
        "[num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim), q_lora_rank]", R::kLinear);
    add("self_attn.kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, d},
        "[kv_lora_rank + qk_rope_head_dim, hidden_size]", R::kLinear);
    add("self_attn.kv_a_layernorm.weight", {c.kv_lora_rank}, "[kv_lora_rank]", R::kNorm);
    add("self_attn.kv_b_proj.weight", {h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank},
        "[num_attention_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]", R::kLinear);
    add("self_attn.o_proj.weight", {d, h * c.v_head_dim},
        "[hidden_size, num_attention_heads * v_head_dim]", R::kLinear);
    if (!c.is_moe_layer(i)) {
      const int64_t in = c.intermediate_size;
      add("mlp.gate_proj.weight", {in, d}, "[intermediate_size, hidden_size]", R::kLinear);
      add("mlp.up_proj.weight", {in, d}, "[intermediate_size, hidden_size]", R::kLinear);
      add("mlp.down_proj.weight", {d, in}, "[hidden_size, intermediate_size]", R::kLinear);
      continue;
    }
    const int64_t e = c.n_routed_experts, mi = c.moe_intermediate_size;
    add("mlp.gate.weight", {e, d}, "[n_routed_experts, hidden_size]", R::kRouter);
    if (c.score_bias) add("mlp.gate.e_score_correction_bias", {e}, "[n_routed_experts]", R::kBias);
    for (int64_t x = 0; x < e; ++x) {
      const std::string p = "mlp.experts." + std::to_string(x) + ".";
      add(p + "gate_proj.weight", {mi, d}, "[moe_intermediate_size, hidden_size]", R::kLinear);
      add(p + "up_proj.weight", {mi, d}, "[moe_intermediate_size, hidden_size]", R::kLinear);
      add(p + "down_proj.weight", {d, mi}, "[hidden_size, moe_intermediate_size]", R::kLinear);
    }
    if (c.n_shared_experts > 0) {
      const int64_t si = mi * c.n_shared_experts;
      const char* in_dims = "[moe_intermediate_size * n_shared_experts, hidden_size]";
      add("mlp.shared_experts.gate_proj.weight", {si, d}, in_dims, R::kLinear);
      add("mlp.shared_experts.up_proj.weight", {si, d}, in_dims, R::kLinear);
      add("mlp.shared_experts.down_proj.weight", {d, si},
          "[hidden_size, moe_intermediate_size * n_shared_experts]", R::kLinear);
    }
  }
  out.push_back({"model.norm.weight", {d}, "[hidden_size]", R::kNorm});
  if (!c.tie_word_embeddings) {
    out.push_back({"lm_head.weight", {c.vocab_size, d}, "[vocab_size, hidden_size]", R::kLmHead});
  }
  return out;
}

}  // namespace deepseek
