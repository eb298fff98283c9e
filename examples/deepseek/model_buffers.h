// model_buffers.h - the activations of one forward shape (T tokens of B requests, prefill or
// decode), allocated once and reused by every layer and step with that shape, with the views the
// ops need and the shape-dependent plans (MLA decode, fused MoE layer).
#ifndef DSK_EXAMPLES_DEEPSEEK_MODEL_BUFFERS_H_
#define DSK_EXAMPLES_DEEPSEEK_MODEL_BUFFERS_H_

#include <cstdint>
#include <dsk/dsk.hpp>

#include "config.h"
#include "precision.h"

namespace deepseek {

struct Buffers {
  // Allocates everything for T tokens of B requests on ctx's device.
  Buffers(dsk::Context& ctx, const ModelConfig& c, const Precision& p, int64_t tokens,
          int64_t batch, bool decode);

  int64_t tokens, batch;
  bool decode;

  // Per-token indices (device): ids, positions [T] int32, cache slots [T] int64; prefill only:
  // cu_seqlens [B + 1] int32 and the row of each request's last token [B] int32.
  dsk::Tensor ids, positions, slots, cu_seqlens, last_rows;

  // Residual stream, normalized input of a sublayer, sublayer outputs: [T, D] act.
  dsk::Tensor residual, normed, attn_out, ffn_out;

  // MLA projections (act): q_a [T, q_lora]; q [T, H * (dn + dr)] with views q_heads [T, H, dn+dr],
  // q_nope [T, H, dn], q_pe [T, H, dr]; kv [T, Dc + dr] with views kv_latent [T, Dc] and
  // k_pe [T, dr]; c_kv [T, Dc] the normalized latent.
  dsk::Tensor q_a, q, q_heads, q_nope, q_pe, kv, kv_latent, k_pe, c_kv;

  // Prefill (attention dtype): q_attn [T, H, dn+dr] (q_heads itself when the dtypes agree),
  // k [T, H, dn+dr], v [T, H, dv], o [T, H, dv] (o_attn_flat: [T, H*dv]); o_flat [T, H*dv] act
  // for o_proj (o_attn_flat itself when the dtypes agree).
  dsk::Tensor q_attn, k, v, o, o_attn_flat, o_flat;
  bool convert_q = false, convert_o = false;  // attention dtype != activation dtype (f32 runs)

  // Decode (attention dtype): q_dec [B, 1, H, Dc+dr] with views q_dec_latent [B, H, Dc] and
  // q_dec_pe [B, H, dr]; o_latent [B, 1, H, Dc] (view o_latent3 [B, H, Dc]); o_dec [B, H, dv] act
  // with view o_dec_flat [B, H*dv].
  dsk::Tensor q_dec, q_dec_latent, q_dec_pe, o_latent, o_latent3, o_dec, o_dec_flat;
  dsk::MlaDecodePlan decode_plan;

  // Dense MLP (act): gate, up, act [T, I].
  dsk::Tensor mlp_gate, mlp_up, mlp_act;

  // MoE: gate output ids [T, k] int32, weights [T, k] f32; dispatch counts [E], offsets [E + 1],
  // sorted_rows [T*k], dest [T, k] int32; permuted rows x_perm, y_perm [T*k, D] act; shared expert
  // gate/up/act [T, Is] and its output shared_out [T, D] act.
  dsk::Tensor moe_ids, moe_weights, moe_counts, moe_offsets, moe_sorted, moe_dest, x_perm, y_perm;
  dsk::Tensor sh_gate, sh_up, sh_act, shared_out;
  dsk::MoePlan moe_plan;  // made by the model on first use (--moe layer)

  // Output: last [B, D] act (prefill: the last token of each request), logits [B, V] f32,
  // sampled [B] int32.
  dsk::Tensor last, logits, sampled;
};

}  // namespace deepseek

#endif  // DSK_EXAMPLES_DEEPSEEK_MODEL_BUFFERS_H_
