// model_buffers.cpp - allocation of one forward shape's activations (see model_buffers.h).
#include "model_buffers.h"

namespace deepseek {

Buffers::Buffers(dsk::Context& ctx, const ModelConfig& c, const Precision& p, int64_t t, int64_t b,
                 bool is_decode)
    : tokens(t), batch(b), decode(is_decode) {
  const DLDataType act = dsk::dtype(p.act), attn = dsk::dtype(p.attn);
  const DLDataType i32 = dsk::dtype(DSK_DTYPE_INT32), f32 = dsk::dtype(DSK_DTYPE_F32);
  auto make = [&ctx](std::vector<int64_t> shape, DLDataType dt) {
    return dsk::Tensor::empty(ctx, shape, dt);
  };
  const int64_t d = c.hidden_size, h = c.num_attention_heads, dn = c.qk_nope_head_dim;
  const int64_t dr = c.qk_rope_head_dim, dqk = dn + dr, dv = c.v_head_dim, dc = c.kv_lora_rank;

  ids = make({t}, i32);
  positions = make({t}, i32);
  slots = make({t}, dsk::dtype(DSK_DTYPE_INT64));
  if (!decode) {
    cu_seqlens = make({b + 1}, i32);
    last_rows = make({b}, i32);
  }
  residual = make({t, d}, act);
  normed = make({t, d}, act);
  attn_out = make({t, d}, act);
  ffn_out = make({t, d}, act);

  q_a = make({t, c.q_lora_rank}, act);
  q = make({t, h * dqk}, act);
  q_heads = q.view({t, h, dqk});
  q_nope = q.view({t, h, dn}, {h * dqk, dqk, 1});
  q_pe = q.view({t, h, dr}, {h * dqk, dqk, 1}, dn);
  kv = make({t, dc + dr}, act);
  kv_latent = kv.view({t, dc}, {dc + dr, 1});
  k_pe = kv.view({t, dr}, {dc + dr, 1}, dc);
  c_kv = make({t, dc}, act);

  if (!decode) {
    convert_q = convert_o = p.attn != p.act;
    q_attn = convert_q ? make({t, h, dqk}, attn) : q_heads;
    k = make({t, h, dqk}, attn);
    v = make({t, h, dv}, attn);
    o = make({t, h, dv}, attn);
    o_attn_flat = o.view({t, h * dv});
    o_flat = convert_o ? make({t, h * dv}, act) : o_attn_flat;
  } else {
    q_dec = make({b, 1, h, dc + dr}, attn);
    q_dec_latent = q_dec.view({b, h, dc}, {h * (dc + dr), dc + dr, 1});
    q_dec_pe = q_dec.view({b, h, dr}, {h * (dc + dr), dc + dr, 1}, dc);
    o_latent = make({b, 1, h, dc}, attn);
    o_latent3 = o_latent.view({b, h, dc});
    o_dec = make({b, h, dv}, act);
    o_dec_flat = o_dec.view({b, h * dv});
  }

  bool any_dense = false, any_moe = false;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    (c.is_moe_layer(i) ? any_moe : any_dense) = true;
  if (any_dense) {
    mlp_gate = make({t, c.intermediate_size}, act);
    mlp_up = make({t, c.intermediate_size}, act);
    mlp_act = make({t, c.intermediate_size}, act);
  }
  if (any_moe) {
    const int64_t topk = c.num_experts_per_tok, e = c.n_routed_experts;
    moe_ids = make({t, topk}, i32);
    moe_weights = make({t, topk}, f32);
    moe_counts = make({e}, i32);
    moe_offsets = make({e + 1}, i32);
    moe_sorted = make({t * topk}, i32);  // block_size 1: capacity T * k
    moe_dest = make({t, topk}, i32);
    x_perm = make({t * topk, d}, act);
    y_perm = make({t * topk, d}, act);
    if (c.n_shared_experts > 0) {
      const int64_t is = c.moe_intermediate_size * c.n_shared_experts;
      sh_gate = make({t, is}, act);
      sh_up = make({t, is}, act);
      sh_act = make({t, is}, act);
      shared_out = make({t, d}, act);
    }
  }
  last = decode ? normed : make({b, d}, act);
  logits = make({b, c.vocab_size}, f32);
  sampled = make({b}, i32);
}

}  // namespace deepseek
