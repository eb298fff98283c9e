#include "ops/topk.h"

#include "dsk/dsk_dtype.h"
#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

// x [..., N]: float, at least 1-D, N >= 1; indices int32/int64 able to hold N - 1.
int64_t check_x_and_index_dtype(const Arg& x, const Arg& indices) {
  check_float(x);
  const int64_t n = last_dim(x, "[..., N]");
  check_arg(n >= 1, "x.shape[{}] = {}, expected N >= 1", x.l.ndim - 1, n);
  check_index(indices);
  check_arg(indices.l.dtype_id != DSK_DTYPE_INT32 || n - 1 <= INT32_MAX,
            "indices.dtype is int32 but x.shape[{}] = {} has indices beyond the int32 range, "
            "expected int64 indices",
            x.l.ndim - 1, n);
  return n;
}

void dispatch(dsk_context& ctx, const Arg& x, int32_t k, const Arg& values, const Arg& indices,
              const View& iv, const View& vv) {
  const Target t = target(ctx, {&x, &values, &indices});
  View xv;
  as_rows(x, xv);
  if (x.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->topk, "topk");
  call(t, fn(&t.exec, xv.get(), k, vv.get(), iv.get()),
       k == 1 && !values.present ? "argmax" : "topk");
}

}  // namespace

void topk(dsk_context& ctx, const DLTensor* x_t, int32_t k, const DLTensor* values_t,
          const DLTensor* indices_t) {
  const Arg x = input(x_t, "x");
  const Arg indices = output(indices_t, "indices");
  const Arg values = optional_output(values_t, "values");
  const int64_t n = check_x_and_index_dtype(x, indices);
  check_arg(k >= 1 && k <= n, "k = {}, expected 1 <= k <= N = {} (x.shape[{}])", k, n,
            x.l.ndim - 1);
  check_same_leading(x, indices, 1);
  check_dim(indices, -1, k, "k");
  if (values.present) {
    check_float(values);
    check_same_shape(indices, values);
    check_no_overlap(values, x);
    check_no_overlap(values, indices);
  }
  check_no_overlap(indices, x);
  View iv;
  View vv;
  as_rows(indices, iv);
  as_rows(values, vv);
  dispatch(ctx, x, k, values, indices, iv, vv);
}

void argmax(dsk_context& ctx, const DLTensor* x_t, const DLTensor* indices_t) {
  const Arg x = input(x_t, "x");
  const Arg indices = output(indices_t, "indices");
  check_x_and_index_dtype(x, indices);
  check_shape(indices, x.l.shape, x.l.ndim - 1, "the shape of x without its last dimension");
  check_no_overlap(indices, x);
  // indices [...] as [R, 1]: all of its dims merge into the row stride.
  int64_t rows = 0;
  int64_t stride = 0;
  as_flat(indices, &rows, &stride);
  const int64_t shape[2] = {rows, 1};
  const int64_t strides[2] = {stride, 1};
  View iv;
  iv.set(indices, 2, shape, strides);
  View vv;
  dispatch(ctx, x, 1, Arg{}, indices, iv, vv);
}

}  // namespace ops
}  // namespace dsk
