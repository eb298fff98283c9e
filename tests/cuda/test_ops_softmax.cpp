// Softmax, log_softmax, argmax, top-k and embedding: CUDA against the CPU reference on the same
// inputs. Softmax within the documented tolerance (docs/ops/softmax.md); top-k, argmax and
// embedding byte for byte.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using dsk_test::create;
using dsk_test::download;
using dsk_test::Env;
using dsk_test::Pair;
using dsk_test::read_f32;
using dsk_test::Tensor;

const int32_t kFloat3[] = {DSK_DTYPE_F32, DSK_DTYPE_F16, DSK_DTYPE_BF16};

Pair upload(const Env& env, Tensor cpu) {
  const DLTensor* dl = cpu.dl();
  Pair p;
  p.gpu = create(env.gpu.get(), std::vector<int64_t>(dl->shape, dl->shape + dl->ndim),
                 dsk_test::dtype_id_of(dl->dtype));
  DSK_REQUIRE_OK(dsk_copy(env.gpu.get(), dl, p.gpu.dl()));
  p.cpu = std::move(cpu);
  return p;
}

// Uniform values in [lo, hi) of dtype_id (dsk_fill_random).
Tensor random_cpu(const Env& env, const std::vector<int64_t>& shape, int32_t dtype_id, float lo,
                  float hi, uint64_t seed) {
  Tensor t = create(env.cpu.get(), shape, dtype_id);
  dsk_random_params p;
  dsk_random_params_init(&p);
  p.distribution = DSK_RANDOM_UNIFORM;
  p.a = lo;
  p.b = hi;
  p.seed = seed;
  DSK_REQUIRE_OK(dsk_fill_random(env.cpu.get(), t.dl(), &p));
  return t;
}

// Softmax tolerance (docs/ops/softmax.md): f32 1e-5 relative (log: absolute, scaled by 1 + |y|);
// a narrow output may differ by one unit in the last place of its dtype.
void check_softmax_close(const Env& env, const Pair& y, int32_t y_dtype, bool is_log) {
  const std::vector<float> want = read_f32(env, y.cpu.dl());
  const std::vector<float> got = read_f32(env, y.gpu.dl());
  REQUIRE(got.size() == want.size());
  const double tol = y_dtype == DSK_DTYPE_BF16  ? 1.0 / 128
                     : y_dtype == DSK_DTYPE_F16 ? 1.0 / 1024
                                                : 1e-5;
  const double floor = y_dtype == DSK_DTYPE_F16 ? 6e-8 : 2.4e-38;
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i];
    const double w = want[i];
    bool ok;
    if (std::isnan(w) || std::isnan(g)) {
      ok = std::isnan(w) && std::isnan(g);
    } else if (std::isinf(w) || std::isinf(g)) {
      ok = g == w;
    } else {
      ok = std::fabs(g - w) <= (is_log ? tol * (1.0 + std::fabs(w)) : tol * std::fabs(w) + floor);
    }
    if (!ok && bad++ < 5) FAIL_CHECK("element " << i << ": cuda " << g << ", cpu " << w);
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_SUITE("cuda_ops") {
  TEST_CASE("cuda.softmax matches the CPU reference") {
    Env env;
    struct Shape {
      int64_t rows;
      int64_t n;
    };
    // Warp rows, 256-thread blocks, 1024-thread blocks (the vocabulary), the gate width.
    const Shape shapes[] = {{5, 7}, {33, 300}, {3, 3000}, {6, 129280}, {64, 256}, {2, 1}};
    for (const Shape& s : shapes) {
      for (int32_t xd : kFloat3) {
        for (int32_t yd : kFloat3) {
          for (bool is_log : {false, true}) {
            for (float temperature : {1.0f, 0.7f}) {
              CAPTURE(s.rows);
              CAPTURE(s.n);
              CAPTURE(xd);
              CAPTURE(yd);
              CAPTURE(is_log);
              CAPTURE(temperature);
              // f32 values with special entries planted, then converted to x's dtype.
              Tensor f = random_cpu(env, {s.rows, s.n}, DSK_DTYPE_F32, -12.0f, 12.0f, 42);
              float* p = reinterpret_cast<float*>(f.host_bytes());
              const float inf = std::numeric_limits<float>::infinity();
              if (s.rows >= 3 && s.n >= 3) {
                p[0] = -inf;                                           // row 0: a -inf entry
                p[s.n + 1] = std::numeric_limits<float>::quiet_NaN();  // row 1: NaN
                p[2 * s.n] = inf;                                      // row 2: +inf
              }
              if (s.rows >= 4) {
                for (int64_t j = 0; j < s.n; ++j) p[3 * s.n + j] = -inf;  // row 3: all -inf
              }
              Tensor xc = create(env.cpu.get(), {s.rows, s.n}, xd);
              DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), f.dl(), xc.dl()));
              Pair x = upload(env, std::move(xc));
              Pair y = outputs(env, {s.rows, s.n}, yd);
              auto op = is_log ? dsk_log_softmax : dsk_softmax;
              DSK_REQUIRE_OK(op(env.cpu.get(), x.cpu.dl(), y.cpu.dl(), temperature));
              DSK_REQUIRE_OK(op(env.gpu.get(), x.gpu.dl(), y.gpu.dl(), temperature));
              check_softmax_close(env, y, yd, is_log);
            }
          }
        }
      }
    }
  }

  TEST_CASE("cuda.softmax strided and in place") {
    Env env;
    Pair base = upload(env, random_cpu(env, {4 * 2 * 700}, DSK_DTYPE_F32, -5.0f, 5.0f, 9));
    // x: [4, 600] rows 1400 apart, columns 2 apart.
    Tensor xc = dsk_test::view(base.cpu, {{4, 600}, {1400, 2}, 3});
    Tensor xg = dsk_test::view(base.gpu, {{4, 600}, {1400, 2}, 3});
    Pair y = outputs(env, {4, 600}, DSK_DTYPE_BF16);
    DSK_REQUIRE_OK(dsk_softmax(env.cpu.get(), xc.dl(), y.cpu.dl(), 1.3f));
    DSK_REQUIRE_OK(dsk_softmax(env.gpu.get(), xg.dl(), y.gpu.dl(), 1.3f));
    check_softmax_close(env, y, DSK_DTYPE_BF16, false);
    // In place on the whole base viewed as [8, 700].
    Tensor ic = dsk_test::view(base.cpu, dsk_test::row_major({8, 700}));
    Tensor ig = dsk_test::view(base.gpu, dsk_test::row_major({8, 700}));
    DSK_REQUIRE_OK(dsk_log_softmax(env.cpu.get(), ic.dl(), ic.dl(), 1.0f));
    DSK_REQUIRE_OK(dsk_log_softmax(env.gpu.get(), ig.dl(), ig.dl(), 1.0f));
    check_softmax_close(env, base, DSK_DTYPE_F32, true);
  }

  TEST_CASE("cuda.topk and argmax equal the CPU reference exactly") {
    Env env;
    struct Case {
      int64_t rows;
      int64_t n;
      int32_t k;
      int32_t x_dtype;
      bool random_bytes;  // NaNs of many payloads, infinities, signed zeros, subnormals
      bool few_values;    // many ties
    };
    const Case cases[] = {
        {4096, 256, 8, DSK_DTYPE_F32, false, false},  // the V3 gate
        {4096, 256, 8, DSK_DTYPE_BF16, false, true},
        {16, 256, 1, DSK_DTYPE_F32, true, false},
        {3, 129280, 1, DSK_DTYPE_F32, false, false},  // argmax over the vocabulary
        {3, 129280, 1, DSK_DTYPE_BF16, false, true},
        {2, 129280, 50, DSK_DTYPE_F32, false, false},
        {2, 129280, 50, DSK_DTYPE_BF16, false, true},
        {1, 129280, 1024, DSK_DTYPE_F16, false, true},
        {1, 129280, 2049, DSK_DTYPE_F32, false, true},  // CUB radix sort path
        {2, 5000, 5000, DSK_DTYPE_F32, true, false},    // k == N, full order
        {7, 3000, 300, DSK_DTYPE_F32, true, false},
        {5, 1, 1, DSK_DTYPE_BF16, false, false},
        {9, 33, 33, DSK_DTYPE_F16, false, true},
    };
    for (const Case& c : cases) {
      for (int32_t index_dtype : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
        for (int32_t values_dtype : {0, DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
          CAPTURE(c.rows);
          CAPTURE(c.n);
          CAPTURE(c.k);
          CAPTURE(c.x_dtype);
          CAPTURE(index_dtype);
          CAPTURE(values_dtype);
          Tensor xc;
          if (c.random_bytes) {
            xc = create(env.cpu.get(), {c.rows, c.n}, c.x_dtype);
            const std::vector<uint8_t> b = dsk_test::random_bytes(xc.nbytes(), 77);
            std::memcpy(xc.host_bytes(), b.data(), b.size());
          } else {
            xc = random_cpu(env, {c.rows, c.n}, c.x_dtype, c.few_values ? -2.0f : -1.0f,
                            c.few_values ? 2.0f : 1.0f, 5);
            if (c.few_values) {
              // Round to quarters: a handful of distinct values, so ties everywhere.
              Tensor f = create(env.cpu.get(), {c.rows, c.n}, DSK_DTYPE_F32);
              DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), xc.dl(), f.dl()));
              float* p = reinterpret_cast<float*>(f.host_bytes());
              for (int64_t i = 0; i < f.numel(); ++i) p[i] = std::round(p[i] * 4.0f) / 4.0f;
              DSK_REQUIRE_OK(dsk_copy(env.cpu.get(), f.dl(), xc.dl()));
            }
          }
          Pair x = upload(env, std::move(xc));
          Pair idx = outputs(env, {c.rows, c.k}, index_dtype);
          Pair vals;
          if (values_dtype != 0) vals = outputs(env, {c.rows, c.k}, values_dtype);
          DSK_REQUIRE_OK(dsk_topk(env.cpu.get(), x.cpu.dl(), c.k,
                                  values_dtype ? vals.cpu.dl() : nullptr, idx.cpu.dl()));
          DSK_REQUIRE_OK(dsk_topk(env.gpu.get(), x.gpu.dl(), c.k,
                                  values_dtype ? vals.gpu.dl() : nullptr, idx.gpu.dl()));
          dsk_test::check_same_bytes(env, idx, "indices");
          if (values_dtype != 0) dsk_test::check_same_bytes(env, vals, "values");
          if (c.k == 1 && values_dtype == 0) {
            Pair am = outputs(env, {c.rows}, index_dtype);
            DSK_REQUIRE_OK(dsk_argmax(env.cpu.get(), x.cpu.dl(), am.cpu.dl()));
            DSK_REQUIRE_OK(dsk_argmax(env.gpu.get(), x.gpu.dl(), am.gpu.dl()));
            dsk_test::check_same_bytes(env, am, "argmax");
          }
        }
      }
    }
  }

  TEST_CASE("cuda.topk strided rows") {
    Env env;
    Tensor bc = create(env.cpu.get(), {6 * 1000}, DSK_DTYPE_F32);
    const std::vector<uint8_t> b = dsk_test::random_bytes(bc.nbytes(), 3);
    std::memcpy(bc.host_bytes(), b.data(), b.size());
    Pair base = upload(env, std::move(bc));
    // x [3, 400]: rows 2000 apart, columns 3 apart.
    const dsk_test::Layout l{{3, 400}, {2000, 3}, 1};
    Tensor xc = dsk_test::view(base.cpu, l);
    Tensor xg = dsk_test::view(base.gpu, l);
    for (int32_t k : {1, 7, 400}) {
      CAPTURE(k);
      Pair idx = outputs(env, {3, k}, DSK_DTYPE_INT64);
      Pair vals = outputs(env, {3, k}, DSK_DTYPE_F16);
      DSK_REQUIRE_OK(dsk_topk(env.cpu.get(), xc.dl(), k, vals.cpu.dl(), idx.cpu.dl()));
      DSK_REQUIRE_OK(dsk_topk(env.gpu.get(), xg.dl(), k, vals.gpu.dl(), idx.gpu.dl()));
      dsk_test::check_same_bytes(env, idx, "indices");
      dsk_test::check_same_bytes(env, vals, "values");
    }
  }

  TEST_CASE("cuda.embedding equals the CPU reference exactly") {
    Env env;
    const int64_t v = 129280;
    const int64_t d = 24;
    for (int32_t td : kFloat3) {
      Pair table = upload(env, random_cpu(env, {v, d}, td, -3.0f, 3.0f, 1));
      for (int32_t od : kFloat3) {
        for (int32_t id_dtype : {DSK_DTYPE_INT32, DSK_DTYPE_INT64}) {
          CAPTURE(td);
          CAPTURE(od);
          CAPTURE(id_dtype);
          Tensor ic = create(env.cpu.get(), {4, 33}, id_dtype);
          for (int64_t i = 0; i < 132; ++i) {
            const int64_t id = (i * 7919 + 13) % v;
            if (id_dtype == DSK_DTYPE_INT32) {
              const auto v32 = static_cast<int32_t>(id);
              std::memcpy(ic.host_bytes() + i * 4, &v32, 4);
            } else {
              std::memcpy(ic.host_bytes() + i * 8, &id, 8);
            }
          }
          Pair ids = upload(env, std::move(ic));
          Pair out = outputs(env, {4, 33, d}, od);
          DSK_REQUIRE_OK(dsk_embedding(env.cpu.get(), table.cpu.dl(), ids.cpu.dl(), out.cpu.dl()));
          DSK_REQUIRE_OK(dsk_embedding(env.gpu.get(), table.gpu.dl(), ids.gpu.dl(), out.gpu.dl()));
          dsk_test::check_same_bytes(env, out, "out");
        }
      }
      // Strided table rows ([V/2, d] taking every other row, columns 1..d-1) into strided out.
      const dsk_test::Layout tl{{v / 2, d - 1}, {2 * d, 1}, 1};
      Tensor tc = dsk_test::view(table.cpu, tl);
      Tensor tg = dsk_test::view(table.gpu, tl);
      Tensor ic = create(env.cpu.get(), {5}, DSK_DTYPE_INT64);
      const int64_t picks[5] = {0, v / 2 - 1, 17, 17, 1000};
      std::memcpy(ic.host_bytes(), picks, sizeof(picks));
      Pair ids = upload(env, std::move(ic));
      Pair obase = outputs(env, {5 * 40}, DSK_DTYPE_F32);
      // The whole base is compared, padding included: give both sides the same filler (outputs()
      // fills them differently to catch unwritten elements, which the view's values still do).
      DSK_REQUIRE_OK(dsk_fill(env.gpu.get(), obase.gpu.dl(), 7.0));
      const dsk_test::Layout ol{{5, d - 1}, {40, 1}, 0};
      Tensor oc = dsk_test::view(obase.cpu, ol);
      Tensor og = dsk_test::view(obase.gpu, ol);
      DSK_REQUIRE_OK(dsk_embedding(env.cpu.get(), tc.dl(), ids.cpu.dl(), oc.dl()));
      DSK_REQUIRE_OK(dsk_embedding(env.gpu.get(), tg.dl(), ids.gpu.dl(), og.dl()));
      dsk_test::check_same_bytes(env, obase, "strided out");
    }
  }

  TEST_CASE("cuda.embedding rejects out of range ids, naming them") {
    Env env;
    Pair table = upload(env, random_cpu(env, {100, 16}, DSK_DTYPE_BF16, -1.0f, 1.0f, 2));
    for (int64_t bad : {int64_t{-5}, int64_t{100}}) {
      Tensor ic = create(env.cpu.get(), {6}, DSK_DTYPE_INT64);
      const int64_t ids_v[6] = {1, 2, 3, bad, 4, bad};
      std::memcpy(ic.host_bytes(), ids_v, sizeof(ids_v));
      Pair ids = upload(env, std::move(ic));
      Pair out = outputs(env, {6, 16}, DSK_DTYPE_BF16);
      const dsk_status st =
          dsk_embedding(env.gpu.get(), table.gpu.dl(), ids.gpu.dl(), out.gpu.dl());
      CHECK(st == DSK_ERR_INVALID_ARGUMENT);
      const std::string message = dsk_last_error_message();
      const std::string want = "ids[3] = " + std::to_string(bad);
      CHECK_MESSAGE(message.find(want) != std::string::npos, message);
      // The context keeps working.
      Pair ok = outputs(env, {6, 16}, DSK_DTYPE_BF16);
      Tensor good = create(env.cpu.get(), {6}, DSK_DTYPE_INT64);
      std::memset(good.host_bytes(), 0, good.nbytes());
      Pair gids = upload(env, std::move(good));
      DSK_REQUIRE_OK(dsk_embedding(env.gpu.get(), table.gpu.dl(), gids.gpu.dl(), ok.gpu.dl()));
    }
  }
}
