// The segment rewrite: kept records at their original offsets, gaps everywhere read paths go,
// recovery of an interrupted rewrite, the erase list, and readers during a rewrite.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "io/fault_file_system.h"
#include "log/erase_list.h"
#include "log/log_test_support.h"
#include "log/segment_rewrite.h"

namespace msgstore::log {
namespace {

const std::filesystem::path directory = "/partition";

LogOptions small_segments() {
  LogOptions options;
  options.segment_bytes = 4096;
  return options;
}

std::unique_ptr<PartitionLog> open_log(FaultFileSystem& file_system) {
  RecoveryReport report;
  auto log = PartitionLog::open(file_system, directory, "test/0", small_segments(), nullptr, &report);
  EXPECT_TRUE(log.is_ok()) << log.status().to_string();
  if (!log) return nullptr;
  EXPECT_TRUE(report.corruption.empty()) << report.corruption.front();
  file_system.make_all_durable();  // the partition directory itself; the log syncs its own files
  return std::move(*log);
}

// Appends `count` records in batches of 1 to 4; returns the model.
std::vector<Record> fill_log(PartitionLog& log, std::size_t count, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<Record> model;
  while (model.size() < count) {
    std::vector<Record> batch;
    const std::size_t size = 1 + random() % 4;
    for (std::size_t i = 0; i < size; ++i) {
      batch.push_back(make_record(random, model.size() + i, 1'000'000 + static_cast<TimestampMs>(random() % 5000), 120));
    }
    EXPECT_TRUE(append(log, batch, &model).is_ok());
  }
  return model;
}

// Reads everything and compares with the model restricted to `present` offsets.
void expect_exactly(const PartitionLog& log, const std::vector<Record>& model, const std::set<Offset>& present) {
  auto messages = read_all(log);
  ASSERT_TRUE(messages.is_ok()) << messages.status().to_string();
  std::vector<Offset> offsets;
  for (const Message& message : *messages) {
    offsets.push_back(message.offset);
    ASSERT_LT(message.offset, model.size());
    EXPECT_TRUE(same(message, model[message.offset])) << "offset " << message.offset;
  }
  EXPECT_EQ(offsets, std::vector<Offset>(present.begin(), present.end()));
  EXPECT_EQ(log.high_watermark(), model.size()) << "next offset changed";
  // Every start offset, including ones inside gaps, reads on to the next present record.
  for (Offset from = log.log_start_offset(); from < log.high_watermark(); from += 7) {
    std::optional<Offset> first;
    auto scanned = log.scan(from, 1, 1 << 20, [&](const MessageView& view) {
      first = view.offset;
      return true;
    });
    ASSERT_TRUE(scanned.is_ok()) << "from " << from << ": " << scanned.status().to_string();
    auto expected = present.lower_bound(from);
    if (expected == present.end()) {
      EXPECT_FALSE(first.has_value());
    } else {
      ASSERT_TRUE(first.has_value()) << "from " << from;
      EXPECT_EQ(*first, *expected);
    }
  }
  // Time lookups answer as a brute force over the present records.
  for (const Offset probe : {Offset{0}, Offset{17}, Offset{50}}) {
    if (probe >= model.size()) continue;
    const TimestampMs time_ms = model[probe].timestamp_ms;
    Offset brute = log.high_watermark();
    for (Offset offset : present) {
      if (model[offset].timestamp_ms >= time_ms) {
        brute = offset;
        break;
      }
    }
    auto found = log.offset_for_time(time_ms);
    ASSERT_TRUE(found.is_ok());
    EXPECT_EQ(*found, brute) << "time " << time_ms;
  }
  VerifyReport report;
  log.verify(report);
  EXPECT_TRUE(report.clean()) << report.problems.front();
}

std::set<Offset> all_offsets(std::size_t count) {
  std::set<Offset> offsets;
  for (Offset offset = 0; offset < count; ++offset) offsets.insert(offset);
  return offsets;
}

TEST(SegmentRewrite, KeepsOffsetsLeavesGapsAndSurvivesReopen) {
  FaultFileSystem file_system;
  auto log = open_log(file_system);
  const std::vector<Record> model = fill_log(*log, 300, 1);
  std::set<Offset> present = all_offsets(model.size());
  auto summaries = log->segment_summaries();
  ASSERT_GT(summaries.size(), 4u);
  std::vector<std::pair<SegmentChange, Offset>> notified;
  log->set_segment_listener([&](SegmentChange change, Offset base) { notified.emplace_back(change, base); });
  std::size_t rewritten = 0;
  for (std::size_t index = 0; index < summaries.size(); ++index) {
    const SegmentSummary& summary = summaries[index];
    if (summary.active) continue;
    // Segment 1 loses everything (an empty rewritten segment), the last sealed one loses its
    // final records (a gap at the end), the others lose odd offsets.
    const bool drop_all = index == 1;
    const bool is_last_sealed = index + 2 == summaries.size();
    auto result = log->rewrite_segment(summary.base_offset, [&](const MessageView& message) {
      if (drop_all) return false;
      if (is_last_sealed) return message.offset + 3 < summary.next_offset;
      return message.offset % 2 == 0;
    });
    ASSERT_TRUE(result.is_ok()) << result.status().to_string();
    EXPECT_TRUE(result->replaced);
    EXPECT_LT(result->bytes_after, result->bytes_before);
    for (Offset offset = summary.base_offset; offset < summary.next_offset; ++offset) {
      const bool kept = drop_all ? false : is_last_sealed ? offset + 3 < summary.next_offset : offset % 2 == 0;
      if (!kept) present.erase(offset);
    }
    ++rewritten;
  }
  EXPECT_EQ(notified.size(), rewritten);
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, model, present));
  // A filter that drops nothing leaves the segment alone.
  auto untouched = log->rewrite_segment(summaries[0].base_offset, [](const MessageView&) { return true; });
  ASSERT_TRUE(untouched.is_ok());
  EXPECT_FALSE(untouched->replaced);
  // The active segment is refused until it is rolled.
  EXPECT_EQ(log->rewrite_segment(summaries.back().base_offset, [](const MessageView&) { return false; }).status().code(),
            ErrorCode::invalid_argument);

  ASSERT_TRUE(log->close().is_ok());
  log.reset();
  file_system.simulate_power_loss(5, PowerLossMode::drop_all_unsynced);
  log = open_log(file_system);
  ASSERT_NE(log, nullptr);
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, model, present));
  // Appends continue at the right offset.
  std::vector<Record> more_model = model;
  std::mt19937_64 random(9);
  ASSERT_TRUE(append(*log, {make_record(random, 999, 2'000'000)}, &more_model).is_ok());
  present.insert(model.size());
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, more_model, present));
}

TEST(SegmentRewrite, ActiveSegmentIsRolledFirst) {
  FaultFileSystem file_system;
  auto log = open_log(file_system);
  const std::vector<Record> model = fill_log(*log, 5, 2);
  ASSERT_EQ(log->segment_summaries().size(), 1u);
  ASSERT_TRUE(log->seal_through(log->high_watermark()).is_ok());
  auto summaries = log->segment_summaries();
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_FALSE(summaries[0].active);
  auto result = log->rewrite_segment(0, [](const MessageView& message) { return message.offset != 2; });
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  std::set<Offset> present = all_offsets(model.size());
  present.erase(2);
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, model, present));
}

TEST(SegmentRewrite, EraseListHidesAtOnceAndIsRetiredByTheRewrite) {
  FaultFileSystem file_system;
  auto log = open_log(file_system);
  const std::vector<Record> model = fill_log(*log, 120, 3);
  std::set<Offset> present = all_offsets(model.size());
  const std::vector<Offset> erased = {0, 5, 6, 40, 119};
  ASSERT_TRUE(log->add_erased_offsets(erased).is_ok());
  for (Offset offset : erased) present.erase(offset);
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, model, present));
  // Durable: a power loss right after keeps the erase.
  log.reset();
  file_system.simulate_power_loss(11, PowerLossMode::drop_all_unsynced);
  log = open_log(file_system);
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, model, present));
  // Rewriting every affected segment (rolling the active one first) empties the list.
  ASSERT_TRUE(log->seal_through(log->high_watermark()).is_ok());
  for (const SegmentSummary& summary : log->segment_summaries()) {
    if (summary.active) continue;
    auto result = log->rewrite_segment(summary.base_offset, [](const MessageView&) { return true; });
    ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  }
  EXPECT_TRUE(log->erased_offsets()->empty());
  EXPECT_FALSE(file_system.exists(directory / erase_list_file_name));
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, model, present));
  // No file holds an erased payload any more.
  for (const auto& path : file_system.all_files()) {
    auto content = file_system.current_contents(path);
    ASSERT_TRUE(content.has_value());
    for (Offset offset : erased) {
      EXPECT_EQ(content->find(model[offset].payload), std::string::npos) << path << " still holds offset " << offset;
    }
  }
}

TEST(SegmentRewrite, FailureAtAnyStepThenPowerLossLeavesOldOrNew) {
  using Operation = FaultFileSystem::Operation;
  int runs = 0;
  for (Operation operation : {Operation::write, Operation::sync, Operation::rename, Operation::open,
                              Operation::sync_directory}) {
    for (std::uint64_t nth = 1; nth <= 6; ++nth) {
      for (PowerLossMode mode : {PowerLossMode::random, PowerLossMode::drop_all_unsynced, PowerLossMode::keep_all_unsynced}) {
        SCOPED_TRACE("operation " + std::to_string(static_cast<int>(operation)) + " call " + std::to_string(nth));
        FaultFileSystem file_system;
        auto log = open_log(file_system);
        const std::vector<Record> model = fill_log(*log, 60, 4);
        ASSERT_TRUE(log->add_erased_offsets({3}).is_ok());
        const SegmentSummary target = log->segment_summaries().front();
        ASSERT_FALSE(target.active);
        file_system.fail_after(operation, nth);
        auto result = log->rewrite_segment(target.base_offset, [](const MessageView& message) { return message.offset % 3 != 0; });
        file_system.clear_faults();
        log.reset();
        file_system.simulate_power_loss(nth * 31 + static_cast<std::uint64_t>(mode), mode);
        log = open_log(file_system);
        ASSERT_NE(log, nullptr);
        // Outside the target nothing changed; inside it, all of the rewrite or none of it.
        auto messages = read_all(*log);
        ASSERT_TRUE(messages.is_ok()) << messages.status().to_string();
        std::set<Offset> seen;
        for (const Message& message : *messages) {
          ASSERT_TRUE(seen.insert(message.offset).second) << "offset " << message.offset << " twice";
          EXPECT_TRUE(same(message, model[message.offset]));
        }
        EXPECT_FALSE(seen.count(3)) << "an erased offset came back";
        bool all_new = true;
        bool all_old = true;
        for (Offset offset = 0; offset < model.size(); ++offset) {
          if (offset == 3) continue;
          const bool inside = offset >= target.base_offset && offset < target.next_offset;
          const bool kept = !inside || offset % 3 != 0;
          if (kept) {
            EXPECT_TRUE(seen.count(offset)) << "offset " << offset << " that the rewrite keeps was lost";
          }
          if (!kept && seen.count(offset)) all_new = false;
          if (!kept && !seen.count(offset)) all_old = false;
        }
        EXPECT_TRUE(all_new || all_old) << "a mix of old and new segment content";
        if (result.is_ok()) {
          EXPECT_TRUE(all_new) << "rewrite returned ok but did not last";
        }
        VerifyReport report;
        log->verify(report);
        EXPECT_TRUE(report.clean()) << report.problems.front();
        ++runs;
      }
    }
  }
  EXPECT_EQ(runs, 90);
}

TEST(SegmentRewrite, ReaderDuringARewriteSeesOneConsistentSegment) {
  FaultFileSystem file_system;
  auto log = open_log(file_system);
  const std::vector<Record> model = fill_log(*log, 200, 5);
  const SegmentSummary first = log->segment_summaries().front();
  std::vector<Offset> seen;
  bool rewrote = false;
  // The rewrite runs from inside the scan, after the first message: the scan holds the old
  // segment and must finish on it (all of its records), then continue with the rest.
  auto scanned = log->scan(0, 100000, SIZE_MAX, [&](const MessageView& message) {
    seen.push_back(message.offset);
    if (!rewrote) {
      rewrote = true;
      auto result = log->rewrite_segment(first.base_offset, [](const MessageView& view) { return view.offset % 2 == 0; });
      EXPECT_TRUE(result.is_ok()) << result.status().to_string();
    }
    return true;
  });
  ASSERT_TRUE(scanned.is_ok());
  EXPECT_EQ(seen.size(), model.size()) << "the scan that started before the rewrite saw a mix";
  // A new scan sees the new segment.
  std::set<Offset> present = all_offsets(model.size());
  for (Offset offset = first.base_offset; offset < first.next_offset; ++offset) {
    if (offset % 2 != 0) present.erase(offset);
  }
  ASSERT_NO_FATAL_FAILURE(expect_exactly(*log, model, present));
}

TEST(SegmentRewrite, AnEmptiedSegmentDoesNotHoldUpAgeRetention) {
  FaultFileSystem file_system;
  LogOptions options = small_segments();
  auto opened = PartitionLog::open(file_system, directory, "test/0", options, [] { return TimestampMs{2'000'000'000'000}; }, nullptr);
  ASSERT_TRUE(opened.is_ok());
  auto log = std::move(*opened);
  std::mt19937_64 random(6);
  std::vector<Record> model;
  for (int i = 0; i < 80; ++i) {
    ASSERT_TRUE(append(*log, {make_record(random, static_cast<std::uint64_t>(i), 5'000'000'000'000, 100)}, &model).is_ok());
  }
  const auto summaries = log->segment_summaries();
  ASSERT_GT(summaries.size(), 2u);
  std::vector<std::pair<SegmentChange, Offset>> notified;
  log->set_segment_listener([&](SegmentChange change, Offset base) { notified.emplace_back(change, base); });
  ASSERT_TRUE(log->rewrite_segment(summaries[0].base_offset, [](const MessageView&) { return false; }).is_ok());
  // Every message is in the far future, so only the emptied segment is due.
  options.max_age_ms = 1000;
  log->set_options(options);
  ASSERT_TRUE(log->maintain().is_ok());
  EXPECT_EQ(log->log_start_offset(), summaries[1].base_offset);
  EXPECT_EQ(log->segment_summaries().size(), summaries.size() - 1);
  // The listener heard both: replaced by the rewrite, then removed by retention.
  const std::vector<std::pair<SegmentChange, Offset>> expected = {{SegmentChange::replaced, summaries[0].base_offset},
                                                                  {SegmentChange::removed, summaries[0].base_offset}};
  EXPECT_EQ(notified, expected);
}

TEST(SegmentRewrite, EraseEntriesBelowTheLogStartAreRetiredEvenAfterAFailure) {
  FaultFileSystem file_system;
  auto log = open_log(file_system);
  const std::vector<Record> model = fill_log(*log, 150, 7);
  const auto summaries = log->segment_summaries();
  ASSERT_GT(summaries.size(), 3u);
  ASSERT_TRUE(log->add_erased_offsets({1, summaries[2].base_offset + 1}).is_ok());
  // Retention deletes the first segment; the erase-list update after it fails (its rename is
  // the second one of the pass, after the checkpoint's), as a crash there would leave it.
  LogOptions options = small_segments();
  options.max_messages = model.size() - summaries[1].base_offset;
  log->set_options(options);
  file_system.fail_after(FaultFileSystem::Operation::rename, 2);
  EXPECT_FALSE(log->maintain().is_ok());
  file_system.clear_faults();
  EXPECT_EQ(log->log_start_offset(), summaries[1].base_offset);
  EXPECT_EQ(log->erased_offsets()->size(), 2u) << "the failed update should have kept the old list";
  log.reset();
  file_system.simulate_power_loss(3, PowerLossMode::drop_all_unsynced);
  log = open_log(file_system);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(*log->erased_offsets(), std::vector<Offset>{summaries[2].base_offset + 1});
}

TEST(EraseList, RoundTripsAndRejectsDamage) {
  const std::vector<Offset> offsets = {0, 1, 7, 1ull << 40};
  const std::string bytes = encode_erase_list(offsets);
  auto decoded = decode_erase_list(bytes);
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_EQ(*decoded, offsets);
  EXPECT_TRUE(decode_erase_list(encode_erase_list({})).is_ok());
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    EXPECT_FALSE(decode_erase_list(damaged).is_ok()) << "flip at byte " << at;
  }
  for (std::size_t size = 0; size < bytes.size(); ++size) EXPECT_FALSE(decode_erase_list(bytes.substr(0, size)).is_ok());
  EXPECT_EQ(merge_offsets({1, 3}, {2, 3, 9}), (std::vector<Offset>{1, 2, 3, 9}));
  EXPECT_EQ(subtract_offsets({1, 2, 3, 9}, {2, 9, 10}), (std::vector<Offset>{1, 3}));
}

}  // namespace
}  // namespace msgstore::log
