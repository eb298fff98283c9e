// CPU reference of the FP8 block quantization family (dsk_ops.h): quant_fp8, dequant_fp8 and
// linear_fp8 entries of the backend table. All scale math comes from common/fp8_block.h, which the
// CUDA kernels share, so quantization gives the same bits on both.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "common/convert.h"
#include "common/fp8_block.h"
#include "core/dtype_info.h"
#include "core/error.h"
#include "cpu/backend_guard.h"
#include "cpu/fp8_quant.h"
#include "cpu/gemm.h"
#include "cpu/norm_io.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
namespace {

// A 2-D strided view of a normalized backend argument.
struct Mat {
  char* data = nullptr;
  int32_t dtype = 0;
  int64_t elem = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t s0 = 0;  // element strides
  int64_t s1 = 0;
  char* at(int64_t r, int64_t c) const { return data + (r * s0 + c * s1) * elem; }
};

Mat mat(const DLTensor* t) {
  Mat m;
  m.data = static_cast<char*>(t->data) + t->byte_offset;
  m.dtype = dtype_id_of(t->dtype);
  m.elem = static_cast<int64_t>(dtype_id_size(m.dtype));
  // Rows, columns and strides as the CUDA kernels see them (compact strides for size-1 dims).
  const fp8::View2d v = fp8::view_2d(t);
  m.rows = v.rows;
  m.cols = v.cols;
  m.s0 = v.s0;
  m.s1 = v.s1;
  return m;
}

float load_scale(const Mat& s, int64_t r, int64_t c) {
  float v;
  std::memcpy(&v, s.at(r, c), sizeof(v));
  return v;
}

void store_scale(const Mat& s, int64_t r, int64_t c, float v) {
  std::memcpy(s.at(r, c), &v, sizeof(v));
}

// One tile or block: rows [r0, r1), columns [c0, c1) of x.
struct Tile {
  int64_t r0, r1, c0, c1;
};

// Loads n <= 128 elements of row r from column c0 as f32 (exact; contiguous f32 and bf16 rows take
// vectorized loops, cpu/norm_io.h).
template <int32_t ID>
DSK_NORM_INLINE void load_segment(const Mat& x, int64_t r, int64_t c0, int64_t n, float* out) {
  load_f32_row(ID, x.at(r, c0), x.s1 * x.elem, out, n);
}

// Throws DSK_ERR_INVALID_ARGUMENT naming the first NaN/Inf element of the tile.
template <int32_t ID>
[[noreturn]] void fail_non_finite(const Mat& x, const Tile& t, const char* name) {
  for (int64_t r = t.r0; r < t.r1; ++r) {
    for (int64_t c = t.c0; c < t.c1; ++c) {
      const float v = load_as_f32(ID, x.at(r, c));
      check_arg(fp8::is_finite(v),
                "{}[{}, {}] (of the 2-D view [{}, {}]) is {}, expected finite values (NaN and Inf "
                "cannot be quantized)",
                name, r, c, x.rows, x.cols, v);
    }
  }
  fail(DSK_ERR_INTERNAL, "fp8: a non-finite amax without a non-finite element");
}

// The tile's scale (amax / 448, optionally a power of two); throws on NaN/Inf.
template <int32_t ID>
DSK_NORM_INLINE float tile_scale_of(const Mat& x, const Tile& t, bool pow2, const char* name,
                                    float* buf) {
  uint32_t m = 0;
  for (int64_t r = t.r0; r < t.r1; ++r) {
    load_segment<ID>(x, r, t.c0, t.c1 - t.c0, buf);
    m = fp8_amax_bits(buf, t.c1 - t.c0, m);
  }
  if (m >= 0x7F800000u) fail_non_finite<ID>(x, t, name);
  return fp8::tile_scale(f32_from_bits(m), pow2);
}

// Tile grid: activations 1 x 128 (scale (r, c / 128)), weights 128 x 128 (scale (r / 128, c /
// 128)).
Tile tile_of(const Mat& x, bool is_weight, int64_t tr, int64_t tc) {
  const int64_t rows = is_weight ? fp8::kBlock : 1;
  return Tile{tr * rows, std::min(x.rows, (tr + 1) * rows), tc * fp8::kBlock,
              std::min(x.cols, (tc + 1) * fp8::kBlock)};
}

int64_t tile_rows(const Mat& x, bool is_weight) { return is_weight ? fp8::blocks(x.rows) : x.rows; }

// Tile rows [tr0, tr1) (rows of an activation, 128-row blocks of a weight).
template <int32_t ID>
DSK_NORM_CLONES void quant_tiles(const Mat& x, const Mat& q, const Mat& s, bool is_weight,
                                 bool pow2, const char* name, int64_t tr0, int64_t tr1) {
  float buf[fp8::kBlock];
  const int64_t tc_n = fp8::blocks(x.cols);
  for (int64_t tr = tr0; tr < tr1; ++tr) {
    for (int64_t tc = 0; tc < tc_n; ++tc) {
      const Tile t = tile_of(x, is_weight, tr, tc);
      const float scale = tile_scale_of<ID>(x, t, pow2, name, buf);
      store_scale(s, tr, tc, scale);
      for (int64_t r = t.r0; r < t.r1; ++r) {
        // An activation tile is still in buf; a weight block is read again row by row.
        if (is_weight) load_segment<ID>(x, r, t.c0, t.c1 - t.c0, buf);
        fp8_quantize_segment(buf, t.c1 - t.c0, scale, q.at(r, t.c0), q.s1);
      }
    }
  }
}

// Tiles are independent: tile rows are split over threads (cpu/parallel.h), which changes no
// result. On a non-finite element the error names the first one in row-major tile order, as the
// lowest failing share's error is the one rethrown.
template <int32_t ID>
void quant_typed(const Mat& x, const Mat& q, const Mat& s, bool is_weight, bool pow2,
                 const char* name) {
  const int64_t rows_per_tile = is_weight ? fp8::kBlock : 1;
  parallel_for(
      tile_rows(x, is_weight), min_rows_per_thread(rows_per_tile * x.cols),
      [&](int64_t lo, int64_t hi) { quant_tiles<ID>(x, q, s, is_weight, pow2, name, lo, hi); });
}

// The e4m3fn code -> f32 table (e4m3fn_to_f32 of every byte: exact, NaN codes included).
const float* e4m3fn_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i)
      t[static_cast<size_t>(i)] = e4m3fn_to_f32(static_cast<uint8_t>(i));
    return t;
  }();
  return table.data();
}

// out[i] = fp8::dequantize(p[i * step], scale) for n codes (the table lookup is e4m3fn_to_f32).
DSK_NORM_INLINE void dequant_segment(const float* table, const char* p, int64_t step, float scale,
                                     int64_t n, float* out) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  if (step == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = table[b[i]] * scale;
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = table[b[i * step]] * scale;
  }
}

// x = q * scale rounded to x's dtype, rows [r0, r1) (each row converted by cpu/norm_io.h's
// stores: the convert.h rounding, NaN included).
DSK_NORM_CLONES void dequant_rows(const Mat& q, const Mat& s, const Mat& x, bool is_weight,
                                  int64_t r0, int64_t r1) {
  const float* table = e4m3fn_table();
  float buf[fp8::kBlock];
  const int64_t tc_n = fp8::blocks(q.cols);
  const int64_t ostep = x.s1 * x.elem;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t sr = is_weight ? r / fp8::kBlock : r;
    for (int64_t tc = 0; tc < tc_n; ++tc) {
      const int64_t c0 = tc * fp8::kBlock;
      const int64_t n = std::min(q.cols, c0 + fp8::kBlock) - c0;
      dequant_segment(table, q.at(r, c0), q.s1, load_scale(s, sr, tc), n, buf);
      store_f32_row(x.dtype, buf, x.at(r, c0), ostep, n);
    }
  }
}

// Rows are independent: split over threads (cpu/parallel.h), which changes no result.
template <int32_t OUT>
void dequant_typed(const Mat& q, const Mat& s, const Mat& x, bool is_weight) {
  parallel_for(q.rows, min_rows_per_thread(q.cols),
               [&](int64_t lo, int64_t hi) { dequant_rows(q, s, x, is_weight, lo, hi); });
}

// Dequantizes rows [r0, r1) of q (an activation or, with is_weight, a weight) into a dense f32
// buffer with leading dimension ld (row r0 first); rows split over threads.
void dequant_to_f32(const Mat& q, const Mat& s, bool is_weight, int64_t r0, int64_t r1, float* out,
                    int64_t ld) {
  const float* table = e4m3fn_table();
  parallel_for(r1 - r0, min_rows_per_thread(q.cols), [&](int64_t lo, int64_t hi) {
    for (int64_t r = r0 + lo; r < r0 + hi; ++r) {
      const int64_t sr = is_weight ? r / fp8::kBlock : r;
      float* o = out + (r - r0) * ld;
      for (int64_t tc = 0; tc < fp8::blocks(q.cols); ++tc) {
        const int64_t c0 = tc * fp8::kBlock;
        const int64_t n = std::min(q.cols, c0 + fp8::kBlock) - c0;
        dequant_segment(table, q.at(r, c0), q.s1, load_scale(s, sr, tc), n, o + c0);
      }
    }
  });
}

// dequantize(quantize(x)) per 1 x 128 tile into a dense f32 buffer [rows, cols] (ld = cols).
template <int32_t ID>
void quant_dequant_typed(const Mat& x, bool pow2, float* out) {
  const float* table = e4m3fn_table();
  parallel_for(x.rows, min_rows_per_thread(x.cols), [&](int64_t lo, int64_t hi) {
    float buf[fp8::kBlock];
    uint8_t codes[fp8::kBlock];
    for (int64_t r = lo; r < hi; ++r) {
      for (int64_t tc = 0; tc < fp8::blocks(x.cols); ++tc) {
        const Tile t = tile_of(x, false, r, tc);
        const int64_t n = t.c1 - t.c0;
        const float scale = tile_scale_of<ID>(x, t, pow2, "x", buf);
        fp8_quantize_segment(buf, n, scale, reinterpret_cast<char*>(codes), 1);
        dequant_segment(table, reinterpret_cast<const char*>(codes), 1, scale, n,
                        out + r * x.cols + t.c0);
      }
    }
  });
}

template <template <int32_t> class F, typename... Args>
void dispatch_float(int32_t id, Args&&... args) {
  switch (id) {
    case DSK_DTYPE_F32:
      F<DSK_DTYPE_F32>::run(args...);
      break;
    case DSK_DTYPE_F16:
      F<DSK_DTYPE_F16>::run(args...);
      break;
    case DSK_DTYPE_BF16:
      F<DSK_DTYPE_BF16>::run(args...);
      break;
    default:
      fail(DSK_ERR_INTERNAL, "fp8: unexpected dtype id {}", id);
  }
}

template <int32_t ID>
struct Quant {
  static void run(const Mat& x, const Mat& q, const Mat& s, bool is_weight, bool pow2,
                  const char* name) {
    quant_typed<ID>(x, q, s, is_weight, pow2, name);
  }
};

template <int32_t ID>
struct Dequant {
  static void run(const Mat& q, const Mat& s, const Mat& x, bool is_weight) {
    dequant_typed<ID>(q, s, x, is_weight);
  }
};

template <int32_t ID>
struct QuantDequant {
  static void run(const Mat& x, bool pow2, float* out) { quant_dequant_typed<ID>(x, pow2, out); }
};

// 3-D view [1, rows, cols] over memory with the given element strides (batch stride 0).
struct Dl3 {
  int64_t shape[3];
  int64_t strides[3];
  DLTensor dl{};
  Dl3(void* data, DLDataType dtype, int64_t rows, int64_t cols, int64_t s0, int64_t s1)
      : shape{1, rows, cols}, strides{0, s0, s1} {
    dl.data = data;
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = 3;
    dl.dtype = dtype;
    dl.shape = shape;
    dl.strides = strides;
    dl.byte_offset = 0;
  }
};

// Rows of w dequantized per GEMM call: bounds the f32 copy of w to about 64 MiB (a multiple of the
// 128-row block, so each chunk reads whole scale rows).
int64_t weight_chunk_rows(int64_t k) {
  const int64_t budget = int64_t{16} << 20;  // floats
  const int64_t rows = budget / std::max<int64_t>(k, 1) / fp8::kBlock * fp8::kBlock;
  return std::max<int64_t>(rows, fp8::kBlock);
}

}  // namespace

dsk_status quant_fp8(const dsk_exec* /*ex*/, const DLTensor* x, const DLTensor* q,
                     const DLTensor* scales, int32_t is_weight, uint32_t flags) noexcept {
  return guarded([&] {
    const Mat xm = mat(x);
    dispatch_float<Quant>(xm.dtype, xm, mat(q), mat(scales), is_weight != 0,
                          (flags & DSK_QUANT_SCALE_POW2) != 0u, is_weight != 0 ? "w" : "x");
  });
}

dsk_status dequant_fp8(const dsk_exec* /*ex*/, const DLTensor* q, const DLTensor* scales,
                       const DLTensor* x, int32_t is_weight) noexcept {
  return guarded([&] {
    const Mat xm = mat(x);
    dispatch_float<Dequant>(xm.dtype, mat(q), mat(scales), xm, is_weight != 0);
  });
}

dsk_status linear_fp8(const dsk_exec* ex, const DLTensor* x, const DLTensor* x_scales,
                      const DLTensor* w, const DLTensor* w_scales, const DLTensor* y,
                      uint32_t flags) noexcept {
  return guarded([&] {
    const Mat xm = mat(x);
    const Mat wm = mat(w);
    const Mat wsm = mat(w_scales);
    const Mat ym = mat(y);
    const int64_t m = xm.rows;
    const int64_t k = xm.cols;
    const int64_t n = wm.rows;
    // x as f32: dequantize(x) for an fp8 x, dequantize(quantize(x)) for a float x.
    std::vector<float> xf(static_cast<size_t>(m * k));
    if (x_scales != nullptr) {
      dequant_to_f32(xm, mat(x_scales), false, 0, m, xf.data(), k);
    } else {
      dispatch_float<QuantDequant>(xm.dtype, xm, (flags & DSK_QUANT_SCALE_POW2) != 0u, xf.data());
    }
    if (wm.s1 == 1 || k <= 1) {
      // The GEMM dequantizes w in registers (the same f32 values as dequant_to_f32): no f32 copy
      // of the weight, which at decode sizes cost more than the products.
      GemmFp8Weight g;
      g.x = xf.data();
      g.m = m;
      g.k = k;
      g.w = reinterpret_cast<const uint8_t*>(wm.data);
      g.n = n;
      g.w_s0 = wm.s0;
      std::vector<float> scale_buf;
      const ScaleView sv = aligned_scales(wsm.data, wsm.rows, wsm.cols, wsm.s0, wsm.s1, scale_buf);
      g.scale = sv.data;
      g.s_s0 = sv.s0;
      g.s_s1 = sv.s1;
      g.y = ym.data;
      g.y_dtype = ym.dtype;
      g.y_s0 = ym.s0;
      g.y_s1 = ym.s1;
      gemm_fp8_weight(g);
      return;
    }
    const int64_t chunk = std::min(n, weight_chunk_rows(k));
    std::vector<float> wf(static_cast<size_t>(chunk * k));
    const DLDataType f32 = dtype_of_id(DSK_DTYPE_F32);
    Dl3 a(xf.data(), f32, m, k, k, 1);
    for (int64_t n0 = 0; n0 < n; n0 += chunk) {
      const int64_t nc = std::min(chunk, n - n0);
      dequant_to_f32(wm, wsm, true, n0, n0 + nc, wf.data(), k);
      // B = w_chunk^T: [K, nc] with strides (1, K); D = y[:, n0:n0+nc].
      Dl3 b(wf.data(), f32, k, nc, 1, k);
      Dl3 d(ym.at(0, n0), y->dtype, m, nc, ym.s0, ym.s1);
      const dsk_status st = gemm(ex, &a.dl, &b.dl, nullptr, nullptr, &d.dl, 1.0f, 0.0f);
      if (st != DSK_OK) {
        // gemm recorded its message as this thread's CPU backend error.
        throw Error(st, last_error());
      }
    }
  });
}

}  // namespace cpu
}  // namespace dsk
