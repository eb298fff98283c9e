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

#include <cstdint>
#include <initializer_list>
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

}  // namespace dsk

#endif  // DSK_HPP_
