#include "log/sync_threads.h"

#include <algorithm>

#include "log/partition_log.h"

namespace msgstore::log {

SyncThreads::SyncThreads(std::uint32_t thread_count) : thread_count_(std::max<std::uint32_t>(thread_count, 1)) {}

SyncThreads::~SyncThreads() { stop(); }

void SyncThreads::schedule(std::shared_ptr<PartitionLog> log) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      // Started on first use: a store that never publishes asynchronously has no sync threads.
      if (threads_.empty()) {
        threads_.reserve(thread_count_);
        for (std::uint32_t i = 0; i < thread_count_; ++i) threads_.emplace_back([this] { run(); });
      }
      queue_.push_back(std::move(log));
      wake_.notify_one();
      return;
    }
  }
  // Stopped (the store is closing): nobody else will run it.
  log->run_sync_pass();
}

void SyncThreads::stop() {
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

void SyncThreads::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has run
    std::shared_ptr<PartitionLog> log = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    log->run_sync_pass();
    log.reset();
    lock.lock();
  }
}

}  // namespace msgstore::log
