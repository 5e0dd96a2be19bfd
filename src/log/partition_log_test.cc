// PartitionLog: append, scan, time lookups, segment rolls, retention, group commit, sticky
// failures and ENOSPC, on the real file system and on the fault-injecting one.
#include "log/partition_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "io/fault_file_system.h"
#include "log/format.h"
#include "log/log_test_support.h"
#include "log/segment.h"
#include "support/temporary_directory.h"

namespace msgstore::log {
namespace {


// ---- End of shared helpers ----

using testing::TemporaryDirectory;

// The partition directory's own entry made durable, as the store does for its directories.
void make_durable_directory(FaultFileSystem& file_system, const std::filesystem::path& directory) {
  ASSERT_TRUE(file_system.create_directories(directory).is_ok());
  ASSERT_TRUE(file_system.sync_directory(directory.parent_path()).is_ok());
}

LogOptions small_segments(std::uint64_t segment_bytes = limits::segment_bytes_min) {
  LogOptions options;
  options.segment_bytes = segment_bytes;
  return options;
}

// A manual clock for retention and age tests.
struct ManualClock {
  std::shared_ptr<std::atomic<TimestampMs>> now = std::make_shared<std::atomic<TimestampMs>>(1'700'000'000'000);
  Clock clock() const {
    auto shared = now;
    return [shared] { return shared->load(); };
  }
};

TEST(PartitionLog, AppendAndScanRoundTripOnDisk) {
  TemporaryDirectory directory;
  std::mt19937_64 random(1);
  std::vector<Record> model;
  {
    auto log = open_log(*posix_file_system(), directory.path() / "p0");
    ASSERT_TRUE(log.is_ok()) << log.status().to_string();
    EXPECT_EQ((*log)->high_watermark(), 0u);
    EXPECT_EQ((*log)->log_start_offset(), 0u);
    for (int batch = 0; batch < 40; ++batch) {
      std::vector<Record> records;
      const int count = 1 + static_cast<int>(random() % 8);
      for (int i = 0; i < count; ++i) records.push_back(make_record(random, model.size() + i, 1000 + model.size() + i));
      const Offset expected_base = model.size();
      auto base = append(**log, records, &model);
      ASSERT_TRUE(base.is_ok()) << base.status().to_string();
      EXPECT_EQ(*base, expected_base);  // dense from 0
      EXPECT_EQ((*log)->high_watermark(), model.size());
    }
    auto all = read_all(**log);
    ASSERT_TRUE(all.is_ok()) << all.status().to_string();
    ASSERT_EQ(all->size(), model.size());
    EXPECT_TRUE(matches_model(*all, model, 0));
    ASSERT_TRUE((*log)->close().is_ok());
    // Closed: appends are refused, reads still work.
    auto refused = append(**log, {make_record(random, 0, 0)});
    EXPECT_EQ(refused.status().code(), ErrorCode::closed);
  }
  // Reopen after close: everything is there and offsets continue.
  RecoveryReport report;
  auto log = open_log(*posix_file_system(), directory.path() / "p0", {}, nullptr, &report);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  EXPECT_TRUE(report.corruption.empty()) << describe(report);
  EXPECT_EQ(report.torn_bytes_truncated, 0u);
  EXPECT_EQ((*log)->high_watermark(), model.size());
  const Offset expected_base = model.size();
  auto base = append(**log, {make_record(random, 999, 5000), make_record(random, 1000, 5001)}, &model);
  ASSERT_TRUE(base.is_ok());
  EXPECT_EQ(*base, expected_base);
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), model.size());
  EXPECT_TRUE(matches_model(*all, model, 0));
  VerifyReport verify;
  (*log)->verify(verify);
  EXPECT_TRUE(verify.clean()) << describe(verify);
  EXPECT_EQ(verify.messages_checked, model.size());
  EXPECT_EQ(verify.batches_checked, 41u);
}

TEST(PartitionLog, ReadsFromEveryOffsetAndLimits) {
  FaultFileSystem file_system;
  std::mt19937_64 random(2);
  std::vector<Record> model;
  auto log = open_log(file_system, "/p", small_segments(8192));
  ASSERT_TRUE(log.is_ok());
  for (int batch = 0; batch < 60; ++batch) {
    std::vector<Record> records;
    const int count = 1 + static_cast<int>(random() % 6);
    for (int i = 0; i < count; ++i) records.push_back(make_record(random, model.size() + i, 1000 + model.size()));
    ASSERT_TRUE(append(**log, records, &model).is_ok());
  }
  const Offset end = model.size();
  ASSERT_GT(segment_bases(file_system, "/p").size(), 2u);
  for (Offset from = 0; from <= end; ++from) {
    // One message from every offset, including the middle of batches and segments.
    std::vector<Message> got;
    auto next = (*log)->scan(from, 1, 1 << 20, [&](const MessageView& view) {
      got.push_back(to_owned(view));
      return true;
    });
    ASSERT_TRUE(next.is_ok()) << from << ": " << next.status().to_string();
    if (from == end) {
      EXPECT_EQ(*next, end);
      EXPECT_TRUE(got.empty());
      continue;
    }
    ASSERT_EQ(got.size(), 1u) << from;
    EXPECT_EQ(*next, from + 1);
    EXPECT_TRUE(matches_model(got, model, from));
    // Everything from here to the end.
    auto rest = read_range(**log, from, end, 1 + random() % 50);
    ASSERT_TRUE(rest.is_ok());
    ASSERT_EQ(rest->size(), end - from);
    EXPECT_TRUE(matches_model(*rest, model, from));
  }
  // max_bytes: at least one message, then stops near the limit.
  std::size_t seen = 0;
  auto next = (*log)->scan(0, 1000, 1, [&](const MessageView&) {
    ++seen;
    return true;
  });
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(seen, 1u);
  EXPECT_EQ(*next, 1u);
  // The visitor stops the scan; the message it returned false for counts as read.
  seen = 0;
  next = (*log)->scan(3, 1000, 1 << 20, [&](const MessageView&) { return ++seen < 4; });
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(seen, 4u);
  EXPECT_EQ(*next, 7u);
  // Outside the log.
  auto past = (*log)->scan(end + 1, 10, 1 << 20, [](const MessageView&) { return true; });
  EXPECT_EQ(past.status().code(), ErrorCode::offset_out_of_range);
}

TEST(PartitionLog, OffsetForTimeEqualsFullScan) {
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    FaultFileSystem file_system;
    const bool monotonic = seed % 2 == 0;
    std::vector<Record> model;
    auto log = open_log(file_system, "/p", small_segments(4096 + (random() % 3) * 4096));
    ASSERT_TRUE(log.is_ok());
    if (seed % 4 == 1) {
      // An empty log answers with its end.
      auto empty = (*log)->offset_for_time(0);
      ASSERT_TRUE(empty.is_ok());
      EXPECT_EQ(*empty, 0u);
    }
    TimestampMs clock = 1'000'000;
    const int batches = 20 + static_cast<int>(random() % 60);
    for (int batch = 0; batch < batches; ++batch) {
      std::vector<Record> records;
      const int count = 1 + static_cast<int>(random() % 5);
      for (int i = 0; i < count; ++i) {
        TimestampMs timestamp;
        if (monotonic) {
          clock += static_cast<TimestampMs>(random() % 3);  // repeats allowed
          timestamp = clock;
        } else {
          switch (random() % 10) {
            case 0: timestamp = std::numeric_limits<TimestampMs>::max() - static_cast<TimestampMs>(random() % 3); break;
            case 1: timestamp = std::numeric_limits<TimestampMs>::min() + 1 + static_cast<TimestampMs>(random() % 3); break;
            case 2: timestamp = -static_cast<TimestampMs>(random() % 1000); break;
            default: timestamp = 1'000'000 + static_cast<TimestampMs>(random() % 5000);
          }
        }
        records.push_back(make_record(random, model.size() + i, timestamp, 120));
      }
      ASSERT_TRUE(append(**log, records, &model).is_ok());
    }
    EXPECT_TRUE(time_lookups_match(**log, model, random, 400));
    // Again after a reopen: sealed segments answer from their on-disk indexes.
    ASSERT_TRUE((*log)->close().is_ok());
    log = open_log(file_system, "/p", small_segments());
    ASSERT_TRUE(log.is_ok());
    EXPECT_TRUE(time_lookups_match(**log, model, random, 400));
  }
}

TEST(PartitionLog, SegmentsRollBySizeAndReadsCrossThem) {
  TemporaryDirectory directory;
  std::mt19937_64 random(3);
  std::vector<Record> model;
  LogOptions options = small_segments(4096);
  options.fsync = FsyncPolicy::never;  // durability is not the point here; keep the test fast
  auto check_segments = [&](const PartitionLog& log) {
    const auto bases = segment_bases(*posix_file_system(), directory.path());
    EXPECT_EQ(bases.size(), log.info(0).segments);
    for (std::size_t i = 0; i < bases.size(); ++i) {
      const auto size = std::filesystem::file_size(segment_file_path(directory.path(), bases[i], SegmentFileKind::log));
      // A segment exceeds segment_bytes only when it holds a single batch that is bigger.
      auto messages = read_range(log, bases[i], i + 1 < bases.size() ? bases[i + 1] : log.high_watermark());
      ASSERT_TRUE(messages.is_ok());
      if (size > 4096) {
        ASSERT_FALSE(messages->empty());
        EXPECT_GT(messages->front().payload.size(), 4000u) << "segment " << bases[i] << " is " << size << " bytes";
      }
      if (i + 1 < bases.size()) { EXPECT_FALSE(messages->empty()) << "empty sealed segment " << bases[i]; }
    }
  };
  {
    auto log = open_log(*posix_file_system(), directory.path(), options);
    ASSERT_TRUE(log.is_ok());
    for (int batch = 0; batch < 120; ++batch) {
      std::vector<Record> records;
      const int count = 1 + static_cast<int>(random() % 4);
      for (int i = 0; i < count; ++i) records.push_back(make_record(random, model.size() + i, 1000 + model.size(), 300));
      if (batch == 60) records.front().payload = std::string(10000, 'B');  // bigger than a segment
      ASSERT_TRUE(append(**log, records, &model).is_ok());
    }
    EXPECT_GT((*log)->info(0).segments, 10u);
    check_segments(**log);
    auto all = read_all(**log);
    ASSERT_TRUE(all.is_ok());
    ASSERT_EQ(all->size(), model.size());
    EXPECT_TRUE(matches_model(*all, model, 0));
    EXPECT_TRUE(time_lookups_match(**log, model, random, 300));
    ASSERT_TRUE((*log)->close().is_ok());
  }
  RecoveryReport report;
  auto log = open_log(*posix_file_system(), directory.path(), options, nullptr, &report);
  ASSERT_TRUE(log.is_ok());
  EXPECT_TRUE(report.corruption.empty()) << describe(report);
  EXPECT_EQ((*log)->high_watermark(), model.size());
  check_segments(**log);
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), model.size());
  EXPECT_TRUE(matches_model(*all, model, 0));
  EXPECT_TRUE(time_lookups_match(**log, model, random, 300));
  VerifyReport verify;
  (*log)->verify(verify);
  EXPECT_TRUE(verify.clean()) << describe(verify);
  EXPECT_EQ(verify.messages_checked, model.size());
  EXPECT_GT(verify.index_entries_checked, 0u);
  const auto info = (*log)->info(0);
  EXPECT_EQ(info.first_offset, 0u);
  EXPECT_EQ(info.next_offset, model.size());
  EXPECT_EQ(info.messages, model.size());
}

// Retention helpers: a log of many small segments with one timestamp per segment-ish.
struct RetentionFixture {
  FaultFileSystem file_system;
  ManualClock clock;
  std::vector<Record> model;
  std::mt19937_64 random{4};

  LogOptions options() const {
    LogOptions options = small_segments(4096);
    options.segment_age_ms = 0;  // the manual clock jumps; rolls by size only
    return options;
  }
  void fill_log(PartitionLog& log, int batches, TimestampMs first_timestamp) {
    for (int batch = 0; batch < batches; ++batch) {
      std::vector<Record> records;
      for (int i = 0; i < 3; ++i) records.push_back(make_record(random, model.size() + i, first_timestamp + batch, 150));
      ASSERT_TRUE(append(log, records, &model).is_ok());
    }
  }
  // Checks the log against the model after retention moved the start to `log_start`.
  void check(PartitionLog& log) {
    const Offset start = log.log_start_offset();
    const auto bases = segment_bases(file_system, "/p");
    ASSERT_FALSE(bases.empty());
    // Whole segments only: the log starts exactly at the first remaining segment.
    EXPECT_EQ(bases.front(), start);
    auto messages = read_all(log);
    ASSERT_TRUE(messages.is_ok()) << messages.status().to_string();
    ASSERT_EQ(messages->size(), model.size() - start);
    EXPECT_TRUE(matches_model(*messages, model, start));
    if (start > 0) {
      auto below = log.scan(start - 1, 10, 1 << 20, [](const MessageView&) { return true; });
      EXPECT_EQ(below.status().code(), ErrorCode::offset_out_of_range);
    }
    for (Offset base : bases) {
      for (auto kind : {SegmentFileKind::log, SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
        EXPECT_TRUE(file_system.exists(segment_file_path("/p", base, kind))) << base;
      }
    }
  }
  std::uint64_t segment_bytes_total() {
    std::uint64_t total = 0;
    for (Offset base : segment_bases(file_system, "/p")) {
      total += file_system.current_contents(segment_file_path("/p", base, SegmentFileKind::log))->size();
    }
    return total;
  }
};

TEST(PartitionLogRetention, MaxMessagesDeletesWholeOldSegments) {
  RetentionFixture fixture;
  LogOptions options = fixture.options();
  auto log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  fixture.fill_log(**log, 150, 1000);
  const auto before = segment_bases(fixture.file_system, "/p");
  ASSERT_GT(before.size(), 10u);
  ASSERT_TRUE((*log)->maintain().is_ok());
  EXPECT_EQ((*log)->log_start_offset(), 0u);  // no limit set: nothing goes

  options.max_messages = 100;
  (*log)->set_options(options);
  ASSERT_TRUE((*log)->maintain().is_ok());
  const Offset start = (*log)->log_start_offset();
  EXPECT_GT(start, 0u);
  const Offset end = (*log)->high_watermark();
  // At least max_messages remain, and dropping one more segment would go below it.
  EXPECT_GE(end - start, 100u);
  const auto after = segment_bases(fixture.file_system, "/p");
  ASSERT_GE(after.size(), 2u);
  EXPECT_LT(end - after[1], 100u);
  EXPECT_TRUE(std::find(before.begin(), before.end(), start) != before.end());
  fixture.check(**log);
  // Idempotent.
  ASSERT_TRUE((*log)->maintain().is_ok());
  EXPECT_EQ((*log)->log_start_offset(), start);

  // The new start survives a reopen, as does everything after it; appends continue.
  ASSERT_TRUE((*log)->close().is_ok());
  log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  EXPECT_EQ((*log)->log_start_offset(), start);
  EXPECT_EQ((*log)->high_watermark(), end);
  fixture.check(**log);
  std::mt19937_64 random(5);
  EXPECT_TRUE(time_lookups_match(**log, fixture.model, random, 200));
  auto base = append(**log, {make_record(random, 0, 5000)}, &fixture.model);
  ASSERT_TRUE(base.is_ok());
  EXPECT_EQ(*base, end);
}

TEST(PartitionLogRetention, MaxBytesDeletesWholeOldSegments) {
  RetentionFixture fixture;
  LogOptions options = fixture.options();
  auto log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  fixture.fill_log(**log, 150, 1000);
  const std::uint64_t total = fixture.segment_bytes_total();
  options.max_bytes = total / 3;
  (*log)->set_options(options);
  ASSERT_TRUE((*log)->maintain().is_ok());
  const Offset start = (*log)->log_start_offset();
  EXPECT_GT(start, 0u);
  const std::uint64_t kept = fixture.segment_bytes_total();
  EXPECT_GE(kept, options.max_bytes);
  const auto after = segment_bases(fixture.file_system, "/p");
  const std::uint64_t first_size =
      fixture.file_system.current_contents(segment_file_path("/p", after.front(), SegmentFileKind::log))->size();
  EXPECT_LT(kept - first_size, options.max_bytes);
  fixture.check(**log);
  ASSERT_TRUE((*log)->close().is_ok());
  log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  EXPECT_EQ((*log)->log_start_offset(), start);
  fixture.check(**log);
}

TEST(PartitionLogRetention, MaxAgeUsesTimestampsAndNeverDeletesPastAYoungerSegment) {
  RetentionFixture fixture;
  LogOptions options = fixture.options();
  auto log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  const TimestampMs now = fixture.clock.now->load();
  const TimestampMs day = 24 * 3600 * 1000;
  // Old data, then a segment holding a far-future (bogus) timestamp, then old data again.
  fixture.fill_log(**log, 60, now - 10 * day);
  auto bases = segment_bases(fixture.file_system, "/p");
  const Offset future_segment_start = (*log)->high_watermark();
  {
    // Force a roll so the bogus timestamp sits in a segment of its own.
    Record future = make_record(fixture.random, fixture.model.size(), now + 1000 * day, 0);
    future.payload = std::string(5000, 'F');
    ASSERT_TRUE(append(**log, {future}, &fixture.model).is_ok());
  }
  fixture.fill_log(**log, 60, now - 10 * day);
  options.max_age_ms = 5 * day;
  (*log)->set_options(options);
  ASSERT_TRUE((*log)->maintain().is_ok());
  const Offset start = (*log)->log_start_offset();
  // Everything before the future-stamped segment expired; nothing at or after it went.
  EXPECT_EQ(start, future_segment_start);
  const auto after = segment_bases(fixture.file_system, "/p");
  EXPECT_TRUE(std::find(after.begin(), after.end(), start) != after.end());
  // Every deleted segment was wholly older than the limit.
  for (Offset offset = 0; offset < start; ++offset) EXPECT_LT(fixture.model[offset].timestamp_ms, now - 5 * day);
  auto future = (*log)->scan(future_segment_start, 1, 1 << 20, [](const MessageView&) { return true; });
  EXPECT_TRUE(future.is_ok());
  fixture.check(**log);

  // A week later the old data is still there behind the future-stamped segment.
  fixture.clock.now->fetch_add(7 * day);
  ASSERT_TRUE((*log)->maintain().is_ok());
  EXPECT_LE((*log)->log_start_offset(), future_segment_start);
  fixture.check(**log);
  ASSERT_TRUE((*log)->close().is_ok());
  log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  EXPECT_EQ((*log)->log_start_offset(), start);
  fixture.check(**log);
}

TEST(PartitionLogRetention, AgeExpiresTheActiveSegmentByRollingIt) {
  RetentionFixture fixture;
  LogOptions options = fixture.options();
  options.max_age_ms = 1000;
  auto log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  const TimestampMs now = fixture.clock.now->load();
  fixture.fill_log(**log, 5, now);  // fits in one segment
  ASSERT_EQ(segment_bases(fixture.file_system, "/p").size(), 1u);
  ASSERT_TRUE((*log)->maintain().is_ok());
  EXPECT_EQ((*log)->log_start_offset(), 0u);  // young
  fixture.clock.now->fetch_add(5000);
  ASSERT_TRUE((*log)->maintain().is_ok());
  // The active segment was rolled and then deleted; the log is empty but keeps its offsets.
  EXPECT_EQ((*log)->log_start_offset(), fixture.model.size());
  EXPECT_EQ((*log)->high_watermark(), fixture.model.size());
  fixture.check(**log);
  auto base = append(**log, {make_record(fixture.random, 0, fixture.clock.now->load())}, &fixture.model);
  ASSERT_TRUE(base.is_ok());
  EXPECT_EQ(*base, 15u);
  ASSERT_TRUE((*log)->close().is_ok());
  log = open_log(fixture.file_system, "/p", options, fixture.clock.clock());
  ASSERT_TRUE(log.is_ok());
  EXPECT_EQ((*log)->log_start_offset(), 15u);
  EXPECT_EQ((*log)->high_watermark(), 16u);
  fixture.check(**log);
}

TEST(PartitionLog, GroupCommitWithSixteenThreads) {
  TemporaryDirectory directory;
  auto log = open_log(*posix_file_system(), directory.path(), small_segments(64 * 1024));
  ASSERT_TRUE(log.is_ok());
  constexpr int threads = 16;
  constexpr int appends_per_thread = 25;
  std::mutex mutex;
  std::map<Offset, std::pair<int, int>> bases;  // base offset -> (thread, sequence)
  std::atomic<int> failures{0};
  std::atomic<int> listener_calls{0};
  (*log)->set_data_listener([&] { listener_calls.fetch_add(1); });
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 random(100 + t);
      for (int sequence = 0; sequence < appends_per_thread; ++sequence) {
        std::vector<Record> records;
        const int count = 1 + sequence % 3;
        for (int i = 0; i < count; ++i) {
          Record record = make_record(random, i, 1000 + sequence, 50);
          record.payload = "t" + std::to_string(t) + "/s" + std::to_string(sequence) + "/i" + std::to_string(i);
          records.push_back(record);
        }
        auto base = append(**log, records);
        if (!base.is_ok()) {
          failures.fetch_add(1);
          continue;
        }
        // Acknowledged under fsync=always: durable, so visible.
        EXPECT_GE((*log)->high_watermark(), *base + count);
        std::lock_guard lock(mutex);
        EXPECT_TRUE(bases.emplace(*base, std::make_pair(t, sequence)).second) << "base offset " << *base << " returned twice";
      }
    });
  }
  for (auto& worker : workers) worker.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_EQ(bases.size(), static_cast<std::size_t>(threads * appends_per_thread));
  EXPECT_GT(listener_calls.load(), 0);
  // The batches tile the offsets exactly, and each holds its own messages.
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  Offset expected = 0;
  std::map<int, int> last_sequence;
  for (const auto& [base, who] : bases) {
    ASSERT_EQ(base, expected);
    const auto [t, sequence] = who;
    const int count = 1 + sequence % 3;
    for (int i = 0; i < count; ++i) {
      ASSERT_LT(base + i, all->size());
      EXPECT_EQ((*all)[base + i].payload, "t" + std::to_string(t) + "/s" + std::to_string(sequence) + "/i" + std::to_string(i));
    }
    // Each thread's appends land in its own order.
    auto previous = last_sequence.find(t);
    if (previous != last_sequence.end()) { EXPECT_LT(previous->second, sequence); }
    last_sequence[t] = sequence;
    expected = base + count;
  }
  EXPECT_EQ(expected, all->size());
  EXPECT_EQ((*log)->high_watermark(), all->size());
  ASSERT_TRUE((*log)->close().is_ok());
  auto reopened = open_log(*posix_file_system(), directory.path(), small_segments(64 * 1024));
  ASSERT_TRUE(reopened.is_ok());
  EXPECT_EQ((*reopened)->high_watermark(), all->size());
}

TEST(PartitionLog, GroupCommitSharesSyncs) {
  // On the fault file system the syncs can be counted: concurrent appenders must never need
  // more syncs than appends, and every append is acknowledged only after a sync.
  FaultFileSystem file_system;
  auto log = open_log(file_system, "/p", small_segments(1 << 20));
  ASSERT_TRUE(log.is_ok());
  file_system.reset_counters();
  constexpr int threads = 16;
  constexpr int appends_per_thread = 40;
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 random(200 + t);
      for (int i = 0; i < appends_per_thread; ++i) {
        if (!append(**log, {make_record(random, i, 1, 20)}).is_ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(failures.load(), 0);
  const auto counters = file_system.counters();
  EXPECT_GE(counters.syncs, 1u);
  EXPECT_LE(counters.syncs, static_cast<std::uint64_t>(threads * appends_per_thread));
  EXPECT_EQ((*log)->high_watermark(), static_cast<Offset>(threads * appends_per_thread));
  // Everything acknowledged is durable: a power loss that drops every unsynced write keeps it.
  ASSERT_TRUE((*log)->close().is_ok());
  log = Status(ErrorCode::closed, "released");
  file_system.make_all_durable();
  auto reopened = open_log(file_system, "/p", small_segments(1 << 20));
  ASSERT_TRUE(reopened.is_ok());
  EXPECT_EQ((*reopened)->high_watermark(), static_cast<Offset>(threads * appends_per_thread));
}

TEST(PartitionLogFailure, FailedSyncIsSticky) {
  FaultFileSystem file_system;
  std::mt19937_64 random(6);
  std::vector<Record> model;
  auto log = open_log(file_system, "/p");
  ASSERT_TRUE(log.is_ok());
  ASSERT_TRUE(append(**log, {make_record(random, 0, 1), make_record(random, 1, 2)}, &model).is_ok());
  file_system.fail_after(FaultFileSystem::Operation::sync, 1);
  auto failed = append(**log, {make_record(random, 2, 3)});
  EXPECT_EQ(failed.status().code(), ErrorCode::log_failed) << failed.status().to_string();
  // Not acknowledged, so not visible.
  EXPECT_EQ((*log)->high_watermark(), 2u);
  // Sticky: even with the fault gone, nothing more is written or acknowledged.
  file_system.clear_faults();
  const auto writes_before = file_system.counters().writes;
  for (int i = 0; i < 3; ++i) {
    auto again = append(**log, {make_record(random, 3, 4)});
    EXPECT_EQ(again.status().code(), ErrorCode::log_failed);
  }
  EXPECT_EQ(file_system.counters().writes, writes_before);
  EXPECT_EQ((*log)->sync().code(), ErrorCode::log_failed);
  // Reads of what was acknowledged still work.
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->size(), 2u);
  EXPECT_TRUE(matches_model(*all, model, 0));
  EXPECT_TRUE((*log)->close().is_ok());
  log = Status(ErrorCode::closed, "released");

  // A restart recovers: the acknowledged messages are there, and appends work again.
  file_system.simulate_process_crash();
  auto reopened = open_log(file_system, "/p");
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  const Offset end = (*reopened)->high_watermark();
  EXPECT_GE(end, 2u);  // the unacknowledged batch may or may not have reached the file
  EXPECT_LE(end, 3u);
  auto recovered = read_range(**reopened, 0, 2);
  ASSERT_TRUE(recovered.is_ok());
  EXPECT_TRUE(matches_model(*recovered, model, 0));
  model.resize(end);
  auto base = append(**reopened, {make_record(random, 9, 9)});
  ASSERT_TRUE(base.is_ok()) << base.status().to_string();
  EXPECT_EQ(*base, end);
}

TEST(PartitionLogFailure, FailedWriteIsStickyAndConcurrentWaitersFail) {
  FaultFileSystem file_system;
  std::mt19937_64 random(7);
  auto log = open_log(file_system, "/p");
  ASSERT_TRUE(log.is_ok());
  ASSERT_TRUE(append(**log, {make_record(random, 0, 1)}).is_ok());
  file_system.fail_after(FaultFileSystem::Operation::write, 1);
  auto failed = append(**log, {make_record(random, 1, 2)});
  EXPECT_EQ(failed.status().code(), ErrorCode::log_failed) << failed.status().to_string();
  file_system.clear_faults();
  EXPECT_EQ(append(**log, {make_record(random, 2, 3)}).status().code(), ErrorCode::log_failed);
  EXPECT_EQ((*log)->high_watermark(), 1u);
  log = Status(ErrorCode::closed, "released");

  // Many threads appending when a sync fails: every append either succeeded before the
  // failure, or fails; none succeeds after one failed.
  FaultFileSystem second;
  auto shared = open_log(second, "/p");
  ASSERT_TRUE(shared.is_ok());
  second.fail_after(FaultFileSystem::Operation::sync, 20);
  std::atomic<int> successes{0};
  std::atomic<int> failures{0};
  std::mutex mutex;
  std::vector<Offset> acked;
  std::vector<std::thread> workers;
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 local(300 + t);
      for (int i = 0; i < 30; ++i) {
        auto base = append(**shared, {make_record(local, i, 1, 10)});
        if (base.is_ok()) {
          successes.fetch_add(1);
          std::lock_guard lock(mutex);
          acked.push_back(*base);
        } else {
          EXPECT_EQ(base.status().code(), ErrorCode::log_failed) << base.status().to_string();
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_GT(failures.load(), 0);
  EXPECT_LT(successes.load(), 8 * 30);
  // Every acknowledged offset is below the high watermark and readable.
  const Offset high_watermark = (*shared)->high_watermark();
  for (Offset offset : acked) EXPECT_LT(offset, high_watermark);
  auto all = read_all(**shared);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->size(), high_watermark);
  EXPECT_GE(high_watermark, acked.size());
}

TEST(PartitionLogFailure, NoSpaceRejectsCleanlyAndResumesWithoutRestart) {
  FaultFileSystem file_system;
  make_durable_directory(file_system, "/p");
  std::mt19937_64 random(8);
  std::vector<Record> model;
  auto log = open_log(file_system, "/p");
  ASSERT_TRUE(log.is_ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(append(**log, {make_record(random, model.size(), 10 + i)}, &model).is_ok());
  const auto segment = segment_file_path("/p", 0, SegmentFileKind::log);
  const std::size_t size_before = file_system.current_contents(segment)->size();

  file_system.set_quota_bytes(file_system.used_bytes() + 200);
  Record big = make_record(random, 99, 100, 0);
  big.payload = std::string(1000, 'X');
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto rejected = append(**log, {big});
    EXPECT_EQ(rejected.status().code(), ErrorCode::no_space) << rejected.status().to_string();
  }
  // Nothing partial is left, nothing became visible, reads still work.
  EXPECT_EQ(file_system.current_contents(segment)->size(), size_before);
  EXPECT_EQ((*log)->high_watermark(), 5u);
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  EXPECT_TRUE(matches_model(*all, model, 0));
  // Small messages still fit.
  ASSERT_TRUE(append(**log, {make_record(random, model.size(), 20, 0)}, &model).is_ok());

  // Space comes back: writing resumes, no restart, offsets stay dense.
  file_system.set_quota_bytes(0);
  auto accepted = append(**log, {big}, &model);
  ASSERT_TRUE(accepted.is_ok()) << accepted.status().to_string();
  EXPECT_EQ(*accepted, 6u);
  all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), model.size());
  EXPECT_TRUE(matches_model(*all, model, 0));

  // And after a power loss nothing torn shows up.
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  log = Status(ErrorCode::closed, "released");
  RecoveryReport report;
  auto reopened = open_log(file_system, "/p", {}, nullptr, &report);
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  EXPECT_TRUE(report.corruption.empty()) << describe(report);
  EXPECT_EQ((*reopened)->high_watermark(), model.size());
  all = read_all(**reopened);
  ASSERT_TRUE(all.is_ok());
  EXPECT_TRUE(matches_model(*all, model, 0));
}

TEST(PartitionLogFailure, NoSpaceWhileRollingIsNotFatal) {
  // The roll to a new segment needs space too (segment header, indexes, checkpoint). Running
  // out there must reject the append like any other ENOSPC, not stop the log, and must not
  // leave a half-made segment that a later recovery would mistake for the log's end.
  FaultFileSystem file_system;
  make_durable_directory(file_system, "/p");
  std::mt19937_64 random(9);
  std::vector<Record> model;
  auto log = open_log(file_system, "/p", small_segments(4096));
  ASSERT_TRUE(log.is_ok());
  const auto first_segment = segment_file_path("/p", 0, SegmentFileKind::log);
  while (file_system.current_contents(first_segment)->size() < 3700) {
    ASSERT_TRUE(append(**log, {make_record(random, model.size(), 1, 50)}, &model).is_ok());
  }
  Record big = make_record(random, 1000, 2, 0);
  big.payload = std::string(600, 'R');  // does not fit in the first segment: forces a roll
  // Too little space even for the new segment's header and indexes.
  for (std::uint64_t slack : {0u, 10u, 40u}) {
    file_system.set_quota_bytes(file_system.used_bytes() + slack);
    auto rejected = append(**log, {big});
    EXPECT_EQ(rejected.status().code(), ErrorCode::no_space) << "slack " << slack << ": " << rejected.status().to_string();
    EXPECT_EQ(segment_bases(file_system, "/p"), std::vector<Offset>{0}) << "a half-made segment was left behind";
  }
  // A small message still fits in the first segment, at the next offset.
  file_system.set_quota_bytes(file_system.used_bytes() + 200);
  Record small = make_record(random, 1001, 3, 0);
  auto small_base = append(**log, {small}, &model);
  ASSERT_TRUE(small_base.is_ok()) << small_base.status().to_string();
  // A crash now must not lose or reuse any offset.
  file_system.simulate_process_crash();
  log = Status(ErrorCode::closed, "released");
  file_system.set_quota_bytes(0);
  RecoveryReport report;
  log = open_log(file_system, "/p", small_segments(4096), nullptr, &report);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  EXPECT_TRUE(report.corruption.empty()) << describe(report);
  ASSERT_EQ((*log)->high_watermark(), model.size());
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  EXPECT_TRUE(matches_model(*all, model, 0));

  // Space for the new segment but not for the checkpoint, then not for the batch: still only
  // no_space, and the next append after space returns lands at the next offset.
  for (std::uint64_t slack : {60u, 100u, 200u}) {
    file_system.set_quota_bytes(file_system.used_bytes() + slack);
    auto rejected = append(**log, {big});
    EXPECT_EQ(rejected.status().code(), ErrorCode::no_space) << "slack " << slack << ": " << rejected.status().to_string();
  }
  file_system.set_quota_bytes(0);
  auto accepted = append(**log, {big}, &model);
  ASSERT_TRUE(accepted.is_ok()) << accepted.status().to_string();
  all = read_all(**log);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), model.size());
  EXPECT_TRUE(matches_model(*all, model, 0));
  ASSERT_TRUE((*log)->close().is_ok());
  report = RecoveryReport{};
  auto reopened = open_log(file_system, "/p", small_segments(4096), nullptr, &report);
  ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  EXPECT_TRUE(report.corruption.empty()) << describe(report);
  all = read_all(**reopened);
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), model.size());
  EXPECT_TRUE(matches_model(*all, model, 0));
  VerifyReport verify;
  (*reopened)->verify(verify);
  EXPECT_TRUE(verify.clean()) << describe(verify);
}

TEST(PartitionLog, RelaxedFsyncPoliciesPublishOnWrite) {
  FaultFileSystem file_system;
  std::mt19937_64 random(10);
  make_durable_directory(file_system, "/p");
  ManualClock clock;
  LogOptions options;
  options.fsync = FsyncPolicy::interval;
  options.fsync_interval_ms = 1000;
  auto log = open_log(file_system, "/p", options, clock.clock());
  ASSERT_TRUE(log.is_ok());
  file_system.reset_counters();
  ASSERT_TRUE(append(**log, {make_record(random, 0, 1)}).is_ok());
  EXPECT_EQ((*log)->high_watermark(), 1u);
  EXPECT_EQ(file_system.counters().syncs, 0u);  // acked after write()
  clock.now->fetch_add(2000);
  ASSERT_TRUE((*log)->maintain().is_ok());
  EXPECT_GE(file_system.counters().syncs, 1u);  // the interval sync ran
  // After it, a power loss that drops unsynced writes keeps the message.
  file_system.simulate_power_loss(3, PowerLossMode::drop_all_unsynced);
  log = Status(ErrorCode::closed, "released");
  auto reopened = open_log(file_system, "/p", options, clock.clock());
  ASSERT_TRUE(reopened.is_ok());
  EXPECT_EQ((*reopened)->high_watermark(), 1u);
}

TEST(PartitionLog, DataListenerRunsOutsideTheLogsLocks) {
  // The listener may call back into the log. Each call probes that from another thread
  // (maintain(), which takes the append lock) and waits a while: a probe that cannot finish
  // means the listener was called with the lock held. Concurrent appenders under
  // fsync=always with small segments make rolls happen while batches wait for their sync.
  // The real file system: its fsync takes long enough for rolls to overlap waiting batches.
  TemporaryDirectory directory;
  LogOptions options = small_segments(4096);
  auto log = open_log(*posix_file_system(), directory.path(), options);
  ASSERT_TRUE(log.is_ok());
  PartitionLog& partition_log = **log;
  std::mutex probes_mutex;
  std::vector<std::thread> probes;
  std::atomic<int> calls{0};
  std::atomic<int> blocked{0};
  partition_log.set_data_listener([&] {
    calls.fetch_add(1);
    auto done = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard lock(probes_mutex);
      probes.emplace_back([&partition_log, done] {
        (void)partition_log.maintain();
        done->store(true);
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
    while (!done->load() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (!done->load()) blocked.fetch_add(1);
  });
  std::vector<std::thread> appenders;
  for (int t = 0; t < 8; ++t) {
    appenders.emplace_back([&, t] {
      std::mt19937_64 random(400 + t);
      for (int i = 0; i < 30; ++i) EXPECT_TRUE(append(partition_log, {make_record(random, i, 1, 300)}).is_ok());
    });
  }
  for (auto& appender : appenders) appender.join();
  for (auto& probe : probes) probe.join();
  EXPECT_GT(segment_bases(*posix_file_system(), directory.path()).size(), 5u);
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(blocked.load(), 0);
  EXPECT_EQ(partition_log.high_watermark(), 240u);
}

TEST(PartitionLog, InfoDescribesThePartition) {
  FaultFileSystem file_system;
  std::mt19937_64 random(11);
  auto log = open_log(file_system, "/p", small_segments(4096));
  ASSERT_TRUE(log.is_ok());
  auto empty = (*log)->info(3);
  EXPECT_EQ(empty.partition, 3u);
  EXPECT_EQ(empty.messages, 0u);
  EXPECT_EQ(empty.first_timestamp_ms, 0);
  EXPECT_EQ(empty.last_timestamp_ms, 0);
  std::vector<Record> model;
  for (int i = 0; i < 80; ++i) ASSERT_TRUE(append(**log, {make_record(random, i, 5000 + i, 100)}, &model).is_ok());
  auto info = (*log)->info(0);
  EXPECT_EQ(info.first_offset, 0u);
  EXPECT_EQ(info.next_offset, 80u);
  EXPECT_EQ(info.messages, 80u);
  EXPECT_EQ(info.segments, segment_bases(file_system, "/p").size());
  EXPECT_GT(info.segments, 1u);
  EXPECT_EQ(info.first_timestamp_ms, 5000);
  EXPECT_EQ(info.last_timestamp_ms, 5079);
  EXPECT_TRUE(info.damage.empty());
  std::uint64_t bytes = 0;
  for (Offset base : segment_bases(file_system, "/p")) {
    bytes += file_system.current_contents(segment_file_path("/p", base, SegmentFileKind::log))->size();
  }
  EXPECT_EQ(info.bytes, bytes);
}

// ---- Preallocation (LogOptions::preallocate_bytes, fsync=always) ------------------------------

LogOptions preallocating(std::uint64_t bytes = 64 * 1024, std::uint64_t segment_bytes = limits::segment_bytes_default) {
  LogOptions options;
  options.segment_bytes = segment_bytes;
  options.preallocate_bytes = bytes;
  return options;
}

std::uint64_t file_bytes(const FaultFileSystem& file_system, const std::filesystem::path& path) {
  auto contents = file_system.current_contents(path);
  return contents ? contents->size() : 0;
}

TEST(PartitionLogPreallocation, ZerosRunAheadOfTheDataAndAreCutAtSealAndClose) {
  FaultFileSystem file_system;
  make_durable_directory(file_system, "/p");
  std::mt19937_64 random(21);
  std::vector<Record> model;
  auto log = open_log(file_system, "/p", preallocating(64 * 1024, 64 * 1024));
  ASSERT_TRUE(log.is_ok());
  ASSERT_TRUE(append(**log, {make_record(random, 0, 10)}, &model).is_ok());
  const auto first = segment_file_path("/p", 0, SegmentFileKind::log);
  // The file runs 64 KiB past the data; the data alone is readable.
  const auto info = (*log)->info(0);
  EXPECT_GE(file_bytes(file_system, first), info.bytes + 64 * 1024);
  // Fill past a roll: the sealed segment ends exactly at its data.
  while (segment_bases(file_system, "/p").size() < 3) {
    ASSERT_TRUE(append(**log, {make_record(random, model.size(), 10 + model.size(), 2000)}, &model).is_ok());
  }
  const auto bases = segment_bases(file_system, "/p");
  auto sealed = Segment::open(file_system, "/p", bases[0]);
  ASSERT_TRUE(sealed.is_ok());
  std::uint64_t stop = 0;
  Status error;
  EXPECT_EQ((*sealed)->scan_from(format::segment_header_bytes, bases[0], stop, error), BatchScanner::Step::end_of_log);
  EXPECT_EQ(stop, file_bytes(file_system, segment_file_path("/p", bases[0], SegmentFileKind::log)));
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  EXPECT_TRUE(matches_model(*all, model, 0));
  // A clean close leaves no zeros: the reopen cuts nothing.
  std::uint64_t sealed_bytes = 0;
  for (std::size_t i = 0; i + 1 < bases.size(); ++i) sealed_bytes += file_bytes(file_system, segment_file_path("/p", bases[i], SegmentFileKind::log));
  const std::uint64_t active_data = (*log)->info(0).bytes - sealed_bytes;
  const auto last = segment_file_path("/p", bases.back(), SegmentFileKind::log);
  EXPECT_GE(file_bytes(file_system, last), active_data + 64 * 1024);
  ASSERT_TRUE((*log)->close().is_ok());
  log = Status(ErrorCode::closed, "released");
  RecoveryReport report;
  log = open_log(file_system, "/p", preallocating(64 * 1024, 64 * 1024), nullptr, &report);
  ASSERT_TRUE(log.is_ok());
  EXPECT_EQ(report.torn_bytes_truncated, 0u) << describe(report);
  EXPECT_TRUE(report.corruption.empty()) << describe(report);
  all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  EXPECT_TRUE(matches_model(*all, model, 0));
}

// Power loss with zeros ahead of the data, under every survival mode: every acknowledged
// (synced) append is there, the zeros are cut as a torn tail, nothing is called damaged, and
// the log appends again at the right offset.
TEST(PartitionLogPreallocation, PowerLossKeepsEveryAcknowledgedAppendAndCutsTheZeros) {
  for (std::uint64_t seed = 0; seed < 60; ++seed) {
    FaultFileSystem file_system;
    make_durable_directory(file_system, "/p");
    std::mt19937_64 random(seed);
    std::vector<Record> model;
    auto log = open_log(file_system, "/p", preallocating(16 * 1024, 32 * 1024));
    ASSERT_TRUE(log.is_ok());
    const std::size_t appends = 5 + seed % 40;
    for (std::size_t i = 0; i < appends; ++i) {
      ASSERT_TRUE(append(**log, {make_record(random, model.size(), 10 + model.size(), 1500)}, &model).is_ok());
    }
    const PowerLossMode mode = seed % 3 == 0 ? PowerLossMode::drop_all_unsynced
                               : seed % 3 == 1 ? PowerLossMode::keep_all_unsynced
                                               : PowerLossMode::random;
    file_system.simulate_power_loss(seed, mode);
    log = Status(ErrorCode::closed, "released");
    RecoveryReport report;
    log = open_log(file_system, "/p", preallocating(16 * 1024, 32 * 1024), nullptr, &report);
    ASSERT_TRUE(log.is_ok()) << "seed " << seed << ": " << log.status().to_string();
    EXPECT_TRUE(report.corruption.empty()) << "seed " << seed << ": " << describe(report);
    auto all = read_all(**log);
    ASSERT_TRUE(all.is_ok());
    EXPECT_TRUE(matches_model(*all, model, 0)) << "seed " << seed;  // fsync=always: all acknowledged
    auto next = append(**log, {make_record(random, model.size(), 999, 100)}, &model);
    ASSERT_TRUE(next.is_ok());
    EXPECT_EQ(*next, appends) << "seed " << seed;
  }
}

TEST(PartitionLogPreallocation, AFullDiskOnlyStopsThePreallocationAndAnIoErrorStopsTheLog) {
  {
    FaultFileSystem file_system;
    make_durable_directory(file_system, "/p");
    std::mt19937_64 random(3);
    std::vector<Record> model;
    auto log = open_log(file_system, "/p", preallocating(1024 * 1024));
    ASSERT_TRUE(log.is_ok());
    // Room for the data, not for a megabyte of zeros: appends still succeed, without zeros.
    file_system.set_quota_bytes(file_system.used_bytes() + 64 * 1024);
    for (int i = 0; i < 10; ++i) {
      auto appended = append(**log, {make_record(random, model.size(), 10 + i, 500)}, &model);
      ASSERT_TRUE(appended.is_ok()) << appended.status().to_string();
    }
    const auto segment = segment_file_path("/p", 0, SegmentFileKind::log);
    EXPECT_LT(file_bytes(file_system, segment), 64u * 1024);
    auto all = read_all(**log);
    ASSERT_TRUE(all.is_ok());
    EXPECT_TRUE(matches_model(*all, model, 0));
  }
  {
    FaultFileSystem file_system;
    make_durable_directory(file_system, "/p");
    std::mt19937_64 random(4);
    std::vector<Record> model;
    auto log = open_log(file_system, "/p", preallocating(64 * 1024));
    ASSERT_TRUE(log.is_ok());
    ASSERT_TRUE(append(**log, {make_record(random, 0, 10)}, &model).is_ok());
    // The next append needs more zeros first (its end passes the preallocated end): fail that
    // write with EIO. The append fails and the log refuses writes from then on (fail-stop).
    Record big = make_record(random, 1, 11, 0);
    big.payload = std::string(60 * 1024, 'B');
    file_system.fail_after(FaultFileSystem::Operation::write, 1);
    auto failed = append(**log, {big});
    EXPECT_FALSE(failed.is_ok());
    file_system.clear_faults();
    auto refused = append(**log, {make_record(random, 1, 12)});
    EXPECT_EQ(refused.status().code(), ErrorCode::log_failed) << refused.status().to_string();
    auto all = read_all(**log);
    ASSERT_TRUE(all.is_ok());
    EXPECT_TRUE(matches_model(*all, model, 0));
  }
}

}  // namespace
}  // namespace msgstore::log
