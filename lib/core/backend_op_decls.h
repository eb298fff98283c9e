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
                       int32_t causal) noexcept;
// clang-format on

#endif  // DSK_LIB_CORE_BACKEND_OP_DECLS_H_
