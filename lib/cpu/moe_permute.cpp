// CPU reference of the moe_permute and moe_combine entries (dsk_moe.h).
//
// permute: out[r] = x[sorted_rows[r] / k], zero for the padding sentinel T * k; a float out is a
// converting copy (lib/common/convert.h rules), an fp8_e4m3fn out with scales is quantized per
// 1 x 128 tile with common/fp8_block.h, exactly as dsk_quant_fp8_act (the CUDA kernels share that
// header, so q and the scales are the same bits).
// combine: out[t] = shared[t] + sum_j w[t, j] * y[dest[t, j]] in f32: acc = 0, then acc += w * y
// for j = 0 .. k-1 in order (the product rounded, then the sum, no FMA), then shared + acc, rounded
// once to out's dtype. The CUDA kernel does the same operations in the same order.
//
// Index values are checked before anything is written. Rows are independent and split over
// threads (cpu/parallel.h), which changes no result.
#include <stdint.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "common/convert.h"
#include "common/fp8_block.h"
#include "core/layout.h"
#include "cpu/backend_guard.h"
#include "cpu/convert_run.h"
#include "cpu/fp8_quant.h"
#include "cpu/norm_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_dtype.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
namespace {

inline int32_t load_i32(const char* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline float load_f32(const char* p) {
  float v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// A 2-D view [rows, cols] with byte strides.
struct Mat {
  char* data = nullptr;
  int32_t dtype = 0;
  int64_t elem = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t s0 = 0;  // bytes
  int64_t s1 = 0;  // bytes
  char* row(int64_t r) const { return data + r * s0; }
  char* at(int64_t r, int64_t c) const { return data + r * s0 + c * s1; }
};

Mat mat(const Layout& l) {
  Mat m;
  m.data = l.data;
  m.dtype = l.dtype_id;
  m.elem = static_cast<int64_t>(l.elem_size);
  m.rows = l.shape[0];
  m.cols = l.ndim >= 2 ? l.shape[1] : 1;
  m.s0 = l.strides[0] * m.elem;
  m.s1 = (l.ndim >= 2 ? l.strides[1] : 1) * m.elem;
  return m;
}

// Writes the zero of any float dtype (all bits clear) to n elements.
void zero_row(char* p, int64_t step, int64_t elem, int64_t n) {
  if (step == elem) {
    std::memset(p, 0, static_cast<size_t>(n * elem));
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memset(p + i * step, 0, static_cast<size_t>(elem));
}

// The first non-finite source value of a share (row -1: none).
struct BadValue {
  int64_t row = -1;
  int64_t token = 0;
  int64_t col = 0;
  float value = 0.0f;
};

// Quantizes rows [lo, hi) of out from their source rows (buf holds D floats); stops at the first
// non-finite value and returns it. It reports instead of throwing: an exception leaving a
// target_clones function skipped the caller's cleanups under ASan (a leaked buffer).
DSK_NORM_CLONES BadValue permute_quant_rows(const Mat& x, const int32_t* src, int64_t pad,
                                            int64_t k, const Mat& q, const Mat& s, bool pow2,
                                            int64_t lo, int64_t hi, float* buf) {
  const int64_t d = x.cols;
  const int64_t tiles = fp8::blocks(d);
  for (int64_t r = lo; r < hi; ++r) {
    const int64_t a = src[r];
    if (a == pad) {
      zero_row(q.row(r), q.s1, 1, d);
      for (int64_t tc = 0; tc < tiles; ++tc) {
        const float zero = 0.0f;
        std::memcpy(s.at(r, tc), &zero, sizeof(zero));
      }
      continue;
    }
    const int64_t t = a / k;
    load_f32_row(x.dtype, x.row(t), x.s1, buf, d);
    for (int64_t tc = 0; tc < tiles; ++tc) {
      const int64_t c0 = tc * fp8::kBlock;
      const int64_t n = d - c0 < fp8::kBlock ? d - c0 : fp8::kBlock;
      const uint32_t m = fp8_amax_bits(buf + c0, n, 0);
      if (m >= 0x7F800000u) {
        for (int64_t c = c0; c < c0 + n; ++c) {
          if (!fp8::is_finite(buf[c])) return BadValue{r, t, c, buf[c]};
        }
      }
      const float scale = fp8::tile_scale(f32_from_bits(m), pow2);
      std::memcpy(s.at(r, tc), &scale, sizeof(scale));
      fp8_quantize_segment(buf + c0, n, scale, q.at(r, c0), q.s1);
    }
  }
  return BadValue{};
}

// acc[i] += w * v[i] (the product rounded to f32, then the sum).
DSK_NORM_CLONES void axpy_row(float* acc, float w, const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += w * v[i];
}

// The same for a contiguous row of dtype DT, widened on the fly (exact).
template <int32_t DT>
DSK_NORM_CLONES void axpy_typed(float* acc, float w, const char* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += w * load_elem<DT>(p, i);
}

// acc += w * y_row: fused for contiguous f32/bf16/f16 rows, else through tmp.
void axpy_any(float* acc, float w, const char* p, int32_t dtype, int64_t step, int64_t elem,
              int64_t n, float* tmp) {
  if (step == elem) {
    switch (dtype) {
      case DSK_DTYPE_F32:
        axpy_typed<DSK_DTYPE_F32>(acc, w, p, n);
        return;
      case DSK_DTYPE_BF16:
        axpy_typed<DSK_DTYPE_BF16>(acc, w, p, n);
        return;
      case DSK_DTYPE_F16:
        axpy_typed<DSK_DTYPE_F16>(acc, w, p, n);
        return;
      default:
        break;
    }
  }
  load_f32_row(dtype, p, step, tmp, n);
  axpy_row(acc, w, tmp, n);
}

// acc[i] = s[i] + acc[i].
DSK_NORM_CLONES void add_row(float* acc, const float* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] = s[i] + acc[i];
}

}  // namespace

dsk_status moe_permute(const dsk_exec* /*ex*/, const DLTensor* x_t, const DLTensor* sorted_rows_t,
                       int32_t top_k, const DLTensor* out_t, const DLTensor* out_scales_t,
                       uint32_t flags) noexcept {
  return guarded([&] {
    const Layout xl = check_tensor(x_t, "x", Access::kRead);
    const Layout rl = check_tensor(sorted_rows_t, "sorted_rows", Access::kRead);
    const Layout ol = check_tensor(out_t, "out", Access::kWrite);
    check_arg(xl.ndim == 2 && rl.ndim == 1 && ol.ndim == 2 && ol.shape[0] == rl.shape[0] &&
                  ol.shape[1] == xl.shape[1] && top_k >= 1,
              "moe_permute: expected x [T, D], sorted_rows [R], out [R, D] and top_k >= 1");
    const Mat x = mat(xl);
    const Mat out = mat(ol);
    const int64_t rows = rl.shape[0];
    const int64_t d = x.cols;
    const int64_t pad = x.rows * top_k;
    // Every value first: nothing is written when one is out of range.
    std::vector<int32_t> src(static_cast<size_t>(rows));
    const int64_t rstep = rl.strides[0] * static_cast<int64_t>(rl.elem_size);
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t a = load_i32(rl.data + r * rstep);
      check_arg(a >= 0 && a <= pad,
                "sorted_rows[{}] = {}, expected [0, {}] (T * top_k = {} marks padding)", r, a, pad,
                pad);
      src[static_cast<size_t>(r)] = a;
    }
    if (out_scales_t != nullptr) {
      const Layout sl = check_tensor(out_scales_t, "out_scales", Access::kWrite);
      check_arg(out.dtype == DSK_DTYPE_FP8_E4M3FN && sl.ndim == 2 && sl.shape[0] == rows &&
                    sl.shape[1] == fp8::blocks(d) && sl.dtype_id == DSK_DTYPE_F32,
                "moe_permute: expected an fp8_e4m3fn out with out_scales [R, ceil(D / 128)] f32");
      const Mat s = mat(sl);
      const bool pow2 = (flags & DSK_QUANT_SCALE_POW2) != 0u;
      if (d == 0) return;
      // The lowest bad row wins, so the message does not depend on the thread count.
      std::mutex mutex;
      BadValue first;
      parallel_for(rows, min_rows_per_thread(d), [&](int64_t lo, int64_t hi) {
        std::vector<float> buf(static_cast<size_t>(d));
        const BadValue bad =
            permute_quant_rows(x, src.data(), pad, top_k, out, s, pow2, lo, hi, buf.data());
        if (bad.row < 0) return;
        std::lock_guard<std::mutex> lock(mutex);
        if (first.row < 0 || bad.row < first.row) first = bad;
      });
      check_arg(first.row < 0,
                "x[{}, {}] (the source of row {} of sorted_rows) is {}, expected finite values "
                "(NaN and Inf cannot be quantized)",
                first.token, first.col, first.row, first.value);
      return;
    }
    if (d == 0) return;
    const bool plain = x.dtype == out.dtype && x.s1 == x.elem && out.s1 == out.elem;
    const ConvertRun convert = convert_run(x.dtype, out.dtype);
    parallel_for(rows, min_rows_per_thread(d), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const int64_t a = src[static_cast<size_t>(r)];
        char* dst = out.row(r);
        if (a == pad) {
          zero_row(dst, out.s1, out.elem, d);
        } else if (plain) {
          std::memcpy(dst, x.row(a / top_k), static_cast<size_t>(d * x.elem));
        } else {
          convert(x.row(a / top_k), x.s1, dst, out.s1, d);
        }
      }
    });
  });
}

dsk_status moe_combine(const dsk_exec* /*ex*/, const DLTensor* y_t, const DLTensor* dest_t,
                       const DLTensor* weights_t, const DLTensor* shared_t,
                       const DLTensor* out_t) noexcept {
  return guarded([&] {
    const Layout yl = check_tensor(y_t, "y", Access::kRead);
    const Layout dl = check_tensor(dest_t, "dest", Access::kRead);
    const Layout wl = check_tensor(weights_t, "weights", Access::kRead);
    const Layout ol = check_tensor(out_t, "out", Access::kWrite);
    check_arg(yl.ndim == 2 && dl.ndim == 2 && wl.ndim == 2 && ol.ndim == 2 &&
                  wl.shape[0] == dl.shape[0] && wl.shape[1] == dl.shape[1] &&
                  ol.shape[0] == dl.shape[0] && ol.shape[1] == yl.shape[1] &&
                  dl.dtype_id == DSK_DTYPE_INT32 && wl.dtype_id == DSK_DTYPE_F32,
              "moe_combine: expected y [R, D], dest [T, k] int32, weights [T, k] f32, out [T, D]");
    Mat shared;
    if (shared_t != nullptr) {
      const Layout sl = check_tensor(shared_t, "shared", Access::kRead);
      check_arg(sl.ndim == 2 && sl.shape[0] == ol.shape[0] && sl.shape[1] == ol.shape[1],
                "moe_combine: expected shared [T, D] like out");
      shared = mat(sl);
    }
    const Mat y = mat(yl);
    const Mat dest = mat(dl);
    const Mat w = mat(wl);
    const Mat out = mat(ol);
    const int64_t tokens = out.rows;
    const int64_t d = out.cols;
    const int64_t k = dest.cols;
    const int64_t rows = y.rows;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        const int32_t v = load_i32(dest.at(t, j));
        check_arg(v >= -1 && v < rows, "dest[{}, {}] = {}, expected [-1, {})", t, j, v, rows);
      }
    }
    if (d == 0) return;
    const int64_t per_token = d * (k + 2);
    parallel_for(tokens, min_rows_per_thread(per_token), [&](int64_t lo, int64_t hi) {
      std::vector<float> acc(static_cast<size_t>(d));
      std::vector<float> tmp(static_cast<size_t>(d));
      for (int64_t t = lo; t < hi; ++t) {
        std::memset(acc.data(), 0, static_cast<size_t>(d) * sizeof(float));  // +0.0f
        for (int64_t j = 0; j < k; ++j) {
          const int32_t row = load_i32(dest.at(t, j));
          if (row < 0) continue;
          axpy_any(acc.data(), load_f32(w.at(t, j)), y.row(row), y.dtype, y.s1, y.elem, d,
                   tmp.data());
        }
        if (shared.data != nullptr) {
          // Read before out is written: out may be shared itself.
          load_f32_row(shared.dtype, shared.row(t), shared.s1, tmp.data(), d);
          add_row(acc.data(), tmp.data(), d);
        }
        store_f32_row(out.dtype, acc.data(), out.row(t), out.s1, d);
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
