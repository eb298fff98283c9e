// RMSNorm, fused add + RMSNorm, RoPE and SwiGLU at DeepSeek-V3 shapes: hidden 7168, 128 heads with
// a 64-dim rotary part inside 192-dim q heads, a 64-dim k_pe, the expert's fused 2 x 2048 gate/up.
// All bf16. Memory-bound: the counters are bytes moved (each input read once, each output written
// once); %peak compares them with DSK_<BACKEND>_PEAK_GBPS or the device's bandwidth.
//
// Every token count of kTokenCounts runs on the CPU too: the largest case moves ~235 MB per
// iteration, which the single-threaded reference does in well under a second.
#include <string>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

constexpr int64_t kExpertInter = 2048;  // moe_inter_dim
constexpr int64_t kQkNopeDim = 128;     // q head = 128 nope + 64 rope dims

// Shapes as doubles for the byte and flop counts.
constexpr double kDimD = static_cast<double>(kV3Dim);
constexpr double kRopeD = static_cast<double>(kV3RopeDim);
constexpr double kInterD = static_cast<double>(kExpertInter);

// positions [t] int32 = 0, 1, ..., t - 1 on the benchmarked device.
dsk::Tensor arange_positions(const OpsEnv& env, int64_t t) {
  std::vector<int32_t> host(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) host[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  return env.int32s(host);
}

// DeepSeek-V3's cos/sin tables [4096, 32] f32 on the benchmarked device.
struct RopeTables {
  dsk::Tensor cs;
  dsk::Tensor sn;
  explicit RopeTables(const OpsEnv& env) {
    dsk_rope_config c;
    dsk_rope_config_init(&c);
    const int64_t positions = 4096;
    cs = env.tensor({positions, kV3RopeDim / 2}, DSK_DTYPE_F32);
    sn = env.tensor({positions, kV3RopeDim / 2}, DSK_DTYPE_F32);
    dsk::check(dsk_rope_table(env.ctx->get(), &c, cs, sn));
  }
};

std::string name(const char* op, int64_t tokens) {
  return std::string("norm/") + op + "/tokens:" + std::to_string(tokens);
}

}  // namespace

void register_norm_benchmarks(const OpsEnv& env) {
  const OpsEnv* e = &env;
  for (int64_t t : kTokenCounts) {
    const auto td = static_cast<double>(t);
    env.add(name("rmsnorm_bf16", t), [e, t, td](benchmark::State& state) {
      dsk::Tensor x = e->random({t, kV3Dim}, DSK_DTYPE_BF16);
      dsk::Tensor w = e->random({kV3Dim}, DSK_DTYPE_BF16, 0.5f, 1.5f);
      dsk::Tensor y = e->tensor({t, kV3Dim}, DSK_DTYPE_BF16);
      const double seconds =
          e->run(state, [&] { return dsk_rmsnorm(e->ctx->get(), x, w, y, 1e-6f); });
      report(state, *e, seconds, 2.0 * (2.0 * td * kDimD + kDimD), 4.0 * td * kDimD);
    });
    env.add(name("add_rmsnorm_bf16", t), [e, t, td](benchmark::State& state) {
      dsk::Tensor x = e->random({t, kV3Dim}, DSK_DTYPE_BF16);
      dsk::Tensor r = e->random({t, kV3Dim}, DSK_DTYPE_BF16);
      dsk::Tensor w = e->random({kV3Dim}, DSK_DTYPE_BF16, 0.5f, 1.5f);
      dsk::Tensor y = e->tensor({t, kV3Dim}, DSK_DTYPE_BF16);
      // The residual stream updated in place, as a transformer block does.
      const double seconds =
          e->run(state, [&] { return dsk_add_rmsnorm(e->ctx->get(), x, r, w, y, r, 1e-6f); });
      report(state, *e, seconds, 2.0 * (4.0 * td * kDimD + kDimD), 5.0 * td * kDimD);
    });
    env.add(name("rope_q_bf16", t), [e, t, td](benchmark::State& state) {
      RopeTables tab(*e);
      dsk::Tensor pos = arange_positions(*e, t);
      // q [T, 128, 192]; the rotary part is the last 64 dims of each head, rotated in place.
      const int64_t head = kQkNopeDim + kV3RopeDim;
      dsk::Tensor q = e->random({t, kV3Heads, head}, DSK_DTYPE_BF16);
      dsk::Tensor q_pe = q.view({t, kV3Heads, kV3RopeDim}, {kV3Heads * head, head, 1}, kQkNopeDim);
      const double seconds = e->run(state, [&] {
        return dsk_rope_apply(e->ctx->get(), q_pe, pos, tab.cs, tab.sn, q_pe, DSK_ROPE_INTERLEAVED);
      });
      const double elems = td * static_cast<double>(kV3Heads) * kRopeD;
      report(state, *e, seconds, 2.0 * 2.0 * elems + 4.0 * td + 8.0 * td * kRopeD / 2, 3.0 * elems);
    });
    env.add(name("rope_k_bf16", t), [e, t, td](benchmark::State& state) {
      RopeTables tab(*e);
      dsk::Tensor pos = arange_positions(*e, t);
      dsk::Tensor k = e->random({t, kV3RopeDim}, DSK_DTYPE_BF16);
      const double seconds = e->run(state, [&] {
        return dsk_rope_apply(e->ctx->get(), k, pos, tab.cs, tab.sn, k, DSK_ROPE_INTERLEAVED);
      });
      const double elems = td * kRopeD;
      report(state, *e, seconds, 2.0 * 2.0 * elems + 4.0 * td + 8.0 * td * kRopeD / 2, 3.0 * elems);
    });
    env.add(name("swiglu_fused_bf16", t), [e, t, td](benchmark::State& state) {
      dsk::Tensor gu = e->random({t, 2 * kExpertInter}, DSK_DTYPE_BF16, -4.0f, 4.0f);
      dsk::Tensor y = e->tensor({t, kExpertInter}, DSK_DTYPE_BF16);
      const double seconds = e->run(state, [&] { return dsk_swiglu_fused(e->ctx->get(), gu, y); });
      report(state, *e, seconds, 2.0 * 3.0 * td * kInterD, 4.0 * td * kInterD);
    });
  }
}

}  // namespace dsk::bench
