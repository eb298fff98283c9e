// cuda_timer.h - times GPU work with CUDA events for benchmarks registered with UseManualTime().
//
// Host wall time would include launch overhead and miss asynchronous work, so each iteration is
// bracketed by two events recorded on the stream the work runs on (a dsk context's stream) and the
// elapsed GPU time is handed to Google Benchmark with SetIterationTime.
//
// Optional L2 flush: before each start event the timer clears a device buffer twice the size of
// the L2 cache on the same stream, so every iteration starts with a cold L2 and small working sets
// are not reported at L2 instead of HBM bandwidth. The flush is outside the timed interval.
//
// Not thread-safe; one timer per benchmark thread.
#ifndef DSK_BENCHMARKS_COMMON_CUDA_TIMER_H_
#define DSK_BENCHMARKS_COMMON_CUDA_TIMER_H_

#include <benchmark/benchmark.h>
#include <dsk/dsk.h>

#include <exception>
#include <memory>
#include <string>

#include "bench_util.h"

namespace dsk::bench {

class CudaTimer {
 public:
  // Times work on `stream` (a cudaStream_t; NULL = the legacy default stream) of `device`. With
  // flush_l2 it allocates the flush buffer now. Throws std::runtime_error on CUDA failures.
  CudaTimer(int device, void* stream, bool flush_l2);
  ~CudaTimer();
  CudaTimer(const CudaTimer&) = delete;
  CudaTimer& operator=(const CudaTimer&) = delete;

  bool flushes_l2() const;

  // Flushes L2 (when enabled) and records the start event.
  void start();
  // Records the stop event, waits for it and returns the seconds since start().
  double stop();

  // The benchmark loop: runs `op` (returning dsk_status) once per iteration between start() and
  // stop() and reports each iteration's GPU time. A failed op or CUDA error fails the benchmark.
  // Returns the total timed seconds, for the %peak counters.
  template <typename Op>
  double run(benchmark::State& state, Op&& op) {
    double total = 0.0;
    try {
      for (auto _ : state) {
        start();
        const dsk_status status = op();
        // Always stop, so the event pair stays balanced even when the op failed.
        const double seconds = stop();
        if (!check_status(state, status, "timed operation")) break;
        state.SetIterationTime(seconds);
        total += seconds;
      }
    } catch (const std::exception& e) {
      fail(state, e.what());
    }
    return total;
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsk::bench

#endif  // DSK_BENCHMARKS_COMMON_CUDA_TIMER_H_
