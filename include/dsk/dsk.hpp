// dsk.hpp - header-only C++17 RAII layer over the dsk C API.
//
// Not part of the ABI: everything here is inline and calls only the C functions of dsk.h, so it
// works with any libdsk of the same ABI version. Failures throw dsk::Error carrying the status
// and the library's message.
#ifndef DSK_HPP_
#define DSK_HPP_

#ifndef __cplusplus
#  error "dsk.hpp is C++; C programs include dsk.h"
#endif

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dsk.h"

namespace dsk {

class Error : public std::runtime_error {
 public:
  Error(dsk_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  dsk_status status() const noexcept { return status_; }

 private:
  dsk_status status_;
};

// Throws dsk::Error for a failed status, with dsk_last_error_message() as the text.
inline void check(dsk_status status) {
  if (status != DSK_OK) throw Error(status, dsk_last_error_message());
}

inline DLDataType dtype(int32_t id) {
  DLDataType t{};
  check(dsk_dtype_from_id(id, &t));
  return t;
}

class Context {
 public:
  // A context on `backend` (DSK_BACKEND_AUTO, _CPU or _CUDA) and device `device_id`.
  explicit Context(int32_t backend = DSK_BACKEND_AUTO, int32_t device_id = 0,
                   void* stream = nullptr) {
    dsk_context_options o;
    check(dsk_context_options_init(&o));
    o.backend = backend;
    o.device_id = device_id;
    o.stream = stream;
    check(dsk_context_create(&o, &ctx_));
  }
  explicit Context(const dsk_context_options& options) {
    check(dsk_context_create(&options, &ctx_));
  }
  Context(Context&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
  Context& operator=(Context&& other) noexcept {
    if (this != &other) {
      dsk_context_destroy(ctx_);
      ctx_ = std::exchange(other.ctx_, nullptr);
    }
    return *this;
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() { dsk_context_destroy(ctx_); }

  dsk_context* get() const noexcept { return ctx_; }
  int32_t backend() const {
    int32_t b = 0;
    check(dsk_context_get_backend(ctx_, &b));
    return b;
  }
  DLDevice device() const {
    DLDevice d{};
    check(dsk_context_get_device(ctx_, &d));
    return d;
  }
  void synchronize() { check(dsk_context_synchronize(ctx_)); }

 private:
  dsk_context* ctx_ = nullptr;
};

// A shared reference to a dsk_tensor (copying retains, destruction releases).
class Tensor {
 public:
  Tensor() = default;
  // Adopts one reference of `t` (as returned by the C API).
  explicit Tensor(dsk_tensor* t) noexcept : t_(t) {}
  Tensor(const Tensor& other) noexcept : t_(other.t_) { dsk_tensor_retain(t_); }
  Tensor(Tensor&& other) noexcept : t_(std::exchange(other.t_, nullptr)) {}
  Tensor& operator=(Tensor other) noexcept {
    std::swap(t_, other.t_);
    return *this;
  }
  ~Tensor() { dsk_tensor_release(t_); }

  static Tensor empty(Context& ctx, std::initializer_list<int64_t> shape, DLDataType dtype) {
    return empty(ctx, std::vector<int64_t>(shape), dtype);
  }
  static Tensor empty(Context& ctx, const std::vector<int64_t>& shape, DLDataType dtype) {
    dsk_tensor* t = nullptr;
    check(
        dsk_tensor_create(ctx.get(), static_cast<int32_t>(shape.size()), shape.data(), dtype, &t));
    return Tensor(t);
  }
  // A contiguous copy of `src` (any device) on ctx's device, converted to `dtype`.
  static Tensor clone(Context& ctx, const DLTensor& src, DLDataType dtype) {
    dsk_tensor* t = nullptr;
    check(dsk_tensor_clone(ctx.get(), &src, dtype, &t));
    return Tensor(t);
  }
  // Takes ownership of a DLPack managed tensor (on failure the caller still owns it).
  static Tensor from_dlpack(DLManagedTensorVersioned* managed) {
    dsk_tensor* t = nullptr;
    check(dsk_tensor_from_dlpack_versioned(managed, &t));
    return Tensor(t);
  }

  Tensor view(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides = {},
              int64_t element_offset = 0) const {
    dsk_tensor* t = nullptr;
    check(dsk_tensor_view(t_, static_cast<int32_t>(shape.size()), shape.data(),
                          strides.empty() ? nullptr : strides.data(), element_offset, &t));
    return Tensor(t);
  }
  DLManagedTensorVersioned* to_dlpack() const {
    DLManagedTensorVersioned* m = nullptr;
    check(dsk_tensor_to_dlpack_versioned(t_, &m));
    return m;
  }

  dsk_tensor* get() const noexcept { return t_; }
  // Throws dsk::Error for an empty (default-constructed or moved-from) Tensor.
  const DLTensor& dl() const {
    if (t_ == nullptr) throw Error(DSK_ERR_INVALID_ARGUMENT, "dsk::Tensor is empty");
    return *dsk_tensor_dltensor(t_);
  }
  operator const DLTensor*() const noexcept { return dsk_tensor_dltensor(t_); }
  int64_t numel() const noexcept { return dsk_tensor_numel(t_); }
  int64_t nbytes() const noexcept { return dsk_tensor_nbytes(t_); }
  bool is_contiguous() const noexcept { return dsk_tensor_is_contiguous(t_) != 0; }
  // NULL for an empty Tensor.
  template <typename T>
  T* data() const noexcept {
    return t_ != nullptr ? static_cast<T*>(dsk_tensor_dltensor(t_)->data) : nullptr;
  }

 private:
  dsk_tensor* t_ = nullptr;
};

inline void copy(Context& ctx, const DLTensor* src, const DLTensor* dst) {
  check(dsk_copy(ctx.get(), src, dst));
}
inline void fill(Context& ctx, const DLTensor* dst, double value) {
  check(dsk_fill(ctx.get(), dst, value));
}
inline void fill_uniform(Context& ctx, const DLTensor* dst, uint64_t seed, double low = 0.0,
                         double high = 1.0, uint64_t offset = 0) {
  dsk_random_params p;
  check(dsk_random_params_init(&p));
  p.seed = seed;
  p.offset = offset;
  p.a = low;
  p.b = high;
  check(dsk_fill_random(ctx.get(), dst, &p));
}
inline void fill_normal(Context& ctx, const DLTensor* dst, uint64_t seed, double mean = 0.0,
                        double stddev = 1.0, uint64_t offset = 0) {
  dsk_random_params p;
  check(dsk_random_params_init(&p));
  p.distribution = DSK_RANDOM_NORMAL;
  p.seed = seed;
  p.offset = offset;
  p.a = mean;
  p.b = stddev;
  check(dsk_fill_random(ctx.get(), dst, &p));
}

// ---- core ops (dsk_ops.h) ----------------------------------------------------------------------
// Thin wrappers: the same arguments in the same order as the C functions, with the context as a
// dsk::Context and failures thrown as dsk::Error. Tensor arguments are `const DLTensor*` (a
// dsk::Tensor converts implicitly); optional ones may be nullptr. See dsk_ops.h for shapes,
// dtypes, rounding and in-place rules.

// D = alpha * op(A) @ op(B) + beta * C (c may be nullptr or d itself).
inline void gemm(Context& ctx, const DLTensor* a, const DLTensor* b, const DLTensor* c,
                 const DLTensor* d, bool trans_a = false, bool trans_b = false, float alpha = 1.0f,
                 float beta = 0.0f) {
  check(dsk_gemm(ctx.get(), a, b, c, d, trans_a ? 1 : 0, trans_b ? 1 : 0, alpha, beta));
}
// y = x @ w^T + bias (bias may be nullptr).
inline void linear(Context& ctx, const DLTensor* x, const DLTensor* w, const DLTensor* bias,
                   const DLTensor* y) {
  check(dsk_linear(ctx.get(), x, w, bias, y));
}
// flags: 0 or DSK_QUANT_SCALE_POW2.
inline void quant_fp8_act(Context& ctx, const DLTensor* x, const DLTensor* q,
                          const DLTensor* scales, uint32_t flags = 0) {
  check(dsk_quant_fp8_act(ctx.get(), x, q, scales, flags));
}
inline void dequant_fp8_act(Context& ctx, const DLTensor* q, const DLTensor* scales,
                            const DLTensor* x) {
  check(dsk_dequant_fp8_act(ctx.get(), q, scales, x));
}
inline void quant_fp8_weight(Context& ctx, const DLTensor* w, const DLTensor* q,
                             const DLTensor* scales, uint32_t flags = 0) {
  check(dsk_quant_fp8_weight(ctx.get(), w, q, scales, flags));
}
inline void dequant_fp8_weight(Context& ctx, const DLTensor* q, const DLTensor* scales,
                               const DLTensor* w) {
  check(dsk_dequant_fp8_weight(ctx.get(), q, scales, w));
}
// x_scales nullptr: x is a float tensor quantized on the fly with `flags`.
inline void linear_fp8(Context& ctx, const DLTensor* x, const DLTensor* x_scales, const DLTensor* w,
                       const DLTensor* w_scales, const DLTensor* y, uint32_t flags = 0) {
  check(dsk_linear_fp8(ctx.get(), x, x_scales, w, w_scales, y, flags));
}
// One of DSK_FP8_KERNEL_*.
inline int32_t linear_fp8_kernel(Context& ctx) {
  int32_t kernel = 0;
  check(dsk_linear_fp8_kernel(ctx.get(), &kernel));
  return kernel;
}
inline void rmsnorm(Context& ctx, const DLTensor* x, const DLTensor* weight, const DLTensor* y,
                    float eps) {
  check(dsk_rmsnorm(ctx.get(), x, weight, y, eps));
}
inline void add_rmsnorm(Context& ctx, const DLTensor* x, const DLTensor* residual,
                        const DLTensor* weight, const DLTensor* y, const DLTensor* residual_out,
                        float eps) {
  check(dsk_add_rmsnorm(ctx.get(), x, residual, weight, y, residual_out, eps));
}
inline void swiglu(Context& ctx, const DLTensor* gate, const DLTensor* up, const DLTensor* y) {
  check(dsk_swiglu(ctx.get(), gate, up, y));
}
inline void swiglu_fused(Context& ctx, const DLTensor* gate_up, const DLTensor* y) {
  check(dsk_swiglu_fused(ctx.get(), gate_up, y));
}
// DeepSeek-V3's RoPE/YaRN configuration (dsk_rope_config_init); change fields as needed.
inline dsk_rope_config rope_config() {
  dsk_rope_config config;
  check(dsk_rope_config_init(&config));
  return config;
}
inline void rope_table(Context& ctx, const dsk_rope_config& config, const DLTensor* cos,
                       const DLTensor* sin) {
  check(dsk_rope_table(ctx.get(), &config, cos, sin));
}
// layout: DSK_ROPE_INTERLEAVED or DSK_ROPE_HALF_SPLIT.
inline void rope_apply(Context& ctx, const DLTensor* x, const DLTensor* positions,
                       const DLTensor* cos, const DLTensor* sin, const DLTensor* y,
                       int32_t layout = DSK_ROPE_INTERLEAVED) {
  check(dsk_rope_apply(ctx.get(), x, positions, cos, sin, y, layout));
}
inline void softmax(Context& ctx, const DLTensor* x, const DLTensor* y, float temperature = 1.0f) {
  check(dsk_softmax(ctx.get(), x, y, temperature));
}
inline void log_softmax(Context& ctx, const DLTensor* x, const DLTensor* y,
                        float temperature = 1.0f) {
  check(dsk_log_softmax(ctx.get(), x, y, temperature));
}
inline void argmax(Context& ctx, const DLTensor* x, const DLTensor* indices) {
  check(dsk_argmax(ctx.get(), x, indices));
}
// values may be nullptr.
inline void topk(Context& ctx, const DLTensor* x, int32_t k, const DLTensor* values,
                 const DLTensor* indices) {
  check(dsk_topk(ctx.get(), x, k, values, indices));
}
inline void embedding(Context& ctx, const DLTensor* table, const DLTensor* ids,
                      const DLTensor* out) {
  check(dsk_embedding(ctx.get(), table, ids, out));
}

// ---- MLA attention (dsk_mla.h) -----------------------------------------------------------------
// The same conventions as the core ops: the C arguments in the C order, tensors as
// `const DLTensor*` (optional ones nullptr), flags as bool, failures thrown as dsk::Error. See
// dsk_mla.h for shapes, dtypes and the exact semantics.

// The reference's softmax scale: qk_head_dim^-0.5, times m^2 with m = 0.1 * mscale *
// ln(rope_factor) + 1 when use_yarn and rope_factor > 1. DeepSeek-V3: mla_softmax_scale(192, 40,
// 1, true) == 0.1352338f.
inline float mla_softmax_scale(int64_t qk_head_dim, double rope_factor = 1.0, double mscale = 1.0,
                               bool use_yarn = false) {
  float scale = 0.0f;
  check(dsk_mla_softmax_scale(qk_head_dim, rope_factor, mscale, use_yarn ? 1 : 0, &scale));
  return scale;
}

// An absorbed-decode plan (dsk_mla_decode_plan): move-only, released on destruction. It fixes the
// shapes, dtype and device of the tensors it was made from (their contents are not read) and may
// be run with any context on that device, from any thread.
class MlaDecodePlan {
 public:
  // An empty plan (every query throws; run fails with the library's error).
  MlaDecodePlan() = default;
  MlaDecodePlan(Context& ctx, const DLTensor* q, const DLTensor* kv_cache,
                const DLTensor* block_table, const DLTensor* cache_seqlens, const DLTensor* out) {
    check(dsk_mla_decode_plan_create(ctx.get(), q, kv_cache, block_table, cache_seqlens, out,
                                     &plan_));
  }
  // Adopts a plan made by dsk_mla_decode_plan_create.
  explicit MlaDecodePlan(dsk_mla_decode_plan* plan) noexcept : plan_(plan) {}
  MlaDecodePlan(MlaDecodePlan&& other) noexcept : plan_(std::exchange(other.plan_, nullptr)) {}
  MlaDecodePlan& operator=(MlaDecodePlan&& other) noexcept {
    if (this != &other) {
      dsk_mla_decode_plan_release(plan_);
      plan_ = std::exchange(other.plan_, nullptr);
    }
    return *this;
  }
  MlaDecodePlan(const MlaDecodePlan&) = delete;
  MlaDecodePlan& operator=(const MlaDecodePlan&) = delete;
  ~MlaDecodePlan() { dsk_mla_decode_plan_release(plan_); }

  const dsk_mla_decode_plan* get() const noexcept { return plan_; }
  explicit operator bool() const noexcept { return plan_ != nullptr; }
  // Releases the plan now (idempotent); the object becomes empty.
  void reset() noexcept { dsk_mla_decode_plan_release(std::exchange(plan_, nullptr)); }

  // Bytes of scratch run uses (0 when none): reserve this much context workspace to make run
  // allocation-free and capturable.
  size_t workspace_size() const {
    size_t bytes = 0;
    check(dsk_mla_decode_plan_workspace_size(plan_, &bytes));
    return bytes;
  }
  // The number of pieces each request's keys are split into (1 = no split).
  int32_t num_splits() const {
    int32_t splits = 0;
    check(dsk_mla_decode_plan_num_splits(plan_, &splits));
    return splits;
  }
  // dsk_mla_decode_run with this plan; lse may be nullptr.
  void run(Context& ctx, const DLTensor* q, const DLTensor* kv_cache, const DLTensor* block_table,
           const DLTensor* cache_seqlens, float softmax_scale, bool causal, const DLTensor* out,
           const DLTensor* lse = nullptr) const {
    check(dsk_mla_decode_run(ctx.get(), plan_, q, kv_cache, block_table, cache_seqlens,
                             softmax_scale, causal ? 1 : 0, out, lse));
  }

 private:
  dsk_mla_decode_plan* plan_ = nullptr;
};

inline void mla_decode_run(Context& ctx, const MlaDecodePlan& plan, const DLTensor* q,
                           const DLTensor* kv_cache, const DLTensor* block_table,
                           const DLTensor* cache_seqlens, float softmax_scale, bool causal,
                           const DLTensor* out, const DLTensor* lse = nullptr) {
  plan.run(ctx, q, kv_cache, block_table, cache_seqlens, softmax_scale, causal, out, lse);
}
// Plan, run and release in one call; lse may be nullptr.
inline void mla_decode(Context& ctx, const DLTensor* q, const DLTensor* kv_cache,
                       const DLTensor* block_table, const DLTensor* cache_seqlens,
                       float softmax_scale, bool causal, const DLTensor* out,
                       const DLTensor* lse = nullptr) {
  check(dsk_mla_decode(ctx.get(), q, kv_cache, block_table, cache_seqlens, softmax_scale,
                       causal ? 1 : 0, out, lse));
}
// kv_cache[slot / page_size, slot % page_size, h] = [c_kv | k_pe] for slot_mapping[t] >= 0.
inline void mla_cache_append(Context& ctx, const DLTensor* c_kv, const DLTensor* k_pe,
                             const DLTensor* slot_mapping, const DLTensor* kv_cache) {
  check(dsk_mla_cache_append(ctx.get(), c_kv, k_pe, slot_mapping, kv_cache));
}
// wkv_b_scale: the 128 x 128 block scales of an fp8 wkv_b, nullptr for float weights.
inline void mla_absorb_q(Context& ctx, const DLTensor* q_nope, const DLTensor* wkv_b,
                         const DLTensor* wkv_b_scale, const DLTensor* q_latent) {
  check(dsk_mla_absorb_q(ctx.get(), q_nope, wkv_b, wkv_b_scale, q_latent));
}
inline void mla_absorb_out(Context& ctx, const DLTensor* o_latent, const DLTensor* wkv_b,
                           const DLTensor* wkv_b_scale, const DLTensor* o) {
  check(dsk_mla_absorb_out(ctx.get(), o_latent, wkv_b, wkv_b_scale, o));
}
// k_pe may be nullptr (then k holds only the dn decompressed values per head).
inline void mla_decompress_kv(Context& ctx, const DLTensor* c_kv, const DLTensor* k_pe,
                              const DLTensor* wkv_b, const DLTensor* wkv_b_scale, const DLTensor* k,
                              const DLTensor* v) {
  check(dsk_mla_decompress_kv(ctx.get(), c_kv, k_pe, wkv_b, wkv_b_scale, k, v));
}
// cu_seqlens_k nullptr: the same as cu_seqlens_q; lse may be nullptr.
inline void mla_prefill(Context& ctx, const DLTensor* q, const DLTensor* k, const DLTensor* v,
                        const DLTensor* cu_seqlens_q, const DLTensor* cu_seqlens_k,
                        float softmax_scale, bool causal, const DLTensor* out,
                        const DLTensor* lse = nullptr) {
  check(dsk_mla_prefill(ctx.get(), q, k, v, cu_seqlens_q, cu_seqlens_k, softmax_scale,
                        causal ? 1 : 0, out, lse));
}

// ---- Mixture of Experts (dsk_moe.h) ------------------------------------------------------------
// The same conventions as the core ops: the C arguments in the C order, tensors as
// `const DLTensor*` (optional ones nullptr), failures thrown as dsk::Error. See dsk_moe.h for
// shapes, dtypes and the exact semantics, and docs/ops/moe.md for the config table.

// DeepSeek-V3's gate (dsk_moe_gate_config_init): E 256, k 8, G 8, topk_group 4, sigmoid, AUTO
// group rule, renormalize, scale 2.5, f32 scores. Change fields as needed.
inline dsk_moe_gate_config moe_gate_config() {
  dsk_moe_gate_config config;
  check(dsk_moe_gate_config_init(&config));
  return config;
}
// DeepSeek-V2's gate: E 160, k 6, G 8, topk_group 3, softmax, no renormalization, scale 16.
inline dsk_moe_gate_config moe_gate_config_v2() {
  dsk_moe_gate_config config = moe_gate_config();
  config.num_experts = 160;
  config.top_k = 6;
  config.n_group = 8;
  config.topk_group = 3;
  config.score_func = DSK_MOE_SCORE_SOFTMAX;
  config.renormalize = 0;
  config.routed_scaling_factor = 16.0f;
  return config;
}
// DeepSeek-V2-Lite's gate: E 64, k 6, no groups, softmax, no renormalization, scale 1.
inline dsk_moe_gate_config moe_gate_config_v2_lite() {
  dsk_moe_gate_config config = moe_gate_config();
  config.num_experts = 64;
  config.top_k = 6;
  config.n_group = 1;
  config.topk_group = 1;
  config.score_func = DSK_MOE_SCORE_SOFTMAX;
  config.renormalize = 0;
  config.routed_scaling_factor = 1.0f;
  return config;
}

// SwiGLU expert weights (dsk_moe_expert_weights_init, then the tensors): w1, w3 [E, I, D] and
// w2 [E, D, I] for routed experts ([I, D] / [D, I] for shared ones); the *_scales are the 128 x 128
// block scales of fp8 weights, nullptr for float weights. The struct borrows the tensors.
inline dsk_moe_expert_weights moe_expert_weights(const DLTensor* w1, const DLTensor* w3,
                                                 const DLTensor* w2,
                                                 const DLTensor* w1_scales = nullptr,
                                                 const DLTensor* w3_scales = nullptr,
                                                 const DLTensor* w2_scales = nullptr) {
  dsk_moe_expert_weights weights;
  check(dsk_moe_expert_weights_init(&weights));
  weights.w1 = w1;
  weights.w3 = w3;
  weights.w2 = w2;
  weights.w1_scales = w1_scales;
  weights.w3_scales = w3_scales;
  weights.w2_scales = w2_scales;
  return weights;
}

// ids [T, k] and weights [T, k] of logits [T, E]; bias and row_flags may be nullptr.
inline void moe_gate(Context& ctx, const dsk_moe_gate_config& config, const DLTensor* logits,
                     const DLTensor* bias, const DLTensor* ids, const DLTensor* weights,
                     const DLTensor* row_flags = nullptr) {
  check(dsk_moe_gate(ctx.get(), &config, logits, bias, ids, weights, row_flags));
}
// The router GEMM logits = x @ w^T, then moe_gate.
inline void moe_gate_router(Context& ctx, const dsk_moe_gate_config& config, const DLTensor* x,
                            const DLTensor* w, const DLTensor* bias, const DLTensor* ids,
                            const DLTensor* weights, const DLTensor* row_flags = nullptr) {
  check(dsk_moe_gate_router(ctx.get(), &config, x, w, bias, ids, weights, row_flags));
}
// Rows sorted_rows needs in the worst case: T * k + min(E, T * k) * (block_size - 1).
inline int64_t moe_dispatch_capacity(int64_t num_tokens, int32_t top_k, int32_t num_experts,
                                     int32_t block_size = 1) {
  int64_t capacity = 0;
  check(dsk_moe_dispatch_capacity(num_tokens, top_k, num_experts, block_size, &capacity));
  return capacity;
}
// Sorts the assignments of ids [T, k] by local expert id - expert_begin; block_experts and dest
// may be nullptr.
inline void moe_dispatch(Context& ctx, const DLTensor* ids, int32_t num_experts,
                         int32_t expert_begin, int32_t block_size, const DLTensor* counts,
                         const DLTensor* offsets, const DLTensor* sorted_rows,
                         const DLTensor* block_experts = nullptr, const DLTensor* dest = nullptr) {
  check(dsk_moe_dispatch(ctx.get(), ids, num_experts, expert_begin, block_size, counts, offsets,
                         sorted_rows, block_experts, dest));
}
// out[r] = x[sorted_rows[r] / top_k] (0 for padding); out_scales only for an fp8 out, flags 0 or
// DSK_QUANT_SCALE_POW2.
inline void moe_permute(Context& ctx, const DLTensor* x, const DLTensor* sorted_rows, int32_t top_k,
                        const DLTensor* out, const DLTensor* out_scales = nullptr,
                        uint32_t flags = 0) {
  check(dsk_moe_permute(ctx.get(), x, sorted_rows, top_k, out, out_scales, flags));
}
// out[t] = shared[t] + sum_j weights[t, j] * y[dest[t, j]]; shared may be nullptr or out itself.
inline void moe_combine(Context& ctx, const DLTensor* y, const DLTensor* dest,
                        const DLTensor* weights, const DLTensor* shared, const DLTensor* out) {
  check(dsk_moe_combine(ctx.get(), y, dest, weights, shared, out));
}
// Expert e over rows offsets[e] .. offsets[e + 1] of x into y; x_scales only for an fp8 x.
inline void moe_experts(Context& ctx, const dsk_moe_expert_weights& weights, const DLTensor* x,
                        const DLTensor* x_scales, const DLTensor* offsets, const DLTensor* y) {
  check(dsk_moe_experts(ctx.get(), &weights, x, x_scales, offsets, y));
}

// A MoE layer plan (dsk_moe_plan): move-only, released on destruction. It fixes T, D, the gate
// config, the expert shapes and dtypes and the device of the tensors it was made from (their
// contents are not read) and may be run with any context on that device, from any thread.
class MoePlan {
 public:
  // An empty plan (every query throws; run fails with the library's error).
  MoePlan() = default;
  // shared nullptr: no shared experts (run must then get none either).
  MoePlan(Context& ctx, const dsk_moe_gate_config& config, const DLTensor* x,
          const DLTensor* router_w, const dsk_moe_expert_weights& experts,
          const dsk_moe_expert_weights* shared, const DLTensor* out) {
    check(dsk_moe_plan_create(ctx.get(), &config, x, router_w, &experts, shared, out, &plan_));
  }
  // Adopts a plan made by dsk_moe_plan_create.
  explicit MoePlan(dsk_moe_plan* plan) noexcept : plan_(plan) {}
  MoePlan(MoePlan&& other) noexcept : plan_(std::exchange(other.plan_, nullptr)) {}
  MoePlan& operator=(MoePlan&& other) noexcept {
    if (this != &other) {
      dsk_moe_plan_release(plan_);
      plan_ = std::exchange(other.plan_, nullptr);
    }
    return *this;
  }
  MoePlan(const MoePlan&) = delete;
  MoePlan& operator=(const MoePlan&) = delete;
  ~MoePlan() { dsk_moe_plan_release(plan_); }

  const dsk_moe_plan* get() const noexcept { return plan_; }
  explicit operator bool() const noexcept { return plan_ != nullptr; }
  // Releases the plan now (idempotent); the object becomes empty.
  void reset() noexcept { dsk_moe_plan_release(std::exchange(plan_, nullptr)); }

  // Bytes of scratch run uses: reserve this much context workspace to make run allocation-free.
  size_t workspace_size() const {
    size_t bytes = 0;
    check(dsk_moe_plan_workspace_size(plan_, &bytes));
    return bytes;
  }
  // dsk_moe_forward_run with this plan; bias, shared, ids and weights may be nullptr.
  void run(Context& ctx, const DLTensor* x, const DLTensor* router_w, const DLTensor* bias,
           const dsk_moe_expert_weights& experts, const dsk_moe_expert_weights* shared,
           const DLTensor* out, const DLTensor* ids = nullptr,
           const DLTensor* weights = nullptr) const {
    check(dsk_moe_forward_run(ctx.get(), plan_, x, router_w, bias, &experts, shared, out, ids,
                              weights));
  }

 private:
  dsk_moe_plan* plan_ = nullptr;
};

inline void moe_forward_run(Context& ctx, const MoePlan& plan, const DLTensor* x,
                            const DLTensor* router_w, const DLTensor* bias,
                            const dsk_moe_expert_weights& experts,
                            const dsk_moe_expert_weights* shared, const DLTensor* out,
                            const DLTensor* ids = nullptr, const DLTensor* weights = nullptr) {
  plan.run(ctx, x, router_w, bias, experts, shared, out, ids, weights);
}
// Plan, run and release in one call; bias and shared may be nullptr.
inline void moe_forward(Context& ctx, const dsk_moe_gate_config& config, const DLTensor* x,
                        const DLTensor* router_w, const DLTensor* bias,
                        const dsk_moe_expert_weights& experts, const dsk_moe_expert_weights* shared,
                        const DLTensor* out) {
  check(dsk_moe_forward(ctx.get(), &config, x, router_w, bias, &experts, shared, out));
}
// load[e] += assignments of ids [T, k] to expert expert_begin + e (load [E] int64).
inline void moe_load_accumulate(Context& ctx, const DLTensor* ids, int32_t expert_begin,
                                const DLTensor* load) {
  check(dsk_moe_load_accumulate(ctx.get(), ids, expert_begin, load));
}
// bias[e] += gamma * sign(mean(load) - load[e]) (DeepSeek-V3: gamma 0.001).
inline void moe_bias_update(Context& ctx, const DLTensor* load, const DLTensor* bias,
                            float gamma = 0.001f) {
  check(dsk_moe_bias_update(ctx.get(), load, bias, gamma));
}
// DeepEP's dispatch layout for num_ranks ranks owning contiguous expert ranges.
inline void moe_ep_layout(Context& ctx, const DLTensor* ids, int32_t num_experts, int32_t num_ranks,
                          const DLTensor* tokens_per_rank, const DLTensor* tokens_per_expert,
                          const DLTensor* is_token_in_rank) {
  check(dsk_moe_ep_layout(ctx.get(), ids, num_experts, num_ranks, tokens_per_rank,
                          tokens_per_expert, is_token_in_rank));
}

// ---- token sampling (dsk_sampling.h) -----------------------------------------------------------
// The same conventions as the core ops: the C arguments in the C order, tensors as
// `const DLTensor*` (optional ones nullptr), failures thrown as dsk::Error. The parameter structs
// come from the library's init functions, so struct_size and every default are the library's;
// change fields as needed. See dsk_sampling.h for the processing chain, the RNG layout and the
// per-row status values.

// Plain sampling at temperature 1, seed 0, offset 0, every filter off, every tensor nullptr
// (dsk_sampling_params_init).
inline dsk_sampling_params sampling_params() {
  dsk_sampling_params params;
  check(dsk_sampling_params_init(&params));
  return params;
}
// Greedy decoding (temperature 0): the largest processed logit, ties to the lower id.
inline dsk_sampling_params greedy_params() {
  dsk_sampling_params params = sampling_params();
  params.temperature = 0.0f;
  return params;
}
// Seeded sampling with the common filters (0 / 1 / 0 switch a filter off).
inline dsk_sampling_params sampling_params(float temperature, int32_t top_k, float top_p,
                                           float min_p, uint64_t seed, uint64_t offset = 0) {
  dsk_sampling_params params = sampling_params();
  params.temperature = temperature;
  params.top_k = top_k;
  params.top_p = top_p;
  params.min_p = min_p;
  params.seed = seed;
  params.offset = offset;
  return params;
}

// Outputs of dsk_sample (dsk_sampling_outputs_init, then the tensors; the struct borrows them):
// ids [B] int32 is required, the others may be nullptr. top_ids / top_logprobs [B, n] describe
// top_source's distribution (DSK_LOGPROBS_PROCESSED or DSK_LOGPROBS_RAW).
inline dsk_sampling_outputs sampling_outputs(
    const DLTensor* ids, const DLTensor* logprobs = nullptr, const DLTensor* top_ids = nullptr,
    const DLTensor* top_logprobs = nullptr, const DLTensor* raw_logprobs = nullptr,
    const DLTensor* status = nullptr, int32_t top_source = DSK_LOGPROBS_PROCESSED) {
  dsk_sampling_outputs outputs;
  check(dsk_sampling_outputs_init(&outputs));
  outputs.top_source = top_source;
  outputs.ids = ids;
  outputs.logprobs = logprobs;
  outputs.top_ids = top_ids;
  outputs.top_logprobs = top_logprobs;
  outputs.raw_logprobs = raw_logprobs;
  outputs.status = status;
  return outputs;
}

// One token per row of logits [B, V] into the outputs.
inline void sample(Context& ctx, const dsk_sampling_params& params, const DLTensor* logits,
                   const dsk_sampling_outputs& outputs) {
  check(dsk_sample(ctx.get(), &params, logits, &outputs));
}
// One token per row of logits [B, V] into ids [B] int32 (no logprobs).
inline void sample(Context& ctx, const dsk_sampling_params& params, const DLTensor* logits,
                   const DLTensor* ids) {
  const dsk_sampling_outputs outputs = sampling_outputs(ids);
  check(dsk_sample(ctx.get(), &params, logits, &outputs));
}
// The processed logits (kept z, -inf for the others) into out [B, V]; status may be nullptr.
inline void sampling_logits(Context& ctx, const dsk_sampling_params& params, const DLTensor* logits,
                            const DLTensor* out, const DLTensor* status = nullptr) {
  check(dsk_sampling_logits(ctx.get(), &params, logits, out, status));
}
// The processed distribution into probs [B, V] f32; status may be nullptr.
inline void sampling_probs(Context& ctx, const dsk_sampling_params& params, const DLTensor* logits,
                           const DLTensor* probs, const DLTensor* status = nullptr) {
  check(dsk_sampling_probs(ctx.get(), &params, logits, probs, status));
}

// Verification parameters (dsk_verify_params_init): mode DSK_VERIFY_SAMPLE or
// DSK_VERIFY_GREEDY, the scalar seed and offset; per-row seeds / offsets stay nullptr.
inline dsk_verify_params verify_params(int32_t mode = DSK_VERIFY_SAMPLE, uint64_t seed = 0,
                                       uint64_t offset = 0) {
  dsk_verify_params params;
  check(dsk_verify_params_init(&params));
  params.mode = mode;
  params.seed = seed;
  params.offset = offset;
  return params;
}
// Chain verification of draft_ids [B, n] against target [B, n + 1, V]: out_ids [B, n + 1],
// accepted [B]; draft_probs (nullptr: a deterministic draft) and emitted may be nullptr.
inline void speculative_verify(Context& ctx, const dsk_verify_params& params,
                               const DLTensor* draft_ids, const DLTensor* draft_probs,
                               const DLTensor* target, const DLTensor* out_ids,
                               const DLTensor* accepted, const DLTensor* emitted = nullptr) {
  check(dsk_speculative_verify(ctx.get(), &params, draft_ids, draft_probs, target, out_ids,
                               accepted, emitted));
}

// ---- safetensors checkpoints (dsk_safetensors.h) ---------------------------------------------

// An open checkpoint (dsk_safetensors): one .safetensors file, a sharded index or a directory,
// mapped read-only and validated on opening. Move-only, closed on destruction. It is immutable,
// so its const methods may run on several threads at once. Views, names and info pointers live
// while it stays open; as_tensor() and to_dlpack() results keep their file mapped on their own.
class SafeTensors {
 public:
  // An empty object (every query throws the library's NULL-handle error).
  SafeTensors() = default;
  explicit SafeTensors(const std::string& path) { check(dsk_safetensors_open(path.c_str(), &st_)); }
  // Adopts a handle from dsk_safetensors_open.
  explicit SafeTensors(dsk_safetensors* st) noexcept : st_(st) {}
  SafeTensors(SafeTensors&& other) noexcept : st_(std::exchange(other.st_, nullptr)) {}
  SafeTensors& operator=(SafeTensors&& other) noexcept {
    if (this != &other) {
      dsk_safetensors_close(st_);
      st_ = std::exchange(other.st_, nullptr);
    }
    return *this;
  }
  SafeTensors(const SafeTensors&) = delete;
  SafeTensors& operator=(const SafeTensors&) = delete;
  ~SafeTensors() { dsk_safetensors_close(st_); }

  const dsk_safetensors* get() const noexcept { return st_; }
  explicit operator bool() const noexcept { return st_ != nullptr; }
  // Closes now (idempotent); views taken from it become invalid.
  void close() noexcept { dsk_safetensors_close(std::exchange(st_, nullptr)); }

  int64_t size() const {
    int64_t n = 0;
    check(dsk_safetensors_count(st_, &n));
    return n;
  }
  // Tensor names sorted byte by byte; the pointer lives as long as the checkpoint is open.
  const char* name(int64_t index) const {
    const char* n = nullptr;
    check(dsk_safetensors_name(st_, index, &n));
    return n;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (int64_t i = 0, n = size(); i < n; ++i) out.emplace_back(name(i));
    return out;
  }
  // The index of `tensor_name`; throws dsk::Error (DSK_ERR_NOT_FOUND) when there is none.
  int64_t find(const std::string& tensor_name) const {
    int64_t index = -1;
    check(dsk_safetensors_find(st_, tensor_name.c_str(), &index));
    return index;
  }
  bool contains(const std::string& tensor_name) const {
    int64_t index = -1;
    const dsk_status s = dsk_safetensors_find(st_, tensor_name.c_str(), &index);
    if (s == DSK_ERR_NOT_FOUND) return false;
    check(s);
    return true;
  }
  // A borrowed read-only CPU view into the mapping (never write through it; see the header for
  // alignment). Pass &view to ops as an input.
  DLTensor tensor(const std::string& tensor_name) const {
    DLTensor view{};
    check(dsk_safetensors_tensor(st_, tensor_name.c_str(), &view));
    return view;
  }
  dsk_safetensors_info info(const std::string& tensor_name) const {
    dsk_safetensors_info out;
    check(dsk_safetensors_info_init(&out));
    check(dsk_safetensors_tensor_info(st_, tensor_name.c_str(), &out));
    return out;
  }
  // An owning read-only DLPack export (call its deleter once) that keeps the file mapped.
  DLManagedTensorVersioned* to_dlpack(const std::string& tensor_name) const {
    DLManagedTensorVersioned* m = nullptr;
    check(dsk_safetensors_to_dlpack(st_, tensor_name.c_str(), &m));
    return m;
  }
  // The tensor as a read-only dsk::Tensor (no copy) that keeps the file mapped, for dtypes and
  // ranks dsk supports. Its data may be misaligned for the dtype (see dsk_safetensors.h).
  Tensor as_tensor(const std::string& tensor_name) const {
    DLManagedTensorVersioned* m = to_dlpack(tensor_name);
    dsk_tensor* t = nullptr;
    const dsk_status s = dsk_tensor_from_dlpack_versioned(m, &t);
    if (s != DSK_OK) {
      Error e(s, dsk_last_error_message());
      m->deleter(m);  // refused, so still ours
      throw e;
    }
    return Tensor(t);
  }
  // The "__metadata__" value of `key`, nullopt when absent.
  std::optional<std::string> metadata(const std::string& key) const {
    const char* value = nullptr;
    const dsk_status s = dsk_safetensors_metadata(st_, key.c_str(), &value);
    if (s == DSK_ERR_NOT_FOUND) return std::nullopt;
    check(s);
    return std::string(value);
  }
  std::vector<std::string> metadata_keys() const {
    int64_t n = 0;
    check(dsk_safetensors_metadata_count(st_, &n));
    std::vector<std::string> out;
    for (int64_t i = 0; i < n; ++i) {
      const char* key = nullptr;
      check(dsk_safetensors_metadata_key(st_, i, &key));
      out.emplace_back(key);
    }
    return out;
  }

 private:
  dsk_safetensors* st_ = nullptr;
};

}  // namespace dsk

#endif  // DSK_HPP_
