// Review tests for the MoE layer (dsk_moe.h): configs whose expert dtypes differ (fp8 routed with
// float shared experts and the reverse, bf16 x with an f32 out) run inside exactly the plan's
// workspace without allocating and equal dsk_moe_forward; E = 1, k = E and T = 0 edge cases; every
// expert weight's device is checked; the gate outputs the layer writes (ids, weights) may not
// overlap the expert weights.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "moe_test_util.h"
#include "test_util.h"

namespace {

using mla_test::Host;
using mla_test::View;

int64_t blocks128(int64_t n) { return (n + 127) / 128; }

// SwiGLU weights, routed ([E, I, D] / [E, D, I]) or shared ([I, D] / [D, I]); fp8 weights get
// random small e4m3 codes and 128 x 128 block scales.
struct W {
  Host w1, w3, w2, s1, s3, s2;
  dsk_moe_expert_weights desc{};
  W(int64_t e, int64_t i, int64_t d, int32_t dt, bool routed, uint64_t seed) {
    auto shape = [&](int64_t r, int64_t c) {
      return routed ? std::vector<int64_t>{e, r, c} : std::vector<int64_t>{r, c};
    };
    w1 = Host(shape(i, d), dt);
    w3 = Host(shape(i, d), dt);
    w2 = Host(shape(d, i), dt);
    REQUIRE(dsk_moe_expert_weights_init(&desc) == DSK_OK);
    if (dt == DSK_DTYPE_FP8_E4M3FN) {
      std::mt19937_64 rng(seed);
      for (Host* h : {&w1, &w3, &w2}) {
        auto* p = static_cast<uint8_t*>(h->data());
        for (size_t b = 0; b < h->bytes(); ++b) {
          p[b] = static_cast<uint8_t>((rng() & 0x3Fu) | (rng() & 0x80u));
        }
      }
      s1 = Host(shape(blocks128(i), blocks128(d)), DSK_DTYPE_F32);
      s3 = Host(shape(blocks128(i), blocks128(d)), DSK_DTYPE_F32);
      s2 = Host(shape(blocks128(d), blocks128(i)), DSK_DTYPE_F32);
      s1.fill(0.5 / std::sqrt(double(d)));
      s3.fill(0.5 / std::sqrt(double(d)));
      s2.fill(0.5 / std::sqrt(double(i)));
      desc.w1_scales = s1.dl();
      desc.w3_scales = s3.dl();
      desc.w2_scales = s2.dl();
    } else {
      w1.fill_random(seed, -1.0 / std::sqrt(double(d)), 1.0 / std::sqrt(double(d)));
      w3.fill_random(seed + 1, -1.0 / std::sqrt(double(d)), 1.0 / std::sqrt(double(d)));
      w2.fill_random(seed + 2, -1.0 / std::sqrt(double(i)), 1.0 / std::sqrt(double(i)));
    }
    desc.w1 = w1.dl();
    desc.w3 = w3.dl();
    desc.w2 = w2.dl();
  }
};

struct CountingAllocator {
  std::atomic<int64_t> allocs{0};
  dsk_allocator hook{};
  CountingAllocator() {
    hook.struct_size = sizeof(dsk_allocator);
    hook.user = this;
    hook.alloc = [](void* user, size_t bytes, size_t alignment, DLDevice, void*) -> void* {
      static_cast<CountingAllocator*>(user)->allocs++;
      return std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
    };
    hook.free = [](void*, void* p, size_t, DLDevice, void*) { std::free(p); };
  }
};

struct Case {
  int64_t t, d, inter, shared_inter;
  int32_t e, k;
  int32_t x_dtype, out_dtype, expert_dtype, shared_dtype;
  std::string describe() const {
    return "T " + std::to_string(t) + " D " + std::to_string(d) + " I " + std::to_string(inter) +
           " Is " + std::to_string(shared_inter) + " E " + std::to_string(e) + " k " +
           std::to_string(k) + " x " + moe_test::label(x_dtype) + " out " +
           moe_test::label(out_dtype) + " experts " + moe_test::label(expert_dtype) + " shared " +
           (shared_inter > 0 ? moe_test::label(shared_dtype) : std::string("none"));
  }
};

void run_case(const Case& c) {
  INFO(c.describe());
  CountingAllocator counter;
  dsk_context_options o;
  dsk_context_options_init(&o);
  o.backend = DSK_BACKEND_CPU;
  o.allocator = &counter.hook;
  dsk_context* raw = nullptr;
  REQUIRE(dsk_context_create(&o, &raw) == DSK_OK);
  std::unique_ptr<dsk_context, void (*)(dsk_context*)> ctx(raw, dsk_context_destroy);

  dsk_moe_gate_config cfg =
      moe_test::gate_config(c.e, c.k, 1, 1, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, DSK_MOE_GROUP_MAX);
  Host x({c.t, c.d}, c.x_dtype), router({c.e, c.d}, c.x_dtype);
  x.fill_random(11, -1.0, 1.0);
  router.fill_random(12, -1.0, 1.0);
  W experts(c.e, c.inter, c.d, c.expert_dtype, true, 13);
  std::unique_ptr<W> shared;
  if (c.shared_inter > 0) {
    shared = std::make_unique<W>(1, c.shared_inter, c.d, c.shared_dtype, false, 17);
  }
  const dsk_moe_expert_weights* sd = shared ? &shared->desc : nullptr;
  Host out_once({c.t, c.d}, c.out_dtype), out({c.t, c.d}, c.out_dtype);
  out_once.fill_nan();
  MOE_REQUIRE_OK(dsk_moe_forward(ctx.get(), &cfg, x.dl(), router.dl(), nullptr, &experts.desc, sd,
                                 out_once.dl()));
  for (double v : out_once.values()) REQUIRE(std::isfinite(v));

  dsk_moe_plan* plan = nullptr;
  MOE_REQUIRE_OK(dsk_moe_plan_create(ctx.get(), &cfg, x.dl(), router.dl(), &experts.desc, sd,
                                     out.dl(), &plan));
  std::unique_ptr<dsk_moe_plan, void (*)(dsk_moe_plan*)> hold(plan, dsk_moe_plan_release);
  size_t bytes = 0;
  MOE_REQUIRE_OK(dsk_moe_plan_workspace_size(plan, &bytes));
  MOE_REQUIRE_OK(dsk_context_reserve_workspace(ctx.get(), bytes));
  Host ids({c.t, c.k}, DSK_DTYPE_INT64), weights({c.t, c.k}, DSK_DTYPE_F32);
  out.fill_nan();
  const int64_t before = counter.allocs.load();
  MOE_REQUIRE_OK(dsk_moe_forward_run(ctx.get(), plan, x.dl(), router.dl(), nullptr, &experts.desc,
                                     sd, out.dl(), ids.dl(), weights.dl()));
  MOE_REQUIRE_OK(dsk_context_synchronize(ctx.get()));
  CHECK(counter.allocs.load() == before);
  CHECK(out.raw() == out_once.raw());
  for (double v : ids.values()) CHECK((v >= 0 && v < c.e));
}

}  // namespace

TEST_CASE("moe review layer with mixed expert dtypes fits the plan workspace") {
  const int32_t F32 = DSK_DTYPE_F32, BF16 = DSK_DTYPE_BF16, F16 = DSK_DTYPE_F16,
                FP8 = DSK_DTYPE_FP8_E4M3FN;
  const Case cases[] = {
      {37, 160, 96, 200, 8, 3, BF16, F32, FP8, FP8},
      {37, 160, 96, 200, 8, 3, BF16, BF16, FP8, BF16},
      {37, 160, 96, 200, 8, 3, F32, BF16, F32, FP8},
      {37, 130, 72, 0, 8, 3, F16, F32, FP8, 0},
      {37, 64, 48, 80, 8, 3, BF16, F32, BF16, BF16},
      {5, 64, 48, 80, 1, 1, BF16, F32, FP8, BF16},
      {5, 64, 48, 80, 4, 4, F32, F32, F32, F32},
      {1, 64, 48, 80, 4, 4, BF16, BF16, FP8, FP8},
  };
  for (const Case& c : cases) run_case(c);
}

TEST_CASE("moe review layer with T 0 and E 1") {
  dsk_test::CpuContext ctx;
  dsk_moe_gate_config cfg =
      moe_test::gate_config(1, 1, 1, 1, DSK_MOE_SCORE_SIGMOID, 1, 1.0f, DSK_MOE_GROUP_MAX);
  Host x({0, 64}, DSK_DTYPE_BF16), router({1, 64}, DSK_DTYPE_BF16), out({0, 64}, DSK_DTYPE_F32);
  W experts(1, 32, 64, DSK_DTYPE_FP8_E4M3FN, true, 3);
  W shared(1, 32, 64, DSK_DTYPE_BF16, false, 5);
  MOE_REQUIRE_OK(dsk_moe_forward(ctx, &cfg, x.dl(), router.dl(), nullptr, &experts.desc,
                                 &shared.desc, out.dl()));
}

TEST_CASE("moe review layer checks the device of every expert weight") {
  dsk_test::CpuContext ctx;
  dsk_moe_gate_config cfg =
      moe_test::gate_config(4, 2, 1, 1, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, DSK_MOE_GROUP_MAX);
  Host x({3, 64}, DSK_DTYPE_F32), router({4, 64}, DSK_DTYPE_F32), out({3, 64}, DSK_DTYPE_F32);
  x.fill_random(1);
  router.fill_random(2);
  W experts(4, 32, 64, DSK_DTYPE_F32, true, 3);
  W shared(1, 32, 64, DSK_DTYPE_F32, false, 5);
  SUBCASE("experts w2 on a CUDA device") {
    View w2 = experts.w2.view({4, 64, 32}, {64 * 32, 32, 1});
    w2.dl.device = DLDevice{kDLCUDA, 0};
    experts.desc.w2 = w2.get();
    const dsk_status st =
        dsk_moe_forward(ctx, &cfg, x.dl(), router.dl(), nullptr, &experts.desc, nullptr, out.dl());
    mla_test::expect_invalid(st, {"experts->w2"});
  }
  SUBCASE("shared w1 on a CUDA device") {
    View w1 = shared.w1.view({32, 64}, {64, 1});
    w1.dl.device = DLDevice{kDLCUDA, 0};
    shared.desc.w1 = w1.get();
    const dsk_status st = dsk_moe_forward(ctx, &cfg, x.dl(), router.dl(), nullptr, &experts.desc,
                                          &shared.desc, out.dl());
    mla_test::expect_invalid(st, {"shared->w1"});
  }
}

TEST_CASE("moe review layer outputs may not overlap the expert weights") {
  dsk_test::CpuContext ctx;
  dsk_moe_gate_config cfg =
      moe_test::gate_config(4, 2, 1, 1, DSK_MOE_SCORE_SOFTMAX, 1, 1.0f, DSK_MOE_GROUP_MAX);
  Host x({3, 64}, DSK_DTYPE_F32), router({4, 64}, DSK_DTYPE_F32), out({3, 64}, DSK_DTYPE_F32);
  x.fill_random(1);
  router.fill_random(2);
  W experts(4, 32, 64, DSK_DTYPE_F32, true, 3);
  W shared(1, 32, 64, DSK_DTYPE_F32, false, 5);
  dsk_moe_plan* plan = nullptr;
  MOE_REQUIRE_OK(dsk_moe_plan_create(ctx, &cfg, x.dl(), router.dl(), &experts.desc, &shared.desc,
                                     out.dl(), &plan));
  std::unique_ptr<dsk_moe_plan, void (*)(dsk_moe_plan*)> hold(plan, dsk_moe_plan_release);
  Host ids({3, 2}, DSK_DTYPE_INT32), weights({3, 2}, DSK_DTYPE_F32);
  SUBCASE("ids inside experts w1") {
    View iv(experts.w1.data(), DSK_DTYPE_INT32, {3, 2}, {2, 1});
    const dsk_status st =
        dsk_moe_forward_run(ctx, plan, x.dl(), router.dl(), nullptr, &experts.desc, &shared.desc,
                            out.dl(), iv.get(), weights.dl());
    mla_test::expect_invalid(st, {"ids", "experts->w1"});
  }
  SUBCASE("weights inside shared w2") {
    View wv(shared.w2.data(), DSK_DTYPE_F32, {3, 2}, {2, 1});
    const dsk_status st =
        dsk_moe_forward_run(ctx, plan, x.dl(), router.dl(), nullptr, &experts.desc, &shared.desc,
                            out.dl(), ids.dl(), wv.get());
    mla_test::expect_invalid(st, {"weights", "shared->w2"});
  }
}
