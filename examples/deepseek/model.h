// model.h - the DeepSeek-V3 forward pass built from dsk ops: embedding, per layer RMSNorm -> MLA
// (MHA-form prefill, absorbed paged decode) -> residual add + RMSNorm -> dense SwiGLU MLP or the
// MoE layer, final norm, lm_head. Activations live in per-shape buffers on the context's device.
#ifndef DSK_EXAMPLES_DEEPSEEK_MODEL_H_
#define DSK_EXAMPLES_DEEPSEEK_MODEL_H_

#include <cstdint>
#include <dsk/dsk.hpp>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "config.h"
#include "kv_cache.h"
#include "op_timer.h"
#include "precision.h"
#include "weights.h"

namespace deepseek {

// How MoE layers run: dsk's pieces (gate, dispatch, permute, experts, combine: each timed on its
// own) or the fused layer (dsk_moe_plan_create / dsk_moe_forward_run).
enum class MoeMode { kPieces, kLayer };

struct Buffers;  // model_buffers.h

class Model {
 public:
  // max_positions: the longest sequence (prompt + generated tokens) any request reaches.
  Model(dsk::Context& ctx, const ModelConfig& config, const Precision& precision,
        ModelWeights weights, OpTimer& timer, int64_t max_positions,
        MoeMode moe = MoeMode::kPieces);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  dsk::Context& context() const { return ctx_; }
  const ModelConfig& config() const { return config_; }
  const Precision& precision() const { return precision_; }
  const ModelWeights& weights() const { return weights_; }
  float softmax_scale() const { return softmax_scale_; }

  // A latent cache for these per-request capacities (tokens).
  KvCache make_cache(const std::vector<int64_t>& capacity) const;

  // Runs every prompt (one per request of the cache, all packed into one forward pass) and
  // appends it to the cache. Returns logits [B, V] f32 at each request's last prompt token.
  const dsk::Tensor& prefill(KvCache& cache, const std::vector<std::vector<int32_t>>& prompts);

  // One token per request: appends it and returns the next logits [B, V] f32.
  const dsk::Tensor& decode(KvCache& cache, const std::vector<int32_t>& tokens);

 private:
  const dsk::Tensor& forward(KvCache& cache, Buffers& buf, const std::vector<int32_t>& ids,
                             const std::vector<int64_t>& request, bool decode);
  Buffers& buffers(int64_t tokens, int64_t batch, bool decode);
  void attention(const LayerWeights& lw, int64_t layer, const KvCache& cache, Buffers& buf,
                 bool decode);
  void swiglu_mlp(const Linear& gate, const Linear& up, const Linear& down, const dsk::Tensor& g,
                  const dsk::Tensor& u, const dsk::Tensor& act, const dsk::Tensor& x,
                  const dsk::Tensor& out);
  void dense_mlp(const DenseMlpWeights& w, Buffers& buf);
  void moe(const MoeWeights& w, Buffers& buf);
  void linear(const Linear& l, const DLTensor* x, const DLTensor* y);
  void convert(const DLTensor* src, const DLTensor* dst);

  dsk::Context& ctx_;
  ModelConfig config_;
  Precision precision_;
  ModelWeights weights_;
  OpTimer& timer_;
  MoeMode moe_mode_;
  float softmax_scale_ = 0.0f;
  dsk_moe_gate_config gate_{};
  dsk::Tensor rope_cos_, rope_sin_;  // [max_positions, rope / 2] f32
  std::map<std::tuple<int64_t, int64_t, bool>, std::unique_ptr<Buffers>> buffers_;
};

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_MODEL_H_
