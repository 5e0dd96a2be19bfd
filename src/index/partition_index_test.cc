// PartitionIndex's cache of parsed sealed indexes: bounded by its budget, and never answering
// for a segment that retention removed or a rewrite (compaction, erase) replaced. And its
// index thread: batches and seals it has not reached yet are never missing from a lookup, and
// a thread that falls behind makes publishers catch up instead of growing memory.
#include "index/partition_index.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <random>

#include "io/fault_file_system.h"
#include "log/log_test_support.h"

namespace msgstore::index {
namespace {

using log::Record;

class PartitionIndexCacheTest : public ::testing::Test {
 protected:
  // One key per 10 messages, batches of 10, segments of 4 KiB: many sealed segments.
  void SetUp() override {
    log::LogOptions options;
    options.segment_bytes = 4096;
    auto opened = log::open_log(file_system_, "/data/p", options);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    log_ = std::move(*opened);
    for (int batch = 0; batch < 60; ++batch) {
      std::vector<Record> records;
      for (int i = 0; i < 10; ++i) {
        Record record;
        record.subject = "orders.created";
        record.key = "key-" + std::to_string(i);
        record.payload = "payload-" + std::to_string(batch * 10 + i) + std::string(40, 'x');
        records.push_back(record);
      }
      ASSERT_TRUE(log::append(*log_, records).is_ok());
    }
  }
  std::shared_ptr<PartitionIndex> attach(std::uint64_t cache_bytes_max) {
    auto index = PartitionIndex::attach(file_system_, *log_, make_index_configuration(true, {}), cache_bytes_max);
    EXPECT_TRUE(index.is_ok());
    return index ? *index : nullptr;
  }
  // Offsets of `key` over every sealed segment, oldest first.
  std::vector<Offset> offsets_of(PartitionIndex& index, const std::string& key, QueryStatistics& statistics) {
    std::vector<Offset> offsets;
    const auto segments = log_->segments_snapshot();
    for (std::size_t at = 0; at + 1 < segments.size(); ++at) {
      std::vector<Posting> postings;
      bool skipped = false;
      EXPECT_TRUE(index.lookup(*segments[at], key_term(key), {key_term(key)}, postings, skipped, statistics).is_ok());
      for (const Posting& posting : postings) offsets.push_back(segments[at]->base_offset() + posting.relative_offset);
    }
    return offsets;
  }

  FaultFileSystem file_system_;
  std::unique_ptr<log::PartitionLog> log_;
};

TEST_F(PartitionIndexCacheTest, StaysWithinItsBudgetAndAnswersTheSame) {
  auto unbounded = attach(limits::message_index_cache_bytes_max);
  QueryStatistics statistics;
  const std::vector<Offset> expected = offsets_of(*unbounded, "key-3", statistics);
  ASSERT_FALSE(expected.empty());
  ASSERT_GT(log_->segments_snapshot().size(), 8u);
  const std::size_t sealed = log_->segments_snapshot().size() - 1;
  EXPECT_EQ(unbounded->cached_segments(), sealed);
  const std::uint64_t one_segment_bytes = unbounded->cached_bytes() / sealed;

  // A budget of about three segments: never more, same answers, older entries reloaded.
  log_->set_observer(nullptr);
  auto bounded = attach(3 * one_segment_bytes + one_segment_bytes / 2);
  for (int pass = 0; pass < 3; ++pass) {
    QueryStatistics bounded_statistics;
    EXPECT_EQ(offsets_of(*bounded, "key-3", bounded_statistics), expected);
    EXPECT_LE(bounded->cached_bytes(), 3 * one_segment_bytes + one_segment_bytes / 2);
    EXPECT_GE(bounded->cached_segments(), 1u);
    EXPECT_LT(bounded->cached_segments(), sealed);
    EXPECT_EQ(bounded_statistics.index_files_rebuilt, 0u);  // evicted entries come back from their files
  }
  // A budget smaller than one segment caches nothing and still answers.
  auto none = attach(16);
  QueryStatistics none_statistics;
  EXPECT_EQ(offsets_of(*none, "key-3", none_statistics), expected);
  EXPECT_EQ(none->cached_segments(), 0u);
}

TEST_F(PartitionIndexCacheTest, RetentionAndRewritesDropEntries) {
  auto index = attach(limits::message_index_cache_bytes_max);
  QueryStatistics statistics;
  const std::vector<Offset> before = offsets_of(*index, "key-3", statistics);
  const auto segments = log_->segments_snapshot();
  const std::size_t cached = index->cached_segments();
  ASSERT_GT(cached, 2u);
  // A rewrite that drops key-3 from the second segment: its cached index and its file go
  // before the commit point; the answer afterwards comes from the new log.
  const Offset rewritten_base = segments[1]->base_offset();
  const auto index_path = index_file_path("/data/p", rewritten_base);
  ASSERT_TRUE(file_system_.exists(index_path));
  auto rewritten = log_->rewrite_segment(rewritten_base, [](const MessageView& message) { return message.key != "key-3"; });
  ASSERT_TRUE(rewritten.is_ok()) << rewritten.status().to_string();
  ASSERT_TRUE(rewritten->replaced);
  EXPECT_FALSE(file_system_.exists(index_path));
  EXPECT_EQ(index->cached_segments(), cached - 1);
  std::vector<Offset> expected;
  const Offset rewritten_end = segments[2]->base_offset();
  for (Offset offset : before) {
    if (offset < rewritten_base || offset >= rewritten_end) expected.push_back(offset);
  }
  QueryStatistics after;
  EXPECT_EQ(offsets_of(*index, "key-3", after), expected);
  EXPECT_EQ(after.index_files_rebuilt, 1u);  // the replacement's index, from its log
  EXPECT_TRUE(file_system_.exists(index_path));
  // Retention of the oldest segment drops its entry and its file.
  index->on_segment_removed(segments[0]->base_offset());
  EXPECT_EQ(index->cached_segments(), cached - 1);
  EXPECT_FALSE(file_system_.exists(index_file_path("/data/p", segments[0]->base_offset())));
}

// Occupies a worker thread until released: jobs scheduled after it wait.
class BlockingJob : public log::BackgroundJob {
 public:
  void run_background_job() override {
    std::unique_lock lock(mutex_);
    released_.wait(lock, [this] { return open_; });
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    released_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  bool open_ = false;
};

class PartitionIndexThreadTest : public ::testing::Test {
 protected:
  void TearDown() override {
    blocker_->release();
    threads_->stop();
  }
  // A log with an index whose index thread is held by blocker_ until the test releases it.
  void open(std::uint64_t segment_bytes) {
    log::LogOptions options;
    options.segment_bytes = segment_bytes;
    auto opened = log::open_log(file_system_, "/data/p", options);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    log_ = std::move(*opened);
    threads_->schedule(blocker_);
    auto index = PartitionIndex::attach(file_system_, *log_, make_index_configuration(true, {}),
                                        limits::message_index_cache_bytes_max, threads_);
    ASSERT_TRUE(index.is_ok()) << index.status().to_string();
    index_ = *index;
  }
  // Batch `batch` of 10 messages: key-0 .. key-9, so key-k is at offsets 10 * batch + k.
  void append_batch(int batch, std::size_t payload_bytes) {
    std::vector<Record> records;
    for (int i = 0; i < 10; ++i) {
      Record record;
      record.subject = "orders.created";
      record.key = "key-" + std::to_string(i);
      record.payload = "payload-" + std::to_string(batch * 10 + i) + std::string(payload_bytes, 'x');
      records.push_back(record);
    }
    ASSERT_TRUE(log::append(*log_, records).is_ok());
  }
  // Offsets of `key` over every segment, the active one included, oldest first.
  std::vector<Offset> offsets_of(const std::string& key, QueryStatistics& statistics) {
    std::vector<Offset> offsets;
    for (const auto& segment : log_->segments_snapshot()) {
      std::vector<Posting> postings;
      bool skipped = false;
      EXPECT_TRUE(index_->lookup(*segment, key_term(key), {}, postings, skipped, statistics).is_ok());
      for (const Posting& posting : postings) offsets.push_back(segment->base_offset() + posting.relative_offset);
    }
    return offsets;
  }
  std::size_t sealed_segments_without_index_file() {
    std::size_t missing = 0;
    const auto segments = log_->segments_snapshot();
    for (std::size_t at = 0; at + 1 < segments.size(); ++at) {
      if (!file_system_.exists(index_file_path("/data/p", segments[at]->base_offset()))) ++missing;
    }
    return missing;
  }

  FaultFileSystem file_system_;
  std::unique_ptr<log::PartitionLog> log_;
  std::shared_ptr<log::WorkerThreads> threads_ = std::make_shared<log::WorkerThreads>(1);
  std::shared_ptr<BlockingJob> blocker_ = std::make_shared<BlockingJob>();
  std::shared_ptr<PartitionIndex> index_;
};

TEST_F(PartitionIndexThreadTest, LookupsSeeWhatTheIndexThreadHasNotReached) {
  open(4096);
  constexpr int batches = 60;
  for (int batch = 0; batch < batches; ++batch) {
    append_batch(batch, 40);
    // Seals the index thread has not written: never more than the limit (the publisher
    // writes the oldest itself), and never a queue past its bound.
    EXPECT_LE(sealed_segments_without_index_file(), limits::index_pending_seals_max);
    EXPECT_LE(index_->queued_bytes(), limits::index_queue_bytes_max);
  }
  ASSERT_GT(log_->segments_snapshot().size(), limits::index_pending_seals_max + 3);
  EXPECT_EQ(sealed_segments_without_index_file(), limits::index_pending_seals_max);
  EXPECT_GT(index_->queued_bytes(), 0u);  // the active segment's batches wait for the thread

  // Every message, from the queue, the pending seals and the files alike; the pending seals'
  // files are written by the lookups that need them, not rebuilt from the log.
  std::vector<Offset> expected;
  for (int batch = 0; batch < batches; ++batch) expected.push_back(static_cast<Offset>(batch * 10 + 7));
  QueryStatistics statistics;
  EXPECT_EQ(offsets_of("key-7", statistics), expected);
  EXPECT_EQ(statistics.index_files_rebuilt, 0u);
  EXPECT_EQ(sealed_segments_without_index_file(), 0u);
  EXPECT_EQ(index_->queued_bytes(), 0u);

  // Once released, the thread finds nothing left to do; the answers stay the same.
  blocker_->release();
  threads_->stop();
  QueryStatistics again;
  EXPECT_EQ(offsets_of("key-7", again), expected);
  EXPECT_EQ(again.index_files_rebuilt, 0u);
}

TEST_F(PartitionIndexThreadTest, APublisherCatchesUpWhenTheQueueIsFull) {
  open(64ull * 1024 * 1024);  // one segment: no seal drains the queue
  std::uint64_t largest = 0;
  constexpr int batches = 400;  // about 4 MiB of batches, four times the queue's bound
  for (int batch = 0; batch < batches; ++batch) {
    append_batch(batch, 1000);
    largest = std::max<std::uint64_t>(largest, index_->queued_bytes());
    ASSERT_LE(index_->queued_bytes(), limits::index_queue_bytes_max);
  }
  EXPECT_GT(largest, limits::index_queue_bytes_max / 2);  // the queue did fill (the thread is held)
  QueryStatistics statistics;
  std::vector<Offset> expected;
  for (int batch = 0; batch < batches; ++batch) expected.push_back(static_cast<Offset>(batch * 10 + 3));
  EXPECT_EQ(offsets_of("key-3", statistics), expected);
  EXPECT_EQ(index_->queued_bytes(), 0u);
}

TEST_F(PartitionIndexThreadTest, RetentionDropsAPendingSealWithoutWritingItsFile) {
  open(4096);
  for (int batch = 0; batch < 30; ++batch) append_batch(batch, 40);
  const auto segments = log_->segments_snapshot();
  ASSERT_GE(segments.size(), 4u);  // two pending seals and an older written one
  // The newest sealed segment's file is pending: retention takes it before the thread runs.
  const Offset pending = segments[segments.size() - 2]->base_offset();
  ASSERT_FALSE(file_system_.exists(index_file_path("/data/p", pending)));
  index_->on_segment_removed(pending);
  blocker_->release();
  threads_->stop();
  EXPECT_FALSE(file_system_.exists(index_file_path("/data/p", pending)));
  EXPECT_TRUE(file_system_.exists(index_file_path("/data/p", segments[segments.size() - 3]->base_offset())));
}

}  // namespace
}  // namespace msgstore::index
