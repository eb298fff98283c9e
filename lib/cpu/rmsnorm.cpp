// CPU reference of RMSNorm and fused residual add + RMSNorm over rows [R, D].
//
// Each row is converted to f32 in a scratch row (cpu/convert_run.h: exact), computed in f32 and
// converted once to the output dtype (round to nearest even, lib/common/convert.h). The sum of
// squares uses 16 lanes: lane j adds x[i]^2 for i = j mod 16 in increasing i, then the lanes are
// added pairwise (j += j + 8, j += j + 4, j += j + 2, j += j + 1). The whole of lib/ is built with
// -ffp-contract=off, so every step is one rounded f32 operation.
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

constexpr int kLanes = 16;

// Rows of a 2-D view (a 1-D weight is one row).
struct Rows {
  char* data = nullptr;
  int32_t dtype = 0;
  int64_t row_step = 0;  // bytes
  int64_t col_step = 0;  // bytes
  char* row(int64_t r) const { return data + r * row_step; }
};

Rows rows(const Layout& l) {
  Rows r;
  r.data = l.data;
  r.dtype = l.dtype_id;
  const auto es = static_cast<int64_t>(l.elem_size);
  r.row_step = l.ndim == 2 ? l.strides[0] * es : 0;
  r.col_step = l.strides[l.ndim - 1] * es;
  return r;
}

// Reads n elements of `src` (any float dtype, stepping src.col_step) as f32 into buf.
void load_row(const Rows& src, const char* p, float* buf, int64_t n) {
  load_f32_row(src.dtype, p, src.col_step, buf, n);
}

// Writes n f32 values of buf into `dst`'s dtype, rounding once.
void store_row(const Rows& dst, char* p, const float* buf, int64_t n) {
  store_f32_row(dst.dtype, buf, p, dst.col_step, n);
}

DSK_NORM_INLINE float sum_squares(const float* v, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += v[i + j] * v[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) acc[j] += v[i] * v[i];
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  }
  return acc[0];
}

struct Job {
  Rows x, r, w, y, ro;
  bool has_residual = false;
  int64_t d = 0;
  float eps = 0.0f;
  const float* weight = nullptr;  // f32 copy of w
};

// Rows [lo, hi) of the job, with scratch rows of its own (one call per thread).
DSK_NORM_CLONES void run_rows(const Job& j, int64_t lo, int64_t hi) {
  const int64_t d = j.d;
  std::vector<float> h(static_cast<size_t>(d));
  std::vector<float> r(j.has_residual ? static_cast<size_t>(d) : 0);
  const float* w = j.weight;
  const auto fd = static_cast<float>(d);
  for (int64_t row = lo; row < hi; ++row) {
    // The whole row is read before anything of it is written: y may be x and residual_out may be
    // residual (the same views).
    load_row(j.x, j.x.row(row), h.data(), d);
    if (j.has_residual) {
      load_row(j.r, j.r.row(row), r.data(), d);
      for (int64_t i = 0; i < d; ++i) h[i] = h[i] + r[i];
      // h is rounded to residual_out's dtype, stored, and the norm is taken of the rounded value.
      store_row(j.ro, j.ro.row(row), h.data(), d);
      if (j.ro.dtype != DSK_DTYPE_F32) load_row(j.ro, j.ro.row(row), h.data(), d);
    }
    const float mean = sum_squares(h.data(), d) / fd;
    const float inv = 1.0f / std::sqrt(mean + j.eps);
    for (int64_t i = 0; i < d; ++i) h[i] = h[i] * inv * w[i];
    store_row(j.y, j.y.row(row), h.data(), d);
  }
}

// Rows are independent: they are split over threads (cpu/parallel.h), which changes no result.
void run(const Layout& x, const Layout* residual, const Layout& weight, const Layout& y,
         const Layout* residual_out, float eps) {
  const int64_t n_rows = x.shape[0];
  const int64_t d = x.shape[1];
  if (n_rows == 0 || d == 0) return;
  Job j;
  j.x = rows(x);
  j.w = rows(weight);
  j.y = rows(y);
  j.has_residual = residual != nullptr;
  if (j.has_residual) {
    j.r = rows(*residual);
    j.ro = rows(*residual_out);
  }
  j.d = d;
  j.eps = eps;
  std::vector<float> w(static_cast<size_t>(d));
  load_row(j.w, j.w.data, w.data(), d);
  j.weight = w.data();
  const int64_t per_row = j.has_residual ? 2 * d : d;
  parallel_for(n_rows, min_rows_per_thread(per_row),
               [&](int64_t lo, int64_t hi) { run_rows(j, lo, hi); });
}

}  // namespace

dsk_status rmsnorm(const dsk_exec* /*ex*/, const DLTensor* x, const DLTensor* residual,
                   const DLTensor* weight, const DLTensor* y, const DLTensor* residual_out,
                   float eps) noexcept {
  return guarded([&] {
    const Layout xl = check_tensor(x, "x", Access::kRead);
    const Layout wl = check_tensor(weight, "weight", Access::kRead);
    const Layout yl = check_tensor(y, "y", Access::kWrite);
    if (residual == nullptr) {
      run(xl, nullptr, wl, yl, nullptr, eps);
      return;
    }
    const Layout rl = check_tensor(residual, "residual", Access::kRead);
    const Layout rol = check_tensor(residual_out, "residual_out", Access::kWrite);
    run(xl, &rl, wl, yl, &rol, eps);
  });
}

}  // namespace cpu
}  // namespace dsk
