// MoE expert FFN and the whole layer on the CPU (dsk_moe.h): dsk_moe_experts against a dense
// per-expert SwiGLU reference (double precision, written in moe_test_util.h) for f32, bf16 and
// fp8 weights (quantized with dsk_quant_fp8_weight, dequantized here from the e4m3 format), packed
// and block-aligned offsets, rows past offsets[E] untouched, an fp8 x from dsk_moe_permute;
// dsk_moe_forward and plan/run against a dense per-token reference (every token through its k
// experts, weighted, plus the shared experts) for small E with and without groups, softmax and
// sigmoid, with and without shared experts; plan/run with a reserved workspace does not allocate
// and equals dsk_moe_forward bit for bit.
//
// Tolerances (relative to the largest reference value, "scale", plus a relative part):
//   f32 weights and activations: 1e-4 * scale + 1e-4 relative (f32 GEMM accumulation against a
//     double reference over D, I <= 256).
//   bf16: the library rounds gate, up and their product to bf16 (as the reference model), the
//     reference does too, but an f32 GEMM result next to a bf16 rounding boundary may round the
//     other way, moving single intermediates by one bf16 ulp (2^-8 relative): 1e-2 * scale +
//     2^-7 relative.
//   fp8: additionally a flipped fp8 rounding of one input or product element moves it by up to
//     2^-4 relative: 3e-2 * scale + 3e-2 relative.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "moe_test_util.h"
#include "test_util.h"

namespace {

using dsk_test::CpuContext;
using mla_test::Host;
using mla_test::ints;
using mla_test::View;
using moe_test::sz;

struct Tol {
  double atol_frac, rtol;
};

Tol tol_for(int32_t weight_dtype, int32_t act_dtype) {
  if (weight_dtype == DSK_DTYPE_FP8_E4M3FN) return {3e-2, 3e-2};
  if (act_dtype == DSK_DTYPE_BF16 || weight_dtype == DSK_DTYPE_BF16) return {1e-2, 1.0 / 128};
  if (act_dtype == DSK_DTYPE_F16 || weight_dtype == DSK_DTYPE_F16) return {2e-3, 2e-3};
  return {1e-4, 1e-4};
}

// One set of SwiGLU weights: routed ([E, I, D] / [E, D, I]) or shared ([I, D] / [D, I]), in a
// float dtype or fp8 with 128 x 128 block scales, plus the dequantized values the reference uses.
struct Weights {
  int64_t num, inter, hidden;
  bool routed;
  int32_t dtype;
  Host w1, w3, w2, s1, s3, s2;
  std::vector<double> v1, v3, v2;  // what the library multiplies with (dequantized for fp8)
  dsk_moe_expert_weights desc{};

  Weights(dsk_context* ctx, int64_t e, int64_t i, int64_t d, int32_t dt, bool is_routed,
          uint64_t seed)
      : num(e), inter(i), hidden(d), routed(is_routed), dtype(dt) {
    const bool fp8 = dt == DSK_DTYPE_FP8_E4M3FN;
    const int32_t src = fp8 ? DSK_DTYPE_F32 : dt;
    auto shape = [&](int64_t r, int64_t c) {
      return routed ? std::vector<int64_t>{e, r, c} : std::vector<int64_t>{r, c};
    };
    auto blocks = [](int64_t n) { return (n + 127) / 128; };
    Host f1(shape(i, d), src), f3(shape(i, d), src), f2(shape(d, i), src);
    // Scaled so that gate/up outputs and y are O(1).
    f1.fill_random(seed, -2.0 / std::sqrt(double(d)), 2.0 / std::sqrt(double(d)));
    f3.fill_random(seed + 1, -2.0 / std::sqrt(double(d)), 2.0 / std::sqrt(double(d)));
    f2.fill_random(seed + 2, -2.0 / std::sqrt(double(i)), 2.0 / std::sqrt(double(i)));
    if (!fp8) {
      w1 = std::move(f1);
      w3 = std::move(f3);
      w2 = std::move(f2);
      v1 = w1.values();
      v3 = w3.values();
      v2 = w2.values();
    } else {
      w1 = Host(shape(i, d), DSK_DTYPE_FP8_E4M3FN);
      w3 = Host(shape(i, d), DSK_DTYPE_FP8_E4M3FN);
      w2 = Host(shape(d, i), DSK_DTYPE_FP8_E4M3FN);
      s1 = Host(shape(blocks(i), blocks(d)), DSK_DTYPE_F32);
      s3 = Host(shape(blocks(i), blocks(d)), DSK_DTYPE_F32);
      s2 = Host(shape(blocks(d), blocks(i)), DSK_DTYPE_F32);
      quantize(ctx, f1, w1, s1, i, d, &v1);
      quantize(ctx, f3, w3, s3, i, d, &v3);
      quantize(ctx, f2, w2, s2, d, i, &v2);
    }
    REQUIRE(dsk_moe_expert_weights_init(&desc) == DSK_OK);
    desc.w1 = w1.dl();
    desc.w3 = w3.dl();
    desc.w2 = w2.dl();
    if (fp8) {
      desc.w1_scales = s1.dl();
      desc.w3_scales = s3.dl();
      desc.w2_scales = s2.dl();
    }
  }
  Weights(const Weights&) = delete;
  Weights& operator=(const Weights&) = delete;

  // Each expert's [r, c] slice through dsk_quant_fp8_weight; the reference values are q * scale
  // rounded to f32, decoded here from the e4m3 format.
  void quantize(dsk_context* ctx, Host& f, Host& q, Host& s, int64_t r, int64_t c,
                std::vector<double>* deq) {
    const int64_t br = (r + 127) / 128, bc = (c + 127) / 128;
    deq->assign(sz(num * r * c), 0.0);
    for (int64_t g = 0; g < num; ++g) {
      View fv = f.view({r, c}, {c, 1}, g * r * c);
      View qv = q.view({r, c}, {c, 1}, g * r * c);
      View sv = s.view({br, bc}, {bc, 1}, g * br * bc);
      MOE_REQUIRE_OK(dsk_quant_fp8_weight(ctx, fv.get(), qv.get(), sv.get(), 0));
      for (int64_t a = 0; a < r; ++a) {
        for (int64_t b = 0; b < c; ++b) {
          const double scale = s.get(g * br * bc + (a / 128) * bc + b / 128);
          const auto code = static_cast<const uint8_t*>(q.data())[g * r * c + a * c + b];
          (*deq)[sz(g * r * c + a * c + b)] =
              static_cast<float>(mla_test::e4m3_value(code) * scale);
        }
      }
    }
  }

  // Expert g over rows of x ([rows, D] row-major): the reference with intermediates in act_dtype.
  std::vector<double> ref(int64_t g, const std::vector<double>& x, int64_t rows, int32_t act_dtype,
                          bool quantize_x = true) const {
    const bool fp8 = dtype == DSK_DTYPE_FP8_E4M3FN;
    return moe_test::ref_expert(x, rows, hidden, inter, v1.data() + g * inter * hidden,
                                v3.data() + g * inter * hidden, v2.data() + g * hidden * inter,
                                act_dtype, fp8 && quantize_x, fp8);
  }
};

}  // namespace

TEST_CASE("moe expert_weights_init clears every field") {
  dsk_moe_expert_weights w;
  std::memset(&w, 0xFF, sizeof(w));
  REQUIRE(dsk_moe_expert_weights_init(&w) == DSK_OK);
  CHECK(w.struct_size == sizeof(dsk_moe_expert_weights));
  CHECK(w.w1 == nullptr);
  CHECK(w.w3 == nullptr);
  CHECK(w.w2 == nullptr);
  CHECK(w.w1_scales == nullptr);
  CHECK(w.w3_scales == nullptr);
  CHECK(w.w2_scales == nullptr);
  mla_test::expect_invalid(dsk_moe_expert_weights_init(nullptr), {"weights"});
}

TEST_CASE("moe experts match a dense per-expert reference") {
  CpuContext ctx;
  const int64_t e = 4, d = 160, inter = 96;
  struct Combo {
    int32_t w, x, y;
  };
  const Combo combos[] = {
      {DSK_DTYPE_F32, DSK_DTYPE_F32, DSK_DTYPE_F32},
      {DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16},
      {DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_F32},
      {DSK_DTYPE_F16, DSK_DTYPE_F16, DSK_DTYPE_F16},
      {DSK_DTYPE_FP8_E4M3FN, DSK_DTYPE_BF16, DSK_DTYPE_BF16},
      {DSK_DTYPE_FP8_E4M3FN, DSK_DTYPE_F32, DSK_DTYPE_F32},
  };
  // Offsets: packed (one expert empty), and 16-aligned with padding rows between segments; the
  // rows past offsets[E] must keep their NaN.
  const std::vector<std::vector<int64_t>> layouts = {{0, 5, 5, 12, 20}, {0, 16, 32, 32, 48}};
  const std::vector<int64_t> rows_of = {23, 53};
  uint64_t seed = 10;
  for (const Combo& c : combos) {
    Weights w(ctx, e, inter, d, c.w, true, seed);
    seed += 3;
    for (size_t li = 0; li < layouts.size(); ++li) {
      const std::vector<int64_t>& off = layouts[li];
      const int64_t rows = rows_of[li];
      INFO("weights " << moe_test::label(c.w) << " x " << moe_test::label(c.x) << " y "
                      << moe_test::label(c.y) << " layout " << li);
      Host x({rows, d}, c.x);
      x.fill_random(seed++, -1.0, 1.0);
      Host offsets = ints({e + 1}, DSK_DTYPE_INT32, off);
      Host y({rows, d}, c.y);
      y.fill_nan();
      MOE_REQUIRE_OK(dsk_moe_experts(ctx, &w.desc, x.dl(), nullptr, offsets.dl(), y.dl()));
      const std::vector<double> xv = x.values(), yv = y.values();
      std::vector<double> got, want;
      for (int64_t g = 0; g < e; ++g) {
        const int64_t r0 = off[sz(g)], n = off[sz(g + 1)] - r0;
        if (n == 0) continue;
        const std::vector<double> xs(xv.begin() + r0 * d, xv.begin() + (r0 + n) * d);
        std::vector<double> ref = w.ref(g, xs, n, c.y);
        for (double& v : ref) v = mla_test::rounded(v, c.y);
        want.insert(want.end(), ref.begin(), ref.end());
        got.insert(got.end(), yv.begin() + r0 * d, yv.begin() + (r0 + n) * d);
      }
      const Tol tol = tol_for(c.w, c.y);
      moe_test::check_scaled(got, want, tol.atol_frac, tol.rtol, "experts");
      for (int64_t r = off.back() * d; r < rows * d; ++r) {
        if (!std::isnan(yv[sz(r)])) {
          FAIL_CHECK("row " << r / d << " past offsets[E] was written");
          break;
        }
      }
    }
  }
}

TEST_CASE("moe experts take an fp8 x with scales from dsk_moe_permute") {
  CpuContext ctx;
  const int64_t e = 3, d = 256, inter = 128, t = 10, k = 2;
  Weights w(ctx, e, inter, d, DSK_DTYPE_FP8_E4M3FN, true, 40);
  // Tokens to experts t % 3 and (t + 1) % 3; dispatch in blocks of 16.
  std::vector<int64_t> idv;
  for (int64_t i = 0; i < t; ++i) {
    idv.push_back(i % e);
    idv.push_back((i + 1) % e);
  }
  Host ids = ints({t, k}, DSK_DTYPE_INT32, idv);
  int64_t cap = 0;
  MOE_REQUIRE_OK(dsk_moe_dispatch_capacity(t, 2, 3, 16, &cap));
  Host counts({e}, DSK_DTYPE_INT32), offsets({e + 1}, DSK_DTYPE_INT32),
      rows({cap}, DSK_DTYPE_INT32);
  MOE_REQUIRE_OK(dsk_moe_dispatch(ctx, ids.dl(), 3, 0, 16, counts.dl(), offsets.dl(), rows.dl(),
                                  nullptr, nullptr));
  Host x({t, d}, DSK_DTYPE_BF16);
  x.fill_random(41, -1.0, 1.0);
  Host xq({cap, d}, DSK_DTYPE_FP8_E4M3FN), xs({cap, 2}, DSK_DTYPE_F32);
  MOE_REQUIRE_OK(dsk_moe_permute(ctx, x.dl(), rows.dl(), 2, xq.dl(), xs.dl(), 0));
  Host y({cap, d}, DSK_DTYPE_BF16), y2({cap, d}, DSK_DTYPE_BF16);
  MOE_REQUIRE_OK(dsk_moe_experts(ctx, &w.desc, xq.dl(), xs.dl(), offsets.dl(), y.dl()));
  // The reference takes the dequantized rows as they are (no second quantization).
  std::vector<double> xd(sz(cap * d));
  for (int64_t r = 0; r < cap; ++r) {
    for (int64_t c = 0; c < d; ++c) {
      const auto code = static_cast<const uint8_t*>(xq.data())[r * d + c];
      xd[sz(r * d + c)] = static_cast<float>(mla_test::e4m3_value(code) * xs.get(r * 2 + c / 128));
    }
  }
  const std::vector<int64_t> off = moe_test::int_values(offsets);
  const std::vector<double> yv = y.values();
  std::vector<double> got, want;
  for (int64_t g = 0; g < e; ++g) {
    const int64_t r0 = off[sz(g)], n = off[sz(g + 1)] - r0;
    const std::vector<double> xg(xd.begin() + r0 * d, xd.begin() + (r0 + n) * d);
    std::vector<double> ref = w.ref(g, xg, n, DSK_DTYPE_BF16, false);
    for (double& v : ref) v = mla_test::rounded(v, DSK_DTYPE_BF16);
    want.insert(want.end(), ref.begin(), ref.end());
    got.insert(got.end(), yv.begin() + r0 * d, yv.begin() + (r0 + n) * d);
  }
  moe_test::check_scaled(got, want, 3e-2, 3e-2, "experts with fp8 x");
  // A float x gathered the same way and quantized inside gives the same bytes on used rows.
  Host xf({cap, d}, DSK_DTYPE_BF16);
  MOE_REQUIRE_OK(dsk_moe_permute(ctx, x.dl(), rows.dl(), 2, xf.dl(), nullptr, 0));
  MOE_REQUIRE_OK(dsk_moe_experts(ctx, &w.desc, xf.dl(), nullptr, offsets.dl(), y2.dl()));
  const std::vector<uint8_t> a = y.raw(), b = y2.raw();
  CHECK(std::equal(a.begin(), a.begin() + off.back() * d * 2, b.begin()));
}

// ---- the layer ----

namespace {

// Counts the allocations a context makes through its allocator hook.
struct CountingAllocator {
  std::atomic<int64_t> allocs{0};
  dsk_allocator hook{};
  CountingAllocator() {
    hook.struct_size = sizeof(dsk_allocator);
    hook.user = this;
    hook.alloc = [](void* user, size_t bytes, size_t alignment, DLDevice, void*) -> void* {
      static_cast<CountingAllocator*>(user)->allocs++;
      return std::aligned_alloc(alignment,
                                (bytes + alignment - 1) / alignment * alignment + alignment);
    };
    hook.free = [](void*, void* p, size_t, DLDevice, void*) { std::free(p); };
  }
};

struct LayerCase {
  dsk_moe_gate_config config;
  int64_t t, d, inter, shared_inter;  // shared_inter 0: no shared experts
  int32_t x_dtype, expert_dtype, out_dtype;
  bool bias;
  uint64_t seed;
  std::string describe() const {
    return moe_test::config_label(config) + " T " + std::to_string(t) + " D " + std::to_string(d) +
           " I " + std::to_string(inter) + " Is " + std::to_string(shared_inter) + " x " +
           moe_test::label(x_dtype) + " experts " + moe_test::label(expert_dtype) + " out " +
           moe_test::label(out_dtype) + (bias ? " bias" : "");
  }
};

struct Layer {
  LayerCase c;
  Host x, router, bias, out;
  std::unique_ptr<Weights> experts, shared;
  Layer(dsk_context* ctx, const LayerCase& lc)
      : c(lc),
        x({lc.t, lc.d}, lc.x_dtype),
        router({lc.config.num_experts, lc.d}, lc.x_dtype),
        bias(moe_test::random_bias(lc.config.num_experts, lc.seed + 1, 0.3)),
        out({lc.t, lc.d}, lc.out_dtype) {
    x.fill_random(lc.seed, -1.0, 1.0);
    // Router logits of a few units.
    router.fill_random(lc.seed + 2, -3.0 / std::sqrt(double(lc.d)), 3.0 / std::sqrt(double(lc.d)));
    experts = std::make_unique<Weights>(ctx, lc.config.num_experts, lc.inter, lc.d, lc.expert_dtype,
                                        true, lc.seed + 3);
    if (lc.shared_inter > 0) {
      shared = std::make_unique<Weights>(ctx, 1, lc.shared_inter, lc.d, lc.expert_dtype, false,
                                         lc.seed + 7);
    }
    out.fill_nan();
  }
  const DLTensor* bias_dl() { return c.bias ? bias.dl() : nullptr; }
  const dsk_moe_expert_weights* shared_desc() const { return shared ? &shared->desc : nullptr; }
};

// The dense per-token reference: logits in double from the stored x and router weights, the
// reference gate, then out[t] = round(round(shared(x_t)) + sum_j w_j * round(expert_j(x_t))) with
// intermediates in out's dtype (the layer keeps them there). Tokens whose selection has a near tie
// (1e-4 relative: the router GEMM's f32 rounding enters too) are marked in *skip.
std::vector<double> reference(Layer& l, std::vector<char>* skip, std::vector<int64_t>* ref_ids,
                              std::vector<double>* ref_w) {
  const LayerCase& c = l.c;
  const int64_t e = c.config.num_experts, k = c.config.top_k, d = c.d;
  const std::vector<double> xv = l.x.values(), rv = l.router.values();
  const float* bp = c.bias ? static_cast<const float*>(l.bias.data()) : nullptr;
  std::vector<double> out(sz(c.t * d));
  skip->assign(sz(c.t), 0);
  ref_ids->assign(sz(c.t * k), 0);
  ref_w->assign(sz(c.t * k), 0.0);
  for (int64_t t = 0; t < c.t; ++t) {
    std::vector<double> logits(sz(e));
    for (int64_t i = 0; i < e; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < d; ++j) acc += xv[sz(t * d + j)] * rv[sz(i * d + j)];
      logits[sz(i)] = c.config.score_dtype == DSK_DTYPE_BF16 ? moe_test::bf16_round(acc) : acc;
    }
    const moe_test::GateRow g = moe_test::ref_gate_row(c.config, logits.data(), bp, 1e-4);
    (*skip)[sz(t)] = g.set_decided ? 0 : 1;
    const std::vector<double> xt(xv.begin() + t * d, xv.begin() + (t + 1) * d);
    std::vector<double> acc(sz(d), 0.0);
    if (l.shared) {
      std::vector<double> s = l.shared->ref(0, xt, 1, c.out_dtype);
      for (int64_t j = 0; j < d; ++j) acc[sz(j)] = mla_test::rounded(s[sz(j)], c.out_dtype);
    }
    for (int64_t j = 0; j < k; ++j) {
      (*ref_ids)[sz(t * k + j)] = g.ids[sz(j)];
      (*ref_w)[sz(t * k + j)] = g.weights[sz(j)];
      const std::vector<double> y = l.experts->ref(g.ids[sz(j)], xt, 1, c.out_dtype);
      for (int64_t q = 0; q < d; ++q) {
        acc[sz(q)] += g.weights[sz(j)] * mla_test::rounded(y[sz(q)], c.out_dtype);
      }
    }
    for (int64_t q = 0; q < d; ++q) out[sz(t * d + q)] = mla_test::rounded(acc[sz(q)], c.out_dtype);
  }
  return out;
}

void check_layer_out(const Layer& l, const std::vector<double>& got,
                     const std::vector<double>& want, const std::vector<char>& skip) {
  const int64_t d = l.c.d;
  std::vector<double> g, w;
  int64_t skipped = 0;
  for (int64_t t = 0; t < l.c.t; ++t) {
    if (skip[sz(t)]) {
      ++skipped;
      continue;
    }
    g.insert(g.end(), got.begin() + t * d, got.begin() + (t + 1) * d);
    w.insert(w.end(), want.begin() + t * d, want.begin() + (t + 1) * d);
  }
  CHECK_MESSAGE(skipped <= l.c.t / 50 + 1, skipped, " tokens with near ties");
  const Tol tol =
      tol_for(l.c.expert_dtype, l.c.out_dtype == DSK_DTYPE_F32 && l.c.x_dtype == DSK_DTYPE_F32
                                    ? DSK_DTYPE_F32
                                    : DSK_DTYPE_BF16);
  moe_test::check_scaled(g, w, tol.atol_frac, tol.rtol, "layer out");
}

void run_layer_case(const LayerCase& lc) {
  INFO(lc.describe());
  CountingAllocator counter;
  dsk_context_options o;
  dsk_context_options_init(&o);
  o.backend = DSK_BACKEND_CPU;
  o.allocator = &counter.hook;
  dsk_context* raw = nullptr;
  REQUIRE(dsk_context_create(&o, &raw) == DSK_OK);
  std::unique_ptr<dsk_context, void (*)(dsk_context*)> ctx(raw, dsk_context_destroy);
  Layer l(ctx.get(), lc);
  std::vector<char> skip;
  std::vector<int64_t> ref_ids;
  std::vector<double> ref_w;
  const std::vector<double> want = reference(l, &skip, &ref_ids, &ref_w);

  // One call.
  MOE_REQUIRE_OK(dsk_moe_forward(ctx.get(), &lc.config, l.x.dl(), l.router.dl(), l.bias_dl(),
                                 &l.experts->desc, l.shared_desc(), l.out.dl()));
  check_layer_out(l, l.out.values(), want, skip);
  const std::vector<uint8_t> once = l.out.raw();

  // Plan / run with a reserved workspace: no allocation, the same bytes, and the gate's output.
  dsk_moe_plan* plan = nullptr;
  MOE_REQUIRE_OK(dsk_moe_plan_create(ctx.get(), &lc.config, l.x.dl(), l.router.dl(),
                                     &l.experts->desc, l.shared_desc(), l.out.dl(), &plan));
  size_t bytes = 0;
  MOE_REQUIRE_OK(dsk_moe_plan_workspace_size(plan, &bytes));
  CHECK(bytes > 0);
  MOE_REQUIRE_OK(dsk_context_reserve_workspace(ctx.get(), bytes));
  Host ids({lc.t, lc.config.top_k}, DSK_DTYPE_INT32),
      weights({lc.t, lc.config.top_k}, DSK_DTYPE_F32);
  l.out.fill_nan();
  const int64_t before = counter.allocs.load();
  for (int rep = 0; rep < 2; ++rep) {
    MOE_REQUIRE_OK(dsk_moe_forward_run(ctx.get(), plan, l.x.dl(), l.router.dl(), l.bias_dl(),
                                       &l.experts->desc, l.shared_desc(), l.out.dl(), ids.dl(),
                                       weights.dl()));
  }
  CHECK_MESSAGE(counter.allocs.load() == before, "run allocated ", counter.allocs.load() - before,
                " buffers with a reserved workspace of ", bytes, " bytes");
  CHECK(l.out.raw() == once);
  // Without the gate outputs: the same again; int64 ids receive the same ids.
  l.out.fill_nan();
  MOE_REQUIRE_OK(dsk_moe_forward_run(ctx.get(), plan, l.x.dl(), l.router.dl(), l.bias_dl(),
                                     &l.experts->desc, l.shared_desc(), l.out.dl(), nullptr,
                                     nullptr));
  CHECK(l.out.raw() == once);
  Host ids64({lc.t, lc.config.top_k}, DSK_DTYPE_INT64);
  MOE_REQUIRE_OK(dsk_moe_forward_run(ctx.get(), plan, l.x.dl(), l.router.dl(), l.bias_dl(),
                                     &l.experts->desc, l.shared_desc(), l.out.dl(), ids64.dl(),
                                     nullptr));
  CHECK(moe_test::int_values(ids64) == moe_test::int_values(ids));
  dsk_moe_plan_release(plan);
  // The gate output against the reference gate on tokens without near ties.
  const int64_t k = lc.config.top_k;
  int64_t bad = 0;
  for (int64_t t = 0; t < lc.t; ++t) {
    if (skip[sz(t)]) continue;
    std::vector<int64_t> g, w;
    for (int64_t j = 0; j < k; ++j) {
      g.push_back(static_cast<int64_t>(ids.get(t * k + j)));
      w.push_back(ref_ids[sz(t * k + j)]);
    }
    std::vector<int64_t> gs = g, ws = w;
    std::sort(gs.begin(), gs.end());
    std::sort(ws.begin(), ws.end());
    bool ok = gs == ws;
    for (int64_t j = 0; j < k && ok; ++j) {
      const auto at = std::find(w.begin(), w.end(), g[sz(j)]) - w.begin();
      const double want_w = ref_w[sz(t * k + at)];
      // Router logits from an f32 GEMM: 1e-5 relative on the weights.
      ok = std::fabs(weights.get(t * k + j) - want_w) <= 1e-5 * std::fabs(want_w) + 1e-30;
    }
    if (!ok && bad++ == 0) FAIL_CHECK("token " << t << ": gate output differs from the reference");
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("moe forward equals a dense per-token reference, f32") {
  // E 8, k 2: four groups of two (two kept) with a sigmoid + bias, and one group with softmax.
  const dsk_moe_gate_config grouped =
      moe_test::gate_config(8, 2, 4, 2, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
  const dsk_moe_gate_config flat =
      moe_test::gate_config(8, 2, 1, 1, DSK_MOE_SCORE_SOFTMAX, 0, 1.0f);
  uint64_t seed = 100;
  for (const dsk_moe_gate_config& cfg : {grouped, flat}) {
    for (int64_t shared_inter : {0, 192}) {
      const bool bias = cfg.score_func == DSK_MOE_SCORE_SIGMOID;
      run_layer_case({cfg, 33, 128, 64, shared_inter, DSK_DTYPE_F32, DSK_DTYPE_F32, DSK_DTYPE_F32,
                      bias, seed});
      seed += 10;
    }
  }
}

TEST_CASE("moe forward equals a dense per-token reference, bf16 and fp8 experts") {
  const dsk_moe_gate_config grouped =
      moe_test::gate_config(8, 2, 4, 2, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
  const dsk_moe_gate_config flat =
      moe_test::gate_config(8, 2, 1, 1, DSK_MOE_SCORE_SOFTMAX, 0, 1.0f);
  run_layer_case(
      {grouped, 40, 256, 128, 128, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, true, 200});
  run_layer_case({flat, 17, 128, 64, 0, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_F32, false, 210});
  run_layer_case({grouped, 24, 256, 128, 256, DSK_DTYPE_BF16, DSK_DTYPE_FP8_E4M3FN, DSK_DTYPE_BF16,
                  true, 220});
  run_layer_case(
      {flat, 9, 200, 96, 0, DSK_DTYPE_F32, DSK_DTYPE_FP8_E4M3FN, DSK_DTYPE_F32, false, 230});
  // The GitHub reference's bf16 router (logits and sigmoid rounded to bf16).
  dsk_moe_gate_config bf16_gate = grouped;
  bf16_gate.score_dtype = DSK_DTYPE_BF16;
  run_layer_case(
      {bf16_gate, 20, 128, 64, 64, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, true, 240});
}

TEST_CASE("moe forward with T 0 and with one token") {
  CpuContext ctx;
  const dsk_moe_gate_config cfg = moe_test::gate_config(8, 2, 4, 2, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
  LayerCase zero{cfg, 0, 128, 64, 64, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, true, 300};
  Layer l(ctx, zero);
  MOE_REQUIRE_OK(dsk_moe_forward(ctx, &cfg, l.x.dl(), l.router.dl(), l.bias_dl(), &l.experts->desc,
                                 l.shared_desc(), l.out.dl()));
  run_layer_case({cfg, 1, 128, 64, 64, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, true, 310});
}
