// log/sync_threads.h: the threads that make appends durable without a blocked thread per
// appender (asynchronous group commit).
//
// PartitionLog::when_durable registers a completion and, unless the log already has a pass
// queued or running, hands the log to these threads; one of them runs the log's sync pass:
// one fdatasync covering everything written so far, then every completion whose batch it
// covers, on that thread, and again while completions keep arriving. Whoever registers while
// a pass syncs is covered by its next round, so all the appenders of one fsync window share
// one fdatasync, as in the blocking path (PartitionLog::append). Several threads sync
// different partitions in parallel; one log is never in two passes at once.
//
// Completions run on a sync thread and must be quick (post to an event loop and return).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace msgstore::log {

class PartitionLog;

class SyncThreads {
 public:
  explicit SyncThreads(std::uint32_t thread_count);
  // stop(): runs the passes already scheduled, then joins.
  ~SyncThreads();
  SyncThreads(const SyncThreads&) = delete;
  SyncThreads& operator=(const SyncThreads&) = delete;

  // Queues one sync pass of `log`. After stop(), runs the pass on the calling thread.
  void schedule(std::shared_ptr<PartitionLog> log);
  // Runs every queued pass, then ends the threads. Idempotent.
  void stop();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<PartitionLog>> queue_;  // guarded by mutex_
  bool stopping_ = false;                            // guarded by mutex_
  const std::uint32_t thread_count_;
  std::vector<std::thread> threads_;  // started by the first schedule(), under mutex_
};

}  // namespace msgstore::log
