// dsk_bench_threads - what a parallel call costs before any work: run_shares (lib/cpu/parallel.h)
// on the persistent pool with its workers awake (back-to-back calls, as in a decode step) and
// asleep (a gap longer than the pool's spin), against starting a std::thread per share (what
// run_shares did until 2026-11-24, and still does when the pool is busy).
//
// Usage: dsk_bench_threads [Google Benchmark flags]. Internal: links the library's objects.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "cpu/parallel.h"
#include "cpu/thread_pool.h"

namespace {

std::atomic<int64_t> g_sink{0};

void touch(int64_t t) { g_sink.fetch_add(t, std::memory_order_relaxed); }

// Busy-waits so the workers go through their spin and sleep (a sleep call would also let the
// caller's core idle, which is not what a busy application does between ops).
void gap(int64_t micros) {
  if (micros <= 0) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(micros);
  while (std::chrono::steady_clock::now() < until) {
  }
}

// Manual time: each call is timed alone (PauseTiming costs microseconds itself).
void BM_pool(benchmark::State& state) {
  const int64_t shares = state.range(0);
  const int64_t gap_us = state.range(1);
  dsk::cpu::run_shares(shares, touch);  // workers started
  for (auto _ : state) {
    gap(gap_us);
    const auto t0 = std::chrono::steady_clock::now();
    dsk::cpu::run_shares(shares, touch);
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["workers"] = static_cast<double>(dsk::cpu::pool_workers());
}

void BM_spawn(benchmark::State& state) {
  const int64_t shares = state.range(0);
  for (auto _ : state) {
    std::vector<std::thread> workers;
    for (int64_t t = 1; t < shares; ++t) workers.emplace_back(touch, t);
    touch(0);
    for (std::thread& w : workers) w.join();
  }
}

}  // namespace

// Gaps: 0 (back to back), 20 us (within the spin), 1000 us (the workers sleep).
BENCHMARK(BM_pool)
    ->ArgNames({"shares", "gap_us"})
    ->ArgsProduct({{2, 4}, {0, 20, 1000}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_spawn)->ArgNames({"shares"})->Arg(2)->Arg(4)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
