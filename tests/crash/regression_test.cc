// Deterministic regression tests for the bugs the crash suite found (tests/crash/README.md,
// "Bugs found"). Each names the test and seed that first found it.
#include <gtest/gtest.h>

#include "crash/checker.h"
#include "crash/harness.h"
#include "io/fault_file_system.h"
#include "log/partition_log.h"

namespace msgstore::crash {
namespace {

using log::BatchBuilder;
using log::LogOptions;
using log::PartitionLog;

// Appends `count` one-message batches with payloads of about `filler_bytes` bytes.
void append_messages(PartitionLog& partition_log, std::uint64_t& sequence, int count, std::size_t filler_bytes = 150) {
  for (int i = 0; i < count; ++i) {
    const std::string payload = make_payload(MessageId{0, sequence++}, filler_bytes);
    OutgoingMessage message;
    message.subject = "r";
    message.payload = payload;
    BatchBuilder builder;
    builder.add(message, 1000);
    ASSERT_TRUE(partition_log.append(builder).is_ok());
  }
}

// A Store on an in-memory fault file system (background maintenance off).
void open_store(std::unique_ptr<Store>& store) {
  double open_ms = 0;
  auto opened = open_timed("/data", std::make_shared<FaultFileSystem>(), open_ms);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  store = std::move(*opened);
}

// The offsets a query delivers, in order.
std::vector<Offset> query_offsets(const Store& store, const Query& query) {
  std::vector<Offset> offsets;
  auto result = store.query(query, [&](const QueryMatch& match) {
    offsets.push_back(match.message.offset);
    return ScanControl::proceed;
  });
  EXPECT_TRUE(result.is_ok()) << result.status().to_string();
  return offsets;
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

// Found by model_test (CRASH_SEED=3, step 182): recovery rewrote the active segment's sparse
// offset and time index files without syncing them. After a power loss had cut the log short,
// the durable index still held entries for the lost bytes; recovery dropped them in memory and
// in the (unsynced) rewrite, new appends then put other batches at those positions, and a second
// power loss brought the stale entries back, now below the valid end: reads and verify met
// "damaged bytes" where the log was intact, and offsets that had been read back were lost.
TEST(Regression, RecoveryMakesTheRewrittenTailIndexesDurable) {
  FaultFileSystem file_system;
  LogOptions options;
  options.fsync = FsyncPolicy::never;
  std::uint64_t sequence = 0;
  {
    auto opened = PartitionLog::open(file_system, "/p", "r/0", options, [] { return TimestampMs{5000}; }, nullptr);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    ASSERT_NO_FATAL_FAILURE(append_messages(**opened, sequence, 30));
    file_system.make_all_durable();
    ASSERT_NO_FATAL_FAILURE(append_messages(**opened, sequence, 70));  // index entries every 4 KiB
    // A power loss that kept the index files' writes but not the log's last 70 messages.
    for (const char* index : {"/p/00000000000000000000.v1.offset_index", "/p/00000000000000000000.v1.time_index"}) {
      auto file = file_system.open(index, OpenMode::read_write);
      ASSERT_TRUE(file.is_ok()) << index << ": " << file.status().to_string();
      ASSERT_TRUE((*file)->sync().is_ok());
    }
    file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  }
  sequence = 30;
  {
    auto reopened = PartitionLog::open(file_system, "/p", "r/0", options, [] { return TimestampMs{5000}; }, nullptr);
    ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
    ASSERT_EQ((*reopened)->high_watermark(), 30u);
    // Other batches (longer payloads) at the positions the lost entries named, synced.
    ASSERT_NO_FATAL_FAILURE(append_messages(**reopened, sequence, 70, 400));
    ASSERT_TRUE((*reopened)->sync().is_ok());
  }
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  auto recovered = PartitionLog::open(file_system, "/p", "r/0", options, [] { return TimestampMs{5000}; }, nullptr);
  ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
  EXPECT_EQ((*recovered)->high_watermark(), 100u);
  VerifyReport report;
  (*recovered)->verify(report);
  EXPECT_TRUE(report.clean()) << report.problems.front();
  std::uint64_t seen = 0;
  auto next = (*recovered)->scan(0, 1000, SIZE_MAX, [&](const MessageView& message) {
    EXPECT_EQ(message.offset, seen);
    EXPECT_EQ(parse_payload(message.payload).value_or(MessageId{}).sequence, seen);
    ++seen;
    return true;
  });
  ASSERT_TRUE(next.is_ok()) << next.status().to_string();
  EXPECT_EQ(seen, 100u);
  // And each synced message is found from its own offset (the sparse index is used).
  for (Offset offset = 30; offset < 100; offset += 7) {
    std::optional<Offset> first;
    auto read = (*recovered)->scan(offset, 1, SIZE_MAX, [&](const MessageView& message) {
      first = message.offset;
      return true;
    });
    ASSERT_TRUE(read.is_ok()) << "offset " << offset << ": " << read.status().to_string();
    EXPECT_EQ(first, offset);
  }
}

// Found by model_test (CRASH_SEED=27, step 29): an erase of messages an fsync=never partition
// had not synced yet made its erase list durable; a power loss then took the messages, the next
// publishes reused their offsets, and the erase list hid those new messages.
TEST(Regression, AnEraseListDoesNotHideMessagesAtOffsetsAPowerLossFreed) {
  FaultFileSystem file_system;
  LogOptions options;
  options.fsync = FsyncPolicy::never;
  std::uint64_t sequence = 0;
  {
    auto opened = PartitionLog::open(file_system, "/p", "r/0", options, [] { return TimestampMs{5000}; }, nullptr);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    ASSERT_NO_FATAL_FAILURE(append_messages(**opened, sequence, 5));
    file_system.make_all_durable();
    ASSERT_NO_FATAL_FAILURE(append_messages(**opened, sequence, 5));  // offsets 5..9, not synced
    ASSERT_TRUE((*opened)->add_erased_offsets({3, 7}).is_ok());         // the list is synced
    file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  }
  auto reopened = PartitionLog::open(file_system, "/p", "r/0", options, [] { return TimestampMs{5000}; }, nullptr);
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  ASSERT_EQ((*reopened)->high_watermark(), 5u);
  ASSERT_NO_FATAL_FAILURE(append_messages(**reopened, sequence, 5));  // new messages at offsets 5..9
  std::vector<Offset> seen;
  auto next = (*reopened)->scan(0, 1000, SIZE_MAX, [&](const MessageView& message) {
    seen.push_back(message.offset);
    return true;
  });
  ASSERT_TRUE(next.is_ok()) << next.status().to_string();
  // Offset 3 stays erased; offset 7 is a new message.
  EXPECT_EQ(seen, (std::vector<Offset>{0, 1, 2, 4, 5, 6, 7, 8, 9}));
}

// Found by model_test (CRASH_SEED=17, step 48): Store::query read segments directly and did not
// apply the erase list, so until a rewrite removed their bytes (remove_now = false, or the
// background pass not run yet) erased messages were still returned by queries.
TEST(Regression, QueriesDoNotReturnErasedMessages) {
  std::unique_ptr<Store> opened;
  ASSERT_NO_FATAL_FAILURE(open_store(opened));
  Store& store = *opened;
  ASSERT_TRUE(store.create_stream(StreamConfig{.name = "s", .subjects = {"s.>"}, .indexed_headers = {"user"}}).is_ok());
  for (int i = 0; i < 6; ++i) {
    const std::string key = i % 2 == 0 ? "user-1" : "user-2";
    const HeaderView headers[] = {{"user", key}};
    OutgoingMessage message{.subject = "s.x", .key = key, .headers = headers, .payload = "m" + std::to_string(i)};
    ASSERT_TRUE(store.publish(message).is_ok());
  }
  auto erased = store.erase(EraseRequest{.stream = "s", .criteria = {.key = "user-1"}, .actor = "test", .remove_now = false});
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  ASSERT_EQ(erased->matched_messages, 3u);
  auto offsets_of = [&store](Query query) {
    query.stream = "s";
    return query_offsets(store, query);
  };
  const std::vector<Offset> kept = {1, 3, 5};
  EXPECT_EQ(offsets_of(Query{}), kept) << "scan plan";
  EXPECT_EQ(offsets_of(Query{.subject_pattern = "s.x"}), kept) << "subject index";
  EXPECT_EQ(offsets_of(Query{.key = "user-1"}), std::vector<Offset>{}) << "key index";
  EXPECT_EQ(offsets_of(Query{.header_equals = {{"user", "user-1"}}}), std::vector<Offset>{}) << "header index";
  EXPECT_EQ(offsets_of(Query{.order = QueryOrder::newest_first}), (std::vector<Offset>{5, 3, 1})) << "newest first";
}

// Found by model_test (CRASH_SEEDS=10000: seeds 723, 733 and 1168): a segment rewrite
// (compaction, erase removal) replaced a sealed segment under the same base offset, but the
// query engine's cache of sealed segments' term tables kept the old tables, whose postings
// pointed into the old bytes: queries then failed with "index points past the end of segment"
// or "the batch at byte N is damaged", or could miss messages.
TEST(Regression, QueriesAfterASegmentRewriteUseTheNewSegmentsIndex) {
  std::unique_ptr<Store> opened;
  ASSERT_NO_FATAL_FAILURE(open_store(opened));
  Store& store = *opened;
  ASSERT_TRUE(store.create_stream(StreamConfig{.name = "s", .subjects = {"s.>"}, .segment_bytes = limits::segment_bytes_min}).is_ok());
  std::uint64_t sequence = 0;
  for (int i = 0; i < 80; ++i) {
    const std::string key = "user-" + std::to_string(i % 4);
    const std::string payload = make_payload(MessageId{0, sequence++}, 150);
    ASSERT_TRUE(store.publish(OutgoingMessage{.subject = "s.x", .key = key, .payload = payload}).is_ok());
  }
  auto offsets_of = [&store](const Query& query) { return query_offsets(store, query); };
  const Query by_subject{.stream = "s", .subject_pattern = "s.x", .limit = 1000};
  ASSERT_EQ(offsets_of(by_subject).size(), 80u);  // loads the sealed segments' tables
  auto erased = store.erase(EraseRequest{.stream = "s", .criteria = {.key = "user-1"}, .actor = "test", .remove_now = true});
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  ASSERT_GT(erased->progress.segments_rewritten, 1u);
  std::vector<Offset> kept;
  for (Offset offset = 0; offset < 80; ++offset) {
    if (offset % 4 != 1) kept.push_back(offset);
  }
  EXPECT_EQ(offsets_of(by_subject), kept);
  EXPECT_EQ(offsets_of(Query{.stream = "s", .key = "user-2", .limit = 1000}).size(), 20u);
}

// Found by power_loss_rewrite_test (PowerLossRewrite.FsyncIntervalLosesOnlyAnUnsyncedSuffix,
// several seeds in 30): compaction counted a newer value that was written but not yet synced
// (fsync=interval, in the active segment) as superseding an older, synced one, and rewrote the
// sealed segment without it. A power loss then took the newer value: the key had no value at
// all, and a synced message was lost. Only durable values supersede now.
TEST(Regression, CompactionKeepsASyncedValueWhoseNewerValueIsNotSyncedYet) {
  auto disk = std::make_shared<FaultFileSystem>();
  StreamConfig config;
  config.name = "kv";
  config.subjects = {"kv.>"};
  config.segment_bytes = limits::segment_bytes_min;
  config.cleanup = CleanupPolicy::compact;
  config.fsync = FsyncPolicy::interval;
  config.fsync_interval_ms = limits::fsync_interval_ms_max;  // no interval sync during the test
  const std::string old_value = make_payload(MessageId{0, 0}, 100);
  const std::string new_value = make_payload(MessageId{0, 1}, 100);
  Offset old_offset = 0;
  {
    auto opened = Store::open("/data", StoreOptions{.file_system = disk, .background_maintenance = false});
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    std::unique_ptr<Store> store = std::move(*opened);
    ASSERT_TRUE(store->create_stream(config).is_ok());
    auto published = store->publish(OutgoingMessage{.subject = "kv.a", .key = "k", .payload = old_value});
    ASSERT_TRUE(published.is_ok()) << published.status().to_string();
    old_offset = published->front().offset;
    // Fill the segment with unkeyed messages until it rolls: the old value is sealed (synced).
    const std::string filler(400, 'f');
    while (store->describe_stream("kv")->partitions[0].segments < 2) {
      ASSERT_TRUE(store->publish(OutgoingMessage{.subject = "kv.f", .payload = filler}).is_ok());
    }
    // The newer value: written, acknowledged under fsync=interval, not synced.
    ASSERT_TRUE(store->publish(OutgoingMessage{.subject = "kv.a", .key = "k", .payload = new_value}).is_ok());
    ASSERT_TRUE(store->run_maintenance().is_ok());  // the background compaction pass
    disk->simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  }
  auto reopened = Store::open("/data", StoreOptions{.file_system = disk, .background_maintenance = false});
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  std::vector<std::string> values;
  auto scanned = (*reopened)->scan("kv", 0, 0, limits::read_messages_max, [&](const MessageView& message) {
    if (message.key && *message.key == "k") values.emplace_back(message.payload);
    return ScanControl::proceed;
  });
  ASSERT_TRUE(scanned.is_ok()) << scanned.status().to_string();
  EXPECT_EQ(values, std::vector<std::string>{old_value}) << "the synced value at offset " << old_offset
                                                          << " must survive the loss of its unsynced successor";
}

// Found by power_loss_rewrite_test (fsync=always, about 1 seed in 1000; CRASH_SEED=4956 on one
// core): retention made its new log start visible to readers before the checkpoint recording it
// was durable. An erase running in that window searched from the new log start, skipped the
// older messages as already gone and returned ok; the power failed before the checkpoint's
// rename, recovery kept the old log start and the segments, and the erased messages were
// readable again, absent from the erase list. The erase here runs exactly in that window.
TEST(Regression, AnEraseDuringRetentionsCheckpointCoversWhatAPowerLossKeeps) {
  auto disk = std::make_shared<FaultFileSystem>();
  auto process = std::make_shared<ProcessFileSystem>(disk);
  auto opened = Store::open("/data", StoreOptions{.file_system = process, .background_maintenance = false});
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<Store> store = std::move(*opened);
  StreamConfig config;
  config.name = "s";
  config.subjects = {"s.>"};
  config.segment_bytes = limits::segment_bytes_min;
  config.max_messages = 30;
  ASSERT_TRUE(store->create_stream(config).is_ok());
  // Every other message carries the key the erase selects; 100 messages fill several segments.
  for (std::uint64_t sequence = 0; sequence < 100; ++sequence) {
    const std::string payload = make_payload(MessageId{0, sequence}, 150);
    OutgoingMessage message{.subject = "s.a", .payload = payload};
    if (sequence % 2 == 0) message.key = "doomed";
    ASSERT_TRUE(store->publish(message).is_ok());
  }
  EraseRequest request{.stream = "s", .criteria = {.key = "doomed"}, .actor = "regression"};
  // The audit stream exists before the window (its creation is not what this is about).
  ASSERT_TRUE(store->erase(EraseRequest{.stream = "s", .criteria = {.key = "nothing"}, .actor = "regression"}).is_ok());

  bool erased_in_window = false;
  process->set_before_rename([&](const std::filesystem::path&, const std::filesystem::path& to) -> Status {
    if (erased_in_window || to.lexically_normal() != std::filesystem::path("/data/streams/s/partition-0/partition.meta")) {
      return Status::ok();
    }
    erased_in_window = true;
    // Retention has written its new checkpoint under the temporary name; it is not in force yet.
    auto erased = store->erase(request);
    EXPECT_TRUE(erased.is_ok()) << erased.status().to_string();
    // The process dies at this rename (it does not happen), then the power fails.
    process->die_after(1);
    return Status(ErrorCode::io_error, "the process died before this rename (simulated)");
  });
  EXPECT_FALSE(store->run_maintenance().is_ok());
  ASSERT_TRUE(erased_in_window) << "retention did not write a checkpoint";
  ASSERT_TRUE(process->dead());
  process->set_before_rename(nullptr);
  process->power_loss(1, PowerLossMode::drop_all_unsynced);
  store.reset();

  auto reopened = Store::open("/data", StoreOptions{.file_system = disk, .background_maintenance = false});
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  std::vector<Offset> readable_erased;
  std::uint64_t readable_kept = 0;
  auto scanned = (*reopened)->scan("s", 0, 0, limits::read_messages_max, [&](const MessageView& message) {
    if (message.key && *message.key == "doomed") {
      readable_erased.push_back(message.offset);
    } else {
      ++readable_kept;
    }
    return ScanControl::proceed;
  });
  ASSERT_TRUE(scanned.is_ok()) << scanned.status().to_string();
  EXPECT_EQ(readable_erased, std::vector<Offset>{}) << "messages an erase that returned ok covered are readable after the power loss";
  EXPECT_EQ(readable_kept, 50u) << "the power loss came before retention's checkpoint: every other message stays";
}

}  // namespace
}  // namespace msgstore::crash
