#include "log/worker_threads.h"

#include <algorithm>

namespace msgstore::log {

WorkerThreads::WorkerThreads(std::uint32_t thread_count) : thread_count_(std::max<std::uint32_t>(thread_count, 1)) {}

WorkerThreads::~WorkerThreads() { stop(); }

void WorkerThreads::schedule(std::shared_ptr<BackgroundJob> job) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      // Started on first use: a store that never needs them has no threads.
      if (threads_.empty()) {
        threads_.reserve(thread_count_);
        for (std::uint32_t i = 0; i < thread_count_; ++i) threads_.emplace_back([this] { run(); });
      }
      queue_.push_back(std::move(job));
      wake_.notify_one();
      return;
    }
  }
  // Stopped (the store is closing): nobody else will run it.
  job->run_background_job();
}

void WorkerThreads::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    wake_.notify_all();
  }
  // Started threads only change under mutex_ before stopping_ is set, so this reads them safely.
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void WorkerThreads::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has run
    std::shared_ptr<BackgroundJob> job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job->run_background_job();
    job.reset();
    lock.lock();
  }
}

}  // namespace msgstore::log
