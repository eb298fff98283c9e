// CPU reference of RoPE: x/y [T, H, D], positions [T] int32/int64, cos/sin [P, D/2] f32.
//
// Every position is checked before anything is written. Each row x[t, h, :] is converted to f32,
// rotated pair by pair with the table row of positions[t] and converted once to y's dtype:
//   a' = a * c - b * s,  b' = a * s + b * c
// as four f32 products and two f32 sums (lib/ is built with -ffp-contract=off: no FMA), which is
// exactly what the CUDA kernel computes, so the two agree bit for bit.
//
// When x and y have unit column stride and are f32/f16/bf16, rows are rotated straight from x to
// y in blocks of kBlock pairs (widened into a small local block, rotated, rounded and stored;
// every block is read before it is written, so y may be x) and table rows with unit stride are
// used in place. Other rows go through f32 scratch rows. Same operations, same bits.
#include <cstdint>
#include <vector>

#include "common/convert.h"
#include "core/error.h"
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

// Pair i is (a[i * step], b[i * step]): step 2 with b = a + 1 interleaved, step 1 with
// b = a + D/2 half-split (the template keeps each loop's stride a constant).
template <int64_t STEP>
DSK_NORM_INLINE void rotate_pairs(const float* a, const float* b, const float* c, const float* s,
                                  float* ya, float* yb, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float va = a[i * STEP];
    const float vb = b[i * STEP];
    const float ac = va * c[i];
    const float bs = vb * s[i];
    const float as = va * s[i];
    const float bc = vb * c[i];
    ya[i * STEP] = ac - bs;
    yb[i * STEP] = as + bc;
  }
}

DSK_NORM_INLINE void rotate(const float* a, const float* b, int64_t step, const float* c,
                            const float* s, float* ya, float* yb, int64_t half) {
  if (step == 2) {
    rotate_pairs<2>(a, b, c, s, ya, yb, half);
  } else {
    rotate_pairs<1>(a, b, c, s, ya, yb, half);
  }
}

constexpr int64_t kBlock = 32;  // pairs per block of the contiguous kernel

// One contiguous row x (dtype XT) -> y (YT), pairs (2i, 2i+1) or (i, i + half).
template <int32_t XT, int32_t YT, bool INTERLEAVED>
DSK_NORM_INLINE void rope_row(const char* x, char* y, const float* c, const float* s,
                              int64_t half) {
  for (int64_t i0 = 0; i0 < half; i0 += kBlock) {
    const int64_t m = half - i0 < kBlock ? half - i0 : kBlock;
    float a[kBlock];
    float b[kBlock];
    float ya[kBlock];
    float yb[kBlock];
    if (INTERLEAVED) {
      float in[2 * kBlock];
      for (int64_t k = 0; k < 2 * m; ++k) in[k] = load_elem<XT>(x, 2 * i0 + k);
      for (int64_t k = 0; k < m; ++k) {
        a[k] = in[2 * k];
        b[k] = in[2 * k + 1];
      }
    } else {
      for (int64_t k = 0; k < m; ++k) a[k] = load_elem<XT>(x, i0 + k);
      for (int64_t k = 0; k < m; ++k) b[k] = load_elem<XT>(x, half + i0 + k);
    }
    rotate_pairs<1>(a, b, c + i0, s + i0, ya, yb, m);
    if (INTERLEAVED) {
      float out[2 * kBlock];
      for (int64_t k = 0; k < m; ++k) {
        out[2 * k] = ya[k];
        out[2 * k + 1] = yb[k];
      }
      for (int64_t k = 0; k < 2 * m; ++k) store_elem<YT>(y, 2 * i0 + k, out[k]);
    } else {
      for (int64_t k = 0; k < m; ++k) store_elem<YT>(y, i0 + k, ya[k]);
      for (int64_t k = 0; k < m; ++k) store_elem<YT>(y, half + i0 + k, yb[k]);
    }
  }
}

// Whether the rows of a cos/sin table can be read in place as floats (unit stride, aligned).
inline bool in_place_table(const Layout& l) {
  return l.strides[1] == 1 && reinterpret_cast<uintptr_t>(l.data) % alignof(float) == 0;
}

// Tokens [t0, t1) with contiguous rows; table rows used in place when their stride is 1.
template <int32_t XT, int32_t YT, bool INTERLEAVED>
DSK_NORM_CLONES void rotate_rows_contiguous(const Layout& xl, const Layout& cl, const Layout& sl,
                                            const Layout& yl, const int64_t* pos, int64_t t0,
                                            int64_t t1) {
  const int64_t heads = xl.shape[1];
  const int64_t half = xl.shape[2] / 2;
  const auto xe = static_cast<int64_t>(xl.elem_size);
  const auto ye = static_cast<int64_t>(yl.elem_size);
  std::vector<float> cbuf(in_place_table(cl) ? 0 : static_cast<size_t>(half));
  std::vector<float> sbuf(in_place_table(sl) ? 0 : static_cast<size_t>(half));
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t p = pos[t];
    const char* crow = cl.data + p * cl.strides[0] * 4;
    const char* srow = sl.data + p * sl.strides[0] * 4;
    const float* c = reinterpret_cast<const float*>(crow);
    const float* s = reinterpret_cast<const float*>(srow);
    if (!cbuf.empty()) {
      load_f32_row(DSK_DTYPE_F32, crow, cl.strides[1] * 4, cbuf.data(), half);
      c = cbuf.data();
    }
    if (!sbuf.empty()) {
      load_f32_row(DSK_DTYPE_F32, srow, sl.strides[1] * 4, sbuf.data(), half);
      s = sbuf.data();
    }
    const char* xt = xl.data + t * xl.strides[0] * xe;
    char* yt = yl.data + t * yl.strides[0] * ye;
    for (int64_t h = 0; h < heads; ++h) {
      rope_row<XT, YT, INTERLEAVED>(xt + h * xl.strides[1] * xe, yt + h * yl.strides[1] * ye, c, s,
                                    half);
    }
  }
}

using RowsFn = void (*)(const Layout&, const Layout&, const Layout&, const Layout&, const int64_t*,
                        int64_t, int64_t);

template <int32_t XT, bool INTERLEAVED>
RowsFn contiguous_for_y(int32_t y) {
  switch (y) {
    case DSK_DTYPE_F32:
      return &rotate_rows_contiguous<XT, DSK_DTYPE_F32, INTERLEAVED>;
    case DSK_DTYPE_BF16:
      return &rotate_rows_contiguous<XT, DSK_DTYPE_BF16, INTERLEAVED>;
    default:
      return &rotate_rows_contiguous<XT, DSK_DTYPE_F16, INTERLEAVED>;
  }
}

template <bool INTERLEAVED>
RowsFn contiguous_for(int32_t x, int32_t y) {
  switch (x) {
    case DSK_DTYPE_F32:
      return contiguous_for_y<DSK_DTYPE_F32, INTERLEAVED>(y);
    case DSK_DTYPE_BF16:
      return contiguous_for_y<DSK_DTYPE_BF16, INTERLEAVED>(y);
    default:
      return contiguous_for_y<DSK_DTYPE_F16, INTERLEAVED>(y);
  }
}

// The contiguous kernel for x and y, or nullptr when they need the scratch-row path.
RowsFn contiguous_kernel(const Layout& xl, const Layout& yl, int32_t layout) {
  if (!fused_dtype(xl.dtype_id) || !fused_dtype(yl.dtype_id) || xl.strides[2] != 1 ||
      yl.strides[2] != 1) {
    return nullptr;
  }
  return layout == DSK_ROPE_INTERLEAVED ? contiguous_for<true>(xl.dtype_id, yl.dtype_id)
                                        : contiguous_for<false>(xl.dtype_id, yl.dtype_id);
}

// Rotates the rows x[t, h, :] of tokens [t0, t1) into y with the table row of pos[t] (positions
// already checked), with scratch rows of its own (one call per thread).
DSK_NORM_CLONES void rotate_rows(const Layout& xl, const Layout& cl, const Layout& sl,
                                 const Layout& yl, const int64_t* pos, int32_t layout, int64_t t0,
                                 int64_t t1) {
  const int64_t heads = xl.shape[1];
  const int64_t d = xl.shape[2];
  const int64_t half = d / 2;
  const auto xe = static_cast<int64_t>(xl.elem_size);
  const auto ye = static_cast<int64_t>(yl.elem_size);
  std::vector<float> in(static_cast<size_t>(d));
  std::vector<float> out(static_cast<size_t>(d));
  std::vector<float> c(static_cast<size_t>(half));
  std::vector<float> s(static_cast<size_t>(half));
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t p = pos[t];
    load_f32_row(DSK_DTYPE_F32, cl.data + p * cl.strides[0] * 4, cl.strides[1] * 4, c.data(), half);
    load_f32_row(DSK_DTYPE_F32, sl.data + p * sl.strides[0] * 4, sl.strides[1] * 4, s.data(), half);
    for (int64_t h = 0; h < heads; ++h) {
      // The whole row is read before it is written: y may be x.
      load_f32_row(xl.dtype_id, xl.data + (t * xl.strides[0] + h * xl.strides[1]) * xe,
                   xl.strides[2] * xe, in.data(), d);
      if (layout == DSK_ROPE_INTERLEAVED) {
        rotate(in.data(), in.data() + 1, 2, c.data(), s.data(), out.data(), out.data() + 1, half);
      } else {
        rotate(in.data(), in.data() + half, 1, c.data(), s.data(), out.data(), out.data() + half,
               half);
      }
      store_f32_row(yl.dtype_id, out.data(), yl.data + (t * yl.strides[0] + h * yl.strides[1]) * ye,
                    yl.strides[2] * ye, d);
    }
  }
}

}  // namespace

dsk_status rope(const dsk_exec* /*ex*/, const DLTensor* x, const DLTensor* positions,
                const DLTensor* cos, const DLTensor* sin, const DLTensor* y,
                int32_t layout) noexcept {
  return guarded([&] {
    const Layout xl = check_tensor(x, "x", Access::kRead);
    const Layout pl = check_tensor(positions, "positions", Access::kRead);
    const Layout cl = check_tensor(cos, "cos", Access::kRead);
    const Layout sl = check_tensor(sin, "sin", Access::kRead);
    const Layout yl = check_tensor(y, "y", Access::kWrite);
    const int64_t n_tokens = xl.shape[0];
    const int64_t heads = xl.shape[1];
    const int64_t d = xl.shape[2];
    const int64_t half = d / 2;
    const int64_t n_positions = cl.shape[0];
    const auto pe = static_cast<int64_t>(pl.elem_size);
    // Nothing to rotate: positions are not read (as on CUDA, which launches nothing then).
    if (heads == 0 || half == 0) return;
    // Validate all positions first: on error nothing has been written.
    std::vector<int64_t> pos(static_cast<size_t>(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int64_t p = load_as_i64(pl.dtype_id, pl.data + t * pl.strides[0] * pe);
      check_arg(p >= 0 && p < n_positions,
                "positions[{}] = {}, expected a position in [0, {}) (the rows of cos and sin)", t,
                p, n_positions);
      pos[static_cast<size_t>(t)] = p;
    }
    // Tokens are independent: split over threads (cpu/parallel.h), which changes no result.
    const RowsFn fast = contiguous_kernel(xl, yl, layout);
    parallel_for(n_tokens, min_rows_per_thread(heads * d), [&](int64_t t0, int64_t t1) {
      if (fast != nullptr) {
        fast(xl, cl, sl, yl, pos.data(), t0, t1);
      } else {
        rotate_rows(xl, cl, sl, yl, pos.data(), layout, t0, t1);
      }
    });
  });
}

}  // namespace cpu
}  // namespace dsk
