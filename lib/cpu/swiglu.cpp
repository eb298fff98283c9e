// CPU reference of SwiGLU over rows [R, I]: y = silu(gate) * up with silu(g) = g / (1 + exp(-g)),
// each step one f32 operation (std::exp of float), rounded once to y's dtype.
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/norm_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {

namespace {

// Rows [lo, hi) of y = silu(gate) * up, with scratch rows of its own (one call per thread).
DSK_NORM_CLONES void swiglu_rows(const Layout& g, const Layout& u, const Layout& o, int64_t lo,
                                 int64_t hi) {
  const int64_t n = o.shape[1];
  const auto ge = static_cast<int64_t>(g.elem_size);
  const auto ue = static_cast<int64_t>(u.elem_size);
  const auto oe = static_cast<int64_t>(o.elem_size);
  std::vector<float> gb(static_cast<size_t>(n));
  std::vector<float> ub(static_cast<size_t>(n));
  std::vector<float> eb(static_cast<size_t>(n));
  for (int64_t r = lo; r < hi; ++r) {
    load_f32_row(g.dtype_id, g.data + r * g.strides[0] * ge, g.strides[1] * ge, gb.data(), n);
    load_f32_row(u.dtype_id, u.data + r * u.strides[0] * ue, u.strides[1] * ue, ub.data(), n);
    // std::exp stays scalar (the documented reference); the rest vectorizes.
    for (int64_t i = 0; i < n; ++i) eb[i] = std::exp(-gb[i]);
    for (int64_t i = 0; i < n; ++i) {
      const float silu = gb[i] / (1.0f + eb[i]);
      gb[i] = silu * ub[i];
    }
    store_f32_row(o.dtype_id, gb.data(), o.data + r * o.strides[0] * oe, o.strides[1] * oe, n);
  }
}

}  // namespace

dsk_status swiglu(const dsk_exec* /*ex*/, const DLTensor* gate, const DLTensor* up,
                  const DLTensor* y) noexcept {
  return guarded([&] {
    const Layout g = check_tensor(gate, "gate", Access::kRead);
    const Layout u = check_tensor(up, "up", Access::kRead);
    const Layout o = check_tensor(y, "y", Access::kWrite);
    const int64_t n_rows = o.shape[0];
    const int64_t n = o.shape[1];
    if (n_rows == 0 || n == 0) return;
    // Rows are independent: split over threads (cpu/parallel.h), which changes no result.
    parallel_for(n_rows, min_rows_per_thread(n),
                 [&](int64_t lo, int64_t hi) { swiglu_rows(g, u, o, lo, hi); });
  });
}

}  // namespace cpu
}  // namespace dsk
