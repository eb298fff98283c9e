// RMSNorm and fused residual add + RMSNorm: argument checks and normalization to rows [R, D].
#include "ops/rmsnorm.h"

#include <cmath>

#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

void check_eps(float eps) {
  check_arg(std::isfinite(eps) && eps >= 0.0f, "eps = {}, expected a finite value >= 0", eps);
}

// weight is [D] for x [..., D].
void check_weight(const Arg& x, const Arg& w) {
  const int64_t d = last_dim(x, "[..., D]");
  check_ndim(w, 1);
  check_dim(w, 0, d, "D = x.shape[-1]");
}

}  // namespace

void rmsnorm(const dsk_context& ctx, const DLTensor* x_t, const DLTensor* weight_t,
             const DLTensor* y_t, float eps) {
  const Arg x = input(x_t, "x");
  const Arg w = input(weight_t, "weight");
  const Arg y = output(y_t, "y");
  check_float({&x, &w, &y});
  check_weight(x, w);
  check_same_shape(x, y);
  check_eps(eps);
  check_no_overlap(y, x, /*allow_same_view=*/true);
  check_no_overlap(y, w);
  const Target t = target(ctx, {&x, &w, &y});
  View xv;
  View yv;
  View wv;
  as_rows(x, xv);
  as_rows(y, yv);
  as_is(w, wv);
  if (y.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->rmsnorm, "rmsnorm");
  call(t, fn(&t.exec, xv.get(), nullptr, wv.get(), yv.get(), nullptr, eps), "rmsnorm");
}

void add_rmsnorm(const dsk_context& ctx, const DLTensor* x_t, const DLTensor* residual_t,
                 const DLTensor* weight_t, const DLTensor* y_t, const DLTensor* residual_out_t,
                 float eps) {
  const Arg x = input(x_t, "x");
  const Arg r = input(residual_t, "residual");
  const Arg w = input(weight_t, "weight");
  const Arg y = output(y_t, "y");
  const Arg ro = output(residual_out_t, "residual_out");
  check_float({&x, &r, &w, &y, &ro});
  check_weight(x, w);
  check_same_shape(x, r);
  check_same_shape(x, y);
  check_same_shape(x, ro);
  check_eps(eps);
  // In place: y may be x, residual_out may be residual (exact views); nothing else may overlap.
  check_no_overlap(y, x, /*allow_same_view=*/true);
  check_no_overlap(y, r);
  check_no_overlap(y, w);
  check_no_overlap(ro, r, /*allow_same_view=*/true);
  check_no_overlap(ro, x);
  check_no_overlap(ro, w);
  check_no_overlap(ro, y);
  const Target t = target(ctx, {&x, &r, &w, &y, &ro});
  View xv;
  View rv;
  View wv;
  View yv;
  View rov;
  as_rows(x, xv);
  as_rows(r, rv);
  as_is(w, wv);
  as_rows(y, yv);
  as_rows(ro, rov);
  if (y.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->rmsnorm, "rmsnorm");
  call(t, fn(&t.exec, xv.get(), rv.get(), wv.get(), yv.get(), rov.get(), eps), "rmsnorm");
}

}  // namespace ops
}  // namespace dsk
