// The row-wise CPU ops split their rows over threads (lib/cpu/parallel.h); rows are independent, so
// every result must be the same bytes whatever DSK_NUM_THREADS says. Each op runs with 1 and with 3
// threads on shapes large enough for 3 workers, and the outputs are compared byte for byte.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using dsk_test::Borrowed;
using dsk_test::CpuContext;

// Random bytes that read as floats of moderate size for f32/bf16 (sign, exponent in [-8, 7]).
std::vector<uint8_t> random_floats(int32_t dtype_id, int64_t n, uint32_t seed) {
  const int64_t es = dtype_id == DSK_DTYPE_F32 ? 4 : 2;
  std::vector<uint8_t> out(static_cast<size_t>(n * es));
  uint32_t s = seed * 2654435761u + 1u;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    const uint32_t sign = s & 0x80000000u;
    const uint32_t exponent = 119u + ((s >> 23) & 15u);
    uint32_t bits = sign | (exponent << 23) | ((s >> 7) & 0x007FFFFFu);
    if (es == 4) {
      std::memcpy(out.data() + i * 4, &bits, 4);
    } else {
      const auto h = static_cast<uint16_t>(bits >> 16);
      std::memcpy(out.data() + i * 2, &h, 2);
    }
  }
  return out;
}

// Runs `op` (which writes into the buffers it is given, freshly zeroed) with 1 and 3 threads and
// checks that each output buffer has the same bytes.
void same_bytes_for_threads(
    std::vector<size_t> out_sizes,
    const std::function<dsk_status(std::vector<std::vector<uint8_t>>&)>& op) {
  std::vector<std::vector<std::vector<uint8_t>>> results;
  for (const char* n : {"1", "3"}) {
    dsk_test::Threads t(n);
    std::vector<std::vector<uint8_t>> outs;
    for (size_t s : out_sizes) outs.emplace_back(s, uint8_t{0});
    REQUIRE_MESSAGE(op(outs) == DSK_OK, dsk_last_error_message());
    results.push_back(std::move(outs));
  }
  for (size_t i = 0; i < out_sizes.size(); ++i) {
    CAPTURE(i);
    CHECK(results[0][i] == results[1][i]);
  }
}

}  // namespace

TEST_CASE("ops.parallel rmsnorm and add_rmsnorm give the same bytes for 1 and 3 threads") {
  CpuContext ctx;
  const int64_t t = 40, d = 7168;
  auto x = random_floats(DSK_DTYPE_BF16, t * d, 1);
  auto r = random_floats(DSK_DTYPE_BF16, t * d, 2);
  auto w = random_floats(DSK_DTYPE_BF16, d, 3);
  Borrowed xv(x.data(), {t, d}, DSK_DTYPE_BF16);
  Borrowed rv(r.data(), {t, d}, DSK_DTYPE_BF16);
  Borrowed wv(w.data(), {d}, DSK_DTYPE_BF16);
  same_bytes_for_threads({static_cast<size_t>(t * d * 2)}, [&](auto& outs) {
    Borrowed yv(outs[0].data(), {t, d}, DSK_DTYPE_BF16);
    return dsk_rmsnorm(ctx, &xv.dl, &wv.dl, &yv.dl, 1e-6f);
  });
  same_bytes_for_threads(
      {static_cast<size_t>(t * d * 4), static_cast<size_t>(t * d * 4)}, [&](auto& outs) {
        Borrowed yv(outs[0].data(), {t, d}, DSK_DTYPE_F32);
        Borrowed rov(outs[1].data(), {t, d}, DSK_DTYPE_F32);
        return dsk_add_rmsnorm(ctx, &xv.dl, &rv.dl, &wv.dl, &yv.dl, &rov.dl, 1e-6f);
      });
}

TEST_CASE("ops.parallel swiglu gives the same bytes for 1 and 3 threads") {
  CpuContext ctx;
  const int64_t t = 64, n = 4096;
  auto g = random_floats(DSK_DTYPE_F32, t * n, 4);
  auto u = random_floats(DSK_DTYPE_F32, t * n, 5);
  auto gu = random_floats(DSK_DTYPE_BF16, t * 2 * n, 6);
  Borrowed gv(g.data(), {t, n}, DSK_DTYPE_F32);
  Borrowed uv(u.data(), {t, n}, DSK_DTYPE_F32);
  Borrowed guv(gu.data(), {t, 2 * n}, DSK_DTYPE_BF16);
  same_bytes_for_threads({static_cast<size_t>(t * n * 4)}, [&](auto& outs) {
    Borrowed yv(outs[0].data(), {t, n}, DSK_DTYPE_F32);
    return dsk_swiglu(ctx, &gv.dl, &uv.dl, &yv.dl);
  });
  same_bytes_for_threads({static_cast<size_t>(t * n * 2)}, [&](auto& outs) {
    Borrowed yv(outs[0].data(), {t, n}, DSK_DTYPE_BF16);
    return dsk_swiglu_fused(ctx, &guv.dl, &yv.dl);
  });
}

TEST_CASE("ops.parallel rope gives the same bytes for 1 and 3 threads") {
  CpuContext ctx;
  const int64_t t = 64, h = 16, d = 128, p = 80;
  auto x = random_floats(DSK_DTYPE_BF16, t * h * d, 7);
  auto c = random_floats(DSK_DTYPE_F32, p * d / 2, 8);
  auto s = random_floats(DSK_DTYPE_F32, p * d / 2, 9);
  std::vector<int32_t> pos(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37) % p);
  Borrowed xv(x.data(), {t, h, d}, DSK_DTYPE_BF16);
  Borrowed cv(c.data(), {p, d / 2}, DSK_DTYPE_F32);
  Borrowed sv(s.data(), {p, d / 2}, DSK_DTYPE_F32);
  Borrowed pv(pos.data(), {t}, DSK_DTYPE_INT32);
  for (int32_t layout : {DSK_ROPE_INTERLEAVED, DSK_ROPE_HALF_SPLIT}) {
    CAPTURE(layout);
    same_bytes_for_threads({static_cast<size_t>(t * h * d * 2)}, [&](auto& outs) {
      Borrowed yv(outs[0].data(), {t, h, d}, DSK_DTYPE_BF16);
      return dsk_rope_apply(ctx, &xv.dl, &pv.dl, &cv.dl, &sv.dl, &yv.dl, layout);
    });
  }
}

TEST_CASE("ops.parallel softmax gives the same bytes for 1 and 3 threads") {
  CpuContext ctx;
  // 64 rows split over threads; 2 rows split within each row.
  for (int64_t t : {int64_t{64}, int64_t{2}}) {
    CAPTURE(t);
    const int64_t n = 40000;
    auto x = random_floats(DSK_DTYPE_F32, t * n, 10);
    Borrowed xv(x.data(), {t, n}, DSK_DTYPE_F32);
    same_bytes_for_threads({static_cast<size_t>(t * n * 2)}, [&](auto& outs) {
      Borrowed yv(outs[0].data(), {t, n}, DSK_DTYPE_BF16);
      return dsk_softmax(ctx, &xv.dl, &yv.dl, 0.7f);
    });
    same_bytes_for_threads({static_cast<size_t>(t * n * 4)}, [&](auto& outs) {
      Borrowed yv(outs[0].data(), {t, n}, DSK_DTYPE_F32);
      return dsk_log_softmax(ctx, &xv.dl, &yv.dl, 1.0f);
    });
  }
}

TEST_CASE("ops.parallel fp8 quantization gives the same bytes for 1 and 3 threads") {
  CpuContext ctx;
  const int64_t t = 64, k = 7168;
  auto x = random_floats(DSK_DTYPE_BF16, t * k, 11);
  Borrowed xv(x.data(), {t, k}, DSK_DTYPE_BF16);
  const int64_t kb = k / 128;
  for (uint32_t flags : {0u, DSK_QUANT_SCALE_POW2}) {
    CAPTURE(flags);
    same_bytes_for_threads({static_cast<size_t>(t * k), static_cast<size_t>(t * kb * 4),
                            static_cast<size_t>(t * k * 2)},
                           [&](auto& outs) {
                             Borrowed qv(outs[0].data(), {t, k}, DSK_DTYPE_FP8_E4M3FN);
                             Borrowed sv(outs[1].data(), {t, kb}, DSK_DTYPE_F32);
                             Borrowed yv(outs[2].data(), {t, k}, DSK_DTYPE_BF16);
                             dsk_status st = dsk_quant_fp8_act(ctx, &xv.dl, &qv.dl, &sv.dl, flags);
                             if (st != DSK_OK) return st;
                             return dsk_dequant_fp8_act(ctx, &qv.dl, &sv.dl, &yv.dl);
                           });
  }
  const int64_t n = 500, kw = 1000;  // partial blocks on both edges
  auto w = random_floats(DSK_DTYPE_F32, n * kw, 12);
  Borrowed wv(w.data(), {n, kw}, DSK_DTYPE_F32);
  const int64_t nb = (n + 127) / 128, kwb = (kw + 127) / 128;
  same_bytes_for_threads({static_cast<size_t>(n * kw), static_cast<size_t>(nb * kwb * 4),
                          static_cast<size_t>(n * kw * 4)},
                         [&](auto& outs) {
                           Borrowed qv(outs[0].data(), {n, kw}, DSK_DTYPE_FP8_E4M3FN);
                           Borrowed sv(outs[1].data(), {nb, kwb}, DSK_DTYPE_F32);
                           Borrowed yv(outs[2].data(), {n, kw}, DSK_DTYPE_F32);
                           dsk_status st = dsk_quant_fp8_weight(ctx, &wv.dl, &qv.dl, &sv.dl, 0u);
                           if (st != DSK_OK) return st;
                           return dsk_dequant_fp8_weight(ctx, &qv.dl, &sv.dl, &yv.dl);
                         });
}

TEST_CASE("ops.parallel fp8 quantization names the first non-finite element with 3 threads") {
  CpuContext ctx;
  const int64_t t = 64, k = 4096;
  auto x = random_floats(DSK_DTYPE_F32, t * k, 13);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Non-finite elements in the shares of the second and third threads: the second one is named.
  std::memcpy(x.data() + (40 * k + 5) * 4, &nan, 4);
  std::memcpy(x.data() + (30 * k + 7) * 4, &nan, 4);
  Borrowed xv(x.data(), {t, k}, DSK_DTYPE_F32);
  std::vector<uint8_t> q(static_cast<size_t>(t * k));
  std::vector<float> s(static_cast<size_t>(t * k / 128));
  Borrowed qv(q.data(), {t, k}, DSK_DTYPE_FP8_E4M3FN);
  Borrowed sv(s.data(), {t, k / 128}, DSK_DTYPE_F32);
  dsk_test::Threads threads("3");
  dsk_test::expect_error(dsk_quant_fp8_act(ctx, &xv.dl, &qv.dl, &sv.dl, 0u),
                         DSK_ERR_INVALID_ARGUMENT, {"x[30, 7]"});
}

TEST_CASE("ops.parallel embedding gives the same bytes for 1 and 3 threads") {
  CpuContext ctx;
  const int64_t v = 100, d = 7168, t = 64;
  auto table = random_floats(DSK_DTYPE_BF16, v * d, 14);
  std::vector<int64_t> ids(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) ids[static_cast<size_t>(i)] = (i * 53) % v;
  Borrowed tv(table.data(), {v, d}, DSK_DTYPE_BF16);
  Borrowed iv(ids.data(), {t}, DSK_DTYPE_INT64);
  same_bytes_for_threads({static_cast<size_t>(t * d * 4)}, [&](auto& outs) {
    Borrowed ov(outs[0].data(), {t, d}, DSK_DTYPE_F32);
    return dsk_embedding(ctx, &tv.dl, &iv.dl, &ov.dl);
  });
}
