// CPU reference of RMSNorm and fused residual add + RMSNorm over rows [R, D].
//
// Every value is widened to f32 (exact), computed in f32 and converted once to the output dtype
// (round to nearest even, lib/common/convert.h). The sum of squares uses 16 lanes: lane j adds
// x[i]^2 for i = j mod 16 in increasing i, then the lanes are added pairwise (j += j + 8,
// j += j + 4, j += j + 2, j += j + 1). The whole of lib/ is built with -ffp-contract=off, so every
// step is one rounded f32 operation.
//
// Contiguous rows of f32/f16/bf16 (x, y, and in the fused form residual and residual_out of one
// dtype) take a fused kernel of two passes over the row: pass 1 widens and accumulates the squares
// (the fused form also adds the residual and stores residual_out), pass 2 re-reads the row (x, or
// residual_out in the fused form), scales and stores y. Other rows (strides, mixed fused dtypes)
// are converted to f32 scratch rows first. Both compute the same operations in the same order, so
// give the same bits.
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

// The lanes added pairwise (see the top of the file).
DSK_NORM_INLINE float reduce_lanes(float* acc) {
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  }
  return acc[0];
}

DSK_NORM_INLINE float sum_squares(const float* v, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += v[i + j] * v[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) acc[j] += v[i] * v[i];
  return reduce_lanes(acc);
}

// The fused kernels move a row in chunks of kChunk elements (a multiple of kLanes) through a local
// f32 block: simple loops of a fixed trip count, which the compiler vectorizes.
constexpr int64_t kChunk = 64;

// v[k] = element i + k of the contiguous row p (dtype DT), k < m.
template <int32_t DT>
DSK_NORM_INLINE void load_block(const char* p, int64_t i, float* v, int64_t m) {
  for (int64_t k = 0; k < m; ++k) v[k] = load_elem<DT>(p, i + k);
}

template <int32_t DT>
DSK_NORM_INLINE void store_block(char* p, int64_t i, const float* v, int64_t m) {
  for (int64_t k = 0; k < m; ++k) store_elem<DT>(p, i + k, v[k]);
}

// Adds v[k]^2 (k < m) to the lanes; v starts at a multiple of kLanes of the row, so lane j gets
// the elements i = j (mod 16) in increasing i, as sum_squares does.
DSK_NORM_INLINE void add_squares(float* acc, const float* v, int64_t m) {
  int64_t k = 0;
  for (; k + kLanes <= m; k += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += v[k + j] * v[k + j];
  }
  for (int j = 0; k < m; ++k, ++j) acc[j] += v[k] * v[k];
}

// Pass 2 of the fused kernels: y[i] = round((h[i] * inv) * w[i]) with h read from the contiguous
// row src of dtype ST. Each chunk is read before any of it is written, so y may be src (in place).
template <int32_t ST, int32_t YT>
DSK_NORM_INLINE void scale_chunk(const char* src, const float* w, float inv, char* y, int64_t i,
                                 int64_t m) {
  float h[kChunk];
  load_block<ST>(src, i, h, m);
  for (int64_t k = 0; k < m; ++k) h[k] = h[k] * inv * w[i + k];
  store_block<YT>(y, i, h, m);
}

template <int32_t ST, int32_t YT>
DSK_NORM_INLINE void scale_store(const char* src, const float* w, float inv, char* y, int64_t d) {
  int64_t i = 0;
  for (; i + kChunk <= d; i += kChunk) scale_chunk<ST, YT>(src, w, inv, y, i, kChunk);
  if (i < d) scale_chunk<ST, YT>(src, w, inv, y, i, d - i);
}

template <int32_t XT>
DSK_NORM_INLINE void squares_chunk(float* acc, const char* x, int64_t i, int64_t m) {
  float v[kChunk];
  load_block<XT>(x, i, v, m);
  add_squares(acc, v, m);
}

// Plain form, contiguous x (dtype XT) and y (YT): two passes per row.
template <int32_t XT, int32_t YT>
DSK_NORM_INLINE void norm_rows(const char* x, int64_t x_row, char* y, int64_t y_row, const float* w,
                               int64_t d, float eps, int64_t lo, int64_t hi) {
  const auto fd = static_cast<float>(d);
  for (int64_t row = lo; row < hi; ++row) {
    const char* xr = x + row * x_row;
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kChunk <= d; i += kChunk) squares_chunk<XT>(acc, xr, i, kChunk);
    if (i < d) squares_chunk<XT>(acc, xr, i, d - i);
    const float mean = reduce_lanes(acc) / fd;
    const float inv = 1.0f / std::sqrt(mean + eps);
    scale_store<XT, YT>(xr, w, inv, y + row * y_row, d);
  }
}

// Pass 1 of the fused form for one chunk: residual_out = round(x + residual), squares of the
// rounded values into the lanes. The chunk is read before it is written: residual_out may be
// residual.
template <int32_t T>
DSK_NORM_INLINE void add_chunk(float* acc, const char* x, const char* r, char* ro, int64_t i,
                               int64_t m) {
  float h[kChunk];
  float b[kChunk];
  load_block<T>(x, i, h, m);
  load_block<T>(r, i, b, m);
  for (int64_t k = 0; k < m; ++k) h[k] = h[k] + b[k];
  store_block<T>(ro, i, h, m);
  for (int64_t k = 0; k < m; ++k) h[k] = round_to<T>(h[k]);
  add_squares(acc, h, m);
}

// Fused form, contiguous rows; x, residual and residual_out of dtype T (y of YT). Pass 2 re-reads
// residual_out.
template <int32_t T, int32_t YT>
DSK_NORM_INLINE void add_norm_rows(const char* x, int64_t x_row, const char* r, int64_t r_row,
                                   char* ro, int64_t ro_row, char* y, int64_t y_row, const float* w,
                                   int64_t d, float eps, int64_t lo, int64_t hi) {
  const auto fd = static_cast<float>(d);
  for (int64_t row = lo; row < hi; ++row) {
    const char* xr = x + row * x_row;
    const char* rr = r + row * r_row;
    char* ror = ro + row * ro_row;
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kChunk <= d; i += kChunk) add_chunk<T>(acc, xr, rr, ror, i, kChunk);
    if (i < d) add_chunk<T>(acc, xr, rr, ror, i, d - i);
    const float mean = reduce_lanes(acc) / fd;
    const float inv = 1.0f / std::sqrt(mean + eps);
    scale_store<T, YT>(ror, w, inv, y + row * y_row, d);
  }
}

struct Job {
  Rows x, r, w, y, ro;
  bool has_residual = false;
  int64_t d = 0;
  float eps = 0.0f;
  const float* weight = nullptr;  // f32 copy of w
};

// Elements of a contiguous row of this view (dtype one of the fused kernels').
bool contiguous(const Rows& v) {
  return fused_dtype(v.dtype) && v.col_step == (v.dtype == DSK_DTYPE_F32 ? 4 : 2);
}

template <int32_t XT, int32_t YT>
DSK_NORM_CLONES void fused_rows(const Job& j, int64_t lo, int64_t hi) {
  if (j.has_residual) {
    add_norm_rows<XT, YT>(j.x.data, j.x.row_step, j.r.data, j.r.row_step, j.ro.data, j.ro.row_step,
                          j.y.data, j.y.row_step, j.weight, j.d, j.eps, lo, hi);
  } else {
    norm_rows<XT, YT>(j.x.data, j.x.row_step, j.y.data, j.y.row_step, j.weight, j.d, j.eps, lo, hi);
  }
}

template <int32_t XT>
void (*fused_for_y(int32_t y))(const Job&, int64_t, int64_t) {
  switch (y) {
    case DSK_DTYPE_F32:
      return &fused_rows<XT, DSK_DTYPE_F32>;
    case DSK_DTYPE_BF16:
      return &fused_rows<XT, DSK_DTYPE_BF16>;
    default:
      return &fused_rows<XT, DSK_DTYPE_F16>;
  }
}

// The fused kernel for the job, or nullptr when it needs the scratch-row path.
void (*fused_kernel(const Job& j))(const Job&, int64_t, int64_t) {
  if (!contiguous(j.x) || !contiguous(j.y)) return nullptr;
  if (j.has_residual && (!contiguous(j.r) || !contiguous(j.ro) || j.r.dtype != j.x.dtype ||
                         j.ro.dtype != j.x.dtype)) {
    return nullptr;
  }
  switch (j.x.dtype) {
    case DSK_DTYPE_F32:
      return fused_for_y<DSK_DTYPE_F32>(j.y.dtype);
    case DSK_DTYPE_BF16:
      return fused_for_y<DSK_DTYPE_BF16>(j.y.dtype);
    default:
      return fused_for_y<DSK_DTYPE_F16>(j.y.dtype);
  }
}

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
  const auto fused = fused_kernel(j);
  parallel_for(n_rows, min_rows_per_thread(per_row), [&](int64_t lo, int64_t hi) {
    if (fused != nullptr) {
      fused(j, lo, hi);
    } else {
      run_rows(j, lo, hi);
    }
  });
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
