// dsk_bench_tensor - copies, dtype conversions, fills and random fills on the CPU backend, through
// the public C API only, so the figures are what an embedding application sees.
//
// Usage: dsk_bench_tensor [Google Benchmark flags]. Set DSK_CPU_PEAK_GBPS to the machine's memory
// bandwidth to get %peak (dsk cannot discover it).
#include <benchmark/benchmark.h>

#include <exception>
#include <memory>
#include <string>

#include "bench_util.h"
#include "tensor_cases.h"

namespace {

void run_case(benchmark::State& state, dsk::Context& ctx, const dsk::bench::TensorCase& c,
              double peak_gbps) {
  std::unique_ptr<dsk::bench::TensorOp> op;
  try {
    op = std::make_unique<dsk::bench::TensorOp>(ctx, c, state.range(0));
  } catch (const std::exception& e) {
    dsk::bench::fail(state, std::string("setup failed: ") + e.what());
    return;
  }
  const double seconds = dsk::bench::time_status_loop(state, *op, c.name);
  dsk::bench::report_bytes(state, op->bytes(), seconds, peak_gbps);
  dsk::bench::report_items(state, op->items());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const std::unique_ptr<dsk::Context> ctx = dsk::bench::make_cpu_context("dsk_bench_tensor");
  if (!ctx) return 1;
  const double peak_gbps = dsk::bench::peak_memory_gbps(DSK_BACKEND_CPU, 0);
  dsk::bench::add_device_context(DSK_BACKEND_CPU, 0, peak_gbps);

  for (const dsk::bench::TensorCase& c : dsk::bench::kTensorCases) {
    dsk::Context& context = *ctx;
    benchmark::RegisterBenchmark(c.name,
                                 [&context, c, peak_gbps](benchmark::State& state) {
                                   run_case(state, context, c, peak_gbps);
                                 })
        ->Apply(dsk::bench::tensor_sizes)
        // Wall time, not CPU time: bandwidth is bytes per second of the caller's waiting, and stays
        // right if the CPU backend ever spreads work over threads.
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }

  const size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return dsk::bench::exit_code(ran);
}
