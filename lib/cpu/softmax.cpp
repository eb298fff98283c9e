// CPU reference of the softmax entry: rows [R, N] of x * inv_temperature, in f32.
//
// Per row: z[j] = f32(x[j]) * inv_temperature; m = max_j z[j] (NaN propagates);
// e[j] = std::exp(z[j] - m); s = sum of e[j] in f32, pairwise (halves recursively, runs of up to
// 32 summed in index order: error O(log N) ulps, so long rows stay close to the exact sum);
// softmax y[j] = e[j] / s, log_softmax y[j] = (z[j] - m) - std::log(s); each rounded once to y's
// dtype. Non-finite inputs follow from the formulas, as in PyTorch: a row of -inf gives NaN
// (-inf - -inf), a +inf gives NaN everywhere in its row (inf - inf enters the sum), NaN spreads.
#include <cmath>
#include <vector>

#include "common/convert.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/norm_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
namespace {

float pairwise_sum(const float* e, int64_t n) {
  if (n <= 32) {
    float s = 0.0f;
    for (int64_t j = 0; j < n; ++j) s += e[j];
    return s;
  }
  const int64_t half = n / 2;
  return pairwise_sum(e, half) + pairwise_sum(e + half, n - half);
}

// z[j] = z[j] - m and e[j] = std::exp(z[j]) for the elements [lo, hi) of one row.
DSK_NORM_INLINE void exp_range(float* z, float* e, float m, int64_t lo, int64_t hi) {
  for (int64_t j = lo; j < hi; ++j) {
    z[j] = z[j] - m;
    e[j] = std::exp(z[j]);
  }
}

// Elements of one row per thread in the within-row split (exp costs ~5-10 ns per element).
constexpr int64_t kMinExpPerThread = int64_t{1} << 14;

// One row: xr/yr its data, xs/ys element steps in bytes; z and e scratch of n floats. With
// split_row, the exp and the final pass are split over threads (elements are independent; the
// sum is the same pairwise sum), which changes no result.
DSK_NORM_CLONES void softmax_row(const Layout& x, const Layout& y, int64_t r, float inv_temperature,
                                 bool is_log, float* z, float* e, bool split_row) {
  const int64_t n = x.shape[1];
  const auto xe = static_cast<int64_t>(x.elem_size);
  const auto ye = static_cast<int64_t>(y.elem_size);
  const char* xr = x.data + r * x.strides[0] * xe;
  char* yr = y.data + r * y.strides[0] * ye;
  // The whole row is read before any of it is written, so y may be x itself.
  load_f32_row(x.dtype_id, xr, x.strides[1] * xe, z, n);
  for (int64_t j = 0; j < n; ++j) z[j] = z[j] * inv_temperature;
  float m = z[0];
  for (int64_t j = 1; j < n; ++j) {
    if (z[j] > m || z[j] != z[j]) m = z[j];
    if (m != m) break;
  }
  if (split_row) {
    parallel_for(n, kMinExpPerThread, [&](int64_t lo, int64_t hi) { exp_range(z, e, m, lo, hi); });
  } else {
    exp_range(z, e, m, 0, n);
  }
  const float s = pairwise_sum(e, n);
  if (is_log) {
    const float log_s = std::log(s);
    for (int64_t j = 0; j < n; ++j) e[j] = z[j] - log_s;
  } else {
    for (int64_t j = 0; j < n; ++j) e[j] = e[j] / s;
  }
  store_f32_row(y.dtype_id, e, yr, y.strides[1] * ye, n);
}

// Rows [lo, hi), with scratch of their own (one call per thread).
void softmax_rows(const Layout& x, const Layout& y, float inv_temperature, bool is_log, int64_t lo,
                  int64_t hi, bool split_row) {
  const int64_t n = x.shape[1];
  std::vector<float> buffer(static_cast<size_t>(2 * n));
  for (int64_t r = lo; r < hi; ++r) {
    softmax_row(x, y, r, inv_temperature, is_log, buffer.data(), buffer.data() + n, split_row);
  }
}

}  // namespace

dsk_status softmax(const dsk_exec* /*ex*/, const DLTensor* x_t, const DLTensor* y_t,
                   float inv_temperature, int32_t is_log) noexcept {
  return guarded([&] {
    const Layout x = check_tensor(x_t, "x", Access::kRead);
    const Layout y = check_tensor(y_t, "y", Access::kRead);
    check_arg(x.ndim == 2 && y.ndim == 2 && x.shape[0] == y.shape[0] && x.shape[1] == y.shape[1],
              "softmax: x and y must be rows [R, N] of one shape");
    check_arg(x.shape[1] >= 1 || x.shape[0] == 0, "softmax: N must be at least 1");
    check_arg(dtype_id_is_float(x.dtype_id) && dtype_id_is_float(y.dtype_id) && x.elem_size >= 2 &&
                  y.elem_size >= 2,
              "softmax: x and y must be f32, f16 or bf16");
    if (x.numel == 0) return;
    // Rows are independent: split over threads (cpu/parallel.h); fewer rows than threads split
    // each row's exp instead. Neither changes a result.
    const int64_t rows = x.shape[0];
    const int64_t n = x.shape[1];
    const bool split_row = rows < configured_threads() && n >= 2 * kMinExpPerThread;
    if (split_row) {
      softmax_rows(x, y, inv_temperature, is_log != 0, 0, rows, true);
      return;
    }
    parallel_for(rows, min_rows_per_thread(n / 8), [&](int64_t lo, int64_t hi) {
      softmax_rows(x, y, inv_temperature, is_log != 0, lo, hi, false);
    });
  });
}

}  // namespace cpu
}  // namespace dsk
