// thread_pool.h - the persistent workers behind run_shares (parallel.h).
//
// Starting a std::thread per share cost 40-90 us per parallel op (dsk_bench_threads, 2-vCPU VM),
// which decode-sized ops paid on every call. The pool keeps its workers between calls: after a
// job they spin for kSpinMicros (back-to-back ops of a decode step find them awake: 0.7-1.2 us a
// call), then sleep, each on its own condition variable (about 15 us to wake).
//
// One job runs at a time. Its shares are taken in any order by the caller and the workers (a
// shared counter); each share's work depends only on its index, so results do not depend on which
// thread ran it or when. A caller that finds the pool busy (another thread's job) gets false and
// starts threads as before, and so does a share that calls run_shares again.
// After fork() the child starts a new pool on first use (the parent's workers do not exist
// there; fork inside a share is not supported: the child would wait for shares the parent's
// workers took). The workers are stopped and joined at exit, or when libdsk is unloaded (glibc
// keeps a library loaded while a thread that used its thread-locals lives, so dlclose of libdsk
// after CPU ops usually leaves it mapped).
#ifndef DSK_LIB_CPU_THREAD_POOL_H_
#define DSK_LIB_CPU_THREAD_POOL_H_

#include <cstdint>
#include <exception>
#include <functional>

namespace dsk {
namespace cpu {

// How long an idle worker polls for the next job before it sleeps.
constexpr int64_t kSpinMicros = 50;

// Runs part(t) for t in [0, shares) on the pool and the calling thread; the exception of share t,
// if any, goes to errors[t]. Returns false (having run nothing) when the pool is busy with
// another caller's job or cannot be used; shares <= 1 is the caller's to run.
bool pool_run(int64_t shares, const std::function<void(int64_t t)>& part,
              std::exception_ptr* errors);

// Workers started so far in this process (tests).
int64_t pool_workers();

}  // namespace cpu
}  // namespace dsk

#endif  // DSK_LIB_CPU_THREAD_POOL_H_
