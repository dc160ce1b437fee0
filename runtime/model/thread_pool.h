// One fixed-size pool of worker threads, created once (`-t` sets its size).
//
// parallelFor cuts [0, n) into one contiguous chunk per thread (a static
// partition: chunk i of T is [n*i/T, n*(i+1)/T)); every index is handled by
// exactly one call, so any computation that writes disjoint outputs per
// index gives bit-identical results for every thread count. The calling
// thread runs chunk 0.
//
// Workers do not sleep between calls that come close together: after a job
// a worker spins on the pool's generation counter (with a pause
// instruction) for a bounded time -- kIdleSpin, or kHotSpin while a
// HotScope is open (the runtime opens one per forward call, so the ~400
// ukernel calls of a decode step never put a worker to sleep) -- and only
// then sleeps on the counter (a futex wait). A caller wakes sleepers only
// when there are some. The caller likewise spins, then sleeps, while it
// waits for the workers' chunks.
//
// Spinning only pays while every thread has a core. When a worker picks a
// job up late (kLateNs after it was published: it was spinning but not
// running -- the machine is oversubscribed), the workers stop spinning for
// the next `backoff` jobs (sleep at once, woken per job like a
// condition-variable pool, which the scheduler favours), `backoff` doubling
// from 64 to 4096 on every late pick-up of a spinning job, and halving
// (down to 0) after every kDecayJobs jobs in a row picked up on time, so a
// burst of load does not switch spinning off for the rest of the run. See
// docs/runtime.md, "Thread pool".
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace tern::model {

class ThreadPool {
public:
  // Work on items [begin, end).
  using RangeFn = void (*)(void *arg, size_t begin, size_t end);

  // threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int threads = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(arg, begin, end) over the static partition of [0, n) and returns
  // when every chunk is done. Calls from several threads are serialised; a
  // call from inside one of this pool's chunks (nested) runs fn(arg, 0, n)
  // on the calling thread.
  void parallelFor(size_t n, RangeFn fn, void *arg);

  // Runs fn(arg, tid) once on every thread of the pool at once (tid 0 on
  // the caller), for code that synchronises its threads itself (a
  // RegionBarrier of size()): every tid gets its own thread. Returns false,
  // running nothing, when it cannot promise that (a call from inside one of
  // this pool's chunks or regions); size() == 1 runs fn(arg, 0) here.
  using RegionFn = void (*)(void *arg, int tid);
  bool region(RegionFn fn, void *arg);

  // The same over any callable f(begin, end).
  template <class F> void parallelFor(size_t n, const F &f) {
    parallelFor(n, &callRange<F>, const_cast<void *>(static_cast<const void *>(&f)));
  }

  // While at least one HotScope of this pool is open, idle workers spin for
  // up to kHotSpin instead of kIdleSpin before they sleep. Scopes may
  // overlap and may be opened from any thread.
  class HotScope {
  public:
    explicit HotScope(ThreadPool &p) : pool_(p) { pool_.hot_.fetch_add(1); }
    ~HotScope() { pool_.hot_.fetch_sub(1); }
    HotScope(const HotScope &) = delete;
    HotScope &operator=(const HotScope &) = delete;

  private:
    ThreadPool &pool_;
  };

  // Counters since construction (for tests, `tern bench` and docs).
  struct Stats {
    uint64_t jobs = 0;       // parallelFor calls that used the workers
    uint64_t wakes = 0;      // calls that had to wake sleeping workers (a futex wake)
    uint64_t sleeps = 0;     // times a worker went to sleep
    uint64_t waitNs = 0;     // caller time spent waiting for workers (when timing is on)
    uint64_t late = 0;       // jobs a worker picked up late (spinning or not)
    uint64_t noSpinJobs = 0; // jobs published while spinning was switched off
    uint32_t backoff = 0;    // the current penalty (jobs without spinning after a late one)
    uint32_t noSpinLeft = 0; // jobs left with spinning switched off
  };
  Stats stats() const;
  // Measure the caller's waiting time (two clock reads per call; off by default).
  void setTiming(bool on) { timing_.store(on, std::memory_order_relaxed); }

  // Spin budgets before a worker sleeps. The environment variable
  // TERN_POOL_SPIN=0 switches spinning off for good (workers sleep after
  // every job and are woken per job, like the earlier condition-variable
  // pool): a measurement knob for docs/performance.md's before/after.
  static constexpr int64_t kIdleSpinNs = 20'000; // 20 us
  static constexpr int64_t kHotSpinNs = 200'000; // 200 us
  static constexpr int64_t kLateNs = 100'000;    // a pick-up later than this: oversubscribed
  static constexpr uint32_t kMinBackoff = 64, kMaxBackoff = 4096;
  static constexpr uint32_t kDecayJobs = 64; // on-time jobs in a row that halve the penalty
  // Tests: what counts as late (kLateNs by default; negative = every pick-up,
  // INT64_MAX = none), so the back-off can be driven without timing.
  void setLateNsForTest(int64_t ns) { lateNs_.store(ns, std::memory_order_relaxed); }

private:
  template <class F> static void callRange(void *f, size_t b, size_t e) {
    (*static_cast<const F *>(f))(b, e);
  }
  void workerLoop(size_t index);
  uint32_t awaitJob(uint32_t seen);
  void awaitWorkers();

  std::vector<std::thread> workers_;
  std::mutex callMutex_; // one parallelFor at a time

  // The job, written by the caller before it bumps generation_ and read by
  // the workers after they see the new generation.
  RangeFn fn_ = nullptr;
  void *arg_ = nullptr;
  size_t n_ = 0;
  int64_t publishNs_ = 0; // when the job was published
  uint32_t backoff_ = 0;  // caller-only (under callMutex_): the current penalty
  uint32_t onTime_ = 0;   // caller-only: spinning jobs picked up on time in a row

  // Each hot counter on its own cache line.
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<uint32_t> pending_{0}; // workers still on the current job
  alignas(64) std::atomic<uint32_t> sleepers_{0};
  std::atomic<uint32_t> callerSleeping_{0};
  std::atomic<int> hot_{0};
  std::atomic<uint32_t> noSpinJobs_{0}; // jobs left with spinning switched off
  bool neverSpin_ = false;              // TERN_POOL_SPIN=0
  std::atomic<bool> sawLate_{false};    // a worker picked the current job up late
  std::atomic<bool> stop_{false};
  std::atomic<bool> timing_{false};
  std::atomic<int64_t> lateNs_{kLateNs};
  std::atomic<uint32_t> backoffStat_{0};
  std::atomic<uint64_t> jobs_{0}, wakes_{0}, sleeps_{0}, waitNs_{0}, late_{0}, noSpinJobsStat_{0};
};

// A barrier for the threads of one ThreadPool::region: a central arrival
// counter and a generation (each on its own cache line). A thread spins on
// the generation for a bounded time, then sleeps on it (a futex); the last
// arrival wakes sleepers only when there are some. When kTimeoutsToBackoff
// spins in a row time out (the threads waited for are not running: more
// threads than cores, or a loaded machine), the next kBackoffWaits waits (of
// any thread) sleep at once; then spinning is tried again. A spin that ends
// in time resets the count: one long wait (an op whose slices took unequal
// times, e.g. the LM head once per decode step) is not a loaded machine, and
// the ~450 barriers of a decode step must not sleep after it (a futex
// wake-up per barrier cost a 2-thread decode step ~15 %: docs/runtime.md).
class RegionBarrier {
public:
  explicit RegionBarrier(int threads = 1) { reset(threads); }
  RegionBarrier(const RegionBarrier &) = delete;
  RegionBarrier &operator=(const RegionBarrier &) = delete;

  // Only while no thread is waiting.
  void reset(int threads) { n_ = uint32_t(threads < 1 ? 1 : threads); }
  int size() const { return int(n_); }

  // Blocks until all size() threads have called it. Adds the time spent
  // waiting to waitNs() when `timed`.
  void wait(bool timed = false);
  uint64_t waitNs() const { return waitNs_.load(std::memory_order_relaxed); }
  const std::atomic<uint64_t> &waitNsCounter() const { return waitNs_; }
  uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  uint64_t sleeps() const { return sleeps_.load(std::memory_order_relaxed); }

  static constexpr int64_t kSpinNs = 50'000; // 50 us
  static constexpr uint32_t kTimeoutsToBackoff = 4;
  static constexpr uint32_t kBackoffWaits = 256;
  // Waits left that sleep without spinning (0: spinning on).
  uint32_t noSpinLeft() const { return noSpin_.load(std::memory_order_relaxed); }

private:
  uint32_t n_ = 1;
  alignas(64) std::atomic<uint32_t> arrived_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<uint32_t> sleepers_{0};
  std::atomic<uint32_t> noSpin_{0};   // waits left without spinning
  std::atomic<uint32_t> timeouts_{0}; // spins timed out in a row (a hint: racy)
  std::atomic<uint64_t> waitNs_{0}, waits_{0}, sleeps_{0};
};

} // namespace tern::model
