// parallel.h - the CPU backend's threads: a fixed split of a range over the persistent workers of
// thread_pool.h.
//
// DSK_NUM_THREADS (a positive integer, at most 1024) overrides the CPUs the process may run on.
// Work is split into contiguous, deterministic ranges that depend only on n and the thread count;
// the calling thread takes shares too. When the pool is busy (another thread's call, or a share
// asking for shares), a std::thread per share runs instead (if one cannot be created the calling
// thread computes the remaining shares itself). An exception thrown by a share is rethrown on the
// calling thread after every worker has joined (the one of the lowest share when several throw).
#ifndef DSK_LIB_CPU_PARALLEL_H_
#define DSK_LIB_CPU_PARALLEL_H_

#include <algorithm>
#include <cstdint>
#include <functional>

namespace dsk {
namespace cpu {

// DSK_NUM_THREADS when set to a positive integer, else usable_cpus() as it was on the first call.
int configured_threads();

// The CPUs the process may run on (its affinity mask on Linux, else hardware_concurrency()), at
// least 1 and at most 1024. Asked once by configured_threads(): the call reads /proc or /sys.
int usable_cpus();

// Calls part(t) once for every t in [0, threads), on the calling thread and worker threads in no
// fixed assignment (part's work must depend on t only). threads <= 1 runs inline.
void run_shares(int64_t threads, const std::function<void(int64_t t)>& part);

// Splits [0, n) into up to configured_threads() ranges [n * t / k, n * (t + 1) / k) of at least
// min_per_thread items each (k = 1 below 2 * min_per_thread) and calls body(lo, hi) for each.
void parallel_for(int64_t n, int64_t min_per_thread,
                  const std::function<void(int64_t lo, int64_t hi)>& body);

// Elements a memory-bound row op (RMSNorm, SwiGLU, RoPE, softmax, FP8 quantization, embedding)
// gives each thread at least (about 20 us of work): a share must outweigh waking a worker, about
// 1 us when it is still spinning from the last op and about 15 us from sleep (2-vCPU VM).
constexpr int64_t kMinElemsPerThread = int64_t{1} << 15;

// Flops a compute-bound op (GEMM, attention) gives each thread at least (20-25 us of work).
constexpr double kMinFlopsPerThread = 1.0e6;

// min_per_thread for rows of row_elems elements each.
inline int64_t min_rows_per_thread(int64_t row_elems) {
  return std::max<int64_t>(1, kMinElemsPerThread / std::max<int64_t>(row_elems, 1));
}

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_PARALLEL_H_
