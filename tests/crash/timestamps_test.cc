// Bogus timestamps: far future, far past, negative, zero, INT64 extremes, the max_age boundary
// and non-monotonic jitter, mixed into appends under max_age retention.
//
// PartitionLogWithAFakeClock drives one partition log with an injected clock that jumps
// forward, and checks at segment granularity after every maintenance pass:
//   * a deleted segment's newest timestamp was older than now - max_age (no early deletion);
//   * retention deleted every expired segment at the front (it is not stuck either);
//   * offset_for_time equals a full scan for extremes and sampled times, also after a power
//     loss and reopen (which opens sealed segments from their index summary);
//   * everything appended (fsync=always) and not deleted reads back with its timestamp.
// StoreWithTheRealClock does the same through the Store (publishes with explicit timestamps
// and timestamp_now, max_age one hour) with the crash checker, across power losses.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <random>

#include "crash/checker.h"
#include "crash/harness.h"
#include "log/partition_log.h"
#include "log/segment.h"

namespace msgstore::crash {
namespace {

constexpr TimestampMs int64_max = std::numeric_limits<TimestampMs>::max();
constexpr TimestampMs int64_min = std::numeric_limits<TimestampMs>::min();
constexpr TimestampMs ten_years_ms = 10ll * 365 * 24 * 3600 * 1000;

// A bogus (or ordinary) timestamp near `now` for a log with max_age `max_age`. Far-future
// timestamps (which keep their segment, and every later one, forever) only with `future`.
TimestampMs pick_timestamp(std::mt19937_64& random, TimestampMs now, TimestampMs max_age, bool future) {
  switch (random() % 40) {
    case 0: return future ? now + ten_years_ms : now - ten_years_ms;           // far future
    case 1: return future ? int64_max : int64_min + 1;
    case 2: case 3: return now - ten_years_ms;                                 // far past
    case 4: case 5: return -static_cast<TimestampMs>(random() % 1'000'000'000'000);  // negative
    case 6: return 0;
    case 7: case 8: return int64_min + 1;                                      // INT64_MIN is timestamp_now
    case 9: return int64_min + 2 + static_cast<TimestampMs>(random() % 1000);
    case 10: case 11: case 12: return now - max_age - 1 + static_cast<TimestampMs>(random() % 3);  // the boundary
    case 13: return now + static_cast<TimestampMs>(random() % 100'000);      // a little ahead
    default: return now - static_cast<TimestampMs>(random() % static_cast<std::uint64_t>(max_age));  // jitter
  }
}

// Expired whatever the clock does next: far past, negative, zero, INT64_MIN + 1, or just past
// the max_age boundary.
TimestampMs pick_old_timestamp(std::mt19937_64& random, TimestampMs now, TimestampMs max_age) {
  switch (random() % 6) {
    case 0: return now - ten_years_ms;
    case 1: return -static_cast<TimestampMs>(random() % 1'000'000'000'000);
    case 2: return 0;
    case 3: return int64_min + 1;
    default: return now - max_age - 1 - static_cast<TimestampMs>(random() % 1000);
  }
}

// The first offset at or after `start` whose timestamp is >= time, or `end`.
Offset full_scan_answer(const std::vector<TimestampMs>& stamps, Offset start, Offset end, TimestampMs time) {
  for (Offset offset = start; offset < end; ++offset) {
    if (stamps[offset] >= time) return offset;
  }
  return end;
}

std::vector<Offset> segment_bases(FileSystem& file_system, const std::filesystem::path& directory) {
  std::vector<Offset> bases;
  auto names = file_system.list_directory(directory);
  if (!names) return bases;
  for (const std::string& name : *names) {
    if (auto base = log::parse_segment_log_name(name)) bases.push_back(*base);
  }
  std::sort(bases.begin(), bases.end());
  return bases;
}

void run_log_seed(std::uint64_t seed, Figures& figures, std::uint64_t& deleted_segments) {
  std::mt19937_64 random(seed);
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/p").is_ok());
  file_system.make_all_durable();
  auto now = std::make_shared<std::atomic<TimestampMs>>(1'700'000'000'000 + static_cast<TimestampMs>(random() % 1'000'000));
  log::LogOptions options;
  options.segment_bytes = limits::segment_bytes_min;
  options.max_age_ms = 10'000 + static_cast<TimestampMs>(random() % 100'000);
  auto clock = [now] { return now->load(); };
  auto opened = log::PartitionLog::open(file_system, "/p", "t/0", options, clock, nullptr);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<log::PartitionLog> partition_log = std::move(*opened);
  std::vector<TimestampMs> stamps;  // by offset
  std::uint64_t sequence = 0;
  const int steps = 60 + static_cast<int>(random() % 60);
  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step) + ", clock " + std::to_string(now->load()) + ", max_age " +
                 std::to_string(options.max_age_ms));
    // Append a batch of 1-8 messages with mixed timestamps.
    log::BatchBuilder builder;
    const std::size_t count = 1 + random() % 8;
    std::vector<std::string> payloads;
    for (std::size_t i = 0; i < count; ++i) payloads.push_back(make_payload(MessageId{0, sequence++}, random() % 200));
    for (std::size_t i = 0; i < count; ++i) {
      OutgoingMessage message;
      message.subject = "t";
      message.payload = payloads[i];
      const TimestampMs stamp = pick_timestamp(random, now->load(), options.max_age_ms, seed % 3 == 0);
      builder.add(message, stamp);
      stamps.push_back(stamp);
    }
    auto base = partition_log->append(builder);
    ASSERT_TRUE(base.is_ok()) << base.status().to_string();
    ASSERT_EQ(*base + count, stamps.size());
    figures.acked += count;

    if (random() % 3 != 0) continue;
    // Time passes; maintenance runs.
    now->fetch_add(static_cast<TimestampMs>(random() % static_cast<std::uint64_t>(options.max_age_ms)));
    const std::vector<Offset> before = segment_bases(file_system, "/p");
    const Offset start_before = partition_log->log_start_offset();
    ASSERT_TRUE(partition_log->maintain().is_ok());
    const TimestampMs cutoff = now->load() - options.max_age_ms;
    const Offset start = partition_log->log_start_offset();
    const Offset end = partition_log->high_watermark();
    ASSERT_EQ(end, stamps.size());
    ASSERT_GE(start, start_before);
    // Every deleted segment was wholly expired.
    for (std::size_t i = 0; i + 1 < before.size(); ++i) {
      if (before[i + 1] > start || before[i + 1] <= start_before) continue;
      TimestampMs newest = int64_min;
      for (Offset offset = std::max(before[i], start_before); offset < before[i + 1]; ++offset) newest = std::max(newest, stamps[offset]);
      ++deleted_segments;
      EXPECT_LT(newest, cutoff) << "segment " << before[i] << ".." << before[i + 1] << " deleted with newest timestamp "
                                << newest << " not older than " << cutoff;
    }
    // The first segment left is not expired, unless it is the only (active) one.
    const std::vector<Offset> after = segment_bases(file_system, "/p");
    ASSERT_FALSE(after.empty());
    EXPECT_EQ(after.front(), start) << "the log start is not the first segment's base";
    if (after.size() >= 2 && after[1] <= end) {
      TimestampMs newest = int64_min;
      for (Offset offset = after[0]; offset < after[1]; ++offset) newest = std::max(newest, stamps[offset]);
      EXPECT_GE(newest, cutoff) << "an expired segment " << after[0] << ".." << after[1] << " was kept";
    }

    // Sometimes the power fails (fsync=always: nothing appended is lost).
    if (random() % 4 == 0) {
      file_system.simulate_power_loss(seed * 1000 + static_cast<std::uint64_t>(step), PowerLossMode::random);
      partition_log.reset();
      const auto started = std::chrono::steady_clock::now();
      auto reopened = log::PartitionLog::open(file_system, "/p", "t/0", options, clock, nullptr);
      figures.add_recovery(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
      ASSERT_TRUE(reopened.is_ok()) << reopened.status().to_string();
      partition_log = std::move(*reopened);
      ASSERT_EQ(partition_log->high_watermark(), stamps.size()) << "appends lost at a power loss";
      ASSERT_EQ(partition_log->log_start_offset(), start);
    }

    // Read everything back; time lookups equal a full scan.
    Offset next = start;
    std::uint64_t read = 0;
    auto scanned = partition_log->scan(start, 1'000'000, SIZE_MAX, [&](const MessageView& message) {
      EXPECT_EQ(message.offset, next);
      EXPECT_EQ(message.timestamp_ms, stamps[message.offset]) << "offset " << message.offset;
      ++next;
      ++read;
      return true;
    });
    ASSERT_TRUE(scanned.is_ok()) << scanned.status().to_string();
    ASSERT_EQ(next, end);
    figures.messages_checked += read;
    ++figures.cycles;
    std::vector<TimestampMs> probes = {int64_min + 1, int64_min + 2, -1, 0, 1, int64_max, int64_max - 1, cutoff, cutoff + 1,
                                       now->load(), now->load() + ten_years_ms};
    for (int i = 0; i < 12 && end > start; ++i) {
      const TimestampMs stamp = stamps[start + random() % (end - start)];
      probes.push_back(stamp);
      if (stamp < int64_max) probes.push_back(stamp + 1);
      if (stamp > int64_min + 1) probes.push_back(stamp - 1);
    }
    for (TimestampMs probe : probes) {
      auto answer = partition_log->offset_for_time(probe);
      ++figures.index_checks;
      ASSERT_TRUE(answer.is_ok()) << answer.status().to_string();
      const Offset expected = full_scan_answer(stamps, start, end, probe);
      if (*answer != expected) ++figures.index_mismatches;
      EXPECT_EQ(*answer, expected) << "offset_for_time(" << probe << ")";
    }
  }
}

TEST(Timestamps, PartitionLogWithAFakeClock) {
  Figures figures("timestamps.log");
  std::uint64_t deleted_segments = 0;
  for_each_seed(200, figures, [&](std::uint64_t seed) { run_log_seed(seed, figures, deleted_segments); });
  std::printf("timestamps.log: %llu segments deleted by max_age, each checked\n", static_cast<unsigned long long>(deleted_segments));
  figures.print();
  EXPECT_GT(deleted_segments, 0u);
}

// ---- Through the Store, with the real clock -------------------------------------------------
void run_store_seed(std::uint64_t seed, Figures& figures, std::uint64_t& deleted_messages) {
  std::mt19937_64 random(seed);
  constexpr TimestampMs max_age = 3'600'000;
  auto disk = std::make_shared<FaultFileSystem>();
  Checker checker;
  std::map<MessageId, std::optional<TimestampMs>> stamp_of;  // nullopt: stamped by the store (now)
  std::map<std::pair<std::uint32_t, Offset>, MessageId> where;
  std::uint64_t sequence = 0;
  Event event = Event::none;
  for (int cycle = 0; cycle < 4; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    auto process = std::make_shared<ProcessFileSystem>(disk);
    double open_ms = 0;
    auto opened = open_timed("/data", process, open_ms);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    std::unique_ptr<Store> store = std::move(*opened);
    if (cycle == 0) {
      StreamConfig config;
      config.name = "ts";
      config.subjects = {"ts.>"};
      config.partitions = 2;
      config.segment_bytes = limits::segment_bytes_min;
      config.max_age_ms = max_age;
      ASSERT_TRUE(store->create_stream(config).is_ok());
      checker.expect_stream("ts", {});
    } else {
      CheckReport report = checker.check(*store, event, open_ms);
      figures.add(report);
      ASSERT_TRUE(report.ok()) << report.summary();
    }
    // A backfill of old messages first (whole expired segments), then a mix.
    const int backfill = static_cast<int>(random() % 120);
    const int publishes = backfill + 40 + static_cast<int>(random() % 80);
    for (int i = 0; i < publishes; ++i) {
      const std::size_t count = random() % 4 == 0 ? 2 + random() % 5 : 1;
      std::vector<std::string> payloads;
      std::vector<OutgoingMessage> messages;
      std::vector<MessageId> ids;
      const std::string key = "k" + std::to_string(random() % 3);
      const TimestampMs wall = log::system_clock_ms();
      for (std::size_t m = 0; m < count; ++m) {
        ids.push_back(MessageId{0, sequence++});
        payloads.push_back(make_payload(ids.back(), random() % 250));
        checker.attempted(ids.back());
      }
      for (std::size_t m = 0; m < count; ++m) {
        OutgoingMessage message;
        message.subject = "ts.m";
        message.key = key;
        message.payload = payloads[m];
        if (i < backfill) {
          message.timestamp_ms = pick_old_timestamp(random, wall, max_age);
        } else {
          message.timestamp_ms = random() % 3 == 0 ? timestamp_now : pick_timestamp(random, wall, max_age, seed % 3 == 0);
        }
        stamp_of[ids[m]] = message.timestamp_ms == timestamp_now ? std::nullopt : std::optional<TimestampMs>(message.timestamp_ms);
        messages.push_back(message);
      }
      auto positions = store->publish_batch(messages);
      ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
      for (const Position& position : *positions) {
        checker.acked(position, ids[position.message_index]);
        where[{position.partition, position.offset}] = ids[position.message_index];
      }
      if (random() % 10 == 0) {
        ASSERT_TRUE(store->run_maintenance().is_ok());
      }
    }
    ASSERT_TRUE(store->run_maintenance().is_ok());
    // Nothing deleted that was not expired: a deleted message's own timestamp is older than
    // now - max_age (its segment's newest timestamp is at least its own).
    const TimestampMs cutoff = log::system_clock_ms() - max_age;
    for (std::uint32_t partition = 0; partition < 2; ++partition) {
      const Offset start = *store->resolve_start("ts", partition, StartPosition::from_beginning());
      for (auto it = where.lower_bound({partition, 0}); it != where.end() && it->first.first == partition && it->first.second < start; ++it) {
        const auto& stamp = stamp_of[it->second];
        ++deleted_messages;
        EXPECT_TRUE(stamp.has_value() && *stamp < cutoff)
            << "deleted early: " << to_string(it->second) << " at ts/" << partition << "@" << it->first.second << " timestamp "
            << (stamp ? std::to_string(*stamp) : std::string("now"));
      }
    }
    CheckReport live = checker.check(*store, Event::none, 0);
    figures.add(live);
    ASSERT_TRUE(live.ok()) << live.summary();
    process->power_loss(seed * 31 + static_cast<std::uint64_t>(cycle));
    event = Event::power_loss;
    store.reset();
  }
}

TEST(Timestamps, StoreWithTheRealClock) {
  Figures figures("timestamps.store");
  std::uint64_t deleted_messages = 0;
  for_each_seed(60, figures, [&](std::uint64_t seed) { run_store_seed(seed, figures, deleted_messages); });
  std::printf("timestamps.store: %llu deleted messages checked (counted once per cycle)\n",
              static_cast<unsigned long long>(deleted_messages));
  figures.print();
}

}  // namespace
}  // namespace msgstore::crash
