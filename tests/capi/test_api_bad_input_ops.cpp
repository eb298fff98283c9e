// Bad-input sweep (sweep_test_util.h) over the core ops of dsk_ops.h: every tensor argument of
// every op, broken one way at a time, must give an error naming it, and never a crash.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "sweep_test_util.h"

using sweep::Case;
using sweep::Expect;

namespace {

constexpr int32_t kF32 = DSK_DTYPE_F32, kF16 = DSK_DTYPE_F16, kBF16 = DSK_DTYPE_BF16,
                  kFP8 = DSK_DTYPE_FP8_E4M3FN, kI32 = DSK_DTYPE_INT32, kI64 = DSK_DTYPE_INT64;

}  // namespace

TEST_CASE("bad input sweep: dsk_gemm") {
  Case c("dsk_gemm");
  const int a = c.in("a", {3, 5}, kF32), b = c.in("b", {5, 4}, kF32),
            cc = c.opt_in("c", {3, 4}, kBF16), d = c.out("d", {3, 4}, kBF16);
  c.call = [&] { return dsk_gemm(c.ctx, c[a], c[b], c[cc], c[d], 0, 0, 1.0f, 1.0f); };
  // A 3-D D broadcasts the 2-D A and B; the header does not say whether a 2-D C broadcasts too.
  c.expect(d, sweep::kExtraDim, Expect::kAny);
  c.run();
}

TEST_CASE("bad input sweep: dsk_linear") {
  Case c("dsk_linear");
  const int x = c.in("x", {3, 5}, kBF16), w = c.in("w", {4, 5}, kBF16),
            bias = c.opt_in("bias", {4}, kF32), y = c.out("y", {3, 4}, kF32);
  c.call = [&] { return dsk_linear(c.ctx, c[x], c[w], c[bias], c[y]); };
  c.run();
}

TEST_CASE("bad input sweep: dsk_quant_fp8_act and dsk_dequant_fp8_act") {
  {
    Case c("dsk_quant_fp8_act");
    const int x = c.in("x", {2, 200}, kBF16), q = c.out("q", {2, 200}, kFP8),
              s = c.out("scales", {2, 2}, kF32);
    c.call = [&] { return dsk_quant_fp8_act(c.ctx, c[x], c[q], c[s], 0); };
    c.bad("flags bit 31", {"flags"},
          [&] { return dsk_quant_fp8_act(c.ctx, c[x], c[q], c[s], 1u << 31); });
    c.run();
  }
  {
    Case c("dsk_dequant_fp8_act");
    const int q = c.in("q", {2, 200}, kFP8), s = c.in("scales", {2, 2}, kF32, {1.0}),
              x = c.out("x", {2, 200}, kBF16);
    c.call = [&] { return dsk_dequant_fp8_act(c.ctx, c[q], c[s], c[x]); };
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_quant_fp8_weight and dsk_dequant_fp8_weight") {
  {
    Case c("dsk_quant_fp8_weight");
    const int w = c.in("w", {4, 200}, kF32), q = c.out("q", {4, 200}, kFP8),
              s = c.out("scales", {1, 2}, kF32);
    c.call = [&] { return dsk_quant_fp8_weight(c.ctx, c[w], c[q], c[s], 0); };
    c.bad("flags bit 31", {"flags"},
          [&] { return dsk_quant_fp8_weight(c.ctx, c[w], c[q], c[s], 1u << 31); });
    c.run();
  }
  {
    Case c("dsk_dequant_fp8_weight");
    const int q = c.in("q", {4, 200}, kFP8), s = c.in("scales", {1, 2}, kF32, {1.0}),
              w = c.out("w", {4, 200}, kF16);
    c.call = [&] { return dsk_dequant_fp8_weight(c.ctx, c[q], c[s], c[w]); };
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_linear_fp8") {
  // The pre-quantized form, so that x_scales is present (and required: x is fp8).
  Case c("dsk_linear_fp8");
  const int x = c.in("x", {2, 200}, kFP8), xs = c.in("x_scales", {2, 2}, kF32, {1.0}),
            w = c.in("w", {8, 200}, kFP8), ws = c.in("w_scales", {1, 2}, kF32, {1.0}),
            y = c.out("y", {2, 8}, kBF16);
  c.call = [&] { return dsk_linear_fp8(c.ctx, c[x], c[xs], c[w], c[ws], c[y], 0); };
  c.bad("flags bit 31", {"flags"},
        [&] { return dsk_linear_fp8(c.ctx, c[x], c[xs], c[w], c[ws], c[y], 1u << 31); });
  c.run();
}

// No header asks for aligned elements, so f32 operands one byte off their alignment must give the
// aligned call's bits (and no misaligned float read: the sanitizer build checks alignment):
// dsk_gemm's A and the f32 block scales of an fp8 weight (dsk_linear_fp8; the MLA absorb ops and
// fp8 experts take the same GEMM path).
TEST_CASE("misaligned f32 operands of the CPU GEMM give the aligned results") {
  dsk_test::CpuContext ctx;
  std::vector<float> a(15), b(20, 0.5f), d(12), d_ref(12), x(400, 0.25f), y(16), y_ref(16);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) - 6.5f;
  float scales[2] = {0.5f, 0.25f};
  alignas(16) unsigned char a_mem[15 * 4 + 1] = {}, ws_mem[2 * 4 + 1] = {};
  std::memcpy(a_mem + 1, a.data(), a.size() * 4);
  std::memcpy(ws_mem + 1, scales, sizeof(scales));
  dsk_test::Borrowed am(a_mem + 1, {3, 5}, kF32), aa(a.data(), {3, 5}, kF32),
      bb(b.data(), {5, 4}, kF32), dd(d.data(), {3, 4}, kF32), dr(d_ref.data(), {3, 4}, kF32);
  REQUIRE(dsk_gemm(ctx, &am, &bb, nullptr, &dd, 0, 0, 1.0f, 0.0f) == DSK_OK);
  REQUIRE(dsk_gemm(ctx, &aa, &bb, nullptr, &dr, 0, 0, 1.0f, 0.0f) == DSK_OK);
  CHECK(d == d_ref);
  CHECK(d_ref[0] == 0.5f * (-6.5f - 5.5f - 4.5f - 3.5f - 2.5f));
  std::vector<uint8_t> w(1600, 0x38);  // e4m3fn 1.0
  dsk_test::Borrowed xx(x.data(), {2, 200}, kF32), ww(w.data(), {8, 200}, kFP8),
      wsm(ws_mem + 1, {1, 2}, kF32), ws(scales, {1, 2}, kF32), yy(y.data(), {2, 8}, kF32),
      yr(y_ref.data(), {2, 8}, kF32);
  REQUIRE(dsk_linear_fp8(ctx, &xx, nullptr, &ww, &wsm, &yy, 0) == DSK_OK);
  REQUIRE(dsk_linear_fp8(ctx, &xx, nullptr, &ww, &ws, &yr, 0) == DSK_OK);
  CHECK(y == y_ref);
  CHECK(y_ref[0] == 0.25f * (128 * 0.5f + 72 * 0.25f));
}

TEST_CASE("bad input sweep: dsk_rmsnorm and dsk_add_rmsnorm") {
  {
    Case c("dsk_rmsnorm");
    const int x = c.in("x", {3, 8}, kF32), w = c.in("weight", {8}, kBF16),
              y = c.out("y", {3, 8}, kF16);
    c.call = [&] { return dsk_rmsnorm(c.ctx, c[x], c[w], c[y], 1e-6f); };
    c.run();
  }
  {
    Case c("dsk_add_rmsnorm");
    const int x = c.in("x", {3, 8}, kF32), r = c.in("residual", {3, 8}, kBF16),
              w = c.in("weight", {8}, kF32), y = c.out("y", {3, 8}, kF32),
              ro = c.out("residual_out", {3, 8}, kF32);
    c.call = [&] { return dsk_add_rmsnorm(c.ctx, c[x], c[r], c[w], c[y], c[ro], 1e-6f); };
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_swiglu and dsk_swiglu_fused") {
  {
    Case c("dsk_swiglu");
    const int g = c.in("gate", {3, 8}, kF32), u = c.in("up", {3, 8}, kBF16),
              y = c.out("y", {3, 8}, kF32);
    c.call = [&] { return dsk_swiglu(c.ctx, c[g], c[u], c[y]); };
    c.run();
  }
  {
    Case c("dsk_swiglu_fused");
    const int gu = c.in("gate_up", {3, 16}, kF32), y = c.out("y", {3, 8}, kBF16);
    c.call = [&] { return dsk_swiglu_fused(c.ctx, c[gu], c[y]); };
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_rope_table and dsk_rope_apply") {
  dsk_rope_config config;
  REQUIRE(dsk_rope_config_init(&config) == DSK_OK);
  config.dim = 8;
  {
    Case c("dsk_rope_table");
    const dsk_rope_config* cfg = &config;
    const int cs = c.out("cos", {6, 4}, kF32), sn = c.out("sin", {6, 4}, kF32);
    c.call = [&] { return dsk_rope_table(c.ctx, cfg, c[cs], c[sn]); };
    c.versioned("config", cfg, config);
    c.run();
  }
  {
    Case c("dsk_rope_apply");
    const int x = c.in("x", {3, 2, 8}, kBF16), p = c.in("positions", {3}, kI32, {0, 1, 5}),
              cs = c.in("cos", {6, 4}, kF32), sn = c.in("sin", {6, 4}, kF32),
              y = c.out("y", {3, 2, 8}, kF32);
    c.call = [&] {
      return dsk_rope_apply(c.ctx, c[x], c[p], c[cs], c[sn], c[y], DSK_ROPE_HALF_SPLIT);
    };
    c.bad("layout 2", {"layout"},
          [&] { return dsk_rope_apply(c.ctx, c[x], c[p], c[cs], c[sn], c[y], 2); });
    c.bad("layout -1", {"layout"},
          [&] { return dsk_rope_apply(c.ctx, c[x], c[p], c[cs], c[sn], c[y], -1); });
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_softmax and dsk_log_softmax") {
  for (bool log : {false, true}) {
    Case c(log ? "dsk_log_softmax" : "dsk_softmax");
    const int x = c.in("x", {3, 8}, kBF16), y = c.out("y", {3, 8}, kF32);
    c.call = [&] {
      return log ? dsk_log_softmax(c.ctx, c[x], c[y], 1.0f) : dsk_softmax(c.ctx, c[x], c[y], 1.0f);
    };
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_argmax and dsk_topk") {
  {
    Case c("dsk_argmax");
    const int x = c.in("x", {3, 8}, kF16), i = c.out("indices", {3}, kI64);
    c.call = [&] { return dsk_argmax(c.ctx, c[x], c[i]); };
    // N is x's own: a shorter row is valid, a longer one would be valid over more memory.
    c.expect(x, sweep::kLastMinus1, Expect::kOk);
    c.expect(x, sweep::kLastPlus1, Expect::kSkip);
    c.run();
  }
  {
    Case c("dsk_topk");
    const int x = c.in("x", {3, 8}, kF32), v = c.opt_out("values", {3, 2}, kBF16),
              i = c.out("indices", {3, 2}, kI32);
    c.call = [&] { return dsk_topk(c.ctx, c[x], 2, c[v], c[i]); };
    c.also_named({"k"});
    c.expect(x, sweep::kLastMinus1, Expect::kOk);
    c.expect(x, sweep::kLastPlus1, Expect::kSkip);
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_embedding") {
  Case c("dsk_embedding");
  const int t = c.in("table", {10, 8}, kBF16), ids = c.in("ids", {3}, kI64, {0, 5, 9}),
            o = c.out("out", {3, 8}, kF32);
  c.call = [&] { return dsk_embedding(c.ctx, c[t], c[ids], c[o]); };
  // More table rows than the buffer holds is a valid [V, D] the test cannot back with memory.
  c.expect(t, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
  c.run();
}
