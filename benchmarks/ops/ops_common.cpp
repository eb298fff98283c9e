// The case helpers and the copy-bandwidth floor shared by the op families (ops_bench.h).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "ops_bench.h"

namespace dsk::bench {
namespace {

// DSK_NUM_THREADS when set (1 .. 1024), else one per core: the threads the CPU backend runs on.
int cpu_threads() {
  const char* text = std::getenv("DSK_NUM_THREADS");
  if (text != nullptr && *text != '\0') {
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (end != text && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// GB/s of a memcpy of 256 MiB split over cpu_threads() threads (bytes read + written), best of 5.
double measure_cpu_copy_gbps() {
  const size_t bytes = size_t{256} << 20;
  const std::vector<char> src(bytes, 1);
  std::vector<char> dst(bytes, 0);
  const int threads = cpu_threads();
  auto copy_once = [&] {
    auto part = [&](int t) {
      const size_t lo = bytes * static_cast<size_t>(t) / static_cast<size_t>(threads);
      const size_t hi = bytes * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
      std::memcpy(dst.data() + lo, src.data() + lo, hi - lo);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(part, t);
    part(0);
    for (std::thread& th : pool) th.join();
  };
  copy_once();
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    copy_once();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, s);
  }
  return 2.0 * static_cast<double>(bytes) / best / 1e9;
}

}  // namespace

double copy_gbps(const OpsEnv& env) {
  if (env.peak_gbps > 0.0 || env.backend == DSK_BACKEND_CUDA) return env.peak_gbps;
  static const double measured = measure_cpu_copy_gbps();
  return measured;
}

void report_copy_floor(benchmark::State& state, const OpsEnv& env, double seconds, double bytes) {
  const double gbps = copy_gbps(env);
  if (gbps <= 0.0 || seconds <= 0.0 || state.iterations() == 0) return;
  const double floor_s = bytes / (gbps * 1e9);
  const double per_call = seconds / static_cast<double>(state.iterations());
  state.counters["floor_us"] = floor_s * 1e6;
  state.counters["pct_of_copy"] = 100.0 * floor_s / per_call;
  state.counters["copy_gbps"] = gbps;
}

void guarded_case(benchmark::State& state, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    fail(state, std::string("setup failed: ") + e.what());
  }
}

double timed(benchmark::State& state, const OpsEnv& env, const std::function<dsk_status()>& op) {
  if (!check_status(state, op(), "warm-up call")) return -1.0;
  return env.run(state, op);
}

}  // namespace dsk::bench
