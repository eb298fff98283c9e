// dsk_bench_ops - the core ops (dsk_ops.h) on the CPU backend at DeepSeek-V3 shapes, through the
// public C API.
//
// Usage: dsk_bench_ops [Google Benchmark flags]. DSK_CPU_PEAK_GBPS (measured copy bandwidth) and
// DSK_CPU_PEAK_TFLOPS give %peak and %peak_flops.
// DSK_BENCH_SAMPLING_MAX_B raises the sampling cases' batch cap (32; the grid goes to 512).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>

#include "ops_bench.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::unique_ptr<dsk::Context> ctx = dsk::bench::make_cpu_context("dsk_bench_ops");
  if (!ctx) return 1;
  dsk::bench::OpsEnv env;
  env.ctx = ctx.get();
  env.backend = DSK_BACKEND_CPU;
  env.peak_gbps = dsk::bench::peak_memory_gbps(DSK_BACKEND_CPU, 0);
  env.peak_tflops = dsk::bench::peak_tflops(DSK_BACKEND_CPU);
  env.run = [](benchmark::State& state, const std::function<dsk_status()>& op) {
    return dsk::bench::time_status_loop(state, op, "timed operation");
  };
  dsk::bench::add_device_context(DSK_BACKEND_CPU, 0, env.peak_gbps);
  try {
    dsk::bench::register_gemm_benchmarks(env);
    dsk::bench::register_fp8_benchmarks(env);
    dsk::bench::register_norm_benchmarks(env);
    dsk::bench::register_softmax_benchmarks(env);
    dsk::bench::register_mla_benchmarks(env);
    dsk::bench::register_moe_benchmarks(env);
    dsk::bench::register_sampling_benchmarks(env);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsk_bench_ops: registering benchmarks failed: %s\n", e.what());
    return 1;
  }
  const size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return dsk::bench::exit_code(ran);
}
