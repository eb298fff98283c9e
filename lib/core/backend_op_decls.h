// backend_op_decls.h - the op entries of dsk_backend_iface as C++ function declarations.
//
// Each backend (lib/cpu, cuda/) implements the op entries of the table as functions of its own
// namespace with exactly these signatures; expanding DSK_BACKEND_OP_DECLS inside that namespace
// keeps the two lists from drifting apart. The contracts are in lib/core/backend_iface.h.
#ifndef DSK_LIB_CORE_BACKEND_OP_DECLS_H_
#define DSK_LIB_CORE_BACKEND_OP_DECLS_H_

#include "core/backend_iface.h"

// clang-format off
#define DSK_BACKEND_OP_DECLS \
dsk_status gemm(const dsk_exec* ex, const DLTensor* a, const DLTensor* b, const DLTensor* c, \
                const DLTensor* bias, const DLTensor* d, float alpha, float beta) noexcept; \
dsk_status quant_fp8(const dsk_exec* ex, const DLTensor* x, const DLTensor* q, \
                     const DLTensor* scales, int32_t is_weight, uint32_t flags) noexcept; \
dsk_status dequant_fp8(const dsk_exec* ex, const DLTensor* q, const DLTensor* scales, \
                       const DLTensor* x, int32_t is_weight) noexcept; \
dsk_status linear_fp8(const dsk_exec* ex, const DLTensor* x, const DLTensor* x_scales, \
                      const DLTensor* w, const DLTensor* w_scales, const DLTensor* y, \
                      uint32_t flags) noexcept; \
dsk_status rmsnorm(const dsk_exec* ex, const DLTensor* x, const DLTensor* residual, \
                   const DLTensor* weight, const DLTensor* y, const DLTensor* residual_out, \
                   float eps) noexcept; \
dsk_status swiglu(const dsk_exec* ex, const DLTensor* gate, const DLTensor* up, \
                  const DLTensor* y) noexcept; \
dsk_status rope(const dsk_exec* ex, const DLTensor* x, const DLTensor* positions, \
                const DLTensor* cos, const DLTensor* sin, const DLTensor* y, \
                int32_t layout) noexcept; \
dsk_status softmax(const dsk_exec* ex, const DLTensor* x, const DLTensor* y, float inv_temperature, \
                   int32_t is_log) noexcept; \
dsk_status topk(const dsk_exec* ex, const DLTensor* x, int32_t k, const DLTensor* values, \
                const DLTensor* indices) noexcept; \
dsk_status embedding(const dsk_exec* ex, const DLTensor* table, const DLTensor* ids, \
                     const DLTensor* out) noexcept; \
dsk_status mla_decode_plan(int32_t device, const dsk_mla_decode_shape* shape, \
                           dsk_mla_decode_work* work) noexcept; \
dsk_status mla_decode(const dsk_exec* ex, const DLTensor* q, const DLTensor* kv_cache, \
                      const DLTensor* block_table, const DLTensor* seqlens, const DLTensor* out, \
                      const DLTensor* lse, float scale, int32_t causal, \
                      const dsk_mla_decode_work* work) noexcept; \
dsk_status mla_cache_append(const dsk_exec* ex, const DLTensor* c_kv, const DLTensor* k_pe, \
                            const DLTensor* slots, const DLTensor* kv_cache) noexcept; \
dsk_status mla_prefill(const dsk_exec* ex, const DLTensor* q, const DLTensor* k, \
                       const DLTensor* v, const DLTensor* cu_q, const DLTensor* cu_k, \
                       const DLTensor* out, const DLTensor* lse, float scale, \
                       int32_t causal) noexcept; \
dsk_status moe_gate(const dsk_exec* ex, const dsk_moe_gate_params* p, const DLTensor* logits, \
                    const DLTensor* bias, const DLTensor* ids, const DLTensor* weights, \
                    const DLTensor* row_flags) noexcept; \
dsk_status moe_dispatch(const dsk_exec* ex, const DLTensor* ids, int32_t num_experts, \
                        int32_t expert_begin, int32_t block_size, const DLTensor* counts, \
                        const DLTensor* offsets, const DLTensor* sorted_rows, \
                        const DLTensor* block_experts, const DLTensor* dest) noexcept; \
dsk_status moe_permute(const dsk_exec* ex, const DLTensor* x, const DLTensor* sorted_rows, \
                       int32_t top_k, const DLTensor* out, const DLTensor* out_scales, \
                       uint32_t flags) noexcept; \
dsk_status moe_combine(const dsk_exec* ex, const DLTensor* y, const DLTensor* dest, \
                       const DLTensor* weights, const DLTensor* shared, \
                       const DLTensor* out) noexcept; \
dsk_status moe_grouped_gemm(const dsk_exec* ex, const DLTensor* x, const DLTensor* w, \
                            const int64_t* offsets, const DLTensor* y) noexcept; \
dsk_status moe_load_accumulate(const dsk_exec* ex, const DLTensor* ids, int32_t expert_begin, \
                               const DLTensor* load) noexcept; \
dsk_status moe_bias_update(const dsk_exec* ex, const DLTensor* load, const DLTensor* bias, \
                           float gamma) noexcept; \
dsk_status moe_ep_layout(const dsk_exec* ex, const DLTensor* ids, int32_t num_experts, \
                         int32_t num_ranks, const DLTensor* tokens_per_rank, \
                         const DLTensor* tokens_per_expert, \
                         const DLTensor* is_token_in_rank) noexcept; \
dsk_status sample(const dsk_exec* ex, const dsk_sampling_args* a) noexcept; \
dsk_status sampling_transform(const dsk_exec* ex, const dsk_sampling_args* a, \
                              const DLTensor* out, int32_t probs) noexcept; \
dsk_status speculative_verify(const dsk_exec* ex, const dsk_verify_args* a) noexcept;
// clang-format on

#endif  // DSK_LIB_CORE_BACKEND_OP_DECLS_H_
