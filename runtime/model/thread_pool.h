// One fixed-size pool of worker threads, created once (`-t` sets its size).
//
// parallelFor cuts [0, n) into contiguous chunks; every index is handled by
// exactly one call, so any computation that writes disjoint outputs per
// index gives bit-identical results for every thread count.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tern::model {

class ThreadPool {
public:
  // threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int threads = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(begin, end) over chunks covering [0, n); the calling thread takes
  // part. Calls are serialised (one parallelFor at a time per pool).
  void parallelFor(size_t n, const std::function<void(size_t begin, size_t end)> &fn);

private:
  void workerLoop(size_t index);

  std::vector<std::thread> workers_;
  std::mutex callMutex_; // one parallelFor at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(size_t, size_t)> *job_ = nullptr;
  size_t jobN_ = 0;
  size_t generation_ = 0;
  size_t pending_ = 0;
  bool stop_ = false;
};

} // namespace tern::model
