// log/worker_threads.h: a few threads that run background jobs handed to them, one job object
// at a time each. Two uses:
//
// * Sync threads (PartitionLog::when_durable): asynchronous durability without a blocked
//   thread per appender. when_durable registers a completion and, unless the log already has a
//   pass queued or running, schedules the log; a thread runs its sync pass: one fdatasync
//   covering everything written so far, then every completion whose batch it covers, and again
//   while completions keep arriving, so the appenders of one fsync window share one fdatasync.
// * The index thread (index::PartitionIndex): indexes appended batches off the publishing
//   thread (see partition_index.h).
//
// A job schedules itself again only when its previous run has ended or is about to (each user
// keeps a "scheduled" flag), so one object is never run by two threads at once. Jobs run on a
// worker thread and must not block for long on anything but their own I/O.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace msgstore::log {

class BackgroundJob {
 public:
  virtual ~BackgroundJob() = default;
  virtual void run_background_job() = 0;
};

class WorkerThreads {
 public:
  explicit WorkerThreads(std::uint32_t thread_count);
  // stop(): runs the jobs already scheduled, then joins.
  ~WorkerThreads();
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;

  // Queues one run of `job`. After stop(), runs it on the calling thread.
  void schedule(std::shared_ptr<BackgroundJob> job);
  // Runs every queued job, then ends the threads. Idempotent.
  void stop();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<BackgroundJob>> queue_;  // guarded by mutex_
  bool stopping_ = false;                             // guarded by mutex_
  const std::uint32_t thread_count_;
  std::vector<std::thread> threads_;  // started by the first schedule(), under mutex_
};

}  // namespace msgstore::log
