// dsk_gemm / dsk_linear on the CPU backend: a row's result is the same bits whatever else is in
// the call (other rows, other columns, batch entries) and however many threads run it — the
// batch invariance design.md asks of every op. The values themselves are checked against a
// double-precision reference in test_ops_gemm.cpp; here only equality matters.
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "ops_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using dsk_test::CpuContext;
using dsk_test::Threads;
using ops_test::dtype_name;
using ops_test::kFloats;

size_t elem_size(int32_t dtype_id) { return dtype_id == DSK_DTYPE_F32 ? 4 : 2; }

// n random values in [-1, 1] stored as dtype_id.
std::vector<uint8_t> random_bytes(dsk_context* ctx, int32_t dtype_id, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(n));
  for (float& v : f) v = dist(rng);
  std::vector<uint8_t> out(static_cast<size_t>(n) * elem_size(dtype_id));
  Borrowed src(f.data(), {n}, DSK_DTYPE_F32);
  Borrowed dst(out.data(), {n}, dtype_id);
  REQUIRE(dsk_copy(ctx, &src, &dst) == DSK_OK);
  return out;
}

// A [M, K] row-major; B either [N, K] (a linear layer's weight, trans_b) or [K, N]. D = A @ B
// (+ 0.5 C) in f32 for rows [r0, r0 + nr) and columns [c0, c0 + nc).
struct Problem {
  int32_t dtype;
  int64_t m, n, k;
  bool trans_b;
  std::vector<uint8_t> a, b, c;

  std::vector<float> run(dsk_context* ctx, int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
    const size_t es = elem_size(dtype);
    Borrowed at(a.data() + static_cast<size_t>(r0 * k) * es, {nr, k}, dtype, {k, 1});
    const int64_t boff = trans_b ? c0 * k : c0;
    Borrowed bt(b.data() + static_cast<size_t>(boff) * es,
                trans_b ? std::vector<int64_t>{nc, k} : std::vector<int64_t>{k, nc}, dtype,
                trans_b ? std::vector<int64_t>{k, 1} : std::vector<int64_t>{n, 1});
    Borrowed ct(c.data() + static_cast<size_t>(r0 * n + c0) * 4, {nr, nc}, DSK_DTYPE_F32, {n, 1});
    std::vector<float> d(static_cast<size_t>(nr * nc));
    Borrowed dt(d.data(), {nr, nc}, DSK_DTYPE_F32);
    REQUIRE(dsk_gemm(ctx, &at, &bt, &ct, &dt, 0, trans_b ? 1 : 0, 1.0f, 0.5f) == DSK_OK);
    return d;
  }
};

// Row i of `part` (columns [0, nc)) equals row r0 + i of `full` (columns [c0, c0 + nc)).
void check_rows(const std::vector<float>& full, int64_t n, const std::vector<float>& part,
                int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
  int64_t diff = 0;
  for (int64_t i = 0; i < nr; ++i) {
    for (int64_t j = 0; j < nc; ++j) {
      const float x = full[static_cast<size_t>((r0 + i) * n + c0 + j)];
      const float y = part[static_cast<size_t>(i * nc + j)];
      if (std::memcmp(&x, &y, sizeof(float)) != 0) ++diff;
    }
  }
  CHECK_MESSAGE(diff == 0, diff << " elements of rows " << r0 << ".." << r0 + nr - 1
                                << " differ from the full call");
}

TEST_CASE("ops.gemm a row's bits do not depend on the other rows, the columns or the threads") {
  CpuContext ctx;
  for (int32_t dt : kFloats) {
    // K across the 16-lane tail, one k block (256) and several.
    for (int64_t k : {1, 15, 37, 256, 300, 700}) {
      for (bool trans_b : {true, false}) {
        CAPTURE(dtype_name(dt));
        CAPTURE(k);
        CAPTURE(trans_b);
        Problem p{dt, 67, 70, k, trans_b, {}, {}, {}};
        p.a = random_bytes(ctx, dt, p.m * k, 11);
        p.b = random_bytes(ctx, dt, p.n * k, 12);
        p.c = random_bytes(ctx, DSK_DTYPE_F32, p.m * p.n, 13);
        std::vector<float> full;
        {
          Threads t("2");
          full = p.run(ctx, 0, p.m, 0, p.n);
        }
        Threads t("1");
        for (int64_t r : {0, 5, 33, 66})
          check_rows(full, p.n, p.run(ctx, r, 1, 0, p.n), r, 1, 0, p.n);
        check_rows(full, p.n, p.run(ctx, 3, 6, 0, p.n), 3, 6, 0, p.n);
        check_rows(full, p.n, p.run(ctx, 0, p.m, 7, 20), 0, p.m, 7, 20);
        check_rows(full, p.n, p.run(ctx, 60, 7, 69, 1), 60, 7, 69, 1);
      }
    }
  }
}

TEST_CASE("ops.linear a request's rows are the same bits alone and in a batch") {
  CpuContext ctx;
  for (int32_t dt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
    CAPTURE(dtype_name(dt));
    const int64_t batch = 3, seq = 5, in = 300, out = 40;
    std::vector<uint8_t> x = random_bytes(ctx, dt, batch * seq * in, 21);
    std::vector<uint8_t> w = random_bytes(ctx, dt, out * in, 22);
    std::vector<uint8_t> bias = random_bytes(ctx, dt, out, 23);
    Borrowed wt(w.data(), {out, in}, dt);
    Borrowed bt(bias.data(), {out}, dt);
    std::vector<float> all(static_cast<size_t>(batch * seq * out));
    Borrowed xt(x.data(), {batch, seq, in}, dt);
    Borrowed yt(all.data(), {batch, seq, out}, DSK_DTYPE_F32);
    REQUIRE(dsk_linear(ctx, &xt, &wt, &bt, &yt) == DSK_OK);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<float> one(static_cast<size_t>(seq * out));
      Borrowed x1(x.data() + static_cast<size_t>(b * seq * in) * elem_size(dt), {seq, in}, dt);
      Borrowed y1(one.data(), {seq, out}, DSK_DTYPE_F32);
      REQUIRE(dsk_linear(ctx, &x1, &wt, &bt, &y1) == DSK_OK);
      check_rows(all, out, one, b * seq, seq, 0, out);
    }
  }
}

}  // namespace
