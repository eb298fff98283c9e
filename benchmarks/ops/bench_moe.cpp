// Mixture of Experts (dsk_moe.h) through the public C API: the gate, dispatch, permute, combine
// and the whole layer (plan/run).
//
// Gate: DeepSeek's three configs (V3: 256 experts, k 8, 8 groups keep 4, sigmoid + bias,
// renormalized, scale 2.5; V2: 160, 6, 8 groups keep 3, softmax, scale 16; V2-Lite: 64, 6, no
// groups, softmax), f32 and bf16 logits, T in {1, 8, 64, 512, 4096, 16384, 65536} (the CPU stops
// at 16384). The gate is memory-bound: bytes = T * E * sizeof(logit) (read) + T * k * 8 (ids int32
// and weights f32 written) + E * 4 (the bias, V3 only), so %peak is the share of the bandwidth
// floor (V3 f32: about 1.09 KB per token); pct_of_copy compares the same bytes with the copy
// bandwidth (copy_gbps in ops_bench.h: bytes read + written by a memcpy; the CPU target).
//
// Dispatch / permute / combine at V3's hidden size D 7168, k 8, 256 experts, T {1, 128, 4096},
// uniformly random distinct experts per token, block_size 1 (packed, R = T * k rows):
//   dispatch  bytes = ids T*k*4 + counts E*4 + offsets (E+1)*4 + sorted_rows R*4 + dest T*k*4
//   permute   bf16 -> bf16 and bf16 -> fp8 (1 x 128 tiles): bytes = x T*D*2 (read once, though
//             each row is gathered k times) + out R * D * (out size) + sorted_rows R*4
//             (+ scales R * ceil(D/128) * 4)
//   combine   bytes = y R*D*2 + dest/weights T*k*8 + out T*D*2 (bf16)
//
// The layer: dsk_moe_forward_run with a plan (workspace reserved, so a run does not allocate) at
// D 7168, I 2048 and one shared expert of I 2048 (V3's shapes) with the experts scaled down: CUDA
// E 16, k 8, 8 groups keep 4, T {1, 128, 4096}; CPU E 8, k 4, 4 groups keep 2, T {1, 16} (fp8
// weights: T 1 only, the CPU reference dequantizes every weight it uses, seconds per call); bf16
// and fp8 (128 x 128 block scales) expert weights, bf16 x. flops = 2 * T * (E * D (router)
// + 3 * D * (k * I + Is)); bytes = the weights of the experts the tokens actually reach (counted
// after the warm-up run from the gate's ids) + the shared expert + router_w + x + out.
//
// Every case makes one untimed warm-up call first (library handles, first-touch page faults).
#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

struct GateConfig {
  const char* name;
  int32_t experts, k, groups, topk_group, score_func, renormalize;
  float scale;
  bool bias;
};

const GateConfig kGateConfigs[] = {
    {"v3", 256, 8, 8, 4, DSK_MOE_SCORE_SIGMOID, 1, 2.5f, true},
    {"v2", 160, 6, 8, 3, DSK_MOE_SCORE_SOFTMAX, 0, 16.0f, false},
    {"v2_lite", 64, 6, 1, 1, DSK_MOE_SCORE_SOFTMAX, 0, 1.0f, false},
};

dsk_moe_gate_config gate_config(const GateConfig& g) {
  dsk_moe_gate_config c;
  dsk::check(dsk_moe_gate_config_init(&c));
  c.num_experts = g.experts;
  c.top_k = g.k;
  c.n_group = g.groups;
  c.topk_group = g.topk_group;
  c.score_func = g.score_func;
  c.group_rule = DSK_MOE_GROUP_AUTO;
  c.renormalize = g.renormalize;
  c.routed_scaling_factor = g.scale;
  return c;
}

// ids [t, k] int32: k distinct experts of [0, e) per token, uniformly random (seeded).
std::vector<int32_t> random_routing(int64_t t, int32_t k, int32_t e) {
  std::vector<int32_t> ids(static_cast<size_t>(t * k));
  std::vector<int32_t> perm(static_cast<size_t>(e));
  for (int32_t i = 0; i < e; ++i) perm[static_cast<size_t>(i)] = i;
  std::mt19937 rng(11);
  for (int64_t r = 0; r < t; ++r) {
    // Partial Fisher-Yates: the first k of a fresh shuffle.
    for (int32_t j = 0; j < k; ++j) {
      std::uniform_int_distribution<int32_t> d(j, e - 1);
      std::swap(perm[static_cast<size_t>(j)], perm[static_cast<size_t>(d(rng))]);
      ids[static_cast<size_t>(r * k + j)] = perm[static_cast<size_t>(j)];
    }
  }
  return ids;
}

// Copies an int32 tensor of the env's device to the host.
std::vector<int32_t> to_host_i32(const OpsEnv& env, const dsk::Tensor& t) {
  std::vector<int32_t> host(static_cast<size_t>(t.numel()));
  std::vector<int64_t> shape(t.dl().shape, t.dl().shape + t.dl().ndim);
  DLTensor dst{};
  dst.data = host.data();
  dst.device = DLDevice{kDLCPU, 0};
  dst.ndim = t.dl().ndim;
  dst.dtype = DLDataType{kDLInt, 32, 1};
  dst.shape = shape.data();
  dsk::check(dsk_copy(env.ctx->get(), t, &dst));
  dsk::check(dsk_context_synchronize(env.ctx->get()));
  return host;
}

void add_gate(const OpsEnv& env, const GateConfig& g, int32_t dtype, int64_t t) {
  const OpsEnv* e = &env;
  const std::string name = std::string("moe/gate_") + g.name + "_" +
                           (dtype == DSK_DTYPE_F32 ? "f32" : "bf16") +
                           "/tokens:" + std::to_string(t);
  env.add(name, [e, g, dtype, t](benchmark::State& state) {
    guarded_case(state, [&] {
      const dsk_moe_gate_config config = gate_config(g);
      dsk::Tensor logits = e->random({t, g.experts}, dtype, -4.0f, 4.0f);
      dsk::Tensor bias;
      if (g.bias) bias = e->random({g.experts}, DSK_DTYPE_F32, -0.1f, 0.1f);
      dsk::Tensor ids = e->tensor({t, g.k}, DSK_DTYPE_INT32);
      dsk::Tensor weights = e->tensor({t, g.k}, DSK_DTYPE_F32);
      const DLTensor* bias_dl = g.bias ? static_cast<const DLTensor*>(bias) : nullptr;
      const double seconds = timed(state, *e, [&] {
        return dsk_moe_gate(e->ctx->get(), &config, logits, bias_dl, ids, weights, nullptr);
      });
      if (seconds < 0) return;
      const double td = static_cast<double>(t);
      const double elem = dtype == DSK_DTYPE_F32 ? 4.0 : 2.0;
      const double bytes =
          td * g.experts * elem + td * g.k * 8.0 + (g.bias ? g.experts * 4.0 : 0.0);
      report(state, *e, seconds, bytes, 0.0);
      report_copy_floor(state, *e, seconds, bytes);
    });
  });
}

constexpr int64_t kD = kV3Dim;
constexpr int32_t kRouteK = 8;
constexpr int32_t kRouteE = 256;

void add_dispatch(const OpsEnv& env, int64_t t) {
  const OpsEnv* e = &env;
  env.add("moe/dispatch/tokens:" + std::to_string(t), [e, t](benchmark::State& state) {
    guarded_case(state, [&] {
      const int64_t r = t * kRouteK;
      dsk::Tensor ids = e->int32s(random_routing(t, kRouteK, kRouteE)).view({t, kRouteK});
      int64_t capacity = 0;
      dsk::check(dsk_moe_dispatch_capacity(t, kRouteK, kRouteE, 1, &capacity));
      dsk::Tensor counts = e->tensor({kRouteE}, DSK_DTYPE_INT32);
      dsk::Tensor offsets = e->tensor({kRouteE + 1}, DSK_DTYPE_INT32);
      dsk::Tensor rows = e->tensor({capacity}, DSK_DTYPE_INT32);
      dsk::Tensor dest = e->tensor({t, kRouteK}, DSK_DTYPE_INT32);
      const double seconds = timed(state, *e, [&] {
        return dsk_moe_dispatch(e->ctx->get(), ids, kRouteE, 0, 1, counts, offsets, rows, nullptr,
                                dest);
      });
      if (seconds < 0) return;
      const double bytes = 4.0 * (2.0 * static_cast<double>(r) + (2.0 * kRouteE + 1.0) +
                                  static_cast<double>(capacity));
      report(state, *e, seconds, bytes, 0.0);
    });
  });
}

void add_permute(const OpsEnv& env, int64_t t, bool fp8) {
  const OpsEnv* e = &env;
  const std::string name =
      std::string("moe/permute_bf16_to_") + (fp8 ? "fp8" : "bf16") + "/tokens:" + std::to_string(t);
  env.add(name, [e, t, fp8](benchmark::State& state) {
    guarded_case(state, [&] {
      const int64_t r = t * kRouteK;
      // Rows in expert order: the dispatch of random routing (computed once, untimed).
      dsk::Tensor ids = e->int32s(random_routing(t, kRouteK, kRouteE)).view({t, kRouteK});
      dsk::Tensor counts = e->tensor({kRouteE}, DSK_DTYPE_INT32);
      dsk::Tensor offsets = e->tensor({kRouteE + 1}, DSK_DTYPE_INT32);
      dsk::Tensor rows = e->tensor({r}, DSK_DTYPE_INT32);
      dsk::check(dsk_moe_dispatch(e->ctx->get(), ids, kRouteE, 0, 1, counts, offsets, rows, nullptr,
                                  nullptr));
      const int64_t tiles = (kD + 127) / 128;
      dsk::Tensor x = e->random({t, kD}, DSK_DTYPE_BF16);
      dsk::Tensor out = e->tensor({r, kD}, fp8 ? DSK_DTYPE_FP8_E4M3FN : DSK_DTYPE_BF16);
      dsk::Tensor scales;
      if (fp8) scales = e->tensor({r, tiles}, DSK_DTYPE_F32);
      const DLTensor* scales_dl = fp8 ? static_cast<const DLTensor*>(scales) : nullptr;
      const double seconds = timed(state, *e, [&] {
        return dsk_moe_permute(e->ctx->get(), x, rows, kRouteK, out, scales_dl, 0);
      });
      if (seconds < 0) return;
      const double rd = static_cast<double>(r);
      const double bytes = static_cast<double>(t * kD) * 2.0 +
                           rd * static_cast<double>(kD) * (fp8 ? 1.0 : 2.0) + rd * 4.0 +
                           (fp8 ? rd * static_cast<double>(tiles) * 4.0 : 0.0);
      report(state, *e, seconds, bytes, 0.0);
    });
  });
}

void add_combine(const OpsEnv& env, int64_t t) {
  const OpsEnv* e = &env;
  env.add("moe/combine_bf16/tokens:" + std::to_string(t), [e, t](benchmark::State& state) {
    guarded_case(state, [&] {
      const int64_t r = t * kRouteK;
      dsk::Tensor ids = e->int32s(random_routing(t, kRouteK, kRouteE)).view({t, kRouteK});
      dsk::Tensor counts = e->tensor({kRouteE}, DSK_DTYPE_INT32);
      dsk::Tensor offsets = e->tensor({kRouteE + 1}, DSK_DTYPE_INT32);
      dsk::Tensor rows = e->tensor({r}, DSK_DTYPE_INT32);
      dsk::Tensor dest = e->tensor({t, kRouteK}, DSK_DTYPE_INT32);
      dsk::check(dsk_moe_dispatch(e->ctx->get(), ids, kRouteE, 0, 1, counts, offsets, rows, nullptr,
                                  dest));
      dsk::Tensor y = e->random({r, kD}, DSK_DTYPE_BF16);
      dsk::Tensor weights = e->random({t, kRouteK}, DSK_DTYPE_F32, 0.0f, 0.3f);
      dsk::Tensor out = e->tensor({t, kD}, DSK_DTYPE_BF16);
      const double seconds = timed(state, *e, [&] {
        return dsk_moe_combine(e->ctx->get(), y, dest, weights, nullptr, out);
      });
      if (seconds < 0) return;
      const double td = static_cast<double>(t);
      const double bytes = static_cast<double>(r) * static_cast<double>(kD) * 2.0 +
                           td * kRouteK * 8.0 + td * static_cast<double>(kD) * 2.0;
      report(state, *e, seconds, bytes, 0.0);
    });
  });
}

// The layer's experts: w1, w3 [E, I, D], w2 [E, D, I] (or the shared expert without E), with
// 128 x 128 block scales for fp8.
struct ExpertSet {
  dsk::Tensor w1, w3, w2, s1, s3, s2;
  dsk_moe_expert_weights weights{};
};

void make_experts(const OpsEnv& env, int64_t experts, int64_t inter, bool fp8, ExpertSet* s) {
  const int32_t wdt = fp8 ? DSK_DTYPE_FP8_E4M3FN : DSK_DTYPE_BF16;
  auto shape = [&](int64_t rows, int64_t cols) {
    return experts > 0 ? std::vector<int64_t>{experts, rows, cols}
                       : std::vector<int64_t>{rows, cols};
  };
  // Small weights keep the activations in a sane range (values do not change the timing).
  const float amp = 0.02f;
  s->w1 = env.random(shape(inter, kD), wdt, -amp, amp);
  s->w3 = env.random(shape(inter, kD), wdt, -amp, amp);
  s->w2 = env.random(shape(kD, inter), wdt, -amp, amp);
  dsk::check(dsk_moe_expert_weights_init(&s->weights));
  s->weights.w1 = s->w1;
  s->weights.w3 = s->w3;
  s->weights.w2 = s->w2;
  if (fp8) {
    const int64_t ib = (inter + 127) / 128;
    const int64_t db = (kD + 127) / 128;
    s->s1 = env.random(shape(ib, db), DSK_DTYPE_F32, 0.5f, 1.5f);
    s->s3 = env.random(shape(ib, db), DSK_DTYPE_F32, 0.5f, 1.5f);
    s->s2 = env.random(shape(db, ib), DSK_DTYPE_F32, 0.5f, 1.5f);
    s->weights.w1_scales = s->s1;
    s->weights.w3_scales = s->s3;
    s->weights.w2_scales = s->s2;
  }
}

struct LayerShape {
  int32_t experts, k, groups, topk_group;
};

constexpr int64_t kInter = 2048;
constexpr int64_t kSharedInter = 2048;

void add_layer(const OpsEnv& env, const LayerShape& ls, int64_t t, bool fp8) {
  const OpsEnv* e = &env;
  const std::string name = std::string("moe/layer_") + (fp8 ? "fp8" : "bf16") +
                           "/e:" + std::to_string(ls.experts) + "/k:" + std::to_string(ls.k) +
                           "/tokens:" + std::to_string(t);
  env.add(name, [e, ls, t, fp8](benchmark::State& state) {
    guarded_case(state, [&] {
      dsk_moe_gate_config config;
      dsk::check(dsk_moe_gate_config_init(&config));
      config.num_experts = ls.experts;
      config.top_k = ls.k;
      config.n_group = ls.groups;
      config.topk_group = ls.topk_group;
      dsk::Tensor x = e->random({t, kD}, DSK_DTYPE_BF16);
      dsk::Tensor router = e->random({ls.experts, kD}, DSK_DTYPE_BF16, -0.05f, 0.05f);
      dsk::Tensor bias = e->random({ls.experts}, DSK_DTYPE_F32, -0.01f, 0.01f);
      dsk::Tensor out = e->tensor({t, kD}, DSK_DTYPE_BF16);
      dsk::Tensor ids = e->tensor({t, ls.k}, DSK_DTYPE_INT32);
      ExpertSet routed;
      ExpertSet shared;
      make_experts(*e, ls.experts, kInter, fp8, &routed);
      make_experts(*e, 0, kSharedInter, fp8, &shared);
      dsk_moe_plan* raw = nullptr;
      dsk::check(dsk_moe_plan_create(e->ctx->get(), &config, x, router, &routed.weights,
                                     &shared.weights, out, &raw));
      std::unique_ptr<dsk_moe_plan, void (*)(dsk_moe_plan*)> plan(raw, dsk_moe_plan_release);
      size_t ws = 0;
      dsk::check(dsk_moe_plan_workspace_size(plan.get(), &ws));
      dsk::check(dsk_context_reserve_workspace(e->ctx->get(), ws));
      // Warm-up with the gate's ids out: which experts the tokens reach.
      if (!check_status(state,
                        dsk_moe_forward_run(e->ctx->get(), plan.get(), x, router, bias,
                                            &routed.weights, &shared.weights, out, ids, nullptr),
                        "warm-up call")) {
        return;
      }
      const std::vector<int32_t> host_ids = to_host_i32(*e, ids);
      std::vector<bool> hit(static_cast<size_t>(ls.experts), false);
      for (int32_t id : host_ids) {
        if (id >= 0 && id < ls.experts) hit[static_cast<size_t>(id)] = true;
      }
      const double reached = static_cast<double>(std::count(hit.begin(), hit.end(), true));
      const double seconds = e->run(state, [&] {
        return dsk_moe_forward_run(e->ctx->get(), plan.get(), x, router, bias, &routed.weights,
                                   &shared.weights, out, nullptr, nullptr);
      });
      const double td = static_cast<double>(t);
      const double d = static_cast<double>(kD);
      const double wsize = fp8 ? 1.0 : 2.0;
      const double expert_bytes = 3.0 * static_cast<double>(kInter) * d * wsize;
      const double shared_bytes = 3.0 * static_cast<double>(kSharedInter) * d * wsize;
      const double bytes =
          reached * expert_bytes + shared_bytes + ls.experts * d * 2.0 + 2.0 * td * d * 2.0;
      const double flops =
          2.0 * td *
          (ls.experts * d + 3.0 * d * (ls.k * static_cast<double>(kInter) + kSharedInter));
      report(state, *e, seconds, bytes, flops);
      state.counters["experts_reached"] = reached;
    });
  });
}

}  // namespace

void register_moe_benchmarks(const OpsEnv& env) {
  const bool cuda = env.backend == DSK_BACKEND_CUDA;
  std::vector<int64_t> gate_tokens = {1, 8, 64, 512, 4096, 16384};
  if (cuda) gate_tokens.push_back(65536);
  for (const GateConfig& g : kGateConfigs) {
    for (int32_t dtype : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
      for (int64_t t : gate_tokens) add_gate(env, g, dtype, t);
    }
  }
  for (int64_t t : {int64_t{1}, int64_t{128}, int64_t{4096}}) {
    add_dispatch(env, t);
    add_permute(env, t, false);
    add_permute(env, t, true);
    add_combine(env, t);
  }
  const LayerShape layer = cuda ? LayerShape{16, 8, 8, 4} : LayerShape{8, 4, 4, 2};
  const std::vector<int64_t> layer_tokens =
      cuda ? std::vector<int64_t>{1, 128, 4096} : std::vector<int64_t>{1, 16};
  for (bool fp8 : {false, true}) {
    for (int64_t t : layer_tokens) {
      if (fp8 && !cuda && t > 1) continue;
      add_layer(env, layer, t, fp8);
    }
  }
}

}  // namespace dsk::bench
