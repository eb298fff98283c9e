// CPU GEMM (dsk_backend_iface::gemm): D[b] = alpha * A[b] @ B[b] + beta * C[b] + bias.
//
// Every element is one dot product in the fixed order of cpu/gemm_tile.h (16 lane sums over k,
// then a fixed tree), so a row of D is the same bits whatever else is in the call: batch
// composition, thread count and the machine's vector width change nothing. Then, per element,
// v = alpha * sum (+ beta * C) (+ bias), rounded once to D's dtype.
//
// Operands are read in place when the kernel can: A rows of f32 with unit stride along K, B
// columns of f32, bf16 or (gemm_fp8_weight) block-scaled fp8 with unit stride along K (a linear
// layer's [N, K] weight), and for a few rows a B with unit stride along N (kRowTileRows). Anything
// else (f16, other strides) is converted exactly into f32 rows first (lib/common/convert.h).
// Blocks of kBlockRows x kBlockCols outputs run k blocks of kBlockK, keeping the lane sums in a
// buffer between k blocks, so A and B blocks stay in cache however large K is; blocking never
// changes an element's operations.
//
// Threads: D is split into one rectangle per worker (by batch, by column ranges or by row ranges,
// whichever gives every worker a share) through cpu/parallel.h (DSK_NUM_THREADS overrides
// the CPUs the process may run on); small problems run on the calling thread.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#  include <emmintrin.h>
#endif

#include "common/convert.h"
#include "cpu/backend_guard.h"
#include "cpu/gemm.h"
#include "cpu/gemm_tile.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
namespace {

// Outputs per block (rows x columns) and the k block: an A block of 64 x 256 f32 (64 KB) and a B
// block of 64 x 256 (32-64 KB) stay in L2 while the block's tiles reuse them.
constexpr int64_t kBlockRows = 64;
constexpr int64_t kBlockCols = 64;
constexpr int64_t kBlockK = 256;
static_assert(kBlockK % kGemmLanes == 0, "k blocks must keep the lanes of gemm_tile.h aligned");

// A [batch, rows, cols] operand of a float dtype with element strides.
struct Operand {
  char* data = nullptr;
  int32_t dtype = 0;
  int64_t elem = 0;
  int64_t shape[3] = {};
  int64_t stride[3] = {};  // 0 for size-1 dims

  const char* at(int64_t b, int64_t r, int64_t c) const {
    return data + (b * stride[0] + r * stride[1] + c * stride[2]) * elem;
  }
};

Operand operand(const DLTensor* t) {
  Operand o;
  o.data = static_cast<char*>(t->data) + t->byte_offset;
  o.dtype = dtype_id_of(t->dtype);
  o.elem = static_cast<int64_t>(dtype_id_size(o.dtype));
  int64_t step = 1;
  for (int32_t i = t->ndim - 1, j = 2; j >= 0; --i, --j) {
    const int64_t size = i >= 0 ? t->shape[i] : 1;
    const int64_t st = i < 0 ? 0 : t->strides != nullptr ? t->strides[i] : step;
    o.shape[j] = size;
    o.stride[j] = size == 1 ? 0 : st;
    step *= size;
  }
  return o;
}

// n elements from src (stepping `step` elements of `dtype`) to f32.
void load_line(const char* src, int64_t step, int32_t dtype, float* dst, int64_t n) {
  if (dtype == DSK_DTYPE_F32) {
    if (step == 1) {
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    }
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i, src + i * step * 4, sizeof(float));
  } else if (dtype == DSK_DTYPE_BF16) {
    int64_t i = 0;
#if defined(__SSE2__)
    // bf16 is the top half of an f32: interleave zero low halves, 8 elements at a time (exactly
    // bf16_to_f32).
    if (step == 1) {
      const __m128i zero = _mm_setzero_si128();
      for (; i + 8 <= n; i += 8) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
        _mm_storeu_ps(dst + i, _mm_castsi128_ps(_mm_unpacklo_epi16(zero, v)));
        _mm_storeu_ps(dst + i + 4, _mm_castsi128_ps(_mm_unpackhi_epi16(zero, v)));
      }
    }
#endif
    for (; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, src + i * step * 2, sizeof(v));
      dst[i] = bf16_to_f32(v);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, src + i * step * 2, sizeof(v));
      dst[i] = f16_to_f32(v);
    }
  }
}

struct Problem {
  Operand a, b, c, d;
  // An fp8 e4m3fn B (gemm_fp8_weight, gemm_fp8_weight_view) is a view into a block-scaled
  // weight: B[b, k, n]'s scale is b_scale[((n + n_off(b)) / 128) * sc_n + ((k + k_off(b)) / 128) *
  // sc_k] (f32 elements), the offsets placing batch b's view in the weight's 128 x 128 grid.
  const float* b_scale = nullptr;
  int64_t sc_n = 0;
  int64_t sc_k = 0;
  int64_t n_off0 = 0, n_off_step = 0;
  int64_t k_off0 = 0, k_off_step = 0;
  int64_t n_off(int64_t batch_index) const { return n_off0 + batch_index * n_off_step; }
  int64_t k_off(int64_t batch_index) const { return k_off0 + batch_index * k_off_step; }
  bool fp8() const { return b.dtype == DSK_DTYPE_FP8_E4M3FN; }
  // Scales of column n (of batch b) start here: add ((k + k_off(b)) / 128) * sc_k.
  const float* scale_col(int64_t batch_index, int64_t col) const {
    return b_scale + (col + n_off(batch_index)) / 128 * sc_n;
  }
  bool has_c = false;
  std::vector<float> bias;  // [N] in f32, empty when none
  float alpha = 1.0f;
  float beta = 0.0f;
  int64_t batch = 0, m = 0, n = 0, k = 0;
};

// D[b, r0:r0+nr, c0:c0+nc] = alpha * t + beta * C + bias, rounded once to D's dtype. t is a
// row-major f32 block (ld nc <= kBlockCols), or NULL for 0 (K == 0).
void finish(const Problem& p, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
            const float* t) {
  const float* bias = p.bias.empty() ? nullptr : p.bias.data() + c0;
  const bool unit = p.d.stride[2] == 1 || nc == 1;
  float v[kBlockCols];
  for (int64_t i = 0; i < nr; ++i) {
    for (int64_t j = 0; j < nc; ++j) v[j] = t != nullptr ? p.alpha * t[i * nc + j] : 0.0f;
    if (p.has_c) {
      for (int64_t j = 0; j < nc; ++j) {
        v[j] += p.beta * load_as_f32(p.c.dtype, p.c.at(b, r0 + i, c0 + j));
      }
    }
    if (bias != nullptr) {
      for (int64_t j = 0; j < nc; ++j) v[j] += bias[j];
    }
    char* dst = const_cast<char*>(p.d.at(b, r0 + i, c0));
    if (unit && p.d.dtype == DSK_DTYPE_F32) {
      std::memcpy(dst, v, static_cast<size_t>(nc) * sizeof(float));
    } else if (unit && p.d.dtype == DSK_DTYPE_BF16) {
      uint16_t h[kBlockCols];
      for (int64_t j = 0; j < nc; ++j) h[j] = f32_to_bf16(v[j]);
      std::memcpy(dst, h, static_cast<size_t>(nc) * sizeof(uint16_t));
    } else {
      for (int64_t j = 0; j < nc; ++j) {
        store_from_f32(p.d.dtype, v[j], const_cast<char*>(p.d.at(b, r0 + i, c0 + j)));
      }
    }
  }
}

// Rows [r0, r0 + nr) of A as f32 with unit stride along K: in place, or converted into `buf`.
const float* rows_of_a(const Problem& p, int64_t b, int64_t r0, int64_t nr, std::vector<float>& buf,
                       int64_t* ld) {
  const int64_t k = p.k;
  // In place only when aligned: the tiles read A's elements as floats.
  if (p.a.dtype == DSK_DTYPE_F32 && (p.a.stride[2] == 1 || k == 1) &&
      reinterpret_cast<uintptr_t>(p.a.data) % alignof(float) == 0) {
    *ld = p.a.stride[1];
    return reinterpret_cast<const float*>(p.a.at(b, r0, 0));
  }
  buf.resize(static_cast<size_t>(nr * k));
  for (int64_t i = 0; i < nr; ++i) {
    load_line(p.a.at(b, r0 + i, 0), p.a.stride[2], p.a.dtype, buf.data() + i * k, k);
  }
  *ld = k;
  return buf.data();
}

// B's columns are read in place by block(): f32, bf16 or fp8 with unit stride along K (fp8 when
// every batch's k = 0 starts a 128-k scale block, as the column tiles count k blocks from 0).
bool cols_of_b_direct(const Problem& p) {
  const bool fp8_ok = p.fp8() && p.k_off0 % 128 == 0 && p.k_off_step % 128 == 0;
  return (p.b.dtype == DSK_DTYPE_F32 || p.b.dtype == DSK_DTYPE_BF16 || fp8_ok) &&
         (p.b.stride[1] == 1 || p.k == 1);
}

// Columns [c0, c0 + nc) of B as block() reads them.
struct BCols {
  const char* data = nullptr;  // column c0
  int64_t ld = 0;              // bytes from one column to the next
  int type = kGemmBF32;        // GemmBType
  int64_t c0 = 0;
  int64_t b = 0;  // the batch (fp8 scales)
};

// An fp8 B is dequantized in registers for up to this many rows of A per worker, and into an f32
// block once per column block beyond (where the conversion would be repeated for every 4 rows).
constexpr int64_t kFp8InPlaceRows = 4;

// Columns [c0, c0 + nc) of fp8 B dequantized to f32 (the values of e4m3fn_to_f32(q) * scale), any
// strides.
void dequant_cols(const Problem& p, int64_t b, int64_t c0, int64_t nc, float* out) {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i)
      t[static_cast<size_t>(i)] = e4m3fn_to_f32(static_cast<uint8_t>(i));
    return t;
  }();
  const int64_t k = p.k;
  const int64_t k_off = p.k_off(b);
  const GemmTileKernel& kern = gemm_tile_kernel();
  // Rows with unit stride along N (x @ W) whose 16-column groups share a scale: 16 codes of a row
  // a vector in the GEMM's kernel, transposed through a 16 x 16 tile.
  if (p.b.stride[2] == 1 && p.b.stride[1] != 1 && k > 1 && (c0 + p.n_off(b)) % 16 == 0) {
    float tile[16][16];
    for (int64_t k0 = 0; k0 < k; k0 += 16) {
      const int64_t kn = std::min<int64_t>(16, k - k0);
      for (int64_t j0 = 0; j0 < nc; j0 += 16) {
        const int64_t jn = std::min<int64_t>(16, nc - j0);
        const float* scol = p.scale_col(b, c0 + j0);
        for (int64_t kk = 0; kk < kn; ++kk) {
          const auto* q = reinterpret_cast<const uint8_t*>(p.b.at(b, k0 + kk, c0 + j0));
          kern.dequant_fp8(q, jn, scol + (k0 + kk + k_off) / 128 * p.sc_k, 0, 0, tile[kk]);
        }
        for (int64_t jj = 0; jj < jn; ++jj) {
          float* dst = out + (j0 + jj) * k + k0;
          for (int64_t kk = 0; kk < kn; ++kk) dst[kk] = tile[kk][jj];
        }
      }
    }
    return;
  }
  // Columns with unit stride along K whose scale blocks start on a multiple of 16: 16 codes a
  // vector in the GEMM's kernel (the same values).
  const bool vector = (p.b.stride[1] == 1 || k == 1) && k_off % 16 == 0;
  for (int64_t j = 0; j < nc; ++j) {
    const auto* q = reinterpret_cast<const uint8_t*>(p.b.at(b, 0, c0 + j));
    const float* srow = p.scale_col(b, c0 + j);
    float* o = out + j * k;
    if (vector) {
      kern.dequant_fp8(q, k, srow + k_off / 128 * p.sc_k, p.sc_k, k_off % 128, o);
      continue;
    }
    for (int64_t kk = 0; kk < k; ++kk) {
      o[kk] = table[q[kk * p.b.stride[1]]] * srow[(kk + k_off) / 128 * p.sc_k];
    }
  }
}

// Columns [c0, c0 + nc) of B with unit stride along K: in place, or converted to f32 into `buf`.
// `rows`: the rows of A they will meet (this worker's).
BCols cols_of_b(const Problem& p, int64_t b, int64_t c0, int64_t nc, int64_t rows,
                std::vector<float>& buf) {
  const int64_t k = p.k;
  BCols out;
  out.c0 = c0;
  out.b = b;
  if (p.fp8() && (rows > kFp8InPlaceRows || !cols_of_b_direct(p))) {
    buf.resize(static_cast<size_t>(nc * k));
    dequant_cols(p, b, c0, nc, buf.data());
    out.data = reinterpret_cast<const char*>(buf.data());
    out.ld = k * static_cast<int64_t>(sizeof(float));
    return out;
  }
  if (cols_of_b_direct(p)) {
    out.data = p.b.at(b, 0, c0);
    out.ld = p.b.stride[2] * p.b.elem;
    out.type = p.b.dtype == DSK_DTYPE_BF16         ? kGemmBBf16
               : p.b.dtype == DSK_DTYPE_FP8_E4M3FN ? kGemmBFp8
                                                   : kGemmBF32;
    return out;
  }
  buf.resize(static_cast<size_t>(nc * k));
  if (p.b.stride[2] == 1) {
    // Rows of B are contiguous: transpose 16 x 16 tiles, reading and writing whole lines.
    float tile[16][16];
    for (int64_t k0 = 0; k0 < k; k0 += 16) {
      const int64_t kn = std::min<int64_t>(16, k - k0);
      for (int64_t j0 = 0; j0 < nc; j0 += 16) {
        const int64_t jn = std::min<int64_t>(16, nc - j0);
        for (int64_t kk = 0; kk < kn; ++kk) {
          load_line(p.b.at(b, k0 + kk, c0 + j0), 1, p.b.dtype, tile[kk], jn);
        }
        for (int64_t jj = 0; jj < jn; ++jj) {
          float* dst = buf.data() + (j0 + jj) * k + k0;
          for (int64_t kk = 0; kk < kn; ++kk) dst[kk] = tile[kk][jj];
        }
      }
    }
  } else {
    for (int64_t j = 0; j < nc; ++j) {
      load_line(p.b.at(b, 0, c0 + j), p.b.stride[1], p.b.dtype, buf.data() + j * k, k);
    }
  }
  out.data = reinterpret_cast<const char*>(buf.data());
  out.ld = k * static_cast<int64_t>(sizeof(float));
  return out;
}

// One block of nr x nc dot products into t (row-major, ld nc): A rows from `a` (ld floats), B
// columns from `bc`.
void block(const GemmTileKernel& kern, const Problem& p, const float* a, int64_t a_ld, int64_t nr,
           const BCols& bc, int64_t nc, std::vector<float>& partial, float* t) {
  const int64_t k = p.k;
  const int64_t tr = kern.rows;
  const int64_t tc = kern.cols;
  const int64_t belem = bc.type == kGemmBBf16 ? 2 : bc.type == kGemmBFp8 ? 1 : 4;
  const int64_t tiles_c = (nc + tc - 1) / tc;
  if (k > kBlockK)
    partial.resize(static_cast<size_t>((nr + tr - 1) / tr * tiles_c * tr * tc * kGemmLanes));
  for (int64_t kb = 0; kb < k; kb += kBlockK) {
    GemmTile g;
    g.kc = std::min(kBlockK, k - kb);
    g.first = kb == 0;
    g.last = kb + g.kc >= k;
    g.ld = nc;
    g.k0 = kb;
    g.b_scale_step = p.sc_k;
    for (int64_t j0 = 0; j0 < nc; j0 += tc) {
      const int cols = static_cast<int>(std::min(tc, nc - j0));
      for (int j = 0; j < cols; ++j) {
        g.b[j] = bc.data + (j0 + j) * bc.ld + kb * belem;
        if (bc.type == kGemmBFp8) {
          g.b_scale[j] = p.scale_col(bc.b, bc.c0 + j0 + j) + p.k_off(bc.b) / 128 * p.sc_k;
        }
      }
      for (int64_t i0 = 0; i0 < nr; i0 += tr) {
        const int rows = static_cast<int>(std::min(tr, nr - i0));
        for (int i = 0; i < rows; ++i) g.a[i] = a + (i0 + i) * a_ld + kb;
        g.partial = partial.data() + ((i0 / tr) * tiles_c + j0 / tc) * tr * tc * kGemmLanes;
        g.sums = t + i0 * nc + j0;
        kern.run(g, rows, cols, bc.type);
      }
    }
  }
}

// Rows of A (per worker) up to which a B with unit stride along N (x @ W with W [K, N]) is read in
// place by row tiles; with more rows its columns are converted once per column block instead. A
// bf16 or fp8 B is converted once per 16-column panel for all the rows (measured on absorb_q at 16
// tokens: 1.45x faster than converting columns); an f32 B, read as it is, keeps the register tiles
// from 5 rows on.
constexpr int64_t kRowTileRows = 16;
constexpr int64_t kRowTileRowsF32 = 4;

// B is read in place by row tiles: f32, bf16 or fp8 with unit stride along N but not along K (fp8
// when every 16 columns a tile reads share a scale: the views start on a multiple of 16 columns).
bool rows_of_b_direct(const Problem& p) {
  const bool fp8_ok = p.fp8() && p.n_off0 % 16 == 0 && p.n_off_step % 16 == 0;
  return (p.b.dtype == DSK_DTYPE_F32 || p.b.dtype == DSK_DTYPE_BF16 || fp8_ok) && p.k > 1 &&
         p.b.stride[1] != 1 && (p.b.stride[2] == 1 || p.n == 1);
}

// The row-tile form of block(): nr rows of `a` against columns [c0, c0 + nc) of B in place.
void row_block(const GemmTileKernel& kern, const Problem& p, int64_t b, const float* a,
               int64_t a_ld, int64_t nr, int64_t c0, int64_t nc, float* t) {
  GemmRowTile g;
  g.b_ld = p.b.stride[1] * p.b.elem;
  g.k = p.k;
  float sums[kGemmLanes];
  g.sums = sums;
  const int type = p.b.dtype == DSK_DTYPE_BF16 ? kGemmBBf16 : p.fp8() ? kGemmBFp8 : kGemmBF32;
  g.b_scale_step = p.sc_k;
  g.k_phase = p.k_off(b) % 128;
  // bf16 or fp8 with several rows: each 16-column panel converted once, then f32 row tiles over
  // it (the same values, so the same bits).
  std::vector<float> panel;
  const bool use_panel = type != kGemmBF32 && nr > 1;
  if (use_panel) panel.resize(static_cast<size_t>(16 * p.k));
  for (int64_t j0 = 0; j0 < nc; j0 += kGemmLanes) {
    g.cols = static_cast<int>(std::min(kGemmLanes, nc - j0));
    g.b = p.b.at(b, 0, c0 + j0);
    if (type == kGemmBFp8) g.b_scale = p.scale_col(b, c0 + j0) + p.k_off(b) / 128 * p.sc_k;
    GemmRowTile run = g;
    int run_type = type;
    if (use_panel) {
      kern.row_panel(g, type, panel.data());
      run.b = reinterpret_cast<const char*>(panel.data());
      run.b_ld = 16 * static_cast<int64_t>(sizeof(float));
      run_type = kGemmBF32;
    }
    for (int64_t i = 0; i < nr; ++i) {
      run.a = a + i * a_ld;
      kern.run_row(run, run_type);
      std::memcpy(t + i * nc + j0, sums, static_cast<size_t>(g.cols) * sizeof(float));
    }
  }
}

// Computes D over batches [b0, b1), rows [m0, m1), columns [n0, n1). Row blocks run outermost
// unless B must be converted, which then happens once per column block.
void work(const Problem& p, int64_t b0, int64_t b1, int64_t m0, int64_t m1, int64_t n0,
          int64_t n1) {
  const GemmTileKernel& kern = gemm_tile_kernel();
  std::vector<float> abuf;
  std::vector<float> bbuf;
  std::vector<float> partial;
  std::vector<float> t(static_cast<size_t>(kBlockRows * kBlockCols));
  const bool row_tiles = m1 - m0 <= (p.b.dtype == DSK_DTYPE_F32 ? kRowTileRowsF32 : kRowTileRows) &&
                         rows_of_b_direct(p);
  const bool convert_b =
      p.k > 0 && !row_tiles && (!cols_of_b_direct(p) || (p.fp8() && m1 - m0 > kFp8InPlaceRows));
  for (int64_t b = b0; b < b1; ++b) {
    if (p.k == 0) {
      for (int64_t r = m0; r < m1; r += kBlockRows) {
        for (int64_t c = n0; c < n1; c += kBlockCols) {
          finish(p, b, r, std::min(kBlockRows, m1 - r), c, std::min(kBlockCols, n1 - c), nullptr);
        }
      }
      continue;
    }
    // One output block: nr rows of A (from `a`) against columns [c, c + nc).
    auto one = [&](int64_t r, int64_t nr, const float* a, int64_t a_ld, int64_t c, int64_t nc,
                   const BCols& bc) {
      if (row_tiles) {
        row_block(kern, p, b, a, a_ld, nr, c, nc, t.data());
      } else {
        block(kern, p, a, a_ld, nr, bc, nc, partial, t.data());
      }
      finish(p, b, r, nr, c, nc, t.data());
    };
    if (convert_b) {
      for (int64_t c = n0; c < n1; c += kBlockCols) {
        const int64_t nc = std::min(kBlockCols, n1 - c);
        const BCols bc = cols_of_b(p, b, c, nc, m1 - m0, bbuf);
        for (int64_t r = m0; r < m1; r += kBlockRows) {
          const int64_t nr = std::min(kBlockRows, m1 - r);
          int64_t a_ld = 0;
          const float* a = rows_of_a(p, b, r, nr, abuf, &a_ld);
          one(r, nr, a, a_ld, c, nc, bc);
        }
      }
      continue;
    }
    for (int64_t r = m0; r < m1; r += kBlockRows) {
      const int64_t nr = std::min(kBlockRows, m1 - r);
      int64_t a_ld = 0;
      const float* a = rows_of_a(p, b, r, nr, abuf, &a_ld);
      for (int64_t c = n0; c < n1; c += kBlockCols) {
        const int64_t nc = std::min(kBlockCols, n1 - c);
        one(r, nr, a, a_ld, c, nc, row_tiles ? BCols{} : cols_of_b(p, b, c, nc, m1 - m0, bbuf));
      }
    }
  }
}

void run(const Problem& p) {
  const double flops = 2.0 * static_cast<double>(p.batch) * static_cast<double>(p.m) *
                       static_cast<double>(p.n) * static_cast<double>(std::max<int64_t>(p.k, 1));
  int64_t threads = std::min<int64_t>(
      configured_threads(), std::max<int64_t>(1, static_cast<int64_t>(flops / kMinFlopsPerThread)));
  // Split along batches when there are enough, else along the longer of N and M (in steps of 16
  // columns / 8 rows so that every worker gets whole register tiles).
  enum { kBatch, kCols, kRows } axis = kBatch;
  int64_t units = p.batch;
  int64_t unit = 1;
  if (p.batch < threads) {
    if (p.n >= p.m) {
      axis = kCols;
      unit = 16;
      units = (p.n + unit - 1) / unit;
    } else {
      axis = kRows;
      unit = 8;
      units = (p.m + unit - 1) / unit;
    }
  }
  threads = std::max<int64_t>(1, std::min(threads, units));
  auto part = [&](int64_t t) {
    const int64_t lo = units * t / threads * unit;
    const int64_t hi = units * (t + 1) / threads * unit;
    if (axis == kBatch) {
      work(p, lo, hi, 0, p.m, 0, p.n);
    } else if (axis == kCols) {
      work(p, 0, p.batch, 0, p.m, lo, std::min(hi, p.n));
    } else {
      work(p, 0, p.batch, lo, std::min(hi, p.m), 0, p.n);
    }
  };
  if (threads == 1) {
    part(0);
    return;
  }
  run_shares(threads, part);
}

// Batch, M, N and K from D and A; whether there is anything to compute.
bool take_sizes(Problem& p) {
  p.batch = p.d.shape[0];
  p.m = p.d.shape[1];
  p.n = p.d.shape[2];
  p.k = p.a.shape[2];
  return p.batch != 0 && p.m != 0 && p.n != 0;
}

}  // namespace

dsk_status gemm(const dsk_exec* /*ex*/, const DLTensor* a, const DLTensor* b, const DLTensor* c,
                const DLTensor* bias, const DLTensor* d, float alpha, float beta) noexcept {
  return guarded([&] {
    Problem p;
    p.a = operand(a);
    p.b = operand(b);
    p.d = operand(d);
    p.has_c = c != nullptr;
    if (p.has_c) p.c = operand(c);
    p.alpha = alpha;
    p.beta = beta;
    if (!take_sizes(p)) return;
    if (bias != nullptr) {
      const Operand bo = operand(bias);
      p.bias.resize(static_cast<size_t>(p.n));
      load_line(bo.at(0, 0, 0), bo.stride[2], bo.dtype, p.bias.data(), p.n);
    }
    run(p);
  });
}

namespace {

// A [1, rows, cols] operand over `data` (element strides; 0 for size-1 dims, as operand() gives).
Operand matrix(const void* data, int32_t dtype, int64_t rows, int64_t cols, int64_t s_rows,
               int64_t s_cols) {
  Operand o;
  o.data = static_cast<char*>(const_cast<void*>(data));
  o.dtype = dtype;
  o.elem = static_cast<int64_t>(dtype_id_size(dtype));
  o.shape[0] = 1;
  o.shape[1] = rows;
  o.shape[2] = cols;
  o.stride[1] = rows == 1 ? 0 : s_rows;
  o.stride[2] = cols == 1 ? 0 : s_cols;
  return o;
}

}  // namespace

ScaleView aligned_scales(const char* data, int64_t rows, int64_t cols, int64_t s0, int64_t s1,
                         std::vector<float>& buf) {
  if (reinterpret_cast<uintptr_t>(data) % alignof(float) == 0) {
    return {reinterpret_cast<const float*>(data), s0, s1};
  }
  buf.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    load_line(data + r * s0 * 4, s1, DSK_DTYPE_F32, buf.data() + r * cols, cols);
  }
  return {buf.data(), cols, 1};
}

void gemm_fp8_weight(const GemmFp8Weight& g) {
  Problem p;
  p.a = matrix(g.x, DSK_DTYPE_F32, g.m, g.k, g.k, 1);
  p.b = matrix(g.w, DSK_DTYPE_FP8_E4M3FN, g.k, g.n, 1, g.w_s0);  // B = w^T
  p.d = matrix(g.y, g.y_dtype, g.m, g.n, g.y_s0, g.y_s1);
  p.b_scale = g.scale;
  p.sc_n = g.s_s0;
  p.sc_k = g.s_s1;
  p.batch = 1;
  p.m = g.m;
  p.n = g.n;
  p.k = g.k;
  if (p.m == 0 || p.n == 0) return;
  run(p);
}

dsk_status gemm_fp8_weight_view(const dsk_exec* /*ex*/, const DLTensor* a, const DLTensor* b,
                                const DLTensor* scales, int64_t row0, int64_t row_step,
                                int32_t k_is_row, const DLTensor* d) noexcept {
  return guarded([&] {
    Problem p;
    p.a = operand(a);
    p.b = operand(b);
    p.d = operand(d);
    const Operand sc = operand(scales);
    std::vector<float> scale_buf;
    const ScaleView sv =
        aligned_scales(sc.data, sc.shape[1], sc.shape[2], sc.stride[1], sc.stride[2], scale_buf);
    p.b_scale = sv.data;
    // Weight rows run along k or along n of B.
    if (k_is_row != 0) {
      p.sc_k = sv.s0;
      p.sc_n = sv.s1;
      p.k_off0 = row0;
      p.k_off_step = row_step;
    } else {
      p.sc_n = sv.s0;
      p.sc_k = sv.s1;
      p.n_off0 = row0;
      p.n_off_step = row_step;
    }
    if (!take_sizes(p)) return;
    run(p);
  });
}

}  // namespace cpu
}  // namespace dsk
