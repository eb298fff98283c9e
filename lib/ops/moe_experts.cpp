// The SwiGLU expert FFN (dsk_moe_experts and the layer's expert step): per expert g over its rows,
//   gate = x @ w1[g]^T, up = x @ w3[g]^T (rounded to y's dtype), h = silu(gate) * up, y = h @
//   w2[g]^T
// with the backend's grouped GEMM for float weights (one gemm per expert when it has none) and one
// block-scaled linear_fp8 per expert and projection for fp8 weights (h quantized per 1 x 128 tile
// on the way in, as the reference's act_quant).
#include "ops/moe_experts.h"

#include <fmt/format.h>

#include <cstring>
#include <string>

#include "common/convert.h"
#include "core/dtype_info.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"
#include "ops/moe.h"

namespace dsk {
namespace ops {
namespace {

const char* const kNames[3][6] = {
    {"weights->w1", "weights->w3", "weights->w2", "weights->w1_scales", "weights->w3_scales",
     "weights->w2_scales"},
    {"experts->w1", "experts->w3", "experts->w2", "experts->w1_scales", "experts->w3_scales",
     "experts->w2_scales"},
    {"shared->w1", "shared->w3", "shared->w2", "shared->w1_scales", "shared->w3_scales",
     "shared->w2_scales"},
};

int64_t blocks(int64_t n) { return (n + DSK_FP8_BLOCK - 1) / DSK_FP8_BLOCK; }

// Rows [r0, r0 + n) of m as a 2-D view.
void window(View& v, const Rows& m, int64_t r0, int64_t n) {
  const int64_t shape[2] = {n, m.cols};
  const int64_t strides[2] = {m.stride0, m.stride1};
  v.set(m.data + r0 * m.stride0 * static_cast<int64_t>(m.elem_size), m.device, m.dtype_id, 2, shape,
        strides);
}

// Rows [r0, r0 + n) of m as [1, n, cols] for the gemm entry.
void window3(View& v, const Rows& m, int64_t r0, int64_t n) {
  const int64_t shape[3] = {1, n, m.cols};
  const int64_t strides[3] = {0, gemm_stride(n, m.stride0), gemm_stride(m.cols, m.stride1)};
  v.set(m.data + r0 * m.stride0 * static_cast<int64_t>(m.elem_size), m.device, m.dtype_id, 3, shape,
        strides);
}

// Expert g's matrix [rows, cols].
void expert(View& v, const Mat3& m, int64_t g) {
  v.set(m.data + g * m.strides[0] * static_cast<int64_t>(m.elem_size), m.device, m.dtype_id, 2,
        m.shape + 1, m.strides + 1);
}

// Expert g's matrix transposed, as [1, cols, rows] (the B operand of x @ w^T).
void expert_t3(View& v, const Mat3& m, int64_t g) {
  const int64_t shape[3] = {1, m.shape[2], m.shape[1]};
  const int64_t strides[3] = {0, gemm_stride(m.shape[2], m.strides[2]),
                              gemm_stride(m.shape[1], m.strides[1])};
  v.set(m.data + g * m.strides[0] * static_cast<int64_t>(m.elem_size), m.device, m.dtype_id, 3,
        shape, strides);
}

// out = in @ w[g]^T on each group's rows.
void project(const Target& t, const dsk_exec& ex, const Mat3& w, const Mat3& w_scales,
             const Rows& in, const Rows& in_scales, const std::vector<int64_t>& offsets,
             const Rows& out) {
  const int64_t groups = static_cast<int64_t>(offsets.size()) - 1;
  if (w.dtype_id == DSK_DTYPE_FP8_E4M3FN) {
    auto fn = entry(t, t.backend->iface->linear_fp8, "linear_fp8");
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t r0 = offsets[g];
      const int64_t n = offsets[g + 1] - r0;
      if (n == 0) continue;
      View xv, xsv, wv, wsv, yv;
      window(xv, in, r0, n);
      if (in_scales.data != nullptr) window(xsv, in_scales, r0, n);
      expert(wv, w, g);
      expert(wsv, w_scales, g);
      window(yv, out, r0, n);
      call(t, fn(&ex, xv.get(), xsv.get(), wv.get(), wsv.get(), yv.get(), 0u),
           "linear_fp8 of an expert");
    }
    return;
  }
  // The grouped entry also takes weights of another dtype than `in` (bf16 weights against the f32
  // h of an f32 y), which a backend's plain gemm need not (cuBLASLt takes one dtype for A and B).
  if (t.backend->iface->moe_grouped_gemm != nullptr && (groups > 1 || w.dtype_id != in.dtype_id)) {
    const int64_t wshape[3] = {w.shape[0], w.shape[1], w.shape[2]};
    View xv, wv, yv;
    window(xv, in, 0, in.rows);
    wv.set(w.data, w.device, w.dtype_id, 3, wshape, w.strides);
    window(yv, out, 0, out.rows);
    call(t, t.backend->iface->moe_grouped_gemm(&ex, xv.get(), wv.get(), offsets.data(), yv.get()),
         "moe_grouped_gemm");
    return;
  }
  auto gemm = entry(t, t.backend->iface->gemm, "gemm");
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = offsets[g];
    const int64_t n = offsets[g + 1] - r0;
    if (n == 0) continue;
    View xv, wv, yv;
    window3(xv, in, r0, n);
    expert_t3(wv, w, g);
    window3(yv, out, r0, n);
    call(t, gemm(&ex, xv.get(), wv.get(), nullptr, nullptr, yv.get(), 1.0f, 0.0f),
         "gemm of an expert");
  }
}

}  // namespace

int64_t gemm_stride(int64_t size, int64_t stride) { return size == 1 ? 0 : stride; }

Rows contiguous_rows(char* data, DLDevice device, int32_t dtype_id, int64_t rows, int64_t cols) {
  Rows r;
  r.data = data;
  r.device = device;
  r.dtype_id = dtype_id;
  r.elem_size = dtype_id_size(dtype_id);
  r.rows = rows;
  r.cols = cols;
  r.stride0 = cols;
  r.stride1 = 1;
  return r;
}

Rows rows_of_arg(const Arg& a) {
  Rows r;
  r.data = a.l.data;
  r.device = a.l.device;
  r.dtype_id = a.l.dtype_id;
  r.elem_size = a.l.elem_size;
  r.rows = a.l.shape[0];
  r.cols = a.l.shape[1];
  r.stride0 = a.l.strides[0];
  r.stride1 = a.l.strides[1];
  return r;
}

Mat3 mat3_of_arg(const Arg& a) {
  Mat3 m;
  m.data = a.l.data;
  m.device = a.l.device;
  m.dtype_id = a.l.dtype_id;
  m.elem_size = a.l.elem_size;
  const int32_t lead = a.l.ndim == 3 ? 1 : 0;
  m.shape[0] = lead != 0 ? a.l.shape[0] : 1;
  m.strides[0] = lead != 0 ? a.l.strides[0] : 0;
  for (int32_t i = 0; i < 2; ++i) {
    m.shape[i + 1] = a.l.shape[lead + i];
    m.strides[i + 1] = a.l.strides[lead + i];
  }
  return m;
}

Experts check_experts(const dsk_moe_expert_weights& w, bool routed, const char* prefix) {
  const int which = std::strcmp(prefix, "weights") == 0   ? 0
                    : std::strcmp(prefix, "experts") == 0 ? 1
                                                          : 2;
  const char* const* n = kNames[which];
  Experts e;
  e.args[0] = input(w.w1, n[0]);
  e.args[1] = input(w.w3, n[1]);
  e.args[2] = input(w.w2, n[2]);
  e.args[3] = optional_input(w.w1_scales, n[3]);
  e.args[4] = optional_input(w.w3_scales, n[4]);
  e.args[5] = optional_input(w.w2_scales, n[5]);
  const Arg& w1 = e.args[0];
  const Arg& w3 = e.args[1];
  const Arg& w2 = e.args[2];
  const int32_t nd = routed ? 3 : 2;
  for (int i = 0; i < 3; ++i) check_ndim(e.args[i], nd);
  e.fp8 = w1.l.dtype_id == DSK_DTYPE_FP8_E4M3FN;
  check_arg(e.fp8 || is_float(w1), "{}.dtype is {}, expected f32, f16, bf16 or fp8_e4m3fn", n[0],
            dtype_id_name(w1.l.dtype_id));
  check_same_dtype(w1, w3);
  check_same_dtype(w1, w2);
  e.dtype_id = w1.l.dtype_id;
  e.num = routed ? w1.l.shape[0] : 1;
  e.inter = w1.l.shape[nd - 2];
  e.hidden = w1.l.shape[nd - 1];
  check_arg(e.num >= 1 && e.inter >= 1 && e.hidden >= 1, "{} has shape {}, expected {} >= 1", n[0],
            shape_text(w1), routed ? "[E, I, D] with every size" : "[I, D] with both sizes");
  const int64_t s13[3] = {e.num, e.inter, e.hidden};
  const int64_t s2[3] = {e.num, e.hidden, e.inter};
  const int32_t off = routed ? 0 : 1;
  check_shape(w3, s13 + off, nd, routed ? "[E, I, D] like w1" : "[I, D] like w1");
  check_shape(w2, s2 + off, nd, routed ? "[E, D, I] from w1" : "[D, I] from w1");
  if (e.fp8) {
    const int64_t b13[3] = {e.num, blocks(e.inter), blocks(e.hidden)};
    const int64_t b2[3] = {e.num, blocks(e.hidden), blocks(e.inter)};
    for (int i = 3; i < 6; ++i) {
      check_arg(e.args[i].present,
                "{} is NULL but the weights are fp8_e4m3fn, expected f32 "
                "128 x 128 block scales",
                n[i]);
      check_dtype(e.args[i], DSK_DTYPE_F32);
    }
    const char* rule13 =
        routed ? "[E, ceil(I / 128), ceil(D / 128)]" : "[ceil(I / 128), ceil(D / 128)]";
    const char* rule2 =
        routed ? "[E, ceil(D / 128), ceil(I / 128)]" : "[ceil(D / 128), ceil(I / 128)]";
    check_shape(e.args[3], b13 + off, nd, rule13);
    check_shape(e.args[4], b13 + off, nd, rule13);
    check_shape(e.args[5], b2 + off, nd, rule2);
    e.s1 = mat3_of_arg(e.args[3]);
    e.s3 = mat3_of_arg(e.args[4]);
    e.s2 = mat3_of_arg(e.args[5]);
  } else {
    for (int i = 3; i < 6; ++i) {
      check_arg(!e.args[i].present, "{} is given but the weights are {}, expected NULL", n[i],
                dtype_id_name(e.dtype_id));
    }
  }
  e.w1 = mat3_of_arg(w1);
  e.w3 = mat3_of_arg(w3);
  e.w2 = mat3_of_arg(w2);
  return e;
}

size_t experts_scratch_bytes(const Experts& e, int64_t rows, int32_t y_dtype) {
  const size_t one = align_up(static_cast<size_t>(rows * e.inter) * dtype_id_size(y_dtype));
  return 3 * one;
}

void run_experts(const Target& t, Scratch& scratch, const Experts& e, const Rows& x,
                 const Rows& x_scales, const std::vector<int64_t>& offsets, const Rows& y) {
  const int64_t first = offsets.front();
  const int64_t used = offsets.back() - first;
  if (used == 0) return;
  const size_t bytes = static_cast<size_t>(x.rows * e.inter) * dtype_id_size(y.dtype_id);
  const Rows gate = contiguous_rows(scratch.take(bytes), y.device, y.dtype_id, x.rows, e.inter);
  const Rows up = contiguous_rows(scratch.take(bytes), y.device, y.dtype_id, x.rows, e.inter);
  const Rows h = contiguous_rows(scratch.take(bytes), y.device, y.dtype_id, x.rows, e.inter);
  const dsk_exec& ex = scratch.exec();
  project(t, ex, e.w1, e.s1, x, x_scales, offsets, gate);
  project(t, ex, e.w3, e.s3, x, x_scales, offsets, up);
  View gv, uv, hv;
  window(gv, gate, first, used);
  window(uv, up, first, used);
  window(hv, h, first, used);
  auto swiglu = entry(t, t.backend->iface->swiglu, "swiglu");
  call(t, swiglu(&ex, gv.get(), uv.get(), hv.get()), "swiglu of the experts");
  project(t, ex, e.w2, e.s2, h, Rows{}, offsets, y);
}

std::vector<int64_t> read_offsets(const Target& t, Scratch& scratch, const Arg& offsets,
                                  int64_t rows) {
  const int64_t n = offsets.l.shape[0];
  std::vector<int32_t> host(static_cast<size_t>(n));
  if (offsets.l.backend == DSK_BACKEND_CPU) {
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&host[static_cast<size_t>(i)], offsets.l.data + i * offsets.l.strides[0] * 4, 4);
    }
  } else {
    // Gather the (possibly strided) values into contiguous scratch, then one copy to the host.
    char* staged = scratch.take(static_cast<size_t>(n) * 4);
    View src, dst;
    const int64_t shape[1] = {n};
    const int64_t strides[1] = {1};
    src.set(offsets, 1, shape, offsets.l.strides);
    dst.set(staged, offsets.l.device, DSK_DTYPE_INT32, 1, shape, strides);
    const Backend& b = *t.backend;
    call(t, b.iface->copy(t.exec.device, src.get(), dst.get(), t.exec.stream), "copy of offsets");
    call(t,
         b.iface->memcpy(t.exec.device, host.data(), staged, static_cast<size_t>(n) * 4,
                         DSK_MEMCPY_DEVICE_TO_HOST, t.exec.stream),
         "copy of offsets to the host");
  }
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = host[static_cast<size_t>(i)];
    const int64_t prev = i == 0 ? 0 : out[static_cast<size_t>(i - 1)];
    check_arg(v >= prev && v <= rows,
              "{}[{}] = {}, expected non-decreasing values in [0, {}] (the rows of x){}",
              offsets.name, i, v, rows,
              i == 0 ? "" : fmt::format(" with {}[{}] = {}", offsets.name, i - 1, prev));
    out[static_cast<size_t>(i)] = v;
  }
  return out;
}

void moe_experts(dsk_context& ctx, const dsk_moe_expert_weights& w, const DLTensor* x_t,
                 const DLTensor* xs_t, const DLTensor* offsets_t, const DLTensor* y_t) {
  const Experts e = check_experts(w, true, "weights");
  const Arg x = input(x_t, "x");
  const Arg xs = optional_input(xs_t, "x_scales");
  const Arg offsets = input(offsets_t, "offsets");
  const Arg y = output(y_t, "y");
  check_ndim(x, 2);
  const int64_t rows = x.l.shape[0];
  check_arg(x.l.shape[1] == e.hidden, "x.shape[1] = {}, expected D = {} (weights->w1.shape[2])",
            x.l.shape[1], e.hidden);
  if (e.fp8 && x.l.dtype_id == DSK_DTYPE_FP8_E4M3FN) {
    check_arg(xs.present, "x_scales is NULL but x is fp8_e4m3fn, expected [R, ceil(D / 128)] f32");
    check_dtype(xs, DSK_DTYPE_F32);
    const int64_t shape[2] = {rows, blocks(e.hidden)};
    check_shape(xs, shape, 2, "[R, ceil(D / 128)] from x");
  } else {
    if (e.fp8) {
      check_float(x);
    } else {
      check_arg(x.l.dtype_id == e.dtype_id, "x.dtype is {}, expected the weights' dtype {}",
                dtype_id_name(x.l.dtype_id), dtype_id_name(e.dtype_id));
    }
    check_arg(!xs.present,
              "x_scales is given but x is {}, expected NULL (scales only go with an "
              "fp8_e4m3fn x)",
              dtype_id_name(x.l.dtype_id));
  }
  check_ndim(offsets, 1);
  check_dtype(offsets, DSK_DTYPE_INT32);
  const int64_t o_shape[1] = {e.num + 1};
  check_shape(offsets, o_shape, 1, "[E + 1] from weights->w1");
  check_ndim(y, 2);
  check_float(y);
  const int64_t y_shape[2] = {rows, e.hidden};
  check_shape(y, y_shape, 2, "[R, D] like x");
  for (const Arg* in : {&x, &xs, &offsets, &e.args[0], &e.args[1], &e.args[2], &e.args[3],
                        &e.args[4], &e.args[5]}) {
    if (in->present) check_no_overlap(y, *in);
  }
  const Target t = target(
      ctx, {&x, &xs, &e.args[0], &e.args[1], &e.args[2], &e.args[3], &e.args[4], &e.args[5], &y});
  if (offsets.l.backend != DSK_BACKEND_CPU) target(ctx, {&x, &offsets});
  if (rows == 0) return;
  const bool staged = offsets.l.backend != DSK_BACKEND_CPU;
  Scratch scratch(ctx, t,
                  experts_scratch_bytes(e, rows, y.l.dtype_id) +
                      (staged ? align_up(static_cast<size_t>(e.num + 1) * 4) : 0));
  const std::vector<int64_t> host = read_offsets(t, scratch, offsets, rows);
  run_experts(t, scratch, e, rows_of_arg(x), xs.present ? rows_of_arg(xs) : Rows{}, host,
              rows_of_arg(y));
  scratch.release();
}

}  // namespace ops
}  // namespace dsk
