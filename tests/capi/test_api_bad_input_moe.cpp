// Bad-input sweep (sweep_test_util.h) over dsk_moe.h: gate, router, dispatch, permute, combine,
// experts, the layer (plan, run, one-shot), load statistics and the EP layout. Tensors inside
// dsk_moe_expert_weights are swept like function arguments.
#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <memory>
#include <string>
#include <vector>

#include "moe_test_util.h"
#include "sweep_test_util.h"

using sweep::Case;
using sweep::Expect;

namespace {

constexpr int32_t kF32 = DSK_DTYPE_F32, kBF16 = DSK_DTYPE_BF16, kFP8 = DSK_DTYPE_FP8_E4M3FN,
                  kI32 = DSK_DTYPE_INT32, kI64 = DSK_DTYPE_INT64, kU8 = DSK_DTYPE_UINT8;

// Sigmoid scores, renormalized, scale 2.5.
dsk_moe_gate_config gate_config(int32_t e, int32_t k, int32_t g, int32_t topk_group) {
  return moe_test::gate_config(e, k, g, topk_group, DSK_MOE_SCORE_SIGMOID, 1, 2.5f);
}

// A dsk_moe_expert_weights whose tensors are arguments of the case, named "<prefix>->w1", ...
struct Experts {
  int w1 = -1, w3 = -1, w2 = -1, s1 = -1, s3 = -1, s2 = -1;
  dsk_moe_expert_weights s{};
  const dsk_moe_expert_weights* p = &s;
  Experts(Case& c, const std::string& prefix, std::vector<int64_t> up, std::vector<int64_t> down,
          int32_t dtype) {
    REQUIRE(dsk_moe_expert_weights_init(&s) == DSK_OK);
    auto name = [&](const char* field) { return prefix + "->" + field; };
    w1 = c.in(name("w1").c_str(), up, dtype, {0.01});
    w3 = c.in(name("w3").c_str(), up, dtype, {0.01});
    w2 = c.in(name("w2").c_str(), down, dtype, {0.01});
    if (dtype != kFP8) return;
    // One 128 x 128 block per matrix: [E, 1, 1] (or [1, 1] for 2-D weights).
    std::vector<int64_t> scale(up.size() - 2, up[0]);
    scale.insert(scale.end(), {1, 1});
    s1 = c.in(name("w1_scales").c_str(), scale, kF32, {0.5});
    s3 = c.in(name("w3_scales").c_str(), scale, kF32, {0.5});
    s2 = c.in(name("w2_scales").c_str(), scale, kF32, {0.5});
  }
  Experts(const Experts&) = delete;
  Experts& operator=(const Experts&) = delete;
  // Points the struct at the case's current tensors.
  const dsk_moe_expert_weights* get(const Case& c) {
    s.w1 = c[w1];
    s.w3 = c[w3];
    s.w2 = c[w2];
    s.w1_scales = s1 < 0 ? nullptr : c[s1];
    s.w3_scales = s3 < 0 ? nullptr : c[s3];
    s.w2_scales = s2 < 0 ? nullptr : c[s2];
    return p;
  }
};

}  // namespace

TEST_CASE("bad input sweep: dsk_moe_gate and dsk_moe_gate_router") {
  dsk_moe_gate_config config = gate_config(8, 2, 2, 1);
  const dsk_moe_gate_config* cfg = &config;
  {
    Case c("dsk_moe_gate");
    const int l = c.in("logits", {3, 8}, kBF16,
                       {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2,
                        1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3, 2.4}),
              b = c.opt_in("bias", {8}, kF32), ids = c.out("ids", {3, 2}, kI64),
              w = c.out("weights", {3, 2}, kF32), fl = c.opt_out("row_flags", {3}, kU8);
    c.call = [&] { return dsk_moe_gate(c.ctx, cfg, c[l], c[b], c[ids], c[w], c[fl]); };
    c.versioned("config", cfg, config);
    c.also_named({"num_experts", "top_k"});
    c.run();
  }
  {
    Case c("dsk_moe_gate_router");
    const int x = c.in("x", {3, 16}, kBF16), rw = c.in("w", {8, 16}, kBF16),
              b = c.opt_in("bias", {8}, kF32), ids = c.out("ids", {3, 2}, kI32),
              w = c.out("weights", {3, 2}, kF32), fl = c.opt_out("row_flags", {3}, kU8);
    c.call = [&] {
      return dsk_moe_gate_router(c.ctx, cfg, c[x], c[rw], c[b], c[ids], c[w], c[fl]);
    };
    c.also_named({"num_experts", "top_k"});
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_moe_dispatch") {
  // T 4, k 2, E 3 local experts from 1, packed: capacity 8. int64 ids and a non-zero
  // expert_begin, so that extreme ids meet the subtraction.
  Case c("dsk_moe_dispatch");
  const int ids = c.in("ids", {4, 2}, kI64, {3, 1, 1, 2, 2, 3, 1, -1}),
            n = c.out("counts", {3}, kI32), o = c.out("offsets", {4}, kI32),
            r = c.out("sorted_rows", {8}, kI32), b = c.opt_out("block_experts", {8}, kI32),
            d = c.opt_out("dest", {4, 2}, kI32);
  c.call = [&] { return dsk_moe_dispatch(c.ctx, c[ids], 3, 1, 1, c[n], c[o], c[r], c[b], c[d]); };
  // sorted_rows may hold more than the capacity ("at least"), the test just does not own it.
  c.expect(r, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
  // Ids outside [expert_begin, expert_begin + E) belong to another device: skipped, not wrong.
  c.expect(ids, {sweep::kMinValue, sweep::kMaxValue}, Expect::kOk);
  c.also_named({"num_experts", "capacity"});
  c.bad("block_size 4097", {"block_size"},
        [&] { return dsk_moe_dispatch(c.ctx, c[ids], 3, 1, 4097, c[n], c[o], c[r], c[b], c[d]); });
  c.run();
}

TEST_CASE("bad input sweep: dsk_moe_permute and dsk_moe_combine") {
  {
    // T 4, k 2 (8 is padding); fp8 out, so out_scales is present and required.
    Case c("dsk_moe_permute");
    const int x = c.in("x", {4, 16}, kF32), r = c.in("sorted_rows", {6}, kI32, {1, 2, 8, 7, 0, 8}),
              o = c.out("out", {6, 16}, kFP8), s = c.out("out_scales", {6, 1}, kF32);
    c.call = [&] { return dsk_moe_permute(c.ctx, c[x], c[r], 2, c[o], c[s], 0); };
    // More tokens make 8 an assignment of a row the test does not own.
    c.expect(x, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
    c.bad("top_k -1", {"top_k"},
          [&] { return dsk_moe_permute(c.ctx, c[x], c[r], -1, c[o], c[s], 0); });
    c.run();
  }
  {
    Case c("dsk_moe_combine");
    const int y = c.in("y", {8, 16}, kF32),
              d = c.in("dest", {4, 2}, kI32, {0, 1, 2, -1, 3, 4, 5, 7}),
              w = c.in("weights", {4, 2}, kF32), sh = c.opt_in("shared", {4, 16}, kBF16),
              o = c.out("out", {4, 16}, kF32);
    c.call = [&] { return dsk_moe_combine(c.ctx, c[y], c[d], c[w], c[sh], c[o]); };
    c.expect(y, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);  // R is y's own
    c.run();
  }
}

TEST_CASE("bad input sweep: dsk_moe_experts") {
  for (int32_t dtype : {kBF16, kFP8}) {
    // E 2, I 32, D 48, R 6; fp8 weights take an fp8 x with its x_scales.
    Case c("dsk_moe_experts");
    Experts e(c, "weights", {2, 32, 48}, {2, 48, 32}, dtype);
    const int x = c.in("x", {6, 48}, dtype, {0.5});
    const int xs = dtype == kFP8 ? c.in("x_scales", {6, 1}, kF32, {0.5}) : -1;
    const int off = c.in("offsets", {3}, kI32, {0, 2, 5}), y = c.out("y", {6, 48}, kBF16);
    c.call = [&] {
      return dsk_moe_experts(c.ctx, e.get(c), c[x], xs < 0 ? nullptr : c[xs], c[off], c[y]);
    };
    c.versioned("weights", e.p, e.s);
    c.run();
  }
}

TEST_CASE("bad input sweep: the MoE layer") {
  // T 3, D 32, E 4, k 2, G 2, I 16, one shared expert of width 24.
  dsk_moe_gate_config config = gate_config(4, 2, 2, 1);
  const dsk_moe_gate_config* cfg = &config;
  struct Layer {
    int x, router, out;
    Experts routed, shared;
    explicit Layer(Case& c)
        : x(c.in("x", {3, 32}, kBF16, {0.1})),
          router(c.in("router_w", {4, 32}, kBF16, {0.1})),
          out(c.out("out", {3, 32}, kBF16)),
          routed(c, "experts", {4, 16, 32}, {4, 32, 16}, kBF16),
          shared(c, "shared", {24, 32}, {32, 24}, kBF16) {
      c.also_named({"num_experts", "plan"});
    }
  };
  {
    Case c("dsk_moe_plan_create");
    Layer l(c);
    c.call = [&] {
      auto* plan = reinterpret_cast<dsk_moe_plan*>(&c);  // must become NULL on error
      const dsk_status s = dsk_moe_plan_create(c.ctx, cfg, c[l.x], c[l.router], l.routed.get(c),
                                               l.shared.get(c), c[l.out], &plan);
      if (s == DSK_OK) {
        dsk_moe_plan_release(plan);
      } else {
        CHECK(plan == nullptr);
      }
      return s;
    };
    c.versioned("config", cfg, config);
    c.versioned("experts", l.routed.p, l.routed.s);
    c.versioned("shared", l.shared.p, l.shared.s, Expect::kOk);  // no shared experts
    c.run();
  }
  {
    Case c("dsk_moe_forward_run");
    Layer l(c);
    const int bias = c.opt_in("bias", {4}, kF32), ids = c.opt_out("ids", {3, 2}, kI32),
              w = c.opt_out("weights", {3, 2}, kF32);
    dsk_moe_plan* plan = nullptr;
    REQUIRE(dsk_moe_plan_create(c.ctx, cfg, c[l.x], c[l.router], l.routed.get(c), l.shared.get(c),
                                c[l.out], &plan) == DSK_OK);
    std::unique_ptr<dsk_moe_plan, void (*)(dsk_moe_plan*)> owned(plan, dsk_moe_plan_release);
    c.call = [&] {
      return dsk_moe_forward_run(c.ctx, plan, c[l.x], c[l.router], c[bias], l.routed.get(c),
                                 l.shared.get(c), c[l.out], c[ids], c[w]);
    };
    c.versioned("experts", l.routed.p, l.routed.s);
    c.versioned("shared", l.shared.p, l.shared.s);  // the plan has shared experts
    c.all_cuda_host(Expect::kAny);                  // the plan was made for kDLCPU tensors
    c.run();
  }
  {
    Case c("dsk_moe_forward");
    Layer l(c);
    const int bias = c.opt_in("bias", {4}, kF32);
    c.call = [&] {
      return dsk_moe_forward(c.ctx, cfg, c[l.x], c[l.router], c[bias], l.routed.get(c),
                             l.shared.get(c), c[l.out]);
    };
    c.versioned("shared", l.shared.p, l.shared.s, Expect::kOk);
    c.run();
  }
}

TEST_CASE("bad input sweep: MoE load statistics and EP layout") {
  {
    Case c("dsk_moe_load_accumulate");
    const int ids = c.in("ids", {2, 2}, kI64, {1, 2, 3, 4}), load = c.out("load", {4}, kI64);
    c.call = [&] { return dsk_moe_load_accumulate(c.ctx, c[ids], 1, c[load]); };
    // T, k and E are the tensors' own: smaller ones are valid, larger ones not the test's memory.
    c.expect(ids, sweep::kLastMinus1, Expect::kOk);
    c.expect(ids, {sweep::kFirstPlus1, sweep::kLastPlus1, sweep::kHugeShape}, Expect::kSkip);
    c.expect(load, sweep::kLastMinus1, Expect::kOk);
    c.expect(load, {sweep::kFirstPlus1, sweep::kHugeShape}, Expect::kSkip);
    c.expect(ids, {sweep::kMinValue, sweep::kMaxValue}, Expect::kOk);  // other devices' ids
    c.run();
  }
  {
    Case c("dsk_moe_bias_update");
    const int load = c.in("load", {4}, kI64, {1, 2, 3, 4}), bias = c.out("bias", {4}, kF32);
    c.call = [&] { return dsk_moe_bias_update(c.ctx, c[load], c[bias], 0.001f); };
    c.expect(load, sweep::kWrongClass, Expect::kOk);  // f32 load is the other accepted form
    // The header gives loads no range (the mean is taken in double).
    c.expect(load, {sweep::kMinValue, sweep::kMaxValue}, Expect::kAny);
    c.run();
  }
  {
    Case c("dsk_moe_ep_layout");
    const int ids = c.in("ids", {3, 2}, kI64, {0, 7, -1, 3, 5, 5}),
              pr = c.out("tokens_per_rank", {4}, kI32), pe = c.out("tokens_per_expert", {8}, kI32),
              ir = c.out("is_token_in_rank", {3, 4}, DSK_DTYPE_BOOL);
    c.call = [&] { return dsk_moe_ep_layout(c.ctx, c[ids], 8, 4, c[pr], c[pe], c[ir]); };
    c.expect(ids, sweep::kLastMinus1, Expect::kOk);  // k is ids' own
    c.expect(ids, sweep::kLastPlus1, Expect::kSkip);
    c.also_named({"num_experts", "num_ranks"});
    c.run();
  }
}
