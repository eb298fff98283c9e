// attention.cpp - Multi-head Latent Attention of one layer (Hugging Face DeepseekV3Attention):
//   q = q_b_proj(RMSNorm(q_a_proj(x)))                  [T, H, dn + dr], RoPE on the last dr
//   [c, k_pe] = kv_a_proj_with_mqa(x)                   c [T, Dc], k_pe [T, dr] (RoPE, shared)
//   c = RMSNorm(c); the cache keeps [c, k_pe] per token (dsk_mla_cache_append)
//   prefill: k, v = kv_b_proj(c) per head (+ k_pe)      MHA form, dsk_mla_prefill (causal)
//   decode:  q_lat = q_nope @ W_UK, attention over the paged cache (dsk_mla_decode_run),
//            o = o_lat @ W_UV^T                         absorbed MQA form
//   out = o_proj(o)
// RoPE pairs: Hugging Face's rope_interleave (the default for DeepSeek-V3) permutes each rotary
// vector to [evens | odds] and rotates halves, which is the rotation of adjacent pairs (2i, 2i+1)
// with the result stored permuted. q_pe and k_pe only meet in dot products, where the common
// permutation cancels, so DSK_ROPE_INTERLEAVED gives the same scores (and is the cache layout
// dsk documents for DeepSeek checkpoints).
#include <stdexcept>

#include "model.h"
#include "model_buffers.h"

namespace deepseek {

void Model::attention(const LayerWeights& lw, int64_t layer, const KvCache& cache, Buffers& buf,
                      bool decode) {
  const AttentionWeights& a = lw.attn;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  {
    auto t = timer_.scope(Op::kGemm);
    linear(a.q_a, buf.normed, buf.q_a);
    linear(a.kv_a, buf.normed, buf.kv);
  }
  {
    auto t = timer_.scope(Op::kNorm);
    dsk::rmsnorm(ctx_, buf.q_a, a.q_a_norm, buf.q_a, eps);  // in place
    dsk::rmsnorm(ctx_, buf.kv_latent, a.kv_a_norm, buf.c_kv, eps);
  }
  {
    auto t = timer_.scope(Op::kGemm);
    linear(a.q_b, buf.q_a, buf.q);
  }
  {
    auto t = timer_.scope(Op::kRope);
    dsk::rope_apply(ctx_, buf.k_pe, buf.positions, rope_cos_, rope_sin_, buf.k_pe,
                    DSK_ROPE_INTERLEAVED);
    // Decode rotates q_pe straight into its place in the absorbed query.
    dsk::rope_apply(ctx_, buf.q_pe, buf.positions, rope_cos_, rope_sin_,
                    decode ? buf.q_dec_pe : buf.q_pe, DSK_ROPE_INTERLEAVED);
  }
  const dsk::Tensor& kv_cache = cache.layer(layer);
  {
    auto t = timer_.scope(Op::kCacheAppend);
    dsk::mla_cache_append(ctx_, buf.c_kv, buf.k_pe, buf.slots, kv_cache);
  }
  const DLTensor* wkv_b_scale = a.kv_b.scale_or_null();
  if (!decode) {
    if (buf.convert_q) convert(buf.q_heads, buf.q_attn);
    {
      // k and v from the unrounded normalized latent, as the MHA reference computes them.
      auto t = timer_.scope(Op::kMlaDecompress);
      dsk::mla_decompress_kv(ctx_, buf.c_kv, buf.k_pe, a.kv_b.w, wkv_b_scale, buf.k, buf.v);
    }
    {
      auto t = timer_.scope(Op::kMlaPrefill);
      dsk::mla_prefill(ctx_, buf.q_attn, buf.k, buf.v, buf.cu_seqlens, nullptr, softmax_scale_,
                       /*causal=*/true, buf.o);
    }
    if (buf.convert_o) convert(buf.o_attn_flat, buf.o_flat);
    auto t = timer_.scope(Op::kGemm);
    linear(a.o, buf.o_flat, buf.attn_out);
    return;
  }
  {
    auto t = timer_.scope(Op::kMlaAbsorb);
    dsk::mla_absorb_q(ctx_, buf.q_nope, a.kv_b.w, wkv_b_scale, buf.q_dec_latent);
  }
  {
    auto t = timer_.scope(Op::kMlaDecode);
    if (!buf.decode_plan) {
      // One plan per batch shape serves every layer and step (it depends on shapes only).
      buf.decode_plan = dsk::MlaDecodePlan(ctx_, buf.q_dec, kv_cache, cache.block_table(),
                                           cache.seqlens(), buf.o_latent);
      dsk::check(dsk_context_reserve_workspace(ctx_.get(), buf.decode_plan.workspace_size()));
    }
    buf.decode_plan.run(ctx_, buf.q_dec, kv_cache, cache.block_table(), cache.seqlens(),
                        softmax_scale_, /*causal=*/true, buf.o_latent);
  }
  {
    auto t = timer_.scope(Op::kMlaAbsorb);
    dsk::mla_absorb_out(ctx_, buf.o_latent3, a.kv_b.w, wkv_b_scale, buf.o_dec);
  }
  auto t = timer_.scope(Op::kGemm);
  linear(a.o, buf.o_dec_flat, buf.attn_out);
}

}  // namespace deepseek
