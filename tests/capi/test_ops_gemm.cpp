// dsk_gemm / dsk_linear on the CPU backend against a naive double-precision GEMM.
//
// Tolerances (|got - want|, want computed in double from the exact operand values):
//  - f32 D: (K + 3) * 2^-24 * (|alpha| * sum_k |a||b| + |beta * c| + |bias|), at least 1e-5 of the
//    same magnitude. (K + 3) * u bounds f32 accumulation of K products plus the C, bias and alpha
//    steps in any summation order (Higham's gamma_n), so the check cannot flake with blocking.
//  - f16/bf16 D: the f32 bound above plus one ulp of the output dtype at |want|: D is rounded
//    once from the f32 result (half an ulp), and the f32 error may carry it across a rounding
//    boundary.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using dsk_test::CpuContext;
using dsk_test::expect_error;
using dsk_test::Owned;
using ops_test::dtype_name;
using ops_test::kFloats;

size_t elem_size(int32_t dtype_id) { return dtype_id == DSK_DTYPE_F32 ? 4 : 2; }

// Host memory of one dtype holding random values in [-1, 1] (rounded to the dtype), with their
// exact f32 values for the reference.
struct Buf {
  int32_t dtype = DSK_DTYPE_F32;
  std::vector<uint8_t> bytes;
  std::vector<float> vals;
  Buf(dsk_context* ctx, int32_t dtype_id, int64_t n, uint32_t seed) : dtype(dtype_id) {
    const size_t count = static_cast<size_t>(n > 0 ? n : 1);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> f(count);
    for (float& v : f) v = dist(rng);
    bytes.resize(count * elem_size(dtype));
    Borrowed src(f.data(), {static_cast<int64_t>(count)}, DSK_DTYPE_F32);
    Borrowed dst(bytes.data(), {static_cast<int64_t>(count)}, dtype);
    REQUIRE(dsk_copy(ctx, &src, &dst) == DSK_OK);
    refresh(ctx);
  }
  // Re-reads vals from bytes.
  void refresh(dsk_context* ctx) {
    const int64_t count = static_cast<int64_t>(bytes.size() / elem_size(dtype));
    vals.resize(static_cast<size_t>(count));
    Borrowed src(bytes.data(), {count}, dtype);
    Borrowed dst(vals.data(), {count}, DSK_DTYPE_F32);
    REQUIRE(dsk_copy(ctx, &src, &dst) == DSK_OK);
  }
  void fill(float v) {
    for (size_t i = 0; i < bytes.size() / elem_size(dtype); ++i) {
      if (dtype == DSK_DTYPE_F32) {
        std::memcpy(bytes.data() + 4 * i, &v, 4);
      } else {
        // Only used with NaN / 0 patterns, which are easy to write in both 16-bit formats.
        const uint16_t h = std::isnan(v) ? 0x7FFF : 0;
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
  }
};

// A strided view into a Buf.
struct View {
  Buf* buf = nullptr;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int64_t offset = 0;
  DLTensor dl{};

  View() = default;
  View(Buf& b, std::vector<int64_t> s, std::vector<int64_t> st, int64_t off = 0)
      : buf(&b), shape(std::move(s)), strides(std::move(st)), offset(off) {
    dl.data = b.bytes.data() + static_cast<size_t>(off) * elem_size(b.dtype);
    dl.device = DLDevice{kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(shape.size());
    dl.dtype = dsk_test::dtype(b.dtype);
    dl.shape = shape.data();
    dl.strides = strides.data();
  }
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  const DLTensor* t() const { return &dl; }
  int32_t nd() const { return static_cast<int32_t>(shape.size()); }
  // Element (bi, i, j) of a 2-D (bi ignored) or 3-D view.
  int64_t index(int64_t bi, int64_t i, int64_t j) const {
    const int32_t n = nd();
    int64_t o =
        offset + i * strides[static_cast<size_t>(n - 2)] + j * strides[static_cast<size_t>(n - 1)];
    if (n == 3) o += bi * strides[0];
    return o;
  }
  double at(int64_t bi, int64_t i, int64_t j) const {
    return buf->vals[static_cast<size_t>(index(bi, i, j))];
  }
};

std::vector<int64_t> row_major(const std::vector<int64_t>& shape, int64_t pad = 0) {
  std::vector<int64_t> st(shape.size());
  int64_t step = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    st[d] = step;
    step *= (shape[d] > 0 ? shape[d] : 1) + (d + 1 == shape.size() ? pad : 0);
  }
  return st;
}

int64_t span(const std::vector<int64_t>& shape, const std::vector<int64_t>& st) {
  int64_t last = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return 1;
    last += (shape[d] - 1) * st[d];
  }
  return last + 1;
}

double ulp(double v, int32_t dtype_id) {
  const int mant = dtype_id == DSK_DTYPE_BF16 ? 7 : dtype_id == DSK_DTYPE_F16 ? 10 : 23;
  const int emin = dtype_id == DSK_DTYPE_F16 ? -14 : -126;
  int e = v == 0.0 ? emin : std::ilogb(v);
  if (e < emin) e = emin;
  return std::ldexp(1.0, e - mant);
}

// Reference values and magnitudes for D from the operand values before the call.
struct Expected {
  std::vector<double> want, mag;
};

struct GemmArgs {
  const View* a = nullptr;
  const View* b = nullptr;
  const View* c = nullptr;
  const View* d = nullptr;
  bool ta = false, tb = false;
  float alpha = 1.0f, beta = 0.0f;
  const View* bias = nullptr;  // 1-D, for linear
};

int64_t batch_of(const View& d) { return d.nd() == 3 ? d.shape[0] : 1; }

Expected reference(const GemmArgs& g) {
  const View& d = *g.d;
  const int64_t batch = batch_of(d);
  const int64_t m = d.shape[static_cast<size_t>(d.nd() - 2)];
  const int64_t n = d.shape[static_cast<size_t>(d.nd() - 1)];
  const View& a = *g.a;
  const int64_t k = a.shape[static_cast<size_t>(a.nd() - (g.ta ? 2 : 1))];
  Expected e;
  for (int64_t bi = 0; bi < batch; ++bi) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        double mag = 0;
        for (int64_t kk = 0; kk < k; ++kk) {
          const double av = g.ta ? a.at(bi, kk, i) : a.at(bi, i, kk);
          const double bv = g.tb ? g.b->at(bi, j, kk) : g.b->at(bi, kk, j);
          s += av * bv;
          mag += std::fabs(av * bv);
        }
        double want = static_cast<double>(g.alpha) * s;
        mag *= std::fabs(static_cast<double>(g.alpha));
        if (g.c != nullptr && g.beta != 0.0f) {
          const double cv = static_cast<double>(g.beta) * g.c->at(bi, i, j);
          want += cv;
          mag += std::fabs(cv);
        }
        if (g.bias != nullptr) {
          const double bv =
              g.bias->buf->vals[static_cast<size_t>(g.bias->offset + j * g.bias->strides[0])];
          want += bv;
          mag += std::fabs(bv);
        }
        e.want.push_back(want);
        e.mag.push_back(mag);
      }
    }
  }
  return e;
}

void check_result(dsk_context* ctx, const View& d, const Expected& e, int64_t k) {
  Buf& buf = *d.buf;
  buf.refresh(ctx);
  const int64_t batch = batch_of(d);
  const int64_t m = d.shape[static_cast<size_t>(d.nd() - 2)];
  const int64_t n = d.shape[static_cast<size_t>(d.nd() - 1)];
  const double u = std::ldexp(1.0, -24);
  size_t idx = 0;
  int failures = 0;
  for (int64_t bi = 0; bi < batch; ++bi) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j, ++idx) {
        const double got = d.at(bi, i, j);
        const double want = e.want[idx];
        double tol = std::max(1e-5, static_cast<double>(k + 3) * u) * e.mag[idx];
        if (buf.dtype != DSK_DTYPE_F32) tol += ulp(std::fabs(want), buf.dtype);
        if (!(std::fabs(got - want) <= tol) && failures++ < 5) {
          FAIL_CHECK("D[" << bi << ", " << i << ", " << j << "] = " << got << ", expected " << want
                          << " within " << tol);
        }
      }
    }
  }
  CHECK(failures == 0);
}

// Runs dsk_gemm and checks D. D's previous values serve as C when g.c aliases it.
void run_gemm(dsk_context* ctx, const GemmArgs& g) {
  const Expected e = reference(g);
  const View& a = *g.a;
  const int64_t k = a.shape[static_cast<size_t>(a.nd() - (g.ta ? 2 : 1))];
  const dsk_status s = dsk_gemm(ctx, a.t(), g.b->t(), g.c ? g.c->t() : nullptr, g.d->t(),
                                g.ta ? 1 : 0, g.tb ? 1 : 0, g.alpha, g.beta);
  REQUIRE_MESSAGE(s == DSK_OK, dsk_last_error_message());
  check_result(ctx, *g.d, e, k);
}

// A [M, K] (or [K, M] when trans) row-major operand in a fresh Buf.
struct Mat {
  Buf buf;
  View view;
  Mat(dsk_context* ctx, int32_t dtype_id, std::vector<int64_t> shape, uint32_t seed,
      int64_t pad = 0)
      : buf(ctx, dtype_id, span(shape, row_major(shape, pad)), seed),
        view(buf, shape, row_major(shape, pad)) {}
};

}  // namespace

TEST_CASE("ops.gemm worked example") {
  CpuContext ctx;
  float a[6] = {1, 2, 3, 4, 5, 6};      // [2, 3]
  float b[6] = {1, 0, -1, 2, 0.5f, 1};  // [3, 2]
  float c[4] = {10, 20, 30, 40};
  float d[4] = {};
  Borrowed at(a, {2, 3}, DSK_DTYPE_F32);
  Borrowed bt(b, {3, 2}, DSK_DTYPE_F32);
  Borrowed ct(c, {2, 2}, DSK_DTYPE_F32);
  Borrowed dt(d, {2, 2}, DSK_DTYPE_F32);
  REQUIRE(dsk_gemm(ctx, &at, &bt, &ct, &dt, 0, 0, 2.0f, 0.5f) == DSK_OK);
  // A @ B = [[1 - 2 + 1.5, 0 + 4 + 3], [4 - 5 + 3, 0 + 10 + 6]] = [[0.5, 7], [2, 16]].
  CHECK(d[0] == 2 * 0.5f + 5);
  CHECK(d[1] == 2 * 7.0f + 10);
  CHECK(d[2] == 2 * 2.0f + 15);
  CHECK(d[3] == 2 * 16.0f + 20);
}

TEST_CASE("ops.gemm every dtype combination and both transposes") {
  CpuContext ctx;
  const int64_t m = 7, n = 9, k = 33;
  uint32_t seed = 1;
  for (int32_t ab : kFloats) {
    for (int32_t cd : kFloats) {
      for (int t = 0; t < 4; ++t) {
        const bool ta = (t & 1) != 0;
        const bool tb = (t & 2) != 0;
        for (bool with_c : {false, true}) {
          CAPTURE(dtype_name(ab));
          CAPTURE(dtype_name(cd));
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(with_c);
          Mat a(ctx, ab, ta ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k}, seed++);
          Mat b(ctx, ab, tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}, seed++);
          Mat c(ctx, cd, {m, n}, seed++);
          Mat d(ctx, cd, {m, n}, seed++);
          GemmArgs g;
          g.a = &a.view;
          g.b = &b.view;
          g.c = with_c ? &c.view : nullptr;
          g.d = &d.view;
          g.ta = ta;
          g.tb = tb;
          g.alpha = 1.5f;
          g.beta = with_c ? -0.75f : 3.0f;  // ignored without C
          run_gemm(ctx, g);
        }
      }
    }
  }
}

TEST_CASE("ops.gemm strided and transposed views and padded leading dimensions") {
  CpuContext ctx;
  const int64_t m = 11, n = 13, k = 17;
  for (int32_t ab : kFloats) {
    for (int32_t dd : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
      CAPTURE(dtype_name(ab));
      CAPTURE(dtype_name(dd));
      // A as a transposed view of a column-major buffer with padding (ld 20); B with both
      // strides non-unit (every other element of a padded buffer); C column-major; D row-major
      // with ld 16 and an offset.
      Buf abuf(ctx, ab, 20 * k, 11);
      View a(abuf, {m, k}, {1, 20});
      Buf bbuf(ctx, ab, 2 * 40 * k, 12);
      View b(bbuf, {k, n}, {80, 2}, 3);
      Buf cbuf(ctx, dd, m * n, 13);
      View c(cbuf, {m, n}, {1, m});
      Buf dbuf(ctx, dd, 16 * m + 5, 14);
      View d(dbuf, {m, n}, {16, 1}, 5);
      GemmArgs g;
      g.a = &a;
      g.b = &b;
      g.c = &c;
      g.d = &d;
      g.alpha = -1.0f;
      g.beta = 2.0f;
      run_gemm(ctx, g);
      // D column-major, then D with no unit stride (strides 2 and 2 * 2m).
      Buf d2buf(ctx, dd, m * n, 15);
      View d2(d2buf, {m, n}, {1, m});
      g.d = &d2;
      run_gemm(ctx, g);
      Buf d3buf(ctx, dd, 4 * m * n, 16);
      View d3(d3buf, {m, n}, {2, 4 * m}, 1);
      g.d = &d3;
      run_gemm(ctx, g);
      // The same through the flags: A stored [K, M] row-major with ld 12, B^T stored [N, K].
      Buf a4buf(ctx, ab, k * 12, 17);
      View a4(a4buf, {k, m}, {12, 1});
      Buf b4buf(ctx, ab, n * k, 18);
      View b4(b4buf, {n, k}, {k, 1});
      GemmArgs h = g;
      h.a = &a4;
      h.b = &b4;
      h.ta = true;
      h.tb = true;
      h.d = &d;
      run_gemm(ctx, h);
    }
  }
}

TEST_CASE("ops.gemm batched, broadcast and strided batches") {
  CpuContext ctx;
  const int64_t bs = 3, m = 5, n = 6, k = 7;
  for (int32_t ab : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
    CAPTURE(dtype_name(ab));
    Mat a(ctx, ab, {bs, m, k}, 21);
    Mat b(ctx, ab, {bs, k, n}, 22);
    Mat b2(ctx, ab, {k, n}, 23);
    Mat a2(ctx, ab, {m, k}, 24);
    Mat c(ctx, DSK_DTYPE_F32, {bs, m, n}, 25);
    Mat d(ctx, DSK_DTYPE_F32, {bs, m, n}, 26);
    GemmArgs g;
    g.a = &a.view;
    g.b = &b.view;
    g.c = &c.view;
    g.d = &d.view;
    g.beta = 0.5f;
    run_gemm(ctx, g);
    g.b = &b2.view;  // B broadcast
    run_gemm(ctx, g);
    g.a = &a2.view;  // both broadcast
    run_gemm(ctx, g);
    g.b = &b.view;  // A broadcast
    g.tb = false;
    run_gemm(ctx, g);
    // Batch as the middle dim of the storage: A stored [M, batch, K] viewed as [batch, M, K].
    Buf pbuf(ctx, ab, m * bs * k, 27);
    View ap(pbuf, {bs, m, k}, {k, bs * k, 1});
    g.a = &ap;
    run_gemm(ctx, g);
    // Batch of one 3-D with 2-D operands, and a transposed batched B.
    Mat b3(ctx, ab, {bs, n, k}, 28);
    g.b = &b3.view;
    g.tb = true;
    run_gemm(ctx, g);
  }
}

TEST_CASE("ops.gemm beta with C == D, C NULL, and beta 0 ignores NaN in C") {
  CpuContext ctx;
  const int64_t m = 6, n = 10, k = 12;
  for (int32_t dd : kFloats) {
    CAPTURE(dtype_name(dd));
    Mat a(ctx, DSK_DTYPE_F32, {m, k}, 31);
    Mat b(ctx, DSK_DTYPE_F32, {k, n}, 32);
    Mat d(ctx, dd, {m, n}, 33);
    GemmArgs g;
    g.a = &a.view;
    g.b = &b.view;
    g.c = &d.view;  // D += ..., scaled
    g.d = &d.view;
    g.alpha = 0.25f;
    g.beta = -1.5f;
    run_gemm(ctx, g);
    g.beta = 1.0f;
    run_gemm(ctx, g);
    // C NULL: beta is ignored, D's old contents are not read.
    d.buf.fill(std::numeric_limits<float>::quiet_NaN());
    g.c = nullptr;
    g.beta = 7.0f;
    run_gemm(ctx, g);
    // beta 0 with a NaN C: C is not read.
    Mat c(ctx, dd, {m, n}, 34);
    c.buf.fill(std::numeric_limits<float>::quiet_NaN());
    c.buf.refresh(ctx);
    g.c = &c.view;
    g.beta = 0.0f;
    run_gemm(ctx, g);
  }
}

TEST_CASE("ops.gemm K == 0 gives beta * C, M or N == 0 is a no-op") {
  CpuContext ctx;
  for (int32_t dd : kFloats) {
    CAPTURE(dtype_name(dd));
    float none = 0;
    Borrowed a(&none, {4, 0}, DSK_DTYPE_F32);
    Borrowed b(&none, {0, 3}, DSK_DTYPE_F32);
    Mat c(ctx, dd, {4, 3}, 41);
    Mat d(ctx, dd, {4, 3}, 42);
    REQUIRE(dsk_gemm(ctx, &a, &b, c.view.t(), d.view.t(), 0, 0, 2.0f, 3.0f) == DSK_OK);
    d.buf.refresh(ctx);
    for (int64_t i = 0; i < 4; ++i) {
      for (int64_t j = 0; j < 3; ++j) {
        const double want = 3.0 * c.view.at(0, i, j);
        CHECK(std::fabs(d.view.at(0, i, j) - want) <= ulp(std::fabs(want), dd));
      }
    }
    // Without C: zeros (whatever D held).
    d.buf.fill(std::numeric_limits<float>::quiet_NaN());
    REQUIRE(dsk_gemm(ctx, &a, &b, nullptr, d.view.t(), 0, 0, 2.0f, 3.0f) == DSK_OK);
    d.buf.refresh(ctx);
    for (float v : d.buf.vals) CHECK(v == 0.0f);
  }
  // M == 0 and N == 0: D untouched (nothing to write), K ignored.
  Mat a(ctx, DSK_DTYPE_F32, {0, 5}, 43);
  Mat b(ctx, DSK_DTYPE_F32, {5, 3}, 44);
  float none = 0;
  Borrowed d0(&none, {0, 3}, DSK_DTYPE_F32);
  CHECK(dsk_gemm(ctx, a.view.t(), b.view.t(), nullptr, &d0, 0, 0, 1.0f, 0.0f) == DSK_OK);
  Mat a1(ctx, DSK_DTYPE_F32, {2, 5}, 45);
  Mat b1(ctx, DSK_DTYPE_F32, {5, 0}, 46);
  Borrowed d1(&none, {2, 0}, DSK_DTYPE_F32);
  CHECK(dsk_gemm(ctx, a1.view.t(), b1.view.t(), nullptr, &d1, 0, 0, 1.0f, 0.0f) == DSK_OK);
  Borrowed d2(&none, {0, 2, 3}, DSK_DTYPE_F32);
  Mat b2(ctx, DSK_DTYPE_F32, {5, 3}, 47);
  CHECK(dsk_gemm(ctx, a1.view.t(), b2.view.t(), nullptr, &d2, 0, 0, 1.0f, 0.0f) == DSK_OK);
}

TEST_CASE("ops.gemm multi-threaded splits agree with the reference") {
  CpuContext ctx;
  const char* old = std::getenv("DSK_NUM_THREADS");
  const std::string saved = old != nullptr ? old : "";
  for (const char* threads : {"1", "3"}) {
    CAPTURE(threads);
    setenv("DSK_NUM_THREADS", threads, 1);
    for (int32_t ab : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
      CAPTURE(dtype_name(ab));
      // Wide (split over N), tall (split over M) and batched (split over batches), with padded
      // and transposed operands.
      struct Shape {
        int64_t bs, m, n, k;
      };
      // Each is above 12 MFLOP, so that 3 threads are used when allowed.
      for (const Shape s :
           {Shape{1, 48, 520, 256}, Shape{1, 600, 40, 256}, Shape{4, 48, 64, 512}}) {
        CAPTURE(s.m);
        CAPTURE(s.n);
        const std::vector<int64_t> ashape =
            s.bs > 1 ? std::vector<int64_t>{s.bs, s.k, s.m} : std::vector<int64_t>{s.k, s.m};
        const std::vector<int64_t> bshape = {s.n, s.k};
        const std::vector<int64_t> dshape =
            s.bs > 1 ? std::vector<int64_t>{s.bs, s.m, s.n} : std::vector<int64_t>{s.m, s.n};
        Mat a(ctx, ab, ashape, 51, 3);
        Mat b(ctx, ab, bshape, 52);
        Mat c(ctx, DSK_DTYPE_BF16, dshape, 53);
        Mat d(ctx, DSK_DTYPE_BF16, dshape, 54, 5);
        GemmArgs g;
        g.a = &a.view;
        g.b = &b.view;
        g.c = &c.view;
        g.d = &d.view;
        g.ta = true;
        g.tb = true;
        g.beta = 0.5f;
        run_gemm(ctx, g);
        Mat df(ctx, DSK_DTYPE_F32, dshape, 55);
        g.c = nullptr;
        g.d = &df.view;
        run_gemm(ctx, g);
      }
    }
  }
  if (old != nullptr) {
    setenv("DSK_NUM_THREADS", saved.c_str(), 1);
  } else {
    unsetenv("DSK_NUM_THREADS");
  }
}

TEST_CASE("ops.linear with and without bias on [B, S, in] inputs") {
  CpuContext ctx;
  const int64_t bs = 2, seq = 3, in = 40, out = 24;
  for (int32_t xw : kFloats) {
    for (int32_t yd : kFloats) {
      for (int bias_kind = 0; bias_kind < 3; ++bias_kind) {  // none, f32, bf16 (strided)
        CAPTURE(dtype_name(xw));
        CAPTURE(dtype_name(yd));
        CAPTURE(bias_kind);
        Mat x(ctx, xw, {bs, seq, in}, 61);
        Mat w(ctx, xw, {out, in}, 62);
        Buf bbuf(ctx, bias_kind == 2 ? DSK_DTYPE_BF16 : DSK_DTYPE_F32, 2 * out, 63);
        View bias(bbuf, {out}, {2}, 1);
        Mat y(ctx, yd, {bs, seq, out}, 64);
        REQUIRE_MESSAGE(dsk_linear(ctx, x.view.t(), w.view.t(), bias_kind ? bias.t() : nullptr,
                                   y.view.t()) == DSK_OK,
                        dsk_last_error_message());
        // Reference: x as [B*S, in] @ w^T.
        View x2(x.buf, {bs * seq, in}, {in, 1});
        View y2(y.buf, {bs * seq, out}, {out, 1});
        GemmArgs g;
        g.a = &x2;
        g.b = &w.view;
        g.tb = true;
        g.d = &y2;
        g.bias = bias_kind ? &bias : nullptr;
        check_result(ctx, y2, reference(g), in);
      }
    }
  }
}

TEST_CASE("ops.linear 1-D input, sliced input and K == 0") {
  CpuContext ctx;
  const int64_t in = 9, out = 5;
  // x [in] -> y [out].
  Mat x(ctx, DSK_DTYPE_BF16, {in}, 71);
  Mat w(ctx, DSK_DTYPE_BF16, {out, in}, 72);
  Mat y(ctx, DSK_DTYPE_F32, {out}, 73);
  REQUIRE(dsk_linear(ctx, x.view.t(), w.view.t(), nullptr, y.view.t()) == DSK_OK);
  View x2(x.buf, {1, in}, {0, 1});
  View y2(y.buf, {1, out}, {0, 1});
  GemmArgs g;
  g.a = &x2;
  g.b = &w.view;
  g.tb = true;
  g.d = &y2;
  check_result(ctx, y2, reference(g), in);
  // x [4, in] sliced from a [4, 2 * in] buffer (row stride 2 * in).
  Buf xb(ctx, DSK_DTYPE_BF16, 4 * 2 * in, 74);
  View xs(xb, {4, in}, {2 * in, 1}, in);
  Mat y4(ctx, DSK_DTYPE_BF16, {4, out}, 75);
  REQUIRE(dsk_linear(ctx, xs.t(), w.view.t(), nullptr, y4.view.t()) == DSK_OK);
  g.a = &xs;
  g.d = &y4.view;
  check_result(ctx, y4.view, reference(g), in);
  // in == 0: y = bias.
  float none = 0;
  Borrowed x0(&none, {3, 0}, DSK_DTYPE_F32);
  Borrowed w0(&none, {out, 0}, DSK_DTYPE_F32);
  Mat bias(ctx, DSK_DTYPE_F32, {out}, 76);
  Mat y0(ctx, DSK_DTYPE_F32, {3, out}, 77);
  REQUIRE(dsk_linear(ctx, &x0, &w0, bias.view.t(), y0.view.t()) == DSK_OK);
  y0.buf.refresh(ctx);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < out; ++j) CHECK(y0.view.at(0, i, j) == bias.buf.vals[size_t(j)]);
  }
}

TEST_CASE("ops.gemm bad arguments name the argument") {
  CpuContext ctx;
  std::vector<float> fa(64), fb(64), fc(64), fd(64);
  std::vector<int32_t> ia(64);
  Borrowed a(fa.data(), {2, 3}, DSK_DTYPE_F32);
  Borrowed b(fb.data(), {3, 4}, DSK_DTYPE_F32);
  Borrowed c(fc.data(), {2, 4}, DSK_DTYPE_F32);
  Borrowed d(fd.data(), {2, 4}, DSK_DTYPE_F32);
  REQUIRE(dsk_gemm(ctx, &a, &b, &c, &d, 0, 0, 1.0f, 1.0f) == DSK_OK);
  const dsk_status inv = DSK_ERR_INVALID_ARGUMENT;
  expect_error(dsk_gemm(nullptr, &a, &b, &c, &d, 0, 0, 1, 1), inv, {"ctx"});
  expect_error(dsk_gemm(ctx, nullptr, &b, &c, &d, 0, 0, 1, 1), inv, {"a is NULL"});
  expect_error(dsk_gemm(ctx, &a, nullptr, &c, &d, 0, 0, 1, 1), inv, {"b is NULL"});
  expect_error(dsk_gemm(ctx, &a, &b, &c, nullptr, 0, 0, 1, 1), inv, {"d is NULL"});
  // dtypes
  Borrowed ai(ia.data(), {2, 3}, DSK_DTYPE_INT32);
  expect_error(dsk_gemm(ctx, &ai, &b, &c, &d, 0, 0, 1, 1), inv, {"a.dtype"});
  Borrowed bh(fb.data(), {3, 4}, DSK_DTYPE_BF16);
  expect_error(dsk_gemm(ctx, &a, &bh, &c, &d, 0, 0, 1, 1), inv, {"b.dtype", "a.dtype"});
  Borrowed di(ia.data(), {2, 4}, DSK_DTYPE_INT32);
  expect_error(dsk_gemm(ctx, &a, &b, nullptr, &di, 0, 0, 1, 1), inv, {"d.dtype"});
  Borrowed ch(fc.data(), {2, 4}, DSK_DTYPE_F16);
  expect_error(dsk_gemm(ctx, &a, &b, &ch, &d, 0, 0, 1, 1), inv, {"c.dtype", "d.dtype"});
  // shapes
  Borrowed a1(fa.data(), {6}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a1, &b, &c, &d, 0, 0, 1, 1), inv, {"a has 1 dimensions"});
  Borrowed a4(fa.data(), {1, 1, 2, 3}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a4, &b, &c, &d, 0, 0, 1, 1), inv, {"a has 4 dimensions"});
  Borrowed bk(fb.data(), {4, 4}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a, &bk, &c, &d, 0, 0, 1, 1), inv, {"b.shape[0] = 4", "K = 3"});
  expect_error(dsk_gemm(ctx, &a, &b, &c, &d, 1, 0, 1, 1), inv, {"b.shape[0] = 3", "K = 2"});
  expect_error(dsk_gemm(ctx, &a, &b, &c, &d, 0, 1, 1, 1), inv, {"b.shape[1] = 4", "K = 3"});
  Borrowed dm(fd.data(), {3, 4}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a, &b, nullptr, &dm, 0, 0, 1, 1), inv, {"d.shape[0] = 3", "M = 2"});
  Borrowed dn(fd.data(), {2, 5}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a, &b, nullptr, &dn, 0, 0, 1, 1), inv, {"d.shape[1] = 5", "N = 4"});
  Borrowed cs(fc.data(), {4, 2}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a, &b, &cs, &d, 0, 0, 1, 1), inv, {"c has shape [4, 2]"});
  // batches
  Borrowed a3(fa.data(), {2, 2, 3}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a3, &b, nullptr, &d, 0, 0, 1, 1), inv, {"d has 2 dimensions"});
  Borrowed d3(fd.data(), {3, 2, 4}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a3, &b, nullptr, &d3, 0, 0, 1, 1), inv,
               {"a.shape[0] = 2", "batch size of d (3)"});
  Borrowed b3(fb.data(), {2, 3, 4}, DSK_DTYPE_F32);
  Borrowed a33(fa.data(), {3, 2, 3}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a33, &b3, nullptr, &d3, 0, 0, 1, 1), inv, {"b.shape[0] = 2"});
  Borrowed c23(fc.data(), {2, 4}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a33, &b, &c23, &d3, 0, 0, 1, 1), inv, {"c has shape"});
  // overlaps: D with A, B, and with C unless exactly the same view
  Borrowed da(fa.data(), {2, 4}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a, &b, nullptr, &da, 0, 0, 1, 1), inv, {"d overlaps a"});
  Borrowed db(fb.data() + 1, {2, 4}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a, &b, nullptr, &db, 0, 0, 1, 1), inv, {"d overlaps b"});
  Borrowed cshift(fd.data() + 1, {2, 4}, DSK_DTYPE_F32);
  expect_error(dsk_gemm(ctx, &a, &b, &cshift, &d, 0, 0, 1, 1), inv, {"d overlaps c"});
  Borrowed ctr(fd.data(), {2, 4}, DSK_DTYPE_F32, {1, 2});
  expect_error(dsk_gemm(ctx, &a, &b, &ctr, &d, 0, 0, 1, 1), inv, {"d overlaps c"});
  REQUIRE(dsk_gemm(ctx, &a, &b, &d, &d, 0, 0, 1, 1) == DSK_OK);
  Borrowed dself(fd.data(), {2, 4}, DSK_DTYPE_F32, {0, 1});
  expect_error(dsk_gemm(ctx, &a, &b, nullptr, &dself, 0, 0, 1, 1), inv, {"d"});
  // mixed devices: B claims to be CUDA memory.
  Borrowed bg(fb.data(), {3, 4}, DSK_DTYPE_F32);
  bg.dl.device = DLDevice{kDLCUDA, 0};
  expect_error(dsk_gemm(ctx, &a, &bg, nullptr, &d, 0, 0, 1, 1), inv,
               {"b is on cuda:0", "expected the device of a"});
}

TEST_CASE("ops.linear bad arguments name the argument") {
  CpuContext ctx;
  std::vector<float> fx(64), fw(64), fb(64), fy(64);
  Borrowed x(fx.data(), {2, 3, 4}, DSK_DTYPE_F32);
  Borrowed w(fw.data(), {5, 4}, DSK_DTYPE_F32);
  Borrowed bias(fb.data(), {5}, DSK_DTYPE_F32);
  Borrowed y(fy.data(), {2, 3, 5}, DSK_DTYPE_F32);
  REQUIRE(dsk_linear(ctx, &x, &w, &bias, &y) == DSK_OK);
  const dsk_status inv = DSK_ERR_INVALID_ARGUMENT;
  expect_error(dsk_linear(nullptr, &x, &w, &bias, &y), inv, {"ctx"});
  expect_error(dsk_linear(ctx, nullptr, &w, &bias, &y), inv, {"x is NULL"});
  expect_error(dsk_linear(ctx, &x, nullptr, &bias, &y), inv, {"w is NULL"});
  expect_error(dsk_linear(ctx, &x, &w, &bias, nullptr), inv, {"y is NULL"});
  Borrowed wh(fw.data(), {5, 4}, DSK_DTYPE_BF16);
  expect_error(dsk_linear(ctx, &x, &wh, &bias, &y), inv, {"w.dtype"});
  Borrowed bi(fb.data(), {5}, DSK_DTYPE_INT32);
  expect_error(dsk_linear(ctx, &x, &w, &bi, &y), inv, {"bias.dtype"});
  Borrowed yi(fy.data(), {2, 3, 5}, DSK_DTYPE_INT64);
  expect_error(dsk_linear(ctx, &x, &w, &bias, &yi), inv, {"y.dtype"});
  Borrowed wk(fw.data(), {5, 3}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &wk, &bias, &y), inv, {"w.shape[1] = 3", "in = 4"});
  Borrowed w3(fw.data(), {1, 5, 4}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &w3, &bias, &y), inv, {"w has 3 dimensions"});
  Borrowed yo(fy.data(), {2, 3, 6}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &w, &bias, &yo), inv, {"y.shape[2] = 6"});
  Borrowed yl(fy.data(), {6, 5}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &w, &bias, &yl), inv, {"y has shape [6, 5]"});
  Borrowed b6(fb.data(), {6}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &w, &b6, &y), inv, {"bias has shape [6]", "[5]"});
  Borrowed yx(fx.data(), {2, 3, 5}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &w, &bias, &yx), inv, {"y overlaps x"});
  Borrowed yw(fw.data(), {2, 3, 5}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &w, &bias, &yw), inv, {"y overlaps w"});
  Borrowed yb(fb.data(), {2, 3, 5}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x, &w, &bias, &yb), inv, {"y overlaps bias"});
  Borrowed x0(fx.data(), {}, DSK_DTYPE_F32);
  expect_error(dsk_linear(ctx, &x0, &w, &bias, &y), inv, {"x is a scalar"});
  Borrowed wg(fw.data(), {5, 4}, DSK_DTYPE_F32);
  wg.dl.device = DLDevice{kDLCUDA, 0};
  expect_error(dsk_linear(ctx, &x, &wg, &bias, &y), inv, {"w is on cuda:0"});
}

TEST_CASE("ops.gemm few rows with B contiguous along K, as in decoding") {
  CpuContext ctx;
  for (int32_t ab : kFloats) {
    for (int64_t m : {1, 2, 3, 4, 5}) {
      for (int64_t k : {1, 7, 37, 200}) {
        CAPTURE(dtype_name(ab));
        CAPTURE(m);
        CAPTURE(k);
        const int64_t n = 150;
        Mat a(ctx, ab, {m, k}, 81, 2);
        Mat b(ctx, ab, {n, k}, 82, 1);  // B^T stored row-major with padding
        Mat c(ctx, DSK_DTYPE_BF16, {m, n}, 83);
        Mat d(ctx, DSK_DTYPE_BF16, {m, n}, 84);
        GemmArgs g;
        g.a = &a.view;
        g.b = &b.view;
        g.tb = true;
        g.c = &c.view;
        g.d = &d.view;
        g.alpha = 0.5f;
        g.beta = -2.0f;
        run_gemm(ctx, g);
        Mat df(ctx, DSK_DTYPE_F32, {m, n}, 85);
        g.c = nullptr;
        g.d = &df.view;
        run_gemm(ctx, g);
      }
    }
  }
}
