// CPU GEMM (dsk_backend_iface::gemm): D[b] = alpha * A[b] @ B[b] + beta * C[b] + bias.
//
// Eigen does the multiplications, through maps over the tensors' own memory wherever an f32
// operand has a unit stride in one of its two dims (any leading dimension, either storage order).
// Other operands (f16/bf16, or f32 without a unit stride) are converted block by block into f32
// buffers first (lib/common/convert.h, exact). Products accumulate in f32; D is rounded once to
// its dtype, except that an f32 D Eigen can write directly is first set to beta * C + bias and
// then accumulated into (f32 roundings only).
//
// Threads: D is split into one rectangle per worker (by batch, by column ranges or by row ranges,
// whichever gives every worker a share), each computed with single-threaded Eigen on its own
// buffers, through cpu/parallel.h (DSK_NUM_THREADS overrides std::thread::hardware_concurrency());
// small problems run on the calling thread.
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#if defined(__SSE2__)
#  include <emmintrin.h>
#endif

#include "common/convert.h"
#include "cpu/backend_guard.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "dsk/dsk_ops.h"

namespace dsk {
namespace cpu {
namespace {

using Index = Eigen::Index;
using ConstMap = Eigen::Map<const Eigen::MatrixXf, Eigen::Unaligned, Eigen::OuterStride<>>;
using MutMap = Eigen::Map<Eigen::MatrixXf, Eigen::Unaligned, Eigen::OuterStride<>>;

// Tuning: floats of a converted B block (kept near L2 size, as Eigen packs it again), of a
// converted A block, and of an f32 result block for D that Eigen cannot write directly.
constexpr int64_t kBlockB = int64_t{1} << 19;
constexpr int64_t kBlockA = int64_t{1} << 21;
constexpr int64_t kBlockD = int64_t{1} << 20;
// Work below which a worker thread costs more than it brings (flops per worker).
constexpr double kMinFlopsPerThread = 4.0e6;

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

// An f32 matrix block Eigen reads or writes in place: column-major (rows are unit-stride) or
// row-major (columns are unit-stride) with leading dimension ld.
struct Block {
  float* p = nullptr;
  Index rows = 0;
  Index cols = 0;
  bool col_major = true;
  Index ld = 1;
};

// Block of o[b, r0:r0+nr, c0:c0+nc] when Eigen can map it without a copy.
bool direct_block(const Operand& o, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                  Block* out) {
  if (o.dtype != DSK_DTYPE_F32) return false;
  const int64_t sr = o.stride[1];
  const int64_t sc = o.stride[2];
  Block blk;
  blk.p = reinterpret_cast<float*>(const_cast<char*>(o.at(b, r0, c0)));
  blk.rows = nr;
  blk.cols = nc;
  if (sc == 1 || nc == 1) {
    // Row-major: rows step by sr, which must clear a row (or never be used).
    if (nr > 1 && sr < nc) return false;
    blk.col_major = false;
    blk.ld = nr > 1 ? sr : std::max<int64_t>(nc, 1);
  } else if (sr == 1 || nr == 1) {
    if (nc > 1 && sc < nr) return false;
    blk.col_major = true;
    blk.ld = nc > 1 ? sc : std::max<int64_t>(nr, 1);
  } else {
    return false;
  }
  *out = blk;
  return true;
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

// Converts o[b, r0:r0+nr, c0:c0+nc] into `buf` (compact, in the storage order that reads the
// source along its smaller stride) and returns the block over it.
Block pack_block(const Operand& o, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                 std::vector<float>& buf) {
  buf.resize(static_cast<size_t>(nr * nc));
  Block blk;
  blk.p = buf.data();
  blk.rows = nr;
  blk.cols = nc;
  const int64_t sr = o.stride[1];
  const int64_t sc = o.stride[2];
  blk.col_major = nc == 1 || (nr > 1 && sr <= sc);
  if (blk.col_major) {
    blk.ld = std::max<int64_t>(nr, 1);
    for (int64_t j = 0; j < nc; ++j)
      load_line(o.at(b, r0, c0 + j), sr, o.dtype, blk.p + j * nr, nr);
  } else {
    blk.ld = std::max<int64_t>(nc, 1);
    for (int64_t i = 0; i < nr; ++i)
      load_line(o.at(b, r0 + i, c0), sc, o.dtype, blk.p + i * nc, nc);
  }
  return blk;
}

// Calls f with the Eigen expression of x (transposed when `transpose`), without copying.
template <typename F>
void with_expr(const Block& x, bool transpose, F&& f) {
  if (x.col_major) {
    const ConstMap m(x.p, x.rows, x.cols, Eigen::OuterStride<>(x.ld));
    if (transpose) {
      f(m.transpose());
    } else {
      f(m);
    }
  } else {
    const ConstMap m(x.p, x.cols, x.rows, Eigen::OuterStride<>(x.ld));
    if (transpose) {
      f(m);
    } else {
      f(m.transpose());
    }
  }
}

template <typename L, typename R>
void product(MutMap& d, const L& l, const R& r, float alpha, bool accumulate) {
  if (accumulate) {
    d.noalias() += alpha * l * r;
  } else {
    d.noalias() = alpha * l * r;
  }
}

// d (+)= alpha * a @ b on f32 blocks. A row-major d is computed as d^T = b^T @ a^T.
void multiply(const Block& d, const Block& a, const Block& b, float alpha, bool accumulate) {
  if (d.col_major) {
    MutMap dm(d.p, d.rows, d.cols, Eigen::OuterStride<>(d.ld));
    with_expr(a, false, [&](const auto& ea) {
      with_expr(b, false, [&](const auto& eb) { product(dm, ea, eb, alpha, accumulate); });
    });
  } else {
    MutMap dm(d.p, d.cols, d.rows, Eigen::OuterStride<>(d.ld));
    with_expr(b, true, [&](const auto& eb) {
      with_expr(a, true, [&](const auto& ea) { product(dm, eb, ea, alpha, accumulate); });
    });
  }
}

#if defined(__SSE2__)
// Rows of A at or below which the product is computed by dot products straight from B's memory
// (GEMV-like decode shapes): converting B to f32 first would cost more memory traffic than the
// product itself, which only reads each element of B once.
constexpr int64_t kDotRows = 4;

template <int32_t DTYPE>
inline void load8(const char* p, __m128& lo, __m128& hi) {
  if (DTYPE == DSK_DTYPE_BF16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    lo = _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), v));
    hi = _mm_castsi128_ps(_mm_unpackhi_epi16(_mm_setzero_si128(), v));
  } else {
    lo = _mm_loadu_ps(reinterpret_cast<const float*>(p));
    hi = _mm_loadu_ps(reinterpret_cast<const float*>(p) + 4);
  }
}

inline float hsum(__m128 v) {
  const __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

// t[j * NR + i] = alpha * sum_k a[i * k + kk] * B(kk, j) for NR rows of f32 A (row-major, ld k)
// and JB columns of B, column j starting at b + j * col_step bytes with unit stride along K. The
// JB columns share each load of A.
template <int32_t DTYPE, int NR, int JB>
void dot_tile(const float* a, int64_t k, const char* b, int64_t col_step, float alpha, float* t) {
  constexpr int64_t kElem = DTYPE == DSK_DTYPE_BF16 ? 2 : 4;
  __m128 acc[NR][JB][2];
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < JB; ++j) acc[i][j][0] = acc[i][j][1] = _mm_setzero_ps();
  }
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m128 lo[JB];
    __m128 hi[JB];
    for (int j = 0; j < JB; ++j) load8<DTYPE>(b + j * col_step + kk * kElem, lo[j], hi[j]);
    for (int i = 0; i < NR; ++i) {
      const __m128 alo = _mm_loadu_ps(a + i * k + kk);
      const __m128 ahi = _mm_loadu_ps(a + i * k + kk + 4);
      for (int j = 0; j < JB; ++j) {
        acc[i][j][0] = _mm_add_ps(acc[i][j][0], _mm_mul_ps(alo, lo[j]));
        acc[i][j][1] = _mm_add_ps(acc[i][j][1], _mm_mul_ps(ahi, hi[j]));
      }
    }
  }
  for (int j = 0; j < JB; ++j) {
    const char* bc = b + j * col_step;
    for (int i = 0; i < NR; ++i) {
      float s = hsum(_mm_add_ps(acc[i][j][0], acc[i][j][1]));
      for (int64_t r = kk; r < k; ++r) {
        float bv;
        if (DTYPE == DSK_DTYPE_BF16) {
          uint16_t h;
          std::memcpy(&h, bc + r * kElem, sizeof(h));
          bv = bf16_to_f32(h);
        } else {
          std::memcpy(&bv, bc + r * kElem, sizeof(bv));
        }
        s += a[i * k + r] * bv;
      }
      t[j * NR + i] = alpha * s;
    }
  }
}

template <int32_t DTYPE, int NR>
void dot_block(const float* a, int64_t k, const char* b, int64_t col_step, int64_t nc, float alpha,
               float* t) {
  // Up to 8 accumulators (of 16 SSE registers).
  constexpr int JB = NR == 1 ? 4 : NR == 2 ? 2 : 1;
  int64_t j = 0;
  for (; j + JB <= nc; j += JB) {
    dot_tile<DTYPE, NR, JB>(a, k, b + j * col_step, col_step, alpha, t + j * NR);
  }
  for (; j < nc; ++j) dot_tile<DTYPE, NR, 1>(a, k, b + j * col_step, col_step, alpha, t + j * NR);
}

template <int32_t DTYPE>
void dot_rows(const float* a, int64_t nr, int64_t k, const char* b, int64_t col_step, int64_t nc,
              float alpha, float* t) {
  switch (nr) {
    case 1:
      dot_block<DTYPE, 1>(a, k, b, col_step, nc, alpha, t);
      break;
    case 2:
      dot_block<DTYPE, 2>(a, k, b, col_step, nc, alpha, t);
      break;
    case 3:
      dot_block<DTYPE, 3>(a, k, b, col_step, nc, alpha, t);
      break;
    default:
      dot_block<DTYPE, 4>(a, k, b, col_step, nc, alpha, t);
      break;
  }
}
#else
constexpr int64_t kDotRows = 0;
#endif

struct Problem {
  Operand a, b, c, d;
  bool has_c = false;
  std::vector<float> bias;  // [N] in f32, empty when none
  float alpha = 1.0f;
  float beta = 0.0f;
  int64_t batch = 0, m = 0, n = 0, k = 0;
};

// D[b, r0:r0+nr, c0:c0+nc] = t + beta * C + bias, rounded once to D's dtype. t is a compact
// column-major f32 block (ld nr), or NULL for 0 (K == 0).
void finish(const Problem& p, int64_t b, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
            const float* t) {
  const float* bias = p.bias.empty() ? nullptr : p.bias.data() + c0;
  for (int64_t j = 0; j < nc; ++j) {
    for (int64_t i = 0; i < nr; ++i) {
      float v = t != nullptr ? t[j * nr + i] : 0.0f;
      if (p.has_c) v += p.beta * load_as_f32(p.c.dtype, p.c.at(b, r0 + i, c0 + j));
      if (bias != nullptr) v += bias[j];
      store_from_f32(p.d.dtype, v, const_cast<char*>(p.d.at(b, r0 + i, c0 + j)));
    }
  }
}

// Sets an f32 D block Eigen writes directly to beta * C + bias before the product is added;
// false when there is nothing to add (the product then assigns).
bool prologue(const Problem& p, const Block& d, int64_t b, int64_t r0, int64_t c0) {
  const bool in_place = p.has_c && p.c.data == p.d.data;
  if (!p.has_c && p.bias.empty()) return false;
  for (Index j = 0; j < d.cols; ++j) {
    for (Index i = 0; i < d.rows; ++i) {
      float* dst = d.col_major ? d.p + j * d.ld + i : d.p + i * d.ld + j;
      float v = 0.0f;
      if (in_place) {
        v = p.beta * *dst;
      } else if (p.has_c) {
        float cv;
        std::memcpy(&cv, p.c.at(b, r0 + i, c0 + j), sizeof(cv));
        v = p.beta * cv;
      }
      if (!p.bias.empty()) v += p.bias[static_cast<size_t>(c0 + j)];
      *dst = v;
    }
  }
  return true;
}

// The kDotRows path of work(): A's rows converted to f32 once, then D = alpha * dots + beta * C
// + bias in column chunks.
void dot_path(const Problem& p, int64_t b0, int64_t b1, int64_t m0, int64_t m1, int64_t n0,
              int64_t n1) {
#if defined(__SSE2__)
  const int64_t nr = m1 - m0;
  const int64_t k = p.k;
  std::vector<float> arows(static_cast<size_t>(nr * k));
  constexpr int64_t kChunk = 64;
  float t[kChunk * kDotRows];
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t i = 0; i < nr; ++i) {
      load_line(p.a.at(b, m0 + i, 0), p.a.stride[2], p.a.dtype, arows.data() + i * k, k);
    }
    for (int64_t c = n0; c < n1; c += kChunk) {
      const int64_t nc = std::min(kChunk, n1 - c);
      const char* bp = p.b.at(b, 0, c);
      const int64_t col_step = p.b.stride[2] * p.b.elem;
      if (p.b.dtype == DSK_DTYPE_BF16) {
        dot_rows<DSK_DTYPE_BF16>(arows.data(), nr, k, bp, col_step, nc, p.alpha, t);
      } else {
        dot_rows<DSK_DTYPE_F32>(arows.data(), nr, k, bp, col_step, nc, p.alpha, t);
      }
      // t is column-major with ld nr, as finish() expects.
      finish(p, b, m0, nr, c, nc, t);
    }
  }
#else
  (void)p, (void)b0, (void)b1, (void)m0, (void)m1, (void)n0, (void)n1;
#endif
}

// Computes D over batches [b0, b1), rows [m0, m1), columns [n0, n1).
void work(const Problem& p, int64_t b0, int64_t b1, int64_t m0, int64_t m1, int64_t n0,
          int64_t n1) {
  std::vector<float> abuf;
  std::vector<float> bbuf;
  std::vector<float> tbuf;
  const int64_t k = p.k;
  Block probe;
  const bool a_direct = direct_block(p.a, 0, 0, m1 - m0, 0, k, &probe);
  const bool b_direct = direct_block(p.b, 0, 0, k, 0, n1 - n0, &probe);
  const bool d_direct = direct_block(p.d, 0, 0, m1 - m0, 0, n1 - n0, &probe);
  const int64_t kk = std::max<int64_t>(k, 1);
  int64_t mc = m1 - m0;
  if (!a_direct) mc = std::min(mc, std::max<int64_t>(16, kBlockA / kk));
  int64_t nc = n1 - n0;
  if (!b_direct) nc = std::min(nc, std::max<int64_t>(16, (kBlockB / kk) / 8 * 8));
  if (!d_direct) nc = std::min(nc, std::max<int64_t>(16, kBlockD / std::max<int64_t>(mc, 1)));
  // Few rows and B contiguous along K (a linear layer's weight): dot products from B directly.
  const bool dots = k > 0 && m1 - m0 <= kDotRows && (p.b.stride[1] == 1 || k == 1) &&
                    (p.b.dtype == DSK_DTYPE_BF16 || p.b.dtype == DSK_DTYPE_F32);
  if (dots) {
    dot_path(p, b0, b1, m0, m1, n0, n1);
    return;
  }
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t r = m0; r < m1; r += mc) {
      const int64_t nr = std::min(mc, m1 - r);
      Block ab;
      if (k > 0 && !direct_block(p.a, b, r, nr, 0, k, &ab))
        ab = pack_block(p.a, b, r, nr, 0, k, abuf);
      for (int64_t c = n0; c < n1; c += nc) {
        const int64_t ncur = std::min(nc, n1 - c);
        if (k == 0) {
          finish(p, b, r, nr, c, ncur, nullptr);
          continue;
        }
        Block bb;
        if (!direct_block(p.b, b, 0, k, c, ncur, &bb)) bb = pack_block(p.b, b, 0, k, c, ncur, bbuf);
        Block db;
        if (direct_block(p.d, b, r, nr, c, ncur, &db)) {
          const bool acc = prologue(p, db, b, r, c);
          multiply(db, ab, bb, p.alpha, acc);
        } else {
          tbuf.resize(static_cast<size_t>(nr * ncur));
          db.p = tbuf.data();
          db.rows = nr;
          db.cols = ncur;
          db.col_major = true;
          db.ld = std::max<int64_t>(nr, 1);
          multiply(db, ab, bb, p.alpha, false);
          finish(p, b, r, nr, c, ncur, tbuf.data());
        }
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
  // columns / 8 rows so that every worker gets whole Eigen panels).
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
  static std::once_flag eigen_init;
  std::call_once(eigen_init, [] { Eigen::initParallel(); });
  run_shares(threads, part);
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
    p.batch = p.d.shape[0];
    p.m = p.d.shape[1];
    p.n = p.d.shape[2];
    p.k = p.a.shape[2];
    if (p.batch == 0 || p.m == 0 || p.n == 0) return;
    if (bias != nullptr) {
      const Operand bo = operand(bias);
      p.bias.resize(static_cast<size_t>(p.n));
      load_line(bo.at(0, 0, 0), bo.stride[2], bo.dtype, p.bias.data(), p.n);
    }
    run(p);
  });
}

}  // namespace cpu
}  // namespace dsk
