// PartitionIndex's cache of parsed sealed indexes: bounded by its budget, and never answering
// for a segment that retention removed or a rewrite (compaction, erase) replaced.
#include "index/partition_index.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace msgstore::index
