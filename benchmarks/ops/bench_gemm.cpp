// GEMM family: dsk_linear in bf16 on DeepSeek-V3's linear shapes, an f32 dsk_gemm, and (CPU only)
// the same shapes computed by Eigen directly in f32 ("eigen_direct/..."), single-threaded, so the
// CPU path can be read against Eigen's own throughput.
//
// CPU cases are capped to stay affordable on a small machine: tokens {1, 16, 128} only, and
// lm_head (129280 x 7168) only at tokens <= 16 and without an Eigen twin (its f32 copy alone
// would take 3.7 GB). CUDA runs the full token grid.
#include <Eigen/Core>
#include <string>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const std::vector<int64_t> kCpuTokenCounts = {1, 16, 128};

std::string token_suffix(int64_t tokens) { return "/tokens:" + std::to_string(tokens); }

void add_linear(const OpsEnv& env, const LinearShape& s, int64_t tokens) {
  const std::string name = std::string("linear_bf16/") + s.name + token_suffix(tokens);
  env.add(name, [&env, s, tokens](benchmark::State& state) {
    dsk::Tensor x = env.random({tokens, s.in}, DSK_DTYPE_BF16);
    dsk::Tensor w = env.random({s.out, s.in}, DSK_DTYPE_BF16, -0.05f, 0.05f);
    dsk::Tensor y = env.tensor({tokens, s.out}, DSK_DTYPE_BF16);
    const double seconds = env.run(
        state, [&] { return dsk_linear(env.ctx->get(), &x.dl(), &w.dl(), nullptr, &y.dl()); });
    const double bytes = 2.0 * static_cast<double>(tokens * s.in + s.out * s.in + tokens * s.out);
    const double flops =
        2.0 * static_cast<double>(tokens) * static_cast<double>(s.in) * static_cast<double>(s.out);
    report(state, env, seconds, bytes, flops);
  });
}

// y = x @ w^T in f32 with Eigen alone (the same product the CPU path hands to Eigen).
void add_eigen_linear(const OpsEnv& env, const LinearShape& s, int64_t tokens) {
  const std::string name = std::string("eigen_direct/linear_f32/") + s.name + token_suffix(tokens);
  env.add(name, [&env, s, tokens](benchmark::State& state) {
    const RowMatrix x = RowMatrix::Random(tokens, s.in);
    const RowMatrix w = RowMatrix::Random(s.out, s.in) * 0.05f;
    RowMatrix y(tokens, s.out);
    const LoopClock clock;
    for (auto _ : state) {
      y.noalias() = x * w.transpose();
      benchmark::DoNotOptimize(y.data());
    }
    const double seconds = clock.seconds();
    const double bytes = 4.0 * static_cast<double>(tokens * s.in + s.out * s.in + tokens * s.out);
    const double flops =
        2.0 * static_cast<double>(tokens) * static_cast<double>(s.in) * static_cast<double>(s.out);
    report(state, env, seconds, bytes, flops);
  });
}

void add_gemm_f32(const OpsEnv& env, int64_t n) {
  const std::string dims =
      "/m:" + std::to_string(n) + "/n:" + std::to_string(n) + "/k:" + std::to_string(n);
  const double flops =
      2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  const double bytes = 4.0 * 3.0 * static_cast<double>(n * n);
  env.add("gemm_f32" + dims, [&env, n, flops, bytes](benchmark::State& state) {
    dsk::Tensor a = env.random({n, n}, DSK_DTYPE_F32);
    dsk::Tensor b = env.random({n, n}, DSK_DTYPE_F32);
    dsk::Tensor d = env.tensor({n, n}, DSK_DTYPE_F32);
    const double seconds = env.run(state, [&] {
      return dsk_gemm(env.ctx->get(), &a.dl(), &b.dl(), nullptr, &d.dl(), 0, 0, 1.0f, 0.0f);
    });
    report(state, env, seconds, bytes, flops);
  });
  if (env.backend != DSK_BACKEND_CPU) return;
  env.add("eigen_direct/gemm_f32" + dims, [&env, n, flops, bytes](benchmark::State& state) {
    const RowMatrix a = RowMatrix::Random(n, n);
    const RowMatrix b = RowMatrix::Random(n, n);
    RowMatrix d(n, n);
    const LoopClock clock;
    for (auto _ : state) {
      d.noalias() = a * b;
      benchmark::DoNotOptimize(d.data());
    }
    report(state, env, clock.seconds(), bytes, flops);
  });
}

}  // namespace

void register_gemm_benchmarks(const OpsEnv& env) {
  const bool cpu = env.backend == DSK_BACKEND_CPU;
  for (const LinearShape& s : kV3Linears) {
    const bool lm_head = std::string(s.name) == "lm_head";
    for (int64_t tokens : cpu ? kCpuTokenCounts : kTokenCounts) {
      if (cpu && lm_head && tokens > 16) continue;
      add_linear(env, s, tokens);
      if (cpu && !lm_head) add_eigen_linear(env, s, tokens);
    }
  }
  for (int64_t n : cpu ? std::vector<int64_t>{512, 1024} : std::vector<int64_t>{4096, 8192}) {
    add_gemm_f32(env, n);
  }
}

}  // namespace dsk::bench
