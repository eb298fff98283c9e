// SwiGLU: argument checks and normalization to rows [R, I]; the fused form is split into two views.
#include "ops/swiglu.h"

#include "ops/op_common.h"

namespace dsk {
namespace ops {
namespace {

void run(const dsk_context& ctx, const Arg& gate, const Arg& up, const Arg& y, const View& gv,
         const View& uv, const View& yv) {
  const Target t = target(ctx, {&gate, &up, &y});
  if (y.l.numel == 0) return;
  auto fn = entry(t, t.backend->iface->swiglu, "swiglu");
  call(t, fn(&t.exec, gv.get(), uv.get(), yv.get()), "swiglu");
}

}  // namespace

void swiglu(const dsk_context& ctx, const DLTensor* gate_t, const DLTensor* up_t,
            const DLTensor* y_t) {
  const Arg gate = input(gate_t, "gate");
  const Arg up = input(up_t, "up");
  const Arg y = output(y_t, "y");
  check_float({&gate, &up, &y});
  last_dim(gate, "[..., I]");
  check_same_shape(gate, up);
  check_same_shape(gate, y);
  check_no_overlap(y, gate);
  check_no_overlap(y, up);
  View gv;
  View uv;
  View yv;
  as_rows(gate, gv);
  as_rows(up, uv);
  as_rows(y, yv);
  run(ctx, gate, up, y, gv, uv, yv);
}

void swiglu_fused(const dsk_context& ctx, const DLTensor* gate_up_t, const DLTensor* y_t) {
  const Arg gu = input(gate_up_t, "gate_up");
  const Arg y = output(y_t, "y");
  check_float({&gu, &y});
  const int64_t n = last_dim(gu, "[..., 2I]");
  check_arg(n % 2 == 0, "gate_up.shape[{}] = {}, expected an even size [..., 2I]", gu.l.ndim - 1,
            n);
  check_same_leading(gu, y, 1);
  check_dim(y, -1, n / 2, "I = gate_up.shape[-1] / 2");
  check_no_overlap(y, gu);
  View guv;
  as_rows(gu, guv);
  // gate = gate_up[..., :I], up = gate_up[..., I:], both [R, I] with gate_up's strides.
  const int64_t half = n / 2;
  const int64_t shape[2] = {guv.shape(0), half};
  const int64_t strides[2] = {guv.stride(0), guv.stride(1)};
  Arg gate = gu;
  Arg up = gu;
  if (half > 0) up.l.data += half * guv.stride(1) * static_cast<int64_t>(gu.l.elem_size);
  View gv;
  View uv;
  View yv;
  gv.set(gate, 2, shape, strides);
  uv.set(up, 2, shape, strides);
  as_rows(y, yv);
  run(ctx, gu, gu, y, gv, uv, yv);
}

}  // namespace ops
}  // namespace dsk
