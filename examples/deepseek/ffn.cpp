// ffn.cpp - the feed-forward sublayers: the dense SwiGLU MLP of the first layers and the MoE layer
// (DeepSeek gate, routed experts, one shared expert) of the others (Hugging Face DeepseekV3MLP and
// DeepseekV3MoE: out = sum_j w_j * expert_j(x) + shared(x)).
#include "model.h"
#include "model_buffers.h"

namespace deepseek {

// down(silu(gate(x)) * up(x)) into `out`, with the projections' outputs rounded to the
// activation dtype (as Hugging Face's MLP in bf16).
void Model::swiglu_mlp(const Linear& gate, const Linear& up, const Linear& down,
                       const dsk::Tensor& g, const dsk::Tensor& u, const dsk::Tensor& act,
                       const dsk::Tensor& x, const dsk::Tensor& out) {
  {
    auto t = timer_.scope(Op::kGemm);
    linear(gate, x, g);
    linear(up, x, u);
  }
  {
    auto t = timer_.scope(Op::kActivation);
    dsk::swiglu(ctx_, g, u, act);
  }
  auto t = timer_.scope(Op::kGemm);
  linear(down, act, out);
}

void Model::dense_mlp(const DenseMlpWeights& w, Buffers& buf) {
  swiglu_mlp(w.gate, w.up, w.down, buf.mlp_gate, buf.mlp_up, buf.mlp_act, buf.normed, buf.ffn_out);
}

void Model::moe(const MoeWeights& w, Buffers& buf) {
  const DLTensor* bias = or_null(w.bias);
  const dsk_moe_expert_weights experts = dsk::moe_expert_weights(
      w.w1, w.w3, w.w2, or_null(w.w1_scale), or_null(w.w3_scale), or_null(w.w2_scale));
  if (moe_mode_ == MoeMode::kLayer) {
    dsk_moe_expert_weights shared{};
    if (w.has_shared) {
      shared = dsk::moe_expert_weights(w.shared_gate.w, w.shared_up.w, w.shared_down.w,
                                       w.shared_gate.scale_or_null(), w.shared_up.scale_or_null(),
                                       w.shared_down.scale_or_null());
    }
    const dsk_moe_expert_weights* sh = w.has_shared ? &shared : nullptr;
    auto t = timer_.scope(Op::kMoeLayer);
    if (!buf.moe_plan) {
      // Every MoE layer has the same shapes: one plan per forward shape.
      buf.moe_plan = dsk::MoePlan(ctx_, gate_, buf.normed, w.router, experts, sh, buf.ffn_out);
      dsk::check(dsk_context_reserve_workspace(ctx_.get(), buf.moe_plan.workspace_size()));
    }
    buf.moe_plan.run(ctx_, buf.normed, w.router, bias, experts, sh, buf.ffn_out);
    return;
  }
  const int32_t k = static_cast<int32_t>(config_.num_experts_per_tok);
  {
    auto t = timer_.scope(Op::kMoeGate);
    dsk::moe_gate_router(ctx_, gate_, buf.normed, w.router, bias, buf.moe_ids, buf.moe_weights);
  }
  {
    // Expert order with packed segments (block size 1): the grouped GEMMs need no padding.
    auto t = timer_.scope(Op::kMoeDispatch);
    dsk::moe_dispatch(ctx_, buf.moe_ids, gate_.num_experts, /*expert_begin=*/0,
                      /*block_size=*/1, buf.moe_counts, buf.moe_offsets, buf.moe_sorted, nullptr,
                      buf.moe_dest);
    dsk::moe_permute(ctx_, buf.normed, buf.moe_sorted, k, buf.x_perm);
  }
  {
    auto t = timer_.scope(Op::kMoeExperts);
    dsk::moe_experts(ctx_, experts, buf.x_perm, nullptr, buf.moe_offsets, buf.y_perm);
  }
  if (w.has_shared) {
    swiglu_mlp(w.shared_gate, w.shared_up, w.shared_down, buf.sh_gate, buf.sh_up, buf.sh_act,
               buf.normed, buf.shared_out);
  }
  auto t = timer_.scope(Op::kMoeCombine);
  dsk::moe_combine(ctx_, buf.y_perm, buf.moe_dest, buf.moe_weights,
                   w.has_shared ? or_null(buf.shared_out) : nullptr, buf.ffn_out);
}

}  // namespace deepseek
