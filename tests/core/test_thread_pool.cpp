// Tests of run_shares on the persistent pool (lib/cpu/thread_pool.h): every share runs exactly
// once, errors reach the caller, the workers are reused across calls, concurrent callers and
// nested calls each get all their shares, a fork child can run shares of its own; the default
// thread count follows the affinity mask.
#include <doctest/doctest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cpu/parallel.h"
#include "cpu/thread_pool.h"

namespace {

// run_shares(shares) with every share counting its own runs; returns the counts.
std::vector<int> share_counts(int64_t shares) {
  std::vector<std::atomic<int>> runs(static_cast<size_t>(shares));
  dsk::cpu::run_shares(shares, [&](int64_t t) { runs[static_cast<size_t>(t)].fetch_add(1); });
  std::vector<int> out;
  for (const std::atomic<int>& r : runs) out.push_back(r.load());
  return out;
}

bool all_once(const std::vector<int>& counts) {
  for (int c : counts) {
    if (c != 1) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("thread pool: every share runs exactly once, on reused workers") {
  for (int64_t shares : {1, 2, 3, 4, 7, 8}) {
    CAPTURE(shares);
    for (int rep = 0; rep < 50; ++rep) CHECK(all_once(share_counts(shares)));
  }
  const int64_t workers = dsk::cpu::pool_workers();
  CHECK(workers >= 1);
  for (int rep = 0; rep < 200; ++rep) share_counts(4);
  CHECK(dsk::cpu::pool_workers() == workers);  // no new threads per call
}

TEST_CASE("thread pool: shares run on more than one thread") {
  // Each share waits (up to 20 s) until another share has started: with two threads taking
  // shares both start; on one thread the wait times out and the flag stays false.
  std::atomic<int> started{0};
  std::atomic<bool> overlapped{false};
  dsk::cpu::run_shares(2, [&](int64_t) {
    started.fetch_add(1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (started.load() < 2 && std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
    }
    if (started.load() == 2) overlapped.store(true);
  });
  CHECK(overlapped.load());
}

TEST_CASE("thread pool: the lowest failing share's exception reaches the caller") {
  for (int rep = 0; rep < 20; ++rep) {
    std::string what;
    std::atomic<int> ran{0};
    try {
      dsk::cpu::run_shares(6, [&](int64_t t) {
        ran.fetch_add(1);
        if (t == 3 || t == 5) throw std::runtime_error("share " + std::to_string(t));
      });
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK(what == "share 3");
    CHECK(ran.load() == 6);
  }
  CHECK(all_once(share_counts(4)));  // the pool still works afterwards
}

TEST_CASE("thread pool: concurrent callers each get all their shares") {
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&bad, c] {
      for (int rep = 0; rep < 100; ++rep) {
        if (!all_once(share_counts(2 + (rep + c) % 5))) bad.fetch_add(1);
      }
    });
  }
  for (std::thread& t : callers) t.join();
  CHECK(bad.load() == 0);
}

TEST_CASE("thread pool: a share may run shares of its own") {
  std::vector<std::atomic<int>> runs(12);
  dsk::cpu::run_shares(3, [&](int64_t outer) {
    dsk::cpu::run_shares(
        4, [&](int64_t inner) { runs[static_cast<size_t>(outer * 4 + inner)].fetch_add(1); });
  });
  for (const std::atomic<int>& r : runs) CHECK(r.load() == 1);
}

TEST_CASE("thread pool: a fork child runs shares on a pool of its own") {
  REQUIRE(all_once(share_counts(4)));  // the parent's pool exists
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    bool ok = true;
    for (int rep = 0; rep < 20; ++rep) ok = ok && all_once(share_counts(3));
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(all_once(share_counts(4)));
}

TEST_CASE("usable_cpus follows the affinity mask") {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
  CHECK(dsk::cpu::usable_cpus() == std::min(CPU_COUNT(&set), 1024));
  // A thread pinned to one CPU (its own mask only: the process keeps its CPUs).
  int first = 0;
  while (first < CPU_SETSIZE && !CPU_ISSET(first, &set)) ++first;
  REQUIRE(first < CPU_SETSIZE);
  int pinned = -1;
  std::thread t([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (sched_setaffinity(0, sizeof(one), &one) == 0) pinned = dsk::cpu::usable_cpus();
  });
  t.join();
  CHECK(pinned == 1);
}
