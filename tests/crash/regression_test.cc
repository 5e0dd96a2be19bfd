// Deterministic regression tests for the bugs the crash suite found (tests/crash/README.md,
// "Bugs found"). Each names the test and seed that first found it.
#include <gtest/gtest.h>

#include "crash/checker.h"
#include "io/fault_file_system.h"
#include "log/partition_log.h"

namespace msgstore::crash {
namespace {

using log::BatchBuilder;
using log::LogOptions;
using log::PartitionLog;

// Appends `count` one-message batches with ~150-byte payloads.
void append_messages(PartitionLog& partition_log, std::uint64_t& sequence, int count) {
  for (int i = 0; i < count; ++i) {
    const std::string payload = make_payload(MessageId{0, sequence++}, 150);
    OutgoingMessage message;
    message.subject = "r";
    message.payload = payload;
    BatchBuilder builder;
    builder.add(message, 1000);
    ASSERT_TRUE(partition_log.append(builder).is_ok());
  }
}

// Found by no_space_test (CRASH_SEED=1 CRASH_LEVEL=42): a retention pass whose checkpoint write
// failed (ENOSPC) left the in-memory log start advanced over segments it had not deleted; the
// next pass counted a segment below that log start as holding no messages and deleted down to
// fewer than max_messages (15 of 30).
TEST(Regression, RetentionAfterAFailedCheckpointKeepsMaxMessages) {
  FaultFileSystem file_system;
  LogOptions options;
  options.segment_bytes = limits::segment_bytes_min;
  auto opened = PartitionLog::open(file_system, "/p", "r/0", options, [] { return TimestampMs{5000}; }, nullptr);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  PartitionLog& partition_log = **opened;
  std::uint64_t sequence = 0;
  ASSERT_NO_FATAL_FAILURE(append_messages(partition_log, sequence, 100));  // about 20 per segment

  options.max_messages = 30;
  partition_log.set_options(options);
  file_system.fail_after(FaultFileSystem::Operation::rename, 1);  // the checkpoint of the first pass
  EXPECT_FALSE(partition_log.maintain().is_ok());
  const Offset after_failure = partition_log.log_start_offset();
  EXPECT_TRUE(partition_log.high_watermark() - after_failure >= 30);

  ASSERT_TRUE(partition_log.maintain().is_ok());
  const Offset start = partition_log.log_start_offset();
  const Offset end = partition_log.high_watermark();
  EXPECT_GT(start, 0u) << "retention deleted nothing";
  EXPECT_GE(end - start, 30u) << "retention kept only " << (end - start) << " messages (log " << start << ".." << end << ")";
}

// The same failed pass must not hide messages it did not delete: the log start readers see
// stays the durable one until the new one is persisted.
TEST(Regression, AFailedRetentionCheckpointDoesNotMoveTheLogStart) {
  FaultFileSystem file_system;
  LogOptions options;
  options.segment_bytes = limits::segment_bytes_min;
  auto opened = PartitionLog::open(file_system, "/p", "r/0", options, [] { return TimestampMs{5000}; }, nullptr);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  PartitionLog& partition_log = **opened;
  std::uint64_t sequence = 0;
  ASSERT_NO_FATAL_FAILURE(append_messages(partition_log, sequence, 100));
  options.max_messages = 30;
  partition_log.set_options(options);
  file_system.fail_after(FaultFileSystem::Operation::rename, 1);
  EXPECT_FALSE(partition_log.maintain().is_ok());
  EXPECT_EQ(partition_log.log_start_offset(), 0u);
  std::uint64_t seen = 0;
  auto next = partition_log.scan(0, 1000, SIZE_MAX, [&](const MessageView&) {
    ++seen;
    return true;
  });
  ASSERT_TRUE(next.is_ok()) << next.status().to_string();
  EXPECT_EQ(seen, 100u);
}

}  // namespace
}  // namespace msgstore::crash
