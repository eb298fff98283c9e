// model.cpp - the forward pass skeleton: indices, embedding, the layer loop with fused residual
// add + RMSNorm, final norm and lm_head (see model.h). MLA is in attention.cpp, the MLPs in
// ffn.cpp.
#include "model.h"

#include <stdexcept>
#include <string>

#include "device_io.h"
#include "model_buffers.h"

namespace deepseek {
namespace {

dsk_rope_config rope_config(const ModelConfig& c) {
  dsk_rope_config r = dsk::rope_config();
  r.dim = static_cast<int32_t>(c.qk_rope_head_dim);
  r.theta = c.rope_theta;
  // Hugging Face applies YaRN whenever the config asks for it (DeepSeek's GitHub reference only
  // beyond original_seq_len); the checkpoint format is Hugging Face's, so is the rule.
  r.factor = c.rope.yarn ? c.rope.factor : 1.0;
  r.original_seq_len =
      c.rope.yarn ? c.rope.original_max_position_embeddings : c.max_position_embeddings;
  r.beta_fast = c.rope.beta_fast;
  r.beta_slow = c.rope.beta_slow;
  r.mscale = c.rope.mscale;
  r.mscale_all_dim = c.rope.mscale_all_dim;
  return r;
}

dsk_moe_gate_config gate_config(const ModelConfig& c) {
  dsk_moe_gate_config g = dsk::moe_gate_config();
  g.num_experts = static_cast<int32_t>(c.n_routed_experts);
  g.top_k = static_cast<int32_t>(c.num_experts_per_tok);
  g.n_group = static_cast<int32_t>(c.n_group);
  g.topk_group = static_cast<int32_t>(c.topk_group);
  g.score_func = c.sigmoid_scores ? DSK_MOE_SCORE_SIGMOID : DSK_MOE_SCORE_SOFTMAX;
  g.group_rule = DSK_MOE_GROUP_AUTO;  // top-2 sum with the noaux_tc bias, max without
  g.renormalize = c.norm_topk_prob ? 1 : 0;
  g.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  g.score_dtype = DSK_DTYPE_F32;  // Hugging Face runs the router in f32
  return g;
}

}  // namespace

Model::Model(dsk::Context& ctx, const ModelConfig& config, const Precision& precision,
             ModelWeights weights, OpTimer& timer, int64_t max_positions, MoeMode moe)
    : ctx_(ctx),
      config_(config),
      precision_(precision),
      weights_(std::move(weights)),
      timer_(timer),
      moe_mode_(moe) {
  // Hugging Face's DeepseekV3Attention: qk_head_dim^-0.5, times yarn_get_mscale(factor,
  // mscale_all_dim)^2 when mscale_all_dim is set.
  const bool yarn_scale = config.rope.yarn && config.rope.mscale_all_dim != 0.0;
  softmax_scale_ = dsk::mla_softmax_scale(config.qk_head_dim(), config.rope.factor,
                                          config.rope.mscale_all_dim, yarn_scale);
  if (config.n_routed_experts > 0) gate_ = gate_config(config);
  const int64_t half = config.qk_rope_head_dim / 2;
  rope_cos_ = dsk::Tensor::empty(ctx, {max_positions, half}, dsk::dtype(DSK_DTYPE_F32));
  rope_sin_ = dsk::Tensor::empty(ctx, {max_positions, half}, dsk::dtype(DSK_DTYPE_F32));
  dsk::rope_table(ctx, rope_config(config), rope_cos_, rope_sin_);
}

Model::~Model() = default;

KvCache Model::make_cache(const std::vector<int64_t>& capacity) const {
  return KvCache(ctx_, config_.num_hidden_layers, config_.kv_lora_rank + config_.qk_rope_head_dim,
                 precision_.attn, capacity);
}

Buffers& Model::buffers(int64_t tokens, int64_t batch, bool decode) {
  auto& slot = buffers_[std::make_tuple(tokens, batch, decode)];
  if (!slot) slot = std::make_unique<Buffers>(ctx_, config_, precision_, tokens, batch, decode);
  return *slot;
}

void Model::linear(const Linear& l, const DLTensor* x, const DLTensor* y) {
  if (l.fp8()) {
    // x is quantized per 1 x 128 tile on the fly (DeepSeek-V3's act_quant).
    dsk::linear_fp8(ctx_, x, nullptr, l.w, l.scale, y, precision_.act_quant_flags);
  } else {
    dsk::linear(ctx_, x, l.w, nullptr, y);
  }
}

void Model::convert(const DLTensor* src, const DLTensor* dst) {
  auto t = timer_.scope(Op::kCopy);
  dsk::copy(ctx_, src, dst);
}

const dsk::Tensor& Model::prefill(KvCache& cache,
                                  const std::vector<std::vector<int32_t>>& prompts) {
  if (static_cast<int64_t>(prompts.size()) != cache.batch()) {
    throw std::invalid_argument("prefill: " + std::to_string(prompts.size()) +
                                " prompts for a cache of " + std::to_string(cache.batch()) +
                                " requests");
  }
  std::vector<int32_t> ids;
  std::vector<int64_t> request;
  for (size_t b = 0; b < prompts.size(); ++b) {
    // The MHA-form prefill attends to this call's keys only, so it must start the sequence.
    if (cache.length(static_cast<int64_t>(b)) != 0 || prompts[b].empty()) {
      throw std::invalid_argument("prefill: request " + std::to_string(b) +
                                  " needs a non-empty prompt and an empty cache");
    }
    ids.insert(ids.end(), prompts[b].begin(), prompts[b].end());
    request.insert(request.end(), prompts[b].size(), static_cast<int64_t>(b));
  }
  Buffers& buf = buffers(static_cast<int64_t>(ids.size()), cache.batch(), false);
  return forward(cache, buf, ids, request, false);
}

const dsk::Tensor& Model::decode(KvCache& cache, const std::vector<int32_t>& tokens) {
  if (static_cast<int64_t>(tokens.size()) != cache.batch()) {
    throw std::invalid_argument("decode: " + std::to_string(tokens.size()) +
                                " tokens for a cache of " + std::to_string(cache.batch()) +
                                " requests");
  }
  std::vector<int64_t> request(tokens.size());
  for (size_t b = 0; b < tokens.size(); ++b) request[b] = static_cast<int64_t>(b);
  Buffers& buf = buffers(cache.batch(), cache.batch(), true);
  return forward(cache, buf, tokens, request, true);
}

const dsk::Tensor& Model::forward(KvCache& cache, Buffers& buf, const std::vector<int32_t>& ids,
                                  const std::vector<int64_t>& request, bool decode) {
  const int64_t b_count = cache.batch();
  for (int32_t id : ids) {
    if (id < 0 || id >= config_.vocab_size) {
      throw std::invalid_argument("token id " + std::to_string(id) + " is outside [0, " +
                                  std::to_string(config_.vocab_size) + ")");
    }
  }
  // Host-side indices: positions continue each request's sequence; slots address its pages.
  std::vector<int64_t> added(static_cast<size_t>(b_count), 0);
  std::vector<int32_t> positions(ids.size()), cu(static_cast<size_t>(b_count) + 1, 0), last;
  std::vector<int64_t> slots(ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    const int64_t b = request[t];
    const int64_t pos = cache.length(b) + added[static_cast<size_t>(b)]++;
    positions[t] = static_cast<int32_t>(pos);
    slots[t] = cache.slot(b, pos);
  }
  {
    auto t = timer_.scope(Op::kCopy);
    write_device(ctx_, ids, buf.ids);
    write_device(ctx_, positions, buf.positions);
    write_device(ctx_, slots, buf.slots);
    if (!decode) {
      for (int64_t b = 0; b < b_count; ++b) {
        cu[static_cast<size_t>(b) + 1] =
            cu[static_cast<size_t>(b)] + static_cast<int32_t>(added[static_cast<size_t>(b)]);
        last.push_back(cu[static_cast<size_t>(b) + 1] - 1);
      }
      write_device(ctx_, cu, buf.cu_seqlens);
      write_device(ctx_, last, buf.last_rows);
    }
    // Every layer appends these tokens before it attends, so the lengths include them already.
    cache.advance(ctx_, added);
  }
  {
    auto t = timer_.scope(Op::kEmbedding);
    dsk::embedding(ctx_, weights_.embed, buf.ids, buf.residual);
  }
  const float eps = static_cast<float>(config_.rms_norm_eps);
  for (size_t i = 0; i < weights_.layers.size(); ++i) {
    const LayerWeights& lw = weights_.layers[i];
    const char* part = "input_layernorm";
    try {
      {
        auto t = timer_.scope(Op::kNorm);
        if (i == 0) {
          dsk::rmsnorm(ctx_, buf.residual, lw.input_norm, buf.normed, eps);
        } else {  // residual += previous MLP output; normed = RMSNorm(residual)
          dsk::add_rmsnorm(ctx_, buf.ffn_out, buf.residual, lw.input_norm, buf.normed, buf.residual,
                           eps);
        }
      }
      part = "self_attn";
      attention(lw, static_cast<int64_t>(i), cache, buf, decode);
      part = "post_attention_layernorm";
      {
        auto t = timer_.scope(Op::kNorm);
        dsk::add_rmsnorm(ctx_, buf.attn_out, buf.residual, lw.post_attention_norm, buf.normed,
                         buf.residual, eps);
      }
      part = "mlp";
      if (lw.moe) {
        moe(lw.experts, buf);
      } else {
        dense_mlp(lw.mlp, buf);
      }
    } catch (const std::exception& e) {
      throw std::runtime_error("layer " + std::to_string(i) + " " + part + ": " + e.what());
    }
  }
  {
    auto t = timer_.scope(Op::kNorm);
    dsk::add_rmsnorm(ctx_, buf.ffn_out, buf.residual, weights_.final_norm, buf.normed, buf.residual,
                     eps);
  }
  auto t = timer_.scope(Op::kLmHead);
  if (!decode) {
    // Only each request's last position needs logits: gather those rows (an embedding lookup
    // with the hidden states as the table).
    dsk::embedding(ctx_, buf.normed, buf.last_rows, buf.last);
  }
  dsk::linear(ctx_, buf.last, weights_.lm_head.w, nullptr, buf.logits);
  return buf.logits;
}

}  // namespace deepseek
