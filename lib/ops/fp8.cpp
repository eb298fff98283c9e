#include "ops/fp8.h"

#include <string>
#include <vector>

#include "common/fp8_block.h"
#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

// `scales` must have exactly `expected` as its shape; `rule` says where it comes from.
void check_scale_shape(const Arg& scales, const std::vector<int64_t>& expected, const Arg& data,
                       const char* rule) {
  bool same = scales.l.ndim == static_cast<int32_t>(expected.size());
  for (int32_t i = 0; same && i < scales.l.ndim; ++i) same = scales.l.shape[i] == expected[i];
  check_arg(same, "{} has shape {}, expected {} = {} for {} of shape {}", scales.name,
            shape_text(scales), shape_text(expected.data(), static_cast<int32_t>(expected.size())),
            rule, data.name, shape_text(data));
}

// Activation scales [..., ceil(K / 128)] for data [..., K].
void check_act_scales(const Arg& scales, const Arg& data) {
  std::vector<int64_t> expected(data.l.shape, data.l.shape + data.l.ndim);
  expected.back() = fp8::blocks(expected.back());
  check_scale_shape(scales, expected, data, "[..., ceil(K / 128)]");
}

// Weight scales [ceil(N / 128), ceil(K / 128)] for data [N, K].
void check_weight_scales(const Arg& scales, const Arg& data) {
  check_scale_shape(scales, {fp8::blocks(data.l.shape[0]), fp8::blocks(data.l.shape[1])}, data,
                    "[ceil(N / 128), ceil(K / 128)]");
}

void check_flags(uint32_t flags) {
  check_arg((flags & ~DSK_QUANT_SCALE_POW2) == 0u,
            "flags = {:#x}, expected 0 or DSK_QUANT_SCALE_POW2 ({:#x})", flags,
            DSK_QUANT_SCALE_POW2);
}

void check_at_least_1d(const Arg& a, const char* shape) {
  check_arg(a.l.ndim >= 1, "{} is a scalar, expected a tensor {}", a.name, shape);
}

// The data `a` of a quant/dequant call ([N, K] for a weight, [..., K] for activations), its
// converted twin `b` (same shape) and the block scales of `a`.
void check_blocked(const Arg& a, const Arg& b, const Arg& scales, bool is_weight) {
  if (is_weight) {
    check_ndim(a, 2);
  } else {
    check_at_least_1d(a, "[..., K]");
  }
  check_same_shape(a, b);
  if (is_weight) {
    check_weight_scales(scales, a);
  } else {
    check_act_scales(scales, a);
  }
}

// A weight as is ([N, K]), activations as rows [R, K].
void as_blocked(const Arg& a, bool is_weight, View& out) {
  if (is_weight) {
    as_is(a, out);
  } else {
    as_rows(a, out);
  }
}

}  // namespace

void quant_fp8(dsk_context& ctx, const DLTensor* x_t, const DLTensor* q_t, const DLTensor* s_t,
               uint32_t flags, bool is_weight) {
  const Arg x = input(x_t, is_weight ? "w" : "x");
  const Arg q = output(q_t, "q");
  const Arg scales = output(s_t, "scales");
  check_float(x);
  check_dtype(q, DSK_DTYPE_FP8_E4M3FN);
  check_dtype(scales, DSK_DTYPE_F32);
  check_flags(flags);
  check_blocked(x, q, scales, is_weight);
  check_no_overlap(q, x);
  check_no_overlap(scales, x);
  check_no_overlap(scales, q);
  const Target t = target(ctx, {&x, &q, &scales});
  View xv;
  View qv;
  View sv;
  as_blocked(x, is_weight, xv);
  as_blocked(q, is_weight, qv);
  as_blocked(scales, is_weight, sv);
  if (x.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->quant_fp8, "quant_fp8");
  call(t, fn(&t.exec, xv.get(), qv.get(), sv.get(), is_weight ? 1 : 0, flags),
       is_weight ? "quant_fp8_weight" : "quant_fp8_act");
}

void dequant_fp8(dsk_context& ctx, const DLTensor* q_t, const DLTensor* s_t, const DLTensor* x_t,
                 bool is_weight) {
  const Arg q = input(q_t, "q");
  const Arg scales = input(s_t, "scales");
  const Arg x = output(x_t, is_weight ? "w" : "x");
  check_dtype(q, DSK_DTYPE_FP8_E4M3FN);
  check_dtype(scales, DSK_DTYPE_F32);
  check_float(x);
  check_blocked(q, x, scales, is_weight);
  check_no_overlap(x, q);
  check_no_overlap(x, scales);
  const Target t = target(ctx, {&q, &scales, &x});
  View qv;
  View sv;
  View xv;
  as_blocked(q, is_weight, qv);
  as_blocked(scales, is_weight, sv);
  as_blocked(x, is_weight, xv);
  if (x.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->dequant_fp8, "dequant_fp8");
  call(t, fn(&t.exec, qv.get(), sv.get(), xv.get(), is_weight ? 1 : 0),
       is_weight ? "dequant_fp8_weight" : "dequant_fp8_act");
}

void linear_fp8(dsk_context& ctx, const DLTensor* x_t, const DLTensor* xs_t, const DLTensor* w_t,
                const DLTensor* ws_t, const DLTensor* y_t, uint32_t flags) {
  const Arg x = input(x_t, "x");
  const Arg x_scales = optional_input(xs_t, "x_scales");
  const Arg w = input(w_t, "w");
  const Arg w_scales = input(ws_t, "w_scales");
  const Arg y = output(y_t, "y");
  check_dtype(w, DSK_DTYPE_FP8_E4M3FN);
  check_ndim(w, 2);
  check_dtype(w_scales, DSK_DTYPE_F32);
  check_weight_scales(w_scales, w);
  const int64_t n = w.l.shape[0];
  const int64_t k = w.l.shape[1];
  check_at_least_1d(x, "[..., K]");
  if (x_scales.present) {
    check_arg(x.l.dtype_id == DSK_DTYPE_FP8_E4M3FN,
              "x.dtype is {} while x_scales is given, expected fp8_e4m3fn (or x_scales NULL to "
              "quantize a float x here)",
              dtype_id_name(x.l.dtype_id));
    check_arg(flags == 0u,
              "flags = {:#x} while x_scales is given, expected 0 (flags only apply when x is "
              "quantized here)",
              flags);
    check_dtype(x_scales, DSK_DTYPE_F32);
  } else {
    check_arg(is_float(x),
              "x.dtype is {} and x_scales is NULL, expected a float x (f32, f16 or bf16) to "
              "quantize here, or x_scales for an fp8_e4m3fn x",
              dtype_id_name(x.l.dtype_id));
    check_flags(flags);
  }
  check_arg(x.l.shape[x.l.ndim - 1] == k, "x has shape {}, expected [..., K] with K = {} (w {})",
            shape_text(x), k, shape_text(w));
  if (x_scales.present) check_act_scales(x_scales, x);
  check_float(y);
  check_same_leading(x, y, 1);
  check_arg(y.l.shape[y.l.ndim - 1] == n, "y has shape {}, expected [..., N] with N = {} (w {})",
            shape_text(y), n, shape_text(w));
  check_no_overlap(y, x);
  check_no_overlap(y, x_scales);
  check_no_overlap(y, w);
  check_no_overlap(y, w_scales);
  const Target t = target(ctx, {&x, &x_scales, &w, &w_scales, &y});
  View xv;
  View xsv;
  View wv;
  View wsv;
  View yv;
  as_rows(x, xv);
  as_rows(x_scales, xsv);
  as_is(w, wv);
  as_is(w_scales, wsv);
  as_rows(y, yv);
  if (y.l.numel == 0) return;
  if (k == 0) {
    // An empty sum: y = 0 (no backend needs a K == 0 path of its own).
    auto fill = entry(t, t.backend->iface->fill, "fill");
    call(t, fill(t.exec.device, y_t, 0.0, t.exec.stream), "linear_fp8");
    return;
  }
  auto fn = entry(t, t.backend->iface->linear_fp8, "linear_fp8");
  call(t, fn(&t.exec, xv.get(), xsv.get(), wv.get(), wsv.get(), yv.get(), flags), "linear_fp8");
}

int32_t linear_fp8_kernel(dsk_context& ctx) {
  const Backend& b = *ctx.backend;
  if (b.kind == DSK_BACKEND_CPU) return DSK_FP8_KERNEL_CPU_REFERENCE;
  check_arg(b.iface != nullptr, "the {} backend is not available", b.name);
  if (b.iface->linear_fp8_kernel == nullptr) {
    fail(DSK_ERR_UNSUPPORTED, "the {} backend does not implement linear_fp8_kernel", b.name);
  }
  // The entry answers a DSK_FP8_KERNEL_* (> 0), or -status with a message when it cannot decide
  // (a device query failed, an invalid DSK_FP8_GEMM value).
  const int32_t kernel = b.iface->linear_fp8_kernel(ctx.device_id);
  if (kernel <= 0) {
    const dsk_status status = kernel < 0 ? static_cast<dsk_status>(-kernel) : DSK_ERR_INTERNAL;
    check_backend_call(b, status, "linear_fp8_kernel");
  }
  return kernel;
}

}  // namespace ops
}  // namespace dsk
