// parallel.h - the CPU backend's threads: a fixed split of a range over short-lived workers.
//
// DSK_NUM_THREADS (a positive integer, at most 1024) overrides std::thread::hardware_concurrency().
// Work is split into contiguous, deterministic ranges that depend only on n and the thread count;
// the calling thread computes the first share. If a std::thread cannot be created the calling
// thread computes the remaining shares itself. An exception thrown by a share is rethrown on the
// calling thread after every worker has joined (the one of the lowest share when several throw).
#ifndef DSK_LIB_CPU_PARALLEL_H_
#define DSK_LIB_CPU_PARALLEL_H_

#include <algorithm>
#include <cstdint>
#include <functional>

namespace dsk {
namespace cpu {

// DSK_NUM_THREADS when set to a positive integer, else hardware_concurrency() (at least 1).
int configured_threads();

// Calls part(t) for every t in [0, threads): part(0) and any share whose thread could not be
// started on the calling thread, the others on worker threads. threads <= 1 runs inline.
void run_shares(int64_t threads, const std::function<void(int64_t t)>& part);

// Splits [0, n) into up to configured_threads() ranges [n * t / k, n * (t + 1) / k) of at least
// min_per_thread items each (k = 1 below 2 * min_per_thread) and calls body(lo, hi) for each.
void parallel_for(int64_t n, int64_t min_per_thread,
                  const std::function<void(int64_t lo, int64_t hi)>& body);

// Elements a memory-bound row op (RMSNorm, SwiGLU, RoPE, softmax, FP8 quantization, embedding)
// gives each thread at least: starting a worker costs tens of microseconds.
constexpr int64_t kMinElemsPerThread = int64_t{1} << 16;

// min_per_thread for rows of row_elems elements each.
inline int64_t min_rows_per_thread(int64_t row_elems) {
  return std::max<int64_t>(1, kMinElemsPerThread / std::max<int64_t>(row_elems, 1));
}

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_PARALLEL_H_
