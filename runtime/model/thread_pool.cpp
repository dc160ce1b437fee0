#include "runtime/model/thread_pool.h"

namespace tern::model {

namespace {
// Chunk `part` of `parts` over [0, n).
inline void chunk(size_t n, size_t parts, size_t part, size_t &b, size_t &e) {
  b = n * part / parts;
  e = n * (part + 1) / parts;
}
} // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0)
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i)
    workers_.emplace_back([this, i] { workerLoop(static_cast<size_t>(i)); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread &t : workers_)
    t.join();
}

void ThreadPool::workerLoop(size_t index) {
  size_t seen = 0;
  for (;;) {
    const std::function<void(size_t, size_t)> *job;
    size_t n;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_)
        return;
      seen = generation_;
      job = job_;
      n = jobN_;
    }
    size_t b, e;
    chunk(n, workers_.size() + 1, index, b, e);
    if (b < e)
      (*job)(b, e);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0)
        done_.notify_one();
    }
  }
}

void ThreadPool::parallelFor(size_t n, const std::function<void(size_t, size_t)> &fn) {
  if (n == 0)
    return;
  if (workers_.empty() || n == 1) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    jobN_ = n;
    pending_ = workers_.size();
    ++generation_;
  }
  wake_.notify_all();
  size_t b, e;
  chunk(n, workers_.size() + 1, 0, b, e);
  if (b < e)
    fn(b, e);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

} // namespace tern::model
