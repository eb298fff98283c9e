#include "ops/softmax.h"

#include <cmath>

#include "ops/op_common.h"

namespace dsk {
namespace ops {

void softmax(dsk_context& ctx, const DLTensor* x_t, const DLTensor* y_t, float temperature,
             bool is_log) {
  const Arg x = input(x_t, "x");
  const Arg y = output(y_t, "y");
  check_float({&x, &y});
  const int64_t n = last_dim(x, "[..., N]");
  check_same_shape(x, y);
  check_arg(n >= 1, "x.shape[{}] = {}, expected N >= 1 (the softmax dimension)", x.l.ndim - 1, n);
  // The backend multiplies by the reciprocal, which must itself be finite (a subnormal temperature
  // would make it inf).
  const float inv_temperature = 1.0f / temperature;
  check_arg(temperature > 0.0f && std::isfinite(temperature) && std::isfinite(inv_temperature),
            "temperature = {}, expected a finite value > 0 (1 for none) with a finite reciprocal",
            temperature);
  check_no_overlap(y, x, /*allow_same_view=*/true);
  const Target t = target(ctx, {&x, &y});
  View xv;
  View yv;
  as_rows(x, xv);
  as_rows(y, yv);
  if (x.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->softmax, "softmax");
  call(t, fn(&t.exec, xv.get(), yv.get(), inv_temperature, is_log ? 1 : 0),
       is_log ? "log_softmax" : "softmax");
}

}  // namespace ops
}  // namespace dsk
