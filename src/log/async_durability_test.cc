// Asynchronous durability (PartitionLog::when_durable, WorkerThreads): appends that do not wait
// for fdatasync are acknowledged only once a sync covered them, share syncs, survive a power
// loss once acknowledged, and hear of a failed sync or a close.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "io/fault_file_system.h"
#include "log/log_test_support.h"
#include "log/partition_log.h"
#include "log/worker_threads.h"

namespace msgstore::log {
namespace {

// Counts completions and lets a test wait for a number of them.
class Completions {
 public:
  DurableCallback callback(PartitionLog* log, Offset end) {
    return [this, log, end](Status status) {
      std::lock_guard lock(mutex_);
      if (status.is_ok()) {
        ++succeeded_;
        // Acknowledged means readable: the high watermark covers the batch already.
        if (log->high_watermark() < end) ++acknowledged_unreadable_;
      } else {
        ++failed_;
        last_failure_ = status;
      }
      changed_.notify_all();
    };
  }
  bool wait_for(std::size_t count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(30), [&] { return succeeded_ + failed_ >= count; });
  }
  std::size_t succeeded() const { std::lock_guard lock(mutex_); return succeeded_; }
  std::size_t failed() const { std::lock_guard lock(mutex_); return failed_; }
  std::size_t acknowledged_unreadable() const { std::lock_guard lock(mutex_); return acknowledged_unreadable_; }
  Status last_failure() const { std::lock_guard lock(mutex_); return last_failure_; }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t succeeded_ = 0;
  std::size_t failed_ = 0;
  std::size_t acknowledged_unreadable_ = 0;
  Status last_failure_;
};

std::shared_ptr<PartitionLog> open_shared(FaultFileSystem& file_system, std::shared_ptr<WorkerThreads> threads) {
  // The partition directory's own entry made durable, as the store does.
  EXPECT_TRUE(file_system.create_directories("/p").is_ok());
  EXPECT_TRUE(file_system.sync_directory("/").is_ok());
  auto log = open_log(file_system, "/p");
  EXPECT_TRUE(log.is_ok()) << log.status().to_string();
  if (!log.is_ok()) return nullptr;
  std::shared_ptr<PartitionLog> shared = std::move(*log);
  if (threads) shared->set_sync_threads(threads);
  return shared;
}

// Appends one record without waiting; returns the end to wait for (0 on failure).
Offset append_deferred(PartitionLog& log, std::mt19937_64& random, std::uint64_t id, Status* failure = nullptr) {
  BatchBuilder builder;
  fill(builder, {make_record(random, id, 1, 40)});
  Offset end = 0;
  auto base = log.append(builder, {}, &end);
  if (!base.is_ok()) {
    if (failure) *failure = base.status();
    return 0;
  }
  EXPECT_EQ(end, *base + 1);
  return end;
}

TEST(AsyncDurability, ConcurrentAppendersShareSyncsAndEveryAcknowledgedBatchSurvivesPowerLoss) {
  FaultFileSystem file_system;
  auto threads = std::make_shared<WorkerThreads>(2);
  auto log = open_shared(file_system, threads);
  ASSERT_TRUE(log);
  file_system.reset_counters();
  constexpr int appenders = 8;
  constexpr int appends_each = 100;
  Completions completions;
  std::vector<std::thread> workers;
  for (int t = 0; t < appenders; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 random(900 + t);
      for (int i = 0; i < appends_each; ++i) {
        const Offset end = append_deferred(*log, random, static_cast<std::uint64_t>(t * appends_each + i));
        ASSERT_GT(end, 0u);
        log->when_durable(end, completions.callback(log.get(), end));
      }
    });
  }
  for (auto& worker : workers) worker.join();
  ASSERT_TRUE(completions.wait_for(appenders * appends_each));
  EXPECT_EQ(completions.succeeded(), static_cast<std::size_t>(appenders * appends_each));
  EXPECT_EQ(completions.acknowledged_unreadable(), 0u);
  // Shared: fewer syncs than appends (appenders never wait, so many batches land per sync).
  EXPECT_LT(file_system.counters().syncs, static_cast<std::uint64_t>(appenders * appends_each));
  EXPECT_EQ(log->high_watermark(), static_cast<Offset>(appenders * appends_each));
  // Every acknowledged batch is durable: a power loss that drops all unsynced writes keeps it.
  threads->stop();
  file_system.simulate_power_loss(7, PowerLossMode::drop_all_unsynced);
  log.reset();
  auto reopened = open_log(file_system, "/p");
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  EXPECT_EQ((*reopened)->high_watermark(), static_cast<Offset>(appenders * appends_each));
}

TEST(AsyncDurability, UnsyncedBatchIsNotReadableUntilItsSyncCompletes) {
  FaultFileSystem file_system;
  auto log = open_shared(file_system, nullptr);  // no sync threads: when_durable syncs inline
  ASSERT_TRUE(log);
  std::mt19937_64 random(3);
  const Offset end = append_deferred(*log, random, 0);
  ASSERT_EQ(end, 1u);
  EXPECT_EQ(log->high_watermark(), 0u);  // written, not durable, not readable
  Completions completions;
  log->when_durable(end, completions.callback(log.get(), end));
  EXPECT_EQ(completions.succeeded(), 1u);  // inline, before when_durable returned
  EXPECT_EQ(log->high_watermark(), 1u);
  // Already durable: answered at once.
  log->when_durable(end, completions.callback(log.get(), end));
  EXPECT_EQ(completions.succeeded(), 2u);
}

TEST(AsyncDurability, FailedSyncFailsEveryWaiterAndIsSticky) {
  FaultFileSystem file_system;
  auto threads = std::make_shared<WorkerThreads>(1);
  auto log = open_shared(file_system, threads);
  ASSERT_TRUE(log);
  std::mt19937_64 random(4);
  Completions completions;
  file_system.fail_after(FaultFileSystem::Operation::sync, 1);
  const Offset first = append_deferred(*log, random, 0);
  const Offset second = append_deferred(*log, random, 1);
  log->when_durable(first, completions.callback(log.get(), first));
  log->when_durable(second, completions.callback(log.get(), second));
  ASSERT_TRUE(completions.wait_for(2));
  EXPECT_EQ(completions.succeeded(), 0u);
  EXPECT_EQ(completions.failed(), 2u);
  EXPECT_EQ(completions.last_failure().code(), ErrorCode::log_failed) << completions.last_failure().to_string();
  EXPECT_EQ(log->high_watermark(), 0u);  // never acknowledged, never readable
  // Sticky: no more appends, and a later waiter fails at once.
  file_system.clear_faults();
  Status refused;
  EXPECT_EQ(append_deferred(*log, random, 2, &refused), 0u);
  EXPECT_EQ(refused.code(), ErrorCode::log_failed);
  log->when_durable(second, completions.callback(log.get(), second));
  EXPECT_EQ(completions.failed(), 3u);
}

TEST(AsyncDurability, AWaiterAfterAFailedWriteGetsThatWritesError) {
  FaultFileSystem file_system;
  auto threads = std::make_shared<WorkerThreads>(1);
  auto log = open_shared(file_system, threads);
  ASSERT_TRUE(log);
  std::mt19937_64 random(5);
  const Offset first = append_deferred(*log, random, 0);  // written, not yet synced
  ASSERT_GT(first, 0u);
  file_system.fail_after(FaultFileSystem::Operation::write, 1);
  Status refused;
  EXPECT_EQ(append_deferred(*log, random, 1, &refused), 0u);
  ASSERT_EQ(refused.code(), ErrorCode::log_failed);
  // The waiter is not acknowledged, and its error says why the log stopped.
  Completions completions;
  log->when_durable(first, completions.callback(log.get(), first));
  ASSERT_TRUE(completions.wait_for(1));
  EXPECT_EQ(completions.failed(), 1u);
  const Status failure = completions.last_failure();
  EXPECT_EQ(failure.code(), ErrorCode::log_failed);
  EXPECT_NE(failure.message().find("(injected fault)"), std::string::npos) << failure.to_string();
  EXPECT_EQ(log->high_watermark(), 0u);
}

TEST(AsyncDurability, CloseAnswersWaitersTheSyncThreadsHaveNotReached) {
  FaultFileSystem file_system;
  // A waiter registered just before close: close syncs and answers it, unless the sync pass
  // got there first; either way it hears ok exactly once.
  auto threads = std::make_shared<WorkerThreads>(1);
  auto log = open_shared(file_system, threads);
  ASSERT_TRUE(log);
  std::mt19937_64 random(5);
  Completions completions;
  const Offset end = append_deferred(*log, random, 0);
  log->when_durable(end, completions.callback(log.get(), end));
  ASSERT_TRUE(log->close().is_ok());
  ASSERT_TRUE(completions.wait_for(1));  // answered by close or by the pass, whichever came first
  EXPECT_EQ(completions.succeeded(), 1u);
  EXPECT_EQ(log->high_watermark(), 1u);
  threads->stop();
}

TEST(AsyncDurability, RelaxedPoliciesHaveNothingToWaitFor) {
  FaultFileSystem file_system;
  LogOptions options;
  options.fsync = FsyncPolicy::never;
  auto opened = open_log(file_system, "/p", options);
  ASSERT_TRUE(opened.is_ok());
  std::mt19937_64 random(6);
  BatchBuilder builder;
  fill(builder, {make_record(random, 0, 1, 40)});
  Offset end = 99;
  auto base = (*opened)->append(builder, {}, &end);
  ASSERT_TRUE(base.is_ok());
  EXPECT_EQ(end, 0u);
  EXPECT_EQ((*opened)->high_watermark(), 1u);  // readable on write, as the policy says
}

}  // namespace
}  // namespace msgstore::log
