#include "runtime/model/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tern::model {

namespace {

// Chunk `part` of `parts` over [0, n).
inline void chunk(size_t n, size_t parts, size_t part, size_t &b, size_t &e) {
  b = n * part / parts;
  e = n * (part + 1) / parts;
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The pool whose chunk this thread is running (workers: always their pool).
thread_local const ThreadPool *tInPool = nullptr;

// Caller-side spin before it sleeps waiting for the workers' chunks.
constexpr int64_t kCallerSpinNs = 200'000;

} // namespace

ThreadPool::ThreadPool(int threads) {
  if (const char *e = std::getenv("TERN_POOL_SPIN"); e && std::strcmp(e, "0") == 0) {
    neverSpin_ = true;
    noSpinJobs_.store(1);
  }
  if (threads <= 0)
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i)
    workers_.emplace_back([this, i] { workerLoop(static_cast<size_t>(i)); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> call(callMutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  generation_.notify_all();
  for (std::thread &t : workers_)
    t.join();
}

ThreadPool::Stats ThreadPool::stats() const {
  Stats s;
  s.jobs = jobs_.load(std::memory_order_relaxed);
  s.wakes = wakes_.load(std::memory_order_relaxed);
  s.sleeps = sleeps_.load(std::memory_order_relaxed);
  s.waitNs = waitNs_.load(std::memory_order_relaxed);
  s.late = late_.load(std::memory_order_relaxed);
  s.noSpinJobs = noSpinJobsStat_.load(std::memory_order_relaxed);
  s.backoff = backoffStat_.load(std::memory_order_relaxed);
  s.noSpinLeft = neverSpin_ ? 0 : noSpinJobs_.load(std::memory_order_relaxed);
  return s;
}

// Spins until the generation moves past `seen` (bounded), then sleeps on it.
uint32_t ThreadPool::awaitJob(uint32_t seen) {
  int64_t deadline = 0;
  const bool spin = noSpinJobs_.load(std::memory_order_relaxed) == 0;
  for (uint32_t i = 1; spin; ++i) {
    const uint32_t g = generation_.load(std::memory_order_acquire);
    if (g != seen)
      return g;
    cpuRelax();
    if ((i & 63) == 0) {
      const int64_t now = nowNs();
      const int64_t budget = noSpinJobs_.load(std::memory_order_relaxed) > 0 ? 0
                             : hot_.load(std::memory_order_relaxed) > 0      ? kHotSpinNs
                                                                             : kIdleSpinNs;
      if (deadline == 0)
        deadline = now + budget;
      else if (now >= deadline)
        break;
    }
  }
  // Sleep. sleepers_ is raised before the generation is re-read (both
  // seq_cst): a caller either sees a sleeper and wakes it, or this thread
  // sees the new generation and does not sleep.
  sleepers_.fetch_add(1);
  uint32_t g;
  while ((g = generation_.load()) == seen) {
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    generation_.wait(seen);
  }
  sleepers_.fetch_sub(1);
  return g;
}

void ThreadPool::workerLoop(size_t index) {
  tInPool = this;
  uint32_t seen = 0;
  for (;;) {
    seen = awaitJob(seen);
    if (stop_.load(std::memory_order_acquire))
      return;
    if (nowNs() - publishNs_ > lateNs_.load(std::memory_order_relaxed))
      sawLate_.store(true, std::memory_order_relaxed);
    size_t b, e;
    chunk(n_, workers_.size() + 1, index, b, e);
    if (b < e)
      fn_(arg_, b, e);
    // The caller sleeps only after raising callerSleeping_ and re-reading
    // pending_ (seq_cst on both sides, as for the workers' sleep).
    if (pending_.fetch_sub(1) == 1 && callerSleeping_.load() != 0)
      pending_.notify_one();
  }
}

void ThreadPool::awaitWorkers() {
  const bool spin = noSpinJobs_.load(std::memory_order_relaxed) == 0;
  const int64_t deadline = nowNs() + (spin ? kCallerSpinNs : 0);
  for (uint32_t i = 1;; ++i) {
    if (pending_.load(std::memory_order_acquire) == 0)
      return;
    cpuRelax();
    if ((i & 63) == 0 && nowNs() >= deadline)
      break;
  }
  callerSleeping_.store(1);
  uint32_t p;
  while ((p = pending_.load()) != 0)
    pending_.wait(p);
  callerSleeping_.store(0);
}

void ThreadPool::parallelFor(size_t n, RangeFn fn, void *arg) {
  if (n == 0)
    return;
  if (workers_.empty() || n == 1 || tInPool == this) {
    fn(arg, 0, n);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex_);
  fn_ = fn;
  arg_ = arg;
  n_ = n;
  publishNs_ = nowNs();
  pending_.store(static_cast<uint32_t>(workers_.size()), std::memory_order_relaxed);
  jobs_.fetch_add(1, std::memory_order_relaxed);
  const bool spinning = noSpinJobs_.load(std::memory_order_relaxed) == 0;
  if (!spinning)
    noSpinJobsStat_.fetch_add(1, std::memory_order_relaxed);
  generation_.fetch_add(1); // seq_cst: publishes the job, ordered before sleepers_ below
  if (sleepers_.load() != 0) {
    wakes_.fetch_add(1, std::memory_order_relaxed);
    generation_.notify_all();
  }
  size_t b, e;
  chunk(n, workers_.size() + 1, 0, b, e);
  const ThreadPool *was = tInPool;
  tInPool = this;
  if (b < e)
    fn(arg, b, e);
  tInPool = was;
  if (timing_.load(std::memory_order_relaxed)) {
    const int64_t t0 = nowNs();
    awaitWorkers();
    waitNs_.fetch_add(uint64_t(nowNs() - t0), std::memory_order_relaxed);
  } else {
    awaitWorkers();
  }
  // Adapt. A late pick-up of a job the workers were spinning for (they
  // were not running: oversubscribed) switches spinning off for backoff_
  // jobs, doubling on every repeat. A late pick-up while spinning is off is
  // a slow wake-up, not a failed spin: it changes nothing. kDecayJobs
  // spinning jobs in a row picked up on time halve the penalty, so spinning
  // comes back once the load has gone.
  const bool late = sawLate_.load(std::memory_order_relaxed);
  if (late) {
    sawLate_.store(false, std::memory_order_relaxed);
    late_.fetch_add(1, std::memory_order_relaxed);
  }
  if (neverSpin_)
    return;
  if (!spinning) {
    noSpinJobs_.store(noSpinJobs_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  } else if (late) {
    onTime_ = 0;
    backoff_ = backoff_ == 0 ? kMinBackoff : std::min<uint32_t>(backoff_ * 2, kMaxBackoff);
    noSpinJobs_.store(backoff_, std::memory_order_relaxed);
  } else if (backoff_ > 0 && ++onTime_ >= kDecayJobs) {
    onTime_ = 0;
    backoff_ = backoff_ / 2 < kMinBackoff ? 0 : backoff_ / 2;
  }
  backoffStat_.store(backoff_, std::memory_order_relaxed);
}

namespace {
struct RegionJob {
  ThreadPool::RegionFn fn;
  void *arg;
};
void runRegionChunk(void *p, size_t b, size_t e) {
  const RegionJob &j = *static_cast<const RegionJob *>(p);
  for (size_t i = b; i < e; ++i)
    j.fn(j.arg, int(i));
}
} // namespace

bool ThreadPool::region(RegionFn fn, void *arg) {
  if (tInPool == this)
    return false;
  if (workers_.empty()) {
    fn(arg, 0);
    return true;
  }
  // parallelFor over [0, size()): chunk i of size() threads is [i, i+1),
  // so thread i runs tid i (it never runs inline: size() > 1, not nested).
  RegionJob job{fn, arg};
  parallelFor(size_t(size()), &runRegionChunk, &job);
  return true;
}

void RegionBarrier::wait(bool timed) {
  if (n_ <= 1)
    return;
  waits_.fetch_add(1, std::memory_order_relaxed);
  const uint32_t gen = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    // Last one in: reset the count before the generation moves (the next
    // wait's arrivals come only after they see the new generation).
    arrived_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1); // seq_cst: ordered before sleepers_ below
    if (sleepers_.load() != 0)
      generation_.notify_all();
    return;
  }
  const int64_t t0 = timed ? nowNs() : 0;
  const uint32_t noSpin = noSpin_.load(std::memory_order_relaxed);
  if (noSpin > 0)
    noSpin_.store(noSpin - 1, std::memory_order_relaxed); // racy decrement: a hint only
  int64_t deadline = 0;
  for (uint32_t i = 1; noSpin == 0; ++i) {
    if (generation_.load(std::memory_order_acquire) != gen) {
      timeouts_.store(0, std::memory_order_relaxed);
      break;
    }
    cpuRelax();
    if ((i & 63) == 0) {
      const int64_t now = nowNs();
      if (deadline == 0) {
        deadline = now + kSpinNs;
      } else if (now >= deadline) {
        if (timeouts_.fetch_add(1, std::memory_order_relaxed) + 1 >= kTimeoutsToBackoff) {
          timeouts_.store(0, std::memory_order_relaxed);
          noSpin_.store(kBackoffWaits, std::memory_order_relaxed);
        }
        break;
      }
    }
  }
  if (generation_.load(std::memory_order_acquire) == gen) {
    // As in the pool: sleepers_ raised before the re-read (seq_cst both sides).
    sleepers_.fetch_add(1);
    while (generation_.load() == gen) {
      sleeps_.fetch_add(1, std::memory_order_relaxed);
      generation_.wait(gen);
    }
    sleepers_.fetch_sub(1);
  }
  if (timed)
    waitNs_.fetch_add(uint64_t(nowNs() - t0), std::memory_order_relaxed);
}

} // namespace tern::model
