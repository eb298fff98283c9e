#include "ops/gemm.h"

#include <string>
#include <utility>

#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

void check_matrix(const Arg& a, const char* dims) {
  check_arg(a.l.ndim == 2 || a.l.ndim == 3,
            "{} has {} dimensions (shape {}), expected 2 ({}) or 3 ([batch, {})", a.name, a.l.ndim,
            shape_text(a), dims, dims + 1);
}

int64_t rows(const Arg& a) { return a.l.shape[a.l.ndim - 2]; }
int64_t cols(const Arg& a) { return a.l.shape[a.l.ndim - 1]; }

// The stride of dim i as the backend sees it: 0 for a size-1 dim (never stepped along).
int64_t stride_of(const Arg& a, int32_t i) { return a.l.shape[i] == 1 ? 0 : a.l.strides[i]; }

// `a` (2-D or 3-D) as [batch, rows, cols], transposed by swapping the last two dims when `trans`;
// a 2-D operand is broadcast over the batch (batch stride 0).
void as_operand(const Arg& a, int64_t batch, bool trans, View& out) {
  const int32_t n = a.l.ndim;
  int64_t shape[3] = {batch, a.l.shape[n - 2], a.l.shape[n - 1]};
  int64_t strides[3] = {n == 3 ? stride_of(a, 0) : 0, stride_of(a, n - 2), stride_of(a, n - 1)};
  if (trans) {
    std::swap(shape[1], shape[2]);
    std::swap(strides[1], strides[2]);
  }
  out.set(a, 3, shape, strides);
}

// Rows [R, N] of a [..., N] tensor as [1, R, N] (size-1 dims with stride 0).
void as_single_batch(const Arg& a, View& out) {
  View r;
  as_rows(a, r);
  const int64_t shape[3] = {1, r.shape(0), r.shape(1)};
  const int64_t strides[3] = {0, r.shape(0) == 1 ? 0 : r.stride(0),
                              r.shape(1) == 1 ? 0 : r.stride(1)};
  out.set(a, 3, shape, strides);
}

void as_vector(const Arg& a, View& out) {
  if (!a.present) {
    out.set(a, 0, nullptr, nullptr);
    return;
  }
  const int64_t shape[1] = {a.l.shape[0]};
  const int64_t strides[1] = {stride_of(a, 0)};
  out.set(a, 1, shape, strides);
}

}  // namespace

void gemm(dsk_context& ctx, const DLTensor* a_t, const DLTensor* b_t, const DLTensor* c_t,
          const DLTensor* d_t, int32_t trans_a, int32_t trans_b, float alpha, float beta) {
  const Arg a = input(a_t, "a");
  const Arg b = input(b_t, "b");
  const Arg c = optional_input(c_t, "c");
  const Arg d = output(d_t, "d");
  check_float(a);
  check_same_dtype(a, b);
  check_float(d);
  if (c.present) check_same_dtype(d, c);
  check_matrix(a, trans_a ? "[K, M]" : "[M, K]");
  check_matrix(b, trans_b ? "[N, K]" : "[K, N]");
  check_matrix(d, "[M, N]");
  for (const Arg* x : {&a, &b}) {
    check_arg(x->l.ndim == 2 || d.l.ndim == 3,
              "d has 2 dimensions (shape {}), expected 3 ([batch, M, N]) because {} is batched "
              "(shape {})",
              shape_text(d), x->name, shape_text(*x));
  }
  if (c.present) check_same_shape(d, c);
  const int64_t batch = d.l.ndim == 3 ? d.l.shape[0] : 1;
  for (const Arg* x : {&a, &b}) {
    check_arg(x->l.ndim == 2 || x->l.shape[0] == batch,
              "{}.shape[0] = {} (shape {}), expected the batch size of d ({}) or a 2-D {}", x->name,
              x->l.shape[0], shape_text(*x), batch, x->name);
  }
  const int64_t m = trans_a ? cols(a) : rows(a);
  const int64_t k = trans_a ? rows(a) : cols(a);
  const int64_t kb = trans_b ? cols(b) : rows(b);
  const int64_t n = trans_b ? rows(b) : cols(b);
  check_arg(kb == k,
            "b.shape[{}] = {} (shape {}, trans_b = {}), expected K = {} (the columns of op(a), "
            "a of shape {}, trans_a = {})",
            b.l.ndim - (trans_b ? 1 : 2), kb, shape_text(b), trans_b ? 1 : 0, k, shape_text(a),
            trans_a ? 1 : 0);
  check_arg(rows(d) == m, "d.shape[{}] = {} (shape {}), expected M = {} (the rows of op(a))",
            d.l.ndim - 2, rows(d), shape_text(d), m);
  check_arg(cols(d) == n, "d.shape[{}] = {} (shape {}), expected N = {} (the columns of op(b))",
            d.l.ndim - 1, cols(d), shape_text(d), n);
  check_no_overlap(d, a);
  check_no_overlap(d, b);
  check_no_overlap(d, c, /*allow_same_view=*/true);
  const Target t = target(ctx, {&a, &b, &c, &d});
  if (batch == 0 || m == 0 || n == 0) return;
  // C is read only when it contributes: NULL C means beta = 0, and beta = 0 never reads C (so a
  // NaN in it does not propagate, as in BLAS).
  const bool use_c = c.present && beta != 0.0f;
  View av;
  View bv;
  View cv;
  View dv;
  as_operand(a, batch, trans_a != 0, av);
  as_operand(b, batch, trans_b != 0, bv);
  if (use_c) as_operand(c, batch, false, cv);
  as_operand(d, batch, false, dv);
  auto fn = entry(t, t.backend->iface->gemm, "gemm");
  call(t, fn(&t.exec, av.get(), bv.get(), cv.get(), nullptr, dv.get(), alpha, use_c ? beta : 0.0f),
       "gemm");
}

void linear(dsk_context& ctx, const DLTensor* x_t, const DLTensor* w_t, const DLTensor* bias_t,
            const DLTensor* y_t) {
  const Arg x = input(x_t, "x");
  const Arg w = input(w_t, "w");
  const Arg bias = optional_input(bias_t, "bias");
  const Arg y = output(y_t, "y");
  check_float(x);
  check_same_dtype(x, w);
  check_float({&y, &bias});
  const int64_t in = last_dim(x, "[..., in]");
  check_arg(w.l.ndim == 2, "w has {} dimensions (shape {}), expected 2 ([out, in])", w.l.ndim,
            shape_text(w));
  const int64_t out = w.l.shape[0];
  check_arg(w.l.shape[1] == in, "w.shape[1] = {} (shape {}), expected in = {} (x.shape[{}])",
            w.l.shape[1], shape_text(w), in, x.l.ndim - 1);
  check_arg(y.l.ndim >= 1, "y is a scalar, expected [..., out] with out = {}", out);
  check_same_leading(x, y, 1);
  check_dim(y, -1, out, "out = w.shape[0]");
  if (bias.present) {
    check_arg(bias.l.ndim == 1 && bias.l.shape[0] == out,
              "bias has shape {}, expected [{}] (out = w.shape[0])", shape_text(bias), out);
  }
  check_no_overlap(y, x);
  check_no_overlap(y, w);
  check_no_overlap(y, bias);
  const Target t = target(ctx, {&x, &w, &bias, &y});
  View xv;
  View yv;
  View bv;
  as_single_batch(x, xv);
  as_single_batch(y, yv);
  as_vector(bias, bv);
  if (xv.shape(1) == 0 || out == 0) return;
  // B = w^T: [in, out] with w's strides swapped.
  const int64_t w_shape[3] = {1, in, out};
  const int64_t w_strides[3] = {0, in == 1 ? 0 : w.l.strides[1], out == 1 ? 0 : w.l.strides[0]};
  View wv;
  wv.set(w, 3, w_shape, w_strides);
  auto fn = entry(t, t.backend->iface->gemm, "gemm");
  call(t, fn(&t.exec, xv.get(), wv.get(), nullptr, bv.get(), yv.get(), 1.0f, 0.0f), "linear");
}

}  // namespace ops
}  // namespace dsk
