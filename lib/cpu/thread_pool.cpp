// thread_pool.cpp - see thread_pool.h.
#include "cpu/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cpu/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#  include <immintrin.h>
#  define DSK_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#  define DSK_CPU_RELAX() __asm__ __volatile__("yield")
#else
#  define DSK_CPU_RELAX() ((void)0)
#endif

namespace dsk {
namespace cpu {
namespace {

thread_local bool t_in_share = false;

// Workers beyond this are not started (DSK_NUM_THREADS is at most 1024).
constexpr int64_t kMaxWorkers = 1023;

// Polls done() for kSpinMicros; returns whether it became true.
template <typename Done>
bool spin_until(const Done& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
  for (uint32_t i = 1;; ++i) {
    if (done()) return true;
    if ((i & 63u) == 0 && std::chrono::steady_clock::now() >= until) return false;
    DSK_CPU_RELAX();
  }
}

// One worker's bed: a worker sleeps on its own condition variable, so a job wakes exactly the
// sleeping workers it wants and a job that finds its workers spinning makes no system call.
struct Slot {
  std::mutex mutex;
  std::condition_variable cv;
  std::atomic<bool> asleep{false};
};

class Pool {
 public:
  // Runs one job (see pool_run); false when another caller's job holds the pool or it stopped.
  bool run(int64_t shares, const std::function<void(int64_t)>& part, std::exception_ptr* errors) {
    if (busy_.exchange(true)) return false;
    if (stop_.load()) {
      busy_.store(false);
      return false;
    }
    const int64_t wanted = std::min(grow(std::min(shares - 1, kMaxWorkers)), shares - 1);
    wanted_.store(wanted);
    part_ = &part;
    errors_ = errors;
    shares_ = shares;
    next_.store(0);
    done_.store(0);
    live_.store(true);
    generation_.fetch_add(1);
    // A worker sets `asleep` before it checks the generation under its slot's mutex; this reads
    // `asleep` after the increment (sequentially consistent), so no wake-up is lost.
    for (int64_t i = 0; i < wanted; ++i) {
      Slot& slot = *slots_[static_cast<size_t>(i)];
      if (slot.asleep.load()) {
        std::lock_guard<std::mutex> lock(slot.mutex);
        slot.cv.notify_one();
      }
    }

    t_in_share = true;
    take_shares(false);
    t_in_share = false;
    if (!spin_until([this] { return done_.load() == shares_; })) {
      std::unique_lock<std::mutex> lock(done_mutex_);
      done_cv_.wait(lock, [this] { return done_.load() == shares_; });
    }
    // A worker that saw the job live may still be leaving take_shares (with nothing left to
    // take): the job's fields stay until it has.
    live_.store(false);
    for (uint32_t i = 0; inside_.load() != 0; ++i) {
      if (i < 4096) {
        DSK_CPU_RELAX();
      } else {
        std::this_thread::yield();  // the worker was preempted inside
      }
    }
    busy_.store(false);
    return true;
  }

  int64_t workers() const { return started_.load(); }

  // Wakes and joins every worker (a worker stops taking shares; the callers take the rest); later
  // jobs are refused (run returns false). A worker calling this (exit() inside a share) is
  // detached rather than joined.
  void stop() {
    stop_.store(true);
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(threads_mutex_);
      threads.swap(threads_);
      for (const std::unique_ptr<Slot>& slot : slots_) {
        std::lock_guard<std::mutex> slot_lock(slot->mutex);
        slot->cv.notify_one();
      }
    }
    for (std::thread& t : threads) {
      if (t.get_id() == std::this_thread::get_id()) {
        t.detach();
      } else if (t.joinable()) {
        t.join();
      }
    }
  }

  Pool* next_orphan = nullptr;  // fork children: the parent's pools (kept reachable, never used)

 private:
  // Starts workers up to `want` and returns how many there are (fewer if the system refuses a
  // thread: the caller and the running workers take the shares a missing worker would have
  // taken; no new thread is tried after a refusal). Only the caller holding busy_ runs this.
  int64_t grow(int64_t want) {
    if (started_.load() >= want || refused_) return started_.load();
    std::lock_guard<std::mutex> lock(threads_mutex_);
    while (started_.load() < want && !stop_.load()) {
      try {
        slots_.push_back(std::make_unique<Slot>());
        threads_.emplace_back(&Pool::worker_main, this, started_.load(), slots_.back().get(),
                              generation_.load());
      } catch (...) {
        if (slots_.size() > threads_.size()) slots_.pop_back();
        refused_ = true;
        break;
      }
      started_.fetch_add(1);
    }
    return started_.load();
  }

  // Worker `index` (from 0) takes shares of jobs that want more than `index` workers. It spins
  // after a job only when the machine has a core for it beside the caller's and the lower
  // workers', and never after a job it was not wanted for: spinning threads beyond the cores
  // would preempt the caller.
  void worker_main(int64_t index, Slot* slot, uint64_t seen) {
    t_in_share = true;
    static const int64_t cores = usable_cpus();
    const bool may_spin = index + 2 <= cores;
    bool spin = may_spin;
    for (;;) {
      const auto moved = [this, seen] { return generation_.load() != seen || stop_.load(); };
      if (!spin || !spin_until(moved)) {
        std::unique_lock<std::mutex> lock(slot->mutex);
        slot->asleep.store(true);
        slot->cv.wait(lock, moved);
        slot->asleep.store(false);
      }
      if (stop_.load()) return;
      seen = generation_.load();
      const bool wanted = index < wanted_.load();
      spin = may_spin && wanted;
      if (!wanted) continue;
      // inside_ before live_: run() clears live_ before it reads inside_, so either this worker
      // sees the job gone or run() waits for it (sequentially consistent atomics).
      inside_.fetch_add(1);
      if (live_.load()) take_shares(true);
      inside_.fetch_sub(1);
    }
  }

  void take_shares(bool worker) {
    for (;;) {
      if (worker && stop_.load()) return;  // exiting: the caller takes what is left
      const int64_t t = next_.fetch_add(1);
      if (t >= shares_) return;
      try {
        (*part_)(t);
      } catch (...) {
        errors_[t] = std::current_exception();
      }
      if (done_.fetch_add(1) + 1 == shares_) {
        std::lock_guard<std::mutex> lock(done_mutex_);
        done_cv_.notify_all();
      }
    }
  }

  std::atomic<bool> busy_{false};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  std::mutex done_mutex_;
  std::condition_variable done_cv_;
  std::mutex threads_mutex_;
  std::vector<std::thread> threads_;          // under threads_mutex_
  std::vector<std::unique_ptr<Slot>> slots_;  // under threads_mutex_; the caller holding busy_
                                              // also reads it (only grow, on its thread, adds)
  std::atomic<int64_t> started_{0};
  bool refused_ = false;  // a thread could not be started (read and written holding busy_)

  // The current job: written by run() before live_ is set, read by workers after they see it.
  std::atomic<int64_t> wanted_{0};  // workers the current job wants (at most shares - 1)
  std::atomic<bool> live_{false};
  std::atomic<int64_t> inside_{0};
  const std::function<void(int64_t)>* part_ = nullptr;
  std::exception_ptr* errors_ = nullptr;
  int64_t shares_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
};

// The process's pool, constant-initialized: the fork handler touches nothing that needs a
// guard. The workers are stopped and joined when libdsk is unloaded or the process exits; the
// object itself is never freed, so a caller still running then finds it stopped rather than gone.
// A fork child forgets the parent's pool (its workers do not exist there) and starts its own.
std::atomic<Pool*> g_pool{nullptr};
Pool* g_orphans = nullptr;  // the parents' pools in a fork child (reachable: no leak report)

struct PoolLifetime {
  PoolLifetime() {
    pthread_atfork(nullptr, nullptr, [] {
      if (Pool* p = g_pool.load()) {
        p->next_orphan = g_orphans;
        g_orphans = p;
      }
      g_pool.store(nullptr);
    });
  }
  ~PoolLifetime() {
    if (Pool* p = g_pool.load()) p->stop();
  }
};
const PoolLifetime g_pool_lifetime;

Pool* the_pool() {
  Pool* p = g_pool.load();
  if (p != nullptr) return p;
  Pool* fresh = new (std::nothrow) Pool();
  if (fresh == nullptr) return nullptr;
  if (g_pool.compare_exchange_strong(p, fresh)) return fresh;
  delete fresh;  // another thread's pool won (no worker started on this one yet)
  return p;
}

}  // namespace

bool pool_run(int64_t shares, const std::function<void(int64_t t)>& part,
              std::exception_ptr* errors) {
  if (shares <= 1 || t_in_share) return false;
  Pool* p = the_pool();
  return p != nullptr && p->run(shares, part, errors);
}

int64_t pool_workers() {
  Pool* p = g_pool.load();
  return p != nullptr ? p->workers() : 0;
}

}  // namespace cpu
}  // namespace dsk
