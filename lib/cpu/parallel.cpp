// parallel.cpp - see parallel.h.
#include "cpu/parallel.h"

#if defined(__linux__)
#  include <sched.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <thread>
#include <vector>

#include "cpu/thread_pool.h"

namespace dsk {
namespace cpu {

int configured_threads() {
  const char* env = std::getenv("DSK_NUM_THREADS");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0) return static_cast<int>(std::min<long>(v, 1024));
  }
  static const int usable = usable_cpus();
  return usable;
}

int usable_cpus() {
#if defined(__linux__)
  // The CPUs this process may run on (taskset, cpusets), which hardware_concurrency() ignores:
  // a container pinned to 2 of 64 CPUs must not split work 64 ways.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return std::min(n, 1024);
  }
#endif
  const unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(std::min<unsigned>(h, 1024)) : 1;
}

namespace {

// The fallback when the pool is busy: a std::thread per share (part(0) and any share whose thread
// could not be started run on the calling thread).
void run_spawned(int64_t threads, const std::function<void(int64_t t)>& part,
                 std::vector<std::exception_ptr>& errors) {
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads - 1));
  int64_t started = 1;
  for (; started < threads; ++started) {
    try {
      workers.emplace_back([&part, &errors, started] {
        try {
          part(started);
        } catch (...) {
          errors[static_cast<size_t>(started)] = std::current_exception();
        }
      });
    } catch (...) {
      break;  // no more threads: the calling thread does the rest
    }
  }
  for (int64_t t = 0; t < threads; ++t) {
    if (t != 0 && t < started) continue;
    try {
      part(t);
    } catch (...) {
      errors[static_cast<size_t>(t)] = std::current_exception();
    }
  }
  for (std::thread& w : workers) w.join();
}

}  // namespace

void run_shares(int64_t threads, const std::function<void(int64_t t)>& part) {
  if (threads <= 1) {
    if (threads == 1) part(0);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  // Busy means another thread's call holds the pool, or this is a share asking for shares (the
  // sampler splits rows over threads and a row over more): both start threads of their own.
  if (!pool_run(threads, part, errors.data())) run_spawned(threads, part, errors);
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

void parallel_for(int64_t n, int64_t min_per_thread,
                  const std::function<void(int64_t lo, int64_t hi)>& body) {
  if (n <= 0) return;
  const int64_t by_work = n / std::max<int64_t>(min_per_thread, 1);
  if (by_work < 2) {  // one share: no need to ask for the thread count
    body(0, n);
    return;
  }
  const int64_t threads =
      std::max<int64_t>(1, std::min<int64_t>(configured_threads(), std::min(by_work, n)));
  if (threads == 1) {
    body(0, n);
    return;
  }
  run_shares(threads, [&](int64_t t) { body(n * t / threads, n * (t + 1) / threads); });
}

}  // namespace cpu
}  // namespace dsk
