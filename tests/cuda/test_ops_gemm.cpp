// dsk_gemm / dsk_linear on CUDA against the CPU reference, same inputs.
//
// Tolerance per element of D: both paths accumulate in f32 (in different orders), so each is
// within (K + 3) * 2^-24 * (|alpha| sum_k |a||b| + |beta c| + |bias|) of the exact value (at least
// 1e-5 of that magnitude); their difference within twice that, plus one ulp of D's dtype when D
// is f16/bf16 (each side rounds its own f32 result once).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"

namespace dsk_test {
namespace {

const int32_t kGemmFloats[] = {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16};

// A 1-D base tensor on both backends with the same uniform [-1, 1] values, a view layout into
// it, and its values as f32 on the host.
struct Operand {
  int32_t dtype = DSK_DTYPE_F32;
  Layout layout;
  Tensor cpu_base, gpu_base;
  std::vector<float> vals;

  Tensor cpu() const { return view(cpu_base, layout); }
  Tensor gpu() const { return view(gpu_base, layout); }
  // Base index of element (b, i, j) of a 2-D or 3-D view (b ignored for 2-D; 1-D: j only).
  int64_t index(int64_t b, int64_t i, int64_t j) const {
    const size_t n = layout.shape.size();
    int64_t o = layout.offset + j * layout.strides[n - 1];
    if (n >= 2) o += i * layout.strides[n - 2];
    if (n == 3) o += b * layout.strides[0];
    return o;
  }
  double at(int64_t b, int64_t i, int64_t j) const {
    return vals[static_cast<size_t>(index(b, i, j))];
  }
};

Operand make_operand(const Env& env, int32_t dtype, Layout layout, uint64_t seed) {
  Operand o;
  o.dtype = dtype;
  o.layout = std::move(layout);
  const int64_t span = o.layout.span();
  o.cpu_base = create(env.cpu.get(), {span}, dtype);
  dsk_random_params p;
  dsk_random_params_init(&p);
  p.distribution = DSK_RANDOM_UNIFORM;
  p.a = -1.0;
  p.b = 1.0;
  p.seed = seed;
  DSK_REQUIRE_OK(dsk_fill_random(env.cpu.get(), o.cpu_base.dl(), &p));
  o.gpu_base = create(env.gpu.get(), {span}, dtype);
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), o.cpu_base.dl(), o.gpu_base.dl()));
  o.vals = read_f32(env, o.cpu_base.dl());
  return o;
}

double ulp(double v, int32_t dtype) {
  const int mant = dtype == DSK_DTYPE_BF16 ? 7 : dtype == DSK_DTYPE_F16 ? 10 : 23;
  const int emin = dtype == DSK_DTYPE_F16 ? -14 : -126;
  int e = v == 0.0 ? emin : std::ilogb(v);
  if (e < emin) e = emin;
  return std::ldexp(1.0, e - mant);
}

struct Gemm {
  Operand* a = nullptr;
  Operand* b = nullptr;
  Operand* c = nullptr;  // may be d itself
  Operand* d = nullptr;
  Operand* bias = nullptr;  // linear only
  bool ta = false, tb = false;
  float alpha = 1.0f, beta = 0.0f;
  bool linear = false;
};

// Runs the call on both backends and compares D element by element.
void check(const Env& env, const Gemm& g) {
  const Layout& dl = g.d->layout;
  const size_t nd = dl.shape.size();
  const int64_t batch = nd == 3 ? dl.shape[0] : 1;
  const int64_t m = dl.shape[nd - 2];
  const int64_t n = dl.shape[nd - 1];
  const Layout& al = g.a->layout;
  const int64_t k = al.shape[al.shape.size() - (g.ta ? 2 : 1)];
  // Magnitudes from the inputs before the call (C may be D).
  std::vector<double> mag;
  for (int64_t bi = 0; bi < batch; ++bi) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t kk = 0; kk < k; ++kk) {
          const double av = g.ta ? g.a->at(bi, kk, i) : g.a->at(bi, i, kk);
          const double bv = g.linear ? g.b->at(0, j, kk)
                            : g.tb   ? g.b->at(bi, j, kk)
                                     : g.b->at(bi, kk, j);
          s += std::fabs(av * bv);
        }
        s *= std::fabs(static_cast<double>(g.alpha));
        if (g.c != nullptr) s += std::fabs(static_cast<double>(g.beta) * g.c->at(bi, i, j));
        if (g.bias != nullptr) s += std::fabs(g.bias->at(0, 0, j));
        mag.push_back(s);
      }
    }
  }
  for (int side = 0; side < 2; ++side) {
    dsk_context* ctx = side == 0 ? env.cpu.get() : env.gpu.get();
    Tensor a = side == 0 ? g.a->cpu() : g.a->gpu();
    Tensor b = side == 0 ? g.b->cpu() : g.b->gpu();
    Tensor d = side == 0 ? g.d->cpu() : g.d->gpu();
    Tensor c;
    if (g.c != nullptr) c = side == 0 ? g.c->cpu() : g.c->gpu();
    Tensor bias;
    if (g.bias != nullptr) bias = side == 0 ? g.bias->cpu() : g.bias->gpu();
    if (g.linear) {
      DSK_REQUIRE_OK(dsk_linear(ctx, a.dl(), b.dl(), g.bias ? bias.dl() : nullptr, d.dl()));
    } else {
      DSK_REQUIRE_OK(dsk_gemm(ctx, a.dl(), b.dl(), g.c ? c.dl() : nullptr, d.dl(), g.ta ? 1 : 0,
                              g.tb ? 1 : 0, g.alpha, g.beta));
    }
  }
  Tensor gpu_host = create(env.cpu.get(), {g.d->gpu_base.numel()}, g.d->dtype);
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), g.d->gpu_base.dl(), gpu_host.dl()));
  const std::vector<float> got = read_f32(env, gpu_host.dl());
  const std::vector<float> want = read_f32(env, g.d->cpu_base.dl());
  const double u = std::ldexp(1.0, -24);
  int failures = 0;
  size_t idx = 0;
  for (int64_t bi = 0; bi < batch; ++bi) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j, ++idx) {
        const size_t o = static_cast<size_t>(g.d->index(bi, i, j));
        double tol = 2.0 * std::max(1e-5, static_cast<double>(k + 3) * u) * mag[idx];
        if (g.d->dtype != DSK_DTYPE_F32) tol += ulp(std::fabs(want[o]), g.d->dtype);
        const double diff = std::fabs(static_cast<double>(got[o]) - want[o]);
        if (!(diff <= tol) && failures++ < 5) {
          FAIL_CHECK("D[" << bi << ", " << i << ", " << j << "]: cuda " << got[o] << ", cpu "
                          << want[o] << ", tolerance " << tol);
        }
      }
    }
  }
  CHECK(failures == 0);
  // Elements outside the view (padding) are untouched on both sides.
  for (size_t o = 0; o < got.size(); ++o) {
    if (std::isnan(got[o]) && std::isnan(want[o])) continue;
    if (got[o] != want[o] && failures++ < 5) {
      bool inside = false;
      for (int64_t bi = 0; bi < batch && !inside; ++bi) {
        for (int64_t i = 0; i < m && !inside; ++i) {
          for (int64_t j = 0; j < n && !inside; ++j) inside = g.d->index(bi, i, j) == int64_t(o);
        }
      }
      if (!inside) FAIL_CHECK("element " << o << " outside D's view changed");
    }
  }
}

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda gemm every dtype combination, transposes, with and without C") {
    Env env;
    const int64_t m = 37, n = 45, k = 70;
    uint64_t seed = 1;
    for (int32_t ab : kGemmFloats) {
      for (int32_t cd : kGemmFloats) {
        for (int t = 0; t < 4; ++t) {
          for (bool with_c : {false, true}) {
            const bool ta = (t & 1) != 0, tb = (t & 2) != 0;
            CAPTURE(dtype_name(ab));
            CAPTURE(dtype_name(cd));
            CAPTURE(ta);
            CAPTURE(tb);
            CAPTURE(with_c);
            Operand a = make_operand(
                env, ab, row_major(ta ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k}),
                seed++);
            Operand b = make_operand(
                env, ab, row_major(tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}),
                seed++);
            Operand c = make_operand(env, cd, row_major({m, n}), seed++);
            Operand d = make_operand(env, cd, row_major({m, n}), seed++);
            Gemm g;
            g.a = &a;
            g.b = &b;
            g.c = with_c ? &c : nullptr;
            g.d = &d;
            g.ta = ta;
            g.tb = tb;
            g.alpha = 1.25f;
            g.beta = with_c ? -0.5f : 0.0f;
            check(env, g);
          }
        }
      }
    }
  }

  TEST_CASE("cuda gemm strided, padded, transposed and misaligned views") {
    Env env;
    const int64_t m = 33, n = 20, k = 50;
    for (int32_t ab : kGemmFloats) {
      for (int32_t dd : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
        CAPTURE(dtype_name(ab));
        CAPTURE(dtype_name(dd));
        // A column-major with padding; B with no unit stride (copied first); C column-major;
        // D row-major padded, then column-major, then with no unit stride, then offset by one
        // element (misaligned for vector loads).
        Operand a = make_operand(env, ab, Layout{{m, k}, {1, m + 3}, 0}, 11);
        Operand b = make_operand(env, ab, Layout{{k, n}, {2 * n + 4, 2}, 1}, 12);
        Operand c = make_operand(env, dd, column_major({m, n}), 13);
        const Layout dls[] = {Layout{{m, n}, {n + 8, 1}, 0}, column_major({m, n}),
                              Layout{{m, n}, {2, 2 * m + 2}, 0}, Layout{{m, n}, {n, 1}, 1}};
        for (const Layout& dl : dls) {
          CAPTURE(describe(dl));
          Operand d = make_operand(env, dd, dl, 14);
          Gemm g;
          g.a = &a;
          g.b = &b;
          g.c = &c;
          g.d = &d;
          g.alpha = -1.0f;
          g.beta = 2.0f;
          check(env, g);
        }
      }
    }
  }

  TEST_CASE("cuda gemm batched, broadcast, strided batches and C == D") {
    Env env;
    const int64_t bs = 3, m = 17, n = 24, k = 40;
    for (int32_t ab : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
      for (int32_t dd : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
        CAPTURE(dtype_name(ab));
        CAPTURE(dtype_name(dd));
        Operand a = make_operand(env, ab, row_major({bs, m, k}), 21);
        Operand b = make_operand(env, ab, row_major({bs, k, n}), 22);
        Operand a2 = make_operand(env, ab, row_major({m, k}), 23);
        Operand b2 = make_operand(env, ab, row_major({k, n}), 24);
        // A stored [M, batch, K] viewed as [batch, M, K].
        Operand ap = make_operand(env, ab, Layout{{bs, m, k}, {k, bs * k, 1}, 0}, 25);
        Operand c = make_operand(env, dd, row_major({bs, m, n}), 26);
        Operand d = make_operand(env, dd, row_major({bs, m, n}), 27);
        Gemm g;
        g.d = &d;
        g.c = &c;
        g.beta = 0.5f;
        const std::pair<Operand*, Operand*> pairs[] = {
            {&a, &b}, {&a, &b2}, {&a2, &b}, {&a2, &b2}, {&ap, &b}};
        for (const auto& pr : pairs) {
          g.a = pr.first;
          g.b = pr.second;
          check(env, g);
        }
        // In place: D = alpha * A @ B + beta * D.
        g.a = &a;
        g.b = &b;
        g.c = &d;
        g.beta = -1.5f;
        check(env, g);
      }
    }
  }

  TEST_CASE("cuda gemm K == 0 and empty outputs") {
    Env env;
    for (int32_t dd : kGemmFloats) {
      CAPTURE(dtype_name(dd));
      Operand a = make_operand(env, DSK_DTYPE_F32, row_major({5, 0}), 31);
      Operand b = make_operand(env, DSK_DTYPE_F32, row_major({0, 6}), 32);
      Operand c = make_operand(env, dd, row_major({5, 6}), 33);
      Operand d = make_operand(env, dd, row_major({5, 6}), 34);
      Gemm g;
      g.a = &a;
      g.b = &b;
      g.c = &c;
      g.d = &d;
      g.beta = 3.0f;
      check(env, g);
      g.c = nullptr;
      check(env, g);
    }
    Operand a = make_operand(env, DSK_DTYPE_F32, row_major({0, 4}), 35);
    Operand b = make_operand(env, DSK_DTYPE_F32, row_major({4, 6}), 36);
    Operand d = make_operand(env, DSK_DTYPE_F32, row_major({0, 6}), 37);
    Gemm g;
    g.a = &a;
    g.b = &b;
    g.d = &d;
    check(env, g);
  }

  TEST_CASE("cuda linear with and without bias on [B, S, in] inputs") {
    Env env;
    const int64_t bs = 2, seq = 5, in = 96, out = 72;
    for (int32_t xw : kGemmFloats) {
      for (int32_t yd : kGemmFloats) {
        for (int bias_kind = 0; bias_kind < 4; ++bias_kind) {  // none, f32, y's dtype, strided
          CAPTURE(dtype_name(xw));
          CAPTURE(dtype_name(yd));
          CAPTURE(bias_kind);
          Operand x = make_operand(env, xw, row_major({bs, seq, in}), 41);
          Operand w = make_operand(env, xw, row_major({out, in}), 42);
          const int32_t bd = bias_kind == 1 ? DSK_DTYPE_F32 : yd;
          Operand bias =
              make_operand(env, bd, bias_kind == 3 ? Layout{{out}, {2}, 1} : row_major({out}), 43);
          Operand y = make_operand(env, yd, row_major({bs, seq, out}), 44);
          // Compared as [B, S, in] @ w^T per batch.
          Gemm g;
          g.a = &x;
          g.b = &w;
          g.d = &y;
          g.linear = true;
          g.bias = bias_kind ? &bias : nullptr;
          check(env, g);
        }
      }
    }
  }
}

}  // namespace
}  // namespace dsk_test
