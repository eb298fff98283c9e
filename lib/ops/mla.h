// mla.h - libdsk side of Multi-head Latent Attention (dsk_mla.h): validation, the decode plan,
// dispatch to the backend's mla_* entries, and weight absorption / latent decompression built on
// the backend's gemm, dequant_fp8 and copy entries.
#ifndef DSK_LIB_OPS_MLA_H_
#define DSK_LIB_OPS_MLA_H_

#include <stdint.h>

#include "core/backend_iface.h"
#include "core/context.h"
#include "dsk/dsk_dlpack.h"
#include "dsk/dsk_mla.h"

// The opaque plan of dsk_mla.h: the shapes it was made for, where it runs and the backend's
// schedule. Immutable after creation.
struct dsk_mla_decode_plan {
  const dsk::Backend* backend = nullptr;
  int32_t backend_kind = 0;  // DSK_BACKEND_*
  int32_t device = 0;
  dsk_mla_decode_shape shape{};
  dsk_mla_decode_work work{};
};

namespace dsk {
namespace ops {

// Each throws dsk::Error on invalid arguments or a backend failure; see dsk_mla.h.
float mla_softmax_scale(int64_t qk_head_dim, double rope_factor, double mscale, int32_t use_yarn);

dsk_mla_decode_plan* mla_decode_plan_create(dsk_context& ctx, const DLTensor* q,
                                            const DLTensor* kv_cache, const DLTensor* block_table,
                                            const DLTensor* cache_seqlens, const DLTensor* out);
void mla_decode_run(dsk_context& ctx, const dsk_mla_decode_plan& plan, const DLTensor* q,
                    const DLTensor* kv_cache, const DLTensor* block_table,
                    const DLTensor* cache_seqlens, float softmax_scale, int32_t causal,
                    const DLTensor* out, const DLTensor* lse);

void mla_cache_append(dsk_context& ctx, const DLTensor* c_kv, const DLTensor* k_pe,
                      const DLTensor* slot_mapping, const DLTensor* kv_cache);

void mla_absorb_q(dsk_context& ctx, const DLTensor* q_nope, const DLTensor* wkv_b,
                  const DLTensor* wkv_b_scale, const DLTensor* q_latent);
void mla_absorb_out(dsk_context& ctx, const DLTensor* o_latent, const DLTensor* wkv_b,
                    const DLTensor* wkv_b_scale, const DLTensor* o);
void mla_decompress_kv(dsk_context& ctx, const DLTensor* c_kv, const DLTensor* k_pe,
                       const DLTensor* wkv_b, const DLTensor* wkv_b_scale, const DLTensor* k,
                       const DLTensor* v);

void mla_prefill(dsk_context& ctx, const DLTensor* q, const DLTensor* k, const DLTensor* v,
                 const DLTensor* cu_seqlens_q, const DLTensor* cu_seqlens_k, float softmax_scale,
                 int32_t causal, const DLTensor* out, const DLTensor* lse);

}  // namespace ops
}  // namespace dsk

#endif  // DSK_LIB_OPS_MLA_H_
