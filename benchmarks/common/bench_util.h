// bench_util.h - counters and small helpers shared by dsk's Google Benchmark suites.
//
// Every dsk benchmark reports the same counters so that one report script reads them all:
//   bytes_per_second  bytes read + written per second (decimal units: GB/s = 1e9 B/s, the unit of
//                     dsk_device_props.memory_bandwidth_gbps)
//   items_per_second  elements (or tokens, rows: whatever the suite counts) per second
//   flop_per_second   floating-point operations per second, for ops that compute
//   %peak             bytes_per_second as a percentage of the device's theoretical memory bandwidth
//   %peak_flops       flop_per_second as a percentage of a peak given in TFLOP/s
// The %peak counters are only reported when the peak is known: the CUDA module reports memory
// bandwidth, dsk cannot know the CPU's, and nobody reports FLOP peaks (they depend on the dtype and
// the instructions used), so the environment can provide them:
//   DSK_CPU_PEAK_GBPS, DSK_CUDA_PEAK_GBPS      memory bandwidth in GB/s (overrides the device's)
//   DSK_CPU_PEAK_TFLOPS, DSK_CUDA_PEAK_TFLOPS  compute peak in TFLOP/s
#ifndef DSK_BENCHMARKS_COMMON_BENCH_UTIL_H_
#define DSK_BENCHMARKS_COMMON_BENCH_UTIL_H_

#include <benchmark/benchmark.h>
#include <dsk/dsk.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dsk/dsk.hpp>
#include <memory>
#include <string>

namespace dsk::bench {

// Set by fail(): Google Benchmark exits 0 even when a benchmark skipped with an error, and a
// benchmark run (or the ctest smoke test) that silently measured nothing must not look green.
inline std::atomic<bool>& failure_flag() {
  static std::atomic<bool> failed{false};
  return failed;
}

// Marks the running benchmark as failed with `message`. Inside the timed loop, break after it.
inline void fail(benchmark::State& state, const std::string& message) {
  failure_flag().store(true);
  state.SkipWithError(message.c_str());
}

// fail() with dsk's status text and last error message when status is not DSK_OK.
inline bool check_status(benchmark::State& state, dsk_status status, const char* what) {
  if (status == DSK_OK) return true;
  fail(state, std::string(what) + " failed: " + dsk_status_string(status) + ": " +
                  dsk_last_error_message());
  return false;
}

// The process exit status after RunSpecifiedBenchmarks returned `benchmarks_run`: 1 when no
// benchmark matched the filter (a mistyped filter is an error, not an empty success) or one failed.
inline int exit_code(size_t benchmarks_run) {
  if (benchmarks_run == 0) return 1;
  if (failure_flag().load()) {
    std::fprintf(stderr, "error: at least one benchmark failed (see its error_message)\n");
    return 1;
  }
  return 0;
}

// A positive number from environment variable `name`, or 0 when it is unset. A value that is set
// but not a positive number is reported once and ignored, so a typo never yields a bogus %peak.
inline double env_positive(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return 0.0;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(value > 0.0)) {
    std::fprintf(stderr, "warning: ignoring %s=%s (expected a positive number)\n", name, text);
    return 0.0;
  }
  return value;
}

inline const char* backend_env_prefix(int32_t backend) {
  return backend == DSK_BACKEND_CUDA ? "DSK_CUDA" : "DSK_CPU";
}

// Properties of a device, or zeroed props (name "") when dsk cannot describe it.
inline dsk_device_props device_props(int32_t backend, int32_t device_id) {
  dsk_device_props props;
  dsk_device_props_init(&props);
  if (dsk_device_get_props(backend, device_id, &props) != DSK_OK) {
    dsk_device_props_init(&props);
  }
  return props;
}

// Theoretical memory bandwidth of a device in GB/s; 0 when unknown. DSK_<BACKEND>_PEAK_GBPS wins
// over the device's own figure (for the CPU it is the only source).
inline double peak_memory_gbps(int32_t backend, int32_t device_id) {
  const std::string var = std::string(backend_env_prefix(backend)) + "_PEAK_GBPS";
  const double from_env = env_positive(var.c_str());
  if (from_env > 0.0) return from_env;
  return device_props(backend, device_id).memory_bandwidth_gbps;
}

// Compute peak of a backend in TFLOP/s from DSK_<BACKEND>_PEAK_TFLOPS; 0 when unset.
inline double peak_tflops(int32_t backend) {
  const std::string var = std::string(backend_env_prefix(backend)) + "_PEAK_TFLOPS";
  return env_positive(var.c_str());
}

// Records the device and its peaks in the report's context block, so a JSON file says what it
// was measured on and which peak its %peak figures refer to.
inline void add_device_context(int32_t backend, int32_t device_id, double peak_gbps) {
  const dsk_device_props props = device_props(backend, device_id);
  const char* backend_name = backend == DSK_BACKEND_CUDA ? "cuda" : "cpu";
  benchmark::AddCustomContext("dsk_version", dsk_version_string());
  benchmark::AddCustomContext("dsk_backend", backend_name);
  benchmark::AddCustomContext("dsk_device", props.name[0] != '\0' ? props.name : "unknown");
  char peak[32] = "unknown";
  if (peak_gbps > 0.0) std::snprintf(peak, sizeof(peak), "%.1f", peak_gbps);
  benchmark::AddCustomContext("dsk_peak_gbps", peak);
}

// Wall-clock seconds of a timed loop. The %peak counters need the loop's duration while the
// benchmark runs, and Google Benchmark only divides by it after the fact (its rate counters would
// then print "%peak=42/s"), so CPU suites time the loop themselves with the same boundaries.
class LoopClock {
 public:
  LoopClock() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Runs the benchmark loop over `op` (returning dsk_status) and returns its wall-clock seconds; a
// failing status marks the benchmark failed (naming `what`) and ends the loop.
template <class Op>
double time_status_loop(benchmark::State& state, Op&& op, const char* what) {
  const LoopClock clock;
  for (auto _ : state) {
    if (!check_status(state, op(), what)) break;
  }
  return clock.seconds();
}

// A CPU context for a benchmark program's main(), or nullptr after saying why on stderr.
inline std::unique_ptr<dsk::Context> make_cpu_context(const char* program) {
  try {
    return std::make_unique<dsk::Context>(DSK_BACKEND_CPU);
  } catch (const dsk::Error& e) {
    std::fprintf(stderr, "%s: cannot create a CPU context: %s\n", program, e.what());
    return nullptr;
  }
}

// Reports bytes_per_second for `bytes_per_iteration` (read + written) and, when peak_gbps > 0,
// %peak over `seconds` (the timed loop's total duration: wall or manual time).
inline void report_bytes(benchmark::State& state, int64_t bytes_per_iteration, double seconds,
                         double peak_gbps) {
  const double total =
      static_cast<double>(bytes_per_iteration) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(total));
  // SetBytesProcessed prints binary prefixes (GiB/s); peaks are quoted in GB/s, so print decimal.
  state.counters["bytes_per_second"].oneK = benchmark::Counter::kIs1000;
  if (peak_gbps > 0.0 && seconds > 0.0) {
    state.counters["%peak"] = benchmark::Counter(100.0 * total / seconds / (peak_gbps * 1e9));
  }
}

// Reports items_per_second for `items_per_iteration`.
inline void report_items(benchmark::State& state, int64_t items_per_iteration) {
  state.SetItemsProcessed(items_per_iteration * static_cast<int64_t>(state.iterations()));
}

// Reports flop_per_second for `flops_per_iteration` and, when peak_tflops > 0, %peak_flops over
// `seconds`.
inline void report_flops(benchmark::State& state, double flops_per_iteration, double seconds,
                         double peak_tflops) {
  state.counters["flop_per_second"] =
      benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
  if (peak_tflops > 0.0 && seconds > 0.0) {
    const double total = flops_per_iteration * static_cast<double>(state.iterations());
    state.counters["%peak_flops"] =
        benchmark::Counter(100.0 * total / seconds / (peak_tflops * 1e12));
  }
}

}  // namespace dsk::bench

#endif  // DSK_BENCHMARKS_COMMON_BENCH_UTIL_H_
