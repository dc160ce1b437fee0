// The spinning thread pool (runtime/model/thread_pool.h): the static
// partition, many tiny calls from several threads at once (meant to run
// under the sanitizer build too), the sleep/wake path, nested calls and
// HotScope. No timings are asserted.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include "runtime/model/thread_pool.h"
#include "gtest/gtest.h"

namespace tern::model {
namespace {

TEST(ThreadPoolSpin, StaticContiguousPartition) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (size_t n : {2u, 3u, 7u, 64u, 1001u}) {
      std::vector<std::pair<size_t, size_t>> ranges(size_t(threads), {0, 0});
      std::atomic<int> calls{0};
      pool.parallelFor(n, [&](size_t b, size_t e) {
        // chunk i is [n*i/T, n*(i+1)/T): find i from b
        for (size_t i = 0; i < size_t(threads); ++i)
          if (n * i / size_t(threads) == b && n * (i + 1) / size_t(threads) == e)
            ranges[i] = {b, e};
        calls.fetch_add(1);
      });
      size_t nonEmpty = 0;
      for (size_t i = 0; i < size_t(threads); ++i) {
        const size_t b = n * i / size_t(threads), e = n * (i + 1) / size_t(threads);
        if (b < e) {
          ++nonEmpty;
          EXPECT_EQ(ranges[i], std::make_pair(b, e)) << "threads " << threads << " n " << n;
        }
      }
      EXPECT_EQ(size_t(calls.load()), threads == 1 ? 1u : nonEmpty);
    }
  }
}

// One call's work: out[i] = f(i, salt) for i in [0, n).
uint64_t mix(uint64_t i, uint64_t salt) {
  uint64_t x = i * 0x9e3779b97f4a7c15ull ^ salt;
  x ^= x >> 31;
  return x * 0xbf58476d1ce4e5b9ull;
}

TEST(ThreadPoolSpin, ManyTinyCallsFromSeveralThreads) {
  ThreadPool pool(3);
  constexpr int kCallers = 4, kCalls = 1000;
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      std::vector<uint64_t> out(17);
      for (int k = 0; k < kCalls; ++k) {
        const size_t n = size_t(2 + (k * 7 + c) % 16);
        const uint64_t salt = uint64_t(c) << 32 | uint64_t(k);
        pool.parallelFor(n, [&](size_t b, size_t e) {
          for (size_t i = b; i < e; ++i)
            out[i] = mix(i, salt);
        });
        for (size_t i = 0; i < n; ++i)
          if (out[i] != mix(i, salt))
            bad.fetch_add(1);
      }
    });
  for (std::thread &t : callers)
    t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(pool.stats().jobs, uint64_t(kCallers) * kCalls);
}

TEST(ThreadPoolSpin, SleepingWorkersAreWoken) {
  ThreadPool pool(4);
  std::vector<int> hits(40);
  for (int rep = 0; rep < 5; ++rep) {
    // Longer than the idle spin: the workers go to sleep in between.
    std::this_thread::sleep_for(std::chrono::nanoseconds(ThreadPool::kIdleSpinNs * 5));
    pool.parallelFor(hits.size(), [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i)
        ++hits[i];
    });
  }
  for (int h : hits)
    EXPECT_EQ(h, 5);
  const ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.jobs, 5u);
  EXPECT_GT(s.sleeps, 0u);
  EXPECT_GT(s.wakes, 0u);
}

TEST(ThreadPoolSpin, NestedCallRunsOnTheCallingThread) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(30 * 5);
  pool.parallelFor(30, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      pool.parallelFor(5, [&, i](size_t b2, size_t e2) {
        for (size_t j = b2; j < e2; ++j)
          hits[i * 5 + j].fetch_add(1);
      });
  });
  for (auto &h : hits)
    EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPoolSpin, HotScopesNestAndOverlap) {
  ThreadPool pool(2);
  uint64_t sum = 0;
  std::vector<uint64_t> part(2);
  {
    ThreadPool::HotScope a(pool);
    std::thread other([&] { ThreadPool::HotScope b(pool); });
    for (int k = 0; k < 500; ++k) {
      pool.parallelFor(2, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i)
          part[i] = i + 1;
      });
      sum += part[0] + part[1];
    }
    other.join();
  }
  EXPECT_EQ(sum, 500u * 3u);
  pool.setTiming(true);
  pool.parallelFor(8, [](size_t, size_t) {});
  EXPECT_EQ(pool.stats().jobs, 501u);
}

TEST(ThreadPoolSpin, DestroyWhileWorkersSleepOrSpin) {
  for (int i = 0; i < 20; ++i) {
    ThreadPool pool(1 + i % 4);
    if (i % 2)
      pool.parallelFor(9, [](size_t, size_t) {});
    if (i % 3 == 0)
      std::this_thread::sleep_for(std::chrono::nanoseconds(ThreadPool::kIdleSpinNs * 3));
  }
}

// The overload back-off, driven through the late threshold (no timing): a
// late pick-up of a spinning job switches spinning off for `backoff` jobs,
// doubling up to kMaxBackoff on repeats; late pick-ups while spinning is
// off change nothing; kDecayJobs on-time jobs in a row halve the penalty,
// down to 0 (the defect this guards against: a penalty that never decayed
// left spinning off for the rest of a run after ~26 late pick-ups).
TEST(ThreadPoolSpin, BackoffGrowsWhenLateAndDecaysWhenOnTime) {
  unsetenv("TERN_POOL_SPIN");
  ThreadPool pool(2);
  auto job = [&] { pool.parallelFor(4, [](size_t, size_t) {}); };
  auto drainPenalty = [&] {
    for (int guard = 0; pool.stats().noSpinLeft > 0 && guard < 10000; ++guard)
      job();
    ASSERT_EQ(pool.stats().noSpinLeft, 0u);
  };
  pool.setLateNsForTest(-1); // every pick-up is late
  job();
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.late, 1u);
  EXPECT_EQ(s.backoff, ThreadPool::kMinBackoff);
  EXPECT_EQ(s.noSpinLeft, ThreadPool::kMinBackoff);
  drainPenalty();
  s = pool.stats();
  EXPECT_EQ(s.backoff, ThreadPool::kMinBackoff) << "late wake-ups while not spinning escalated";
  EXPECT_EQ(s.noSpinJobs, uint64_t(ThreadPool::kMinBackoff));
  EXPECT_EQ(s.late, 1u + ThreadPool::kMinBackoff);
  uint32_t expect = ThreadPool::kMinBackoff;
  for (int rep = 0; rep < 7; ++rep) { // 128 ... 4096, then capped
    job();                            // spinning again, late again
    expect = std::min(expect * 2, ThreadPool::kMaxBackoff);
    EXPECT_EQ(pool.stats().backoff, expect) << "repeat " << rep;
    EXPECT_EQ(pool.stats().noSpinLeft, expect);
    drainPenalty();
  }
  EXPECT_EQ(expect, ThreadPool::kMaxBackoff);

  // The load has gone: every pick-up is on time.
  pool.setLateNsForTest(std::numeric_limits<int64_t>::max());
  const uint64_t lateBefore = pool.stats().late;
  int halvings = 0;
  while (pool.stats().backoff > 0 && halvings < 20) {
    const uint32_t was = pool.stats().backoff;
    for (uint32_t i = 0; i < ThreadPool::kDecayJobs; ++i) {
      EXPECT_EQ(pool.stats().backoff, was);
      job();
    }
    const uint32_t now = pool.stats().backoff;
    EXPECT_EQ(now, was / 2 < ThreadPool::kMinBackoff ? 0u : was / 2);
    ++halvings;
  }
  EXPECT_EQ(halvings, 7); // 4096 -> 2048 -> ... -> 64 -> 0
  s = pool.stats();
  EXPECT_EQ(s.backoff, 0u);
  EXPECT_EQ(s.noSpinLeft, 0u);
  EXPECT_EQ(s.late, lateBefore);
  const uint64_t offBefore = s.noSpinJobs;
  for (int i = 0; i < 100; ++i)
    job();
  EXPECT_EQ(pool.stats().noSpinJobs, offBefore) << "spinning did not come back";

  // And a new late pick-up starts again from the minimum.
  pool.setLateNsForTest(-1);
  job();
  EXPECT_EQ(pool.stats().backoff, ThreadPool::kMinBackoff);
}

// RegionBarrier's backoff: one wait whose spin times out (the other thread
// arrives 2 ms late, far past kSpinNs) leaves spinning on; kTimeoutsToBackoff
// of them in a row switch it off for kBackoffWaits waits. (Only the late
// thread's sleeps decide which waits time out, so this does not depend on
// the machine's load.)
TEST(RegionBarrierSpin, OneLongWaitKeepsSpinningTimeoutsInARowBackOff) {
  for (uint32_t slowRounds : {1u, RegionBarrier::kTimeoutsToBackoff}) {
    RegionBarrier b(2);
    std::thread late([&] {
      for (uint32_t i = 0; i < slowRounds; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        b.wait();
      }
    });
    for (uint32_t i = 0; i < slowRounds; ++i)
      b.wait();
    late.join();
    if (slowRounds < RegionBarrier::kTimeoutsToBackoff)
      EXPECT_EQ(b.noSpinLeft(), 0u) << slowRounds << " long wait(s) switched spinning off";
    else
      EXPECT_EQ(b.noSpinLeft(), RegionBarrier::kBackoffWaits)
          << slowRounds << " timed-out spins in a row left spinning on";
  }
}

} // namespace
} // namespace tern::model
