// dsk_bench_ops_cuda - the core ops (dsk_ops.h) on a CUDA device at DeepSeek-V3 shapes, timed with
// CUDA events on the context's stream, L2 flushed before each iteration by default.
//
// Usage: dsk_bench_ops_cuda [--l2_flush=true|false] [Google Benchmark flags]. Without a usable
// device it says why and exits 0. DSK_CUDA_PEAK_TFLOPS gives %peak_flops (e.g. 989 for dense bf16
// on an H100 SXM, 1979 for fp8).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>

#include "cuda_main.h"
#include "cuda_timer.h"
#include "cuda_util.h"
#include "ops_bench.h"

int main(int argc, char** argv) {
  bool flush_l2 = true;
  if (!dsk::bench::parse_l2_flush("dsk_bench_ops_cuda", &argc, argv, &flush_l2)) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string unusable = dsk::bench::cuda_unusable_reason();
  if (!unusable.empty()) {
    std::printf("dsk_bench_ops_cuda: no usable CUDA device (%s); no benchmarks run\n",
                unusable.c_str());
    return 0;
  }
  constexpr int kDevice = 0;
  std::unique_ptr<dsk::bench::CudaStream> stream;
  std::unique_ptr<dsk::Context> ctx;
  std::unique_ptr<dsk::bench::CudaTimer> timer;
  dsk::bench::OpsEnv env;
  try {
    stream = std::make_unique<dsk::bench::CudaStream>(kDevice);
    ctx = std::make_unique<dsk::Context>(DSK_BACKEND_CUDA, kDevice, stream->get());
    timer = std::make_unique<dsk::bench::CudaTimer>(kDevice, stream->get(), flush_l2);
    env.ctx = ctx.get();
    env.backend = DSK_BACKEND_CUDA;
    env.peak_gbps = dsk::bench::peak_memory_gbps(DSK_BACKEND_CUDA, kDevice);
    env.peak_tflops = dsk::bench::peak_tflops(DSK_BACKEND_CUDA);
    dsk::bench::CudaTimer* t = timer.get();
    env.run = [t](benchmark::State& state, const std::function<dsk_status()>& op) {
      return t->run(state, op);
    };
    dsk::bench::add_device_context(DSK_BACKEND_CUDA, kDevice, env.peak_gbps);
    benchmark::AddCustomContext("dsk_l2_flush", timer->flushes_l2() ? "on" : "off");
    dsk::bench::register_gemm_benchmarks(env);
    dsk::bench::register_fp8_benchmarks(env);
    dsk::bench::register_norm_benchmarks(env);
    dsk::bench::register_softmax_benchmarks(env);
    dsk::bench::register_mla_benchmarks(env);
    dsk::bench::register_moe_benchmarks(env);
    dsk::bench::register_sampling_benchmarks(env);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsk_bench_ops_cuda: setup failed: %s\n", e.what());
    return 1;
  }
  const size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return dsk::bench::exit_code(ran);
}
