// Recovery: torn tails at every byte, junk after the tail, bit flips in sealed segments,
// damaged index files, and simulated power loss on the fault-injecting file system.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "io/fault_file_system.h"
#include "log/format.h"
#include "log/partition_log.h"
#include "log/record_batch.h"
#include "log/log_test_support.h"
#include "log/segment.h"
#include "support/temporary_directory.h"

namespace msgstore::log {
namespace {


// ---- End of shared helpers ----

const std::filesystem::path partition = "/p";

// The files of a FaultFileSystem, by path: a "copy of the directory" to damage and reopen.
using Snapshot = std::map<std::filesystem::path, std::string>;

Snapshot take_snapshot(const FaultFileSystem& file_system) {
  Snapshot files;
  for (const auto& path : file_system.all_files()) {
    auto contents = file_system.current_contents(path);
    if (contents) files[path] = *contents;
  }
  return files;
}

std::unique_ptr<FaultFileSystem> restore(const Snapshot& files) {
  auto file_system = std::make_unique<FaultFileSystem>();
  EXPECT_TRUE(file_system->create_directories(partition).is_ok());
  for (const auto& [path, contents] : files) {
    EXPECT_TRUE(file_system->create_directories(path.parent_path()).is_ok());
    auto file = file_system->open(path, OpenMode::create_truncate);
    EXPECT_TRUE(file.is_ok());
    if (file.is_ok() && !contents.empty()) {
      EXPECT_TRUE((*file)->write_at(0, contents.data(), contents.size()).is_ok());
    }
  }
  file_system->make_all_durable();
  return file_system;
}

std::filesystem::path log_path(Offset base) { return segment_file_path(partition, base, SegmentFileKind::log); }

std::uint64_t file_size(const FaultFileSystem& file_system, const std::filesystem::path& path) {
  auto contents = file_system.current_contents(path);
  EXPECT_TRUE(contents.has_value()) << path;
  return contents ? contents->size() : 0;
}

// Where each batch of a segment file starts and which offsets it holds (from a clean file).
struct BatchExtent {
  std::uint64_t position = 0;
  std::uint64_t end = 0;
  Offset base_offset = 0;
  Offset next_offset = 0;
};

std::vector<BatchExtent> batch_extents(const std::string& segment) {
  std::vector<BatchExtent> extents;
  std::uint64_t position = format::segment_header_bytes;
  while (position < segment.size()) {
    BatchHeader header;
    const HeaderCheck check = check_batch_header(segment.data() + position, segment.size() - position, header);
    if (check != HeaderCheck::valid) break;
    extents.push_back({position, position + header.batch_bytes, header.base_offset, header.next_offset()});
    position += header.batch_bytes;
  }
  return extents;
}

std::vector<Record> random_batch(std::mt19937_64& random, std::size_t first_id, TimestampMs timestamp, int max_records = 4,
                                 std::size_t payload_max = 120) {
  std::vector<Record> records;
  const int count = 1 + static_cast<int>(random() % max_records);
  for (int i = 0; i < count; ++i) records.push_back(make_record(random, first_id + i, timestamp + i, payload_max));
  return records;
}

// ---------------------------------------------------------------------------------------------
// (1) A torn tail, at every byte.

struct TornTailSetup {
  Snapshot files;
  std::vector<Record> model;
  std::vector<std::uint64_t> batch_ends;  // end position of each batch in segment 0
  std::vector<Offset> batch_next;         // offset after each batch
  std::uint64_t checkpoint_position = 0;
};

// Writes `closed_batches`, closes (the checkpoint moves to their end), reopens and writes
// `open_batches` more, then takes the files as they are without closing: a crash.
TornTailSetup make_torn_tail_setup(std::uint64_t seed, int closed_batches, int open_batches) {
  TornTailSetup setup;
  std::mt19937_64 random(seed);
  FaultFileSystem file_system;
  EXPECT_TRUE(file_system.create_directories(partition).is_ok());
  {
    auto log = open_log(file_system, partition);
    EXPECT_TRUE(log.is_ok());
    for (int i = 0; i < closed_batches; ++i) {
      EXPECT_TRUE(append(**log, random_batch(random, setup.model.size(), 1000 + i * 10), &setup.model).is_ok());
      setup.batch_ends.push_back(file_size(file_system, log_path(0)));
      setup.batch_next.push_back(setup.model.size());
    }
    EXPECT_TRUE((*log)->close().is_ok());
  }
  setup.checkpoint_position = file_size(file_system, log_path(0));
  auto log = open_log(file_system, partition);
  EXPECT_TRUE(log.is_ok());
  for (int i = 0; i < open_batches; ++i) {
    // Non-monotonic timestamps, so time lookups after recovery are a real check.
    const TimestampMs timestamp = i % 2 == 0 ? 5000 - i * 100 : 9000 + i;
    EXPECT_TRUE(append(**log, random_batch(random, setup.model.size(), timestamp), &setup.model).is_ok());
    setup.batch_ends.push_back(file_size(file_system, log_path(0)));
    setup.batch_next.push_back(setup.model.size());
  }
  setup.files = take_snapshot(file_system);
  return setup;
}

// Opens the log on a copy whose segment file is cut to `length` and checks that exactly the
// whole batches before the cut survive, that recovery is idempotent, and that the log works.
void check_torn_tail(const TornTailSetup& setup, std::uint64_t length, std::mt19937_64& random) {
  SCOPED_TRACE("segment cut to " + std::to_string(length) + " bytes");
  Snapshot files = setup.files;
  files[log_path(0)].resize(length);
  auto file_system = restore(files);

  std::uint64_t kept_end = format::segment_header_bytes;
  Offset kept_next = 0;
  for (std::size_t i = 0; i < setup.batch_ends.size(); ++i) {
    if (setup.batch_ends[i] <= length) {
      kept_end = setup.batch_ends[i];
      kept_next = setup.batch_next[i];
    }
  }
  std::vector<Record> model(setup.model.begin(), setup.model.begin() + static_cast<std::ptrdiff_t>(kept_next));

  RecoveryReport report;
  auto log = open_log(*file_system, partition, {}, nullptr, &report);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  EXPECT_TRUE(report.corruption.empty()) << describe(report);
  EXPECT_EQ(report.torn_bytes_truncated, length - kept_end);
  ASSERT_EQ((*log)->high_watermark(), kept_next);
  EXPECT_EQ(file_size(*file_system, log_path(0)), kept_end);
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), kept_next);
  EXPECT_TRUE(matches_model(*all, model, 0));

  // Recovery made its result durable: a power loss now, then a second recovery, changes
  // nothing.
  file_system->simulate_power_loss(length, PowerLossMode::drop_all_unsynced);
  log = Status(ErrorCode::closed, "released");
  RecoveryReport second;
  log = open_log(*file_system, partition, {}, nullptr, &second);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  EXPECT_TRUE(second.corruption.empty()) << describe(second);
  EXPECT_EQ(second.torn_bytes_truncated, 0u);
  EXPECT_EQ((*log)->high_watermark(), kept_next);
  EXPECT_EQ(file_size(*file_system, log_path(0)), kept_end);

  // Appending continues at the recovered end, and lookups agree with a full scan.
  const Offset next = kept_next;
  auto base = append(**log, random_batch(random, model.size(), 7000), &model);
  ASSERT_TRUE(base.is_ok()) << base.status().to_string();
  EXPECT_EQ(*base, next);
  all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), model.size());
  EXPECT_TRUE(matches_model(*all, model, 0));
  EXPECT_TRUE(time_lookups_match(**log, model, random));
  VerifyReport verify;
  (*log)->verify(verify);
  EXPECT_TRUE(verify.clean()) << describe(verify);
}

TEST(Recovery, TornTailAtEveryByteWithCheckpointAtSegmentStart) {
  // Every batch was appended after the checkpoint (which open writes at the segment start).
  const TornTailSetup setup = make_torn_tail_setup(1, 0, 8);
  ASSERT_EQ(setup.checkpoint_position, format::segment_header_bytes);
  std::mt19937_64 random(2);
  const std::uint64_t from = setup.batch_ends[setup.batch_ends.size() - 4];  // start of the last 3 batches
  const std::uint64_t to = setup.batch_ends.back();
  for (std::uint64_t length = from; length <= to; ++length) {
    check_torn_tail(setup, length, random);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // The very start: a segment holding only its header, or less.
  check_torn_tail(setup, format::segment_header_bytes, random);
  check_torn_tail(setup, setup.batch_ends.front() - 1, random);
}

TEST(Recovery, TornTailAtEveryByteAfterALaterCheckpoint) {
  // Five batches closed cleanly (checkpoint after them), then four more and a crash.
  const TornTailSetup setup = make_torn_tail_setup(3, 5, 4);
  ASSERT_EQ(setup.checkpoint_position, setup.batch_ends[4]);
  std::mt19937_64 random(4);
  const std::uint64_t from = setup.checkpoint_position;  // the last 3 batches and the one before
  const std::uint64_t to = setup.batch_ends.back();
  ASSERT_GE(from, setup.checkpoint_position);
  for (std::uint64_t length = from; length <= to; ++length) {
    check_torn_tail(setup, length, random);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(Recovery, TornTailAtTheCheckpointLeavesNoStaleIndexEntries) {
  // Cut exactly at the checkpoint, the index files still describe the batches that were cut
  // off. Recovery must drop those entries, or time lookups after new appends go wrong.
  for (int closed_batches : {0, 12}) {
    SCOPED_TRACE(std::to_string(closed_batches) + " batches before the checkpoint");
    std::mt19937_64 random(20 + closed_batches);
    FaultFileSystem original;
    std::vector<Record> model;
    if (closed_batches > 0) {
      auto log = open_log(original, partition);
      ASSERT_TRUE(log.is_ok());
      for (int i = 0; i < closed_batches; ++i) {
        ASSERT_TRUE(append(**log, random_batch(random, model.size(), 100 + i, 3, 600), &model).is_ok());
      }
      ASSERT_TRUE((*log)->close().is_ok());
    }
    auto log = open_log(original, partition);
    ASSERT_TRUE(log.is_ok());
    const std::uint64_t checkpoint = file_size(original, log_path(0));  // open checkpoints its end
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(append(**log, random_batch(random, 1000 + i, 50'000 + i * 10, 3, 600)).is_ok());
    }
    Snapshot files = take_snapshot(original);
    files[log_path(0)].resize(checkpoint);
    auto file_system = restore(files);
    RecoveryReport report;
    auto recovered = open_log(*file_system, partition, {}, nullptr, &report);
    ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
    EXPECT_TRUE(report.corruption.empty()) << describe(report);
    ASSERT_EQ((*recovered)->high_watermark(), model.size());
    // New data, newer than anything before, spanning several index entries.
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(append(**recovered, random_batch(random, model.size(), 90'000 + i * 10, 3, 600), &model).is_ok());
    }
    EXPECT_TRUE(time_lookups_match(**recovered, model, random));
    VerifyReport verify;
    (*recovered)->verify(verify);
    EXPECT_TRUE(verify.clean()) << describe(verify);
    ASSERT_TRUE((*recovered)->close().is_ok());
    recovered = open_log(*file_system, partition);
    ASSERT_TRUE(recovered.is_ok());
    EXPECT_TRUE(time_lookups_match(**recovered, model, random));
    auto all = read_all(**recovered);
    ASSERT_TRUE(all.is_ok());
    EXPECT_TRUE(matches_model(*all, model, 0));
  }
}

TEST(Recovery, TornTailOnTheRealFileSystem) {
  // The same on disk: copy the directory of a log that is still open (a crash), cut the copy.
  testing::TemporaryDirectory directory;
  const auto source = directory.path() / "source";
  std::mt19937_64 random(5);
  std::vector<Record> model;
  std::vector<std::uint64_t> ends;
  std::vector<Offset> nexts;
  LogOptions options;
  options.fsync = FsyncPolicy::never;  // the copy sees written bytes either way; keep it fast
  auto log = open_log(*posix_file_system(), source, options);
  ASSERT_TRUE(log.is_ok());
  const auto segment_name = segment_file_path(source, 0, SegmentFileKind::log).filename();
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(append(**log, random_batch(random, model.size(), 100 + i, 2, 20), &model).is_ok());
    ends.push_back(std::filesystem::file_size(source / segment_name));
    nexts.push_back(model.size());
  }
  for (std::uint64_t length = ends[ends.size() - 2]; length <= ends.back(); ++length) {  // the last batch
    SCOPED_TRACE("cut to " + std::to_string(length));
    const auto copy = directory.path() / ("copy-" + std::to_string(length));
    std::filesystem::create_directory(copy);
    for (const auto& entry : std::filesystem::directory_iterator(source)) {
      std::filesystem::copy_file(entry.path(), copy / entry.path().filename());
    }
    std::filesystem::resize_file(copy / segment_name, length);
    std::uint64_t kept_end = format::segment_header_bytes;
    Offset kept_next = 0;
    for (std::size_t i = 0; i < ends.size(); ++i) {
      if (ends[i] <= length) {
        kept_end = ends[i];
        kept_next = nexts[i];
      }
    }
    for (int round = 0; round < 2; ++round) {
      RecoveryReport report;
      auto recovered = open_log(*posix_file_system(), copy, options, nullptr, &report);
      ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
      EXPECT_TRUE(report.corruption.empty()) << describe(report);
      EXPECT_EQ(report.torn_bytes_truncated, round == 0 ? length - kept_end : 0u);
      EXPECT_EQ((*recovered)->high_watermark(), kept_next);
      EXPECT_EQ(std::filesystem::file_size(copy / segment_name), kept_end);
      auto all = read_all(**recovered);
      ASSERT_TRUE(all.is_ok());
      ASSERT_EQ(all->size(), kept_next);
      EXPECT_TRUE(matches_model(*all, model, 0));
    }
    std::filesystem::remove_all(copy);
  }
}

TEST(Recovery, DataLostBelowTheCheckpointIsCorruptionAndOffsetsAreNotReused) {
  // Bytes below the checkpoint were synced: if they are gone, that is not a torn tail. The
  // surviving prefix is served, the loss is reported, and new appends never reuse the
  // offsets that readers may already have seen.
  const TornTailSetup setup = make_torn_tail_setup(6, 6, 0);
  const Offset checkpoint_next = setup.model.size();
  std::mt19937_64 random(7);
  std::vector<std::uint64_t> lengths = {setup.batch_ends[3], setup.batch_ends[4] + 1, setup.batch_ends[5] - 1,
                                        setup.batch_ends[0], format::segment_header_bytes};
  for (std::uint64_t length : lengths) {
    SCOPED_TRACE("cut to " + std::to_string(length));
    Snapshot files = setup.files;
    files[log_path(0)].resize(length);
    auto file_system = restore(files);
    Offset kept_next = 0;
    for (std::size_t i = 0; i < setup.batch_ends.size(); ++i) {
      if (setup.batch_ends[i] <= length) kept_next = setup.batch_next[i];
    }
    RecoveryReport report;
    auto log = open_log(*file_system, partition, {}, nullptr, &report);
    ASSERT_TRUE(log.is_ok()) << log.status().to_string();
    EXPECT_FALSE(report.corruption.empty()) << "a loss below the checkpoint passed as a clean recovery";
    EXPECT_GE((*log)->high_watermark(), checkpoint_next);
    // The surviving prefix is intact.
    auto prefix = read_range(**log, 0, kept_next);
    ASSERT_TRUE(prefix.is_ok()) << prefix.status().to_string();
    EXPECT_TRUE(matches_model(*prefix, setup.model, 0));
    // The lost offsets are reported, not skipped silently and not served.
    if (kept_next < checkpoint_next) {
      std::vector<Message> got;
      auto lost = (*log)->scan(kept_next, 10, 1 << 20, [&](const MessageView& view) {
        got.push_back(to_owned(view));
        return true;
      });
      EXPECT_EQ(lost.status().code(), ErrorCode::corruption) << lost.status().to_string();
      EXPECT_TRUE(got.empty());
    }
    VerifyReport verify;
    (*log)->verify(verify);
    EXPECT_FALSE(verify.clean());
    // New appends go after every offset ever handed out.
    auto base = append(**log, random_batch(random, 0, 1));
    ASSERT_TRUE(base.is_ok()) << base.status().to_string();
    EXPECT_GE(*base, checkpoint_next);
    auto appended = read_range(**log, *base, *base + 1);
    ASSERT_TRUE(appended.is_ok()) << appended.status().to_string();
    // And a second recovery agrees.
    log = Status(ErrorCode::closed, "released");
    RecoveryReport second;
    auto again = open_log(*file_system, partition, {}, nullptr, &second);
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    EXPECT_GT((*again)->high_watermark(), *base);
    EXPECT_FALSE(second.corruption.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// (2) Junk after the tail.

TEST(Recovery, JunkAfterTheTailIsCutOff) {
  std::mt19937_64 random(8);
  for (bool closed : {false, true}) {
    SCOPED_TRACE(closed ? "after a clean close" : "after a crash");
    FaultFileSystem original;
    std::vector<Record> model;
    std::string first_batch;
    {
      auto log = open_log(original, partition);
      ASSERT_TRUE(log.is_ok());
      for (int i = 0; i < 6; ++i) ASSERT_TRUE(append(**log, random_batch(random, model.size(), 100 + i), &model).is_ok());
      if (closed) {
        ASSERT_TRUE((*log)->close().is_ok());
      }
      const std::string segment = *original.current_contents(log_path(0));
      const auto extents = batch_extents(segment);
      ASSERT_EQ(extents.size(), 6u);
      first_batch = segment.substr(extents[0].position, extents[0].end - extents[0].position);
    }
    const Snapshot files = take_snapshot(original);
    const std::string clean = files.at(log_path(0));

    std::vector<std::pair<std::string, std::string>> junks;
    for (std::size_t length : {1u, 7u, 55u, 56u, 57u, 200u, 4096u, 70000u}) {
      std::string bytes(length, '\0');
      for (char& c : bytes) c = static_cast<char>(random());
      junks.emplace_back("random " + std::to_string(length), bytes);
      junks.emplace_back("zeros " + std::to_string(length), std::string(length, '\0'));
      junks.emplace_back("0xFF " + std::to_string(length), std::string(length, '\xFF'));
    }
    junks.emplace_back("stale copy of the first batch", first_batch);
    junks.emplace_back("zeros then a stale batch", std::string(300, '\0') + first_batch);
    junks.emplace_back("a batch header alone", first_batch.substr(0, format::batch_header_bytes));
    junks.emplace_back("a torn batch", first_batch.substr(0, first_batch.size() - 1));
    {
      std::string magic(4, '\0');
      const std::uint32_t value = format::batch_magic;
      std::memcpy(magic.data(), &value, 4);
      junks.emplace_back("a magic then garbage", magic + std::string(500, 'g'));
      junks.emplace_back("magics", magic + magic + magic + magic + magic);
    }
    for (const auto& [name, junk] : junks) {
      SCOPED_TRACE(name);
      Snapshot damaged = files;
      damaged[log_path(0)] += junk;
      auto file_system = restore(damaged);
      for (int round = 0; round < 2; ++round) {
        RecoveryReport report;
        auto log = open_log(*file_system, partition, {}, nullptr, &report);
        ASSERT_TRUE(log.is_ok()) << log.status().to_string();
        EXPECT_TRUE(report.corruption.empty()) << describe(report);
        EXPECT_EQ(report.torn_bytes_truncated, round == 0 ? junk.size() : 0u);
        EXPECT_EQ(*file_system->current_contents(log_path(0)), clean);
        ASSERT_EQ((*log)->high_watermark(), model.size());
        auto all = read_all(**log);
        ASSERT_TRUE(all.is_ok());
        EXPECT_TRUE(matches_model(*all, model, 0));
        file_system->simulate_process_crash();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// (3) Bit flips in a sealed segment.

struct SealedSetup {
  Snapshot files;
  std::vector<Record> model;
  std::vector<Offset> bases;
};

SealedSetup make_sealed_setup(std::uint64_t seed, std::size_t segments, bool monotonic) {
  SealedSetup setup;
  std::mt19937_64 random(seed);
  FaultFileSystem file_system;
  LogOptions options;
  options.segment_bytes = 4096;
  auto log = open_log(file_system, partition, options);
  EXPECT_TRUE(log.is_ok());
  TimestampMs clock = 10'000;
  while (segment_bases(file_system, partition).size() < segments) {
    TimestampMs timestamp = monotonic ? (clock += 1 + static_cast<TimestampMs>(random() % 5))
                                      : 10'000 + static_cast<TimestampMs>(random() % 2000);
    auto records = random_batch(random, setup.model.size(), timestamp, 4, 150);
    if (!monotonic) {
      for (auto& record : records) record.timestamp_ms = 10'000 + static_cast<TimestampMs>(random() % 2000);
    }
    EXPECT_TRUE(append(**log, records, &setup.model).is_ok());
  }
  // Some data in the active segment too.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(append(**log, random_batch(random, setup.model.size(), clock + 100 + i), &setup.model).is_ok());
  EXPECT_TRUE((*log)->close().is_ok());
  setup.files = take_snapshot(file_system);
  setup.bases = segment_bases(file_system, partition);
  return setup;
}

TEST(Recovery, EveryBitFlipInASealedSegmentIsDetected) {
  const SealedSetup setup = make_sealed_setup(9, 4, true);
  ASSERT_GE(setup.bases.size(), 4u);
  const Offset target_base = setup.bases[1];
  const Offset target_next = setup.bases[2];
  const auto target = log_path(target_base);
  const std::string original = setup.files.at(target);
  const auto extents = batch_extents(original);
  ASSERT_FALSE(extents.empty());
  ASSERT_EQ(extents.back().end, original.size());
  ASSERT_EQ(extents.back().next_offset, target_next);
  const Offset high_watermark = setup.model.size();

  auto file_system = restore(setup.files);
  std::mt19937_64 random(10);
  std::size_t flips = 0;
  for (std::uint64_t position = format::segment_header_bytes; position < original.size(); ++position) {
    const unsigned bit = static_cast<unsigned>((position * 5 + 3) % 8);
    SCOPED_TRACE("byte " + std::to_string(position) + " bit " + std::to_string(bit));
    ASSERT_TRUE(file_system->flip_bit(target, position, bit).is_ok());
    ++flips;
    const auto damaged = std::find_if(extents.begin(), extents.end(),
                                      [&](const BatchExtent& extent) { return position < extent.end; });
    ASSERT_NE(damaged, extents.end());
    {
      RecoveryReport report;
      auto log = open_log(*file_system, partition, {}, nullptr, &report);
      ASSERT_TRUE(log.is_ok()) << log.status().to_string();
      ASSERT_EQ((*log)->high_watermark(), high_watermark);

      // Reading everything from the start: correct messages up to the damaged batch, then
      // corruption exactly there. Never a wrong byte.
      std::vector<Message> got;
      Offset next = 0;
      Status error;
      while (next < high_watermark) {
        auto scanned = (*log)->scan(next, 1000, 1 << 20, [&](const MessageView& view) {
          got.push_back(to_owned(view));
          return true;
        });
        if (!scanned.is_ok()) {
          error = scanned.status();
          break;
        }
        ASSERT_GT(*scanned, next);
        next = *scanned;
      }
      ASSERT_TRUE(matches_model(got, setup.model, 0));
      EXPECT_EQ(error.code(), ErrorCode::corruption) << "damage not reported";
      EXPECT_EQ(next, damaged->base_offset);

      // A read that starts inside the damaged batch is refused too.
      for (Offset from : {damaged->base_offset, damaged->next_offset - 1}) {
        std::vector<Message> inside;
        auto scanned = (*log)->scan(from, 1000, 1 << 20, [&](const MessageView& view) {
          inside.push_back(to_owned(view));
          return true;
        });
        EXPECT_EQ(scanned.status().code(), ErrorCode::corruption) << "from " << from;
        EXPECT_TRUE(inside.empty());
      }
      // The segments before and after are untouched.
      auto before = read_range(**log, 0, target_base);
      ASSERT_TRUE(before.is_ok()) << before.status().to_string();
      EXPECT_TRUE(matches_model(*before, setup.model, 0));
      auto after = read_range(**log, target_next, high_watermark);
      ASSERT_TRUE(after.is_ok()) << after.status().to_string();
      EXPECT_EQ(after->size(), high_watermark - target_next);
      EXPECT_TRUE(matches_model(*after, setup.model, target_next));
      // Reads that start after the damage within the segment: right data or an error.
      if (damaged->next_offset < target_next) {
        const Offset from = damaged->next_offset + random() % (target_next - damaged->next_offset);
        std::vector<Message> later;
        auto scanned = (*log)->scan(from, 1000, 1 << 20, [&](const MessageView& view) {
          later.push_back(to_owned(view));
          return true;
        });
        if (scanned.is_ok()) {
          EXPECT_TRUE(matches_model(later, setup.model, from));
        } else {
          EXPECT_EQ(scanned.status().code(), ErrorCode::corruption);
        }
      }
      // Time lookups: right answer or a corruption error, never a wrong offset.
      for (int query = 0; query < 4; ++query) {
        const TimestampMs time = setup.model[random() % setup.model.size()].timestamp_ms + static_cast<TimestampMs>(query % 2);
        auto found = (*log)->offset_for_time(time);
        const Offset expected = brute_force_offset_for_time(setup.model, 0, high_watermark, time);
        if (found.is_ok()) {
          EXPECT_EQ(*found, expected) << "time " << time;
        } else {
          EXPECT_EQ(found.status().code(), ErrorCode::corruption);
          EXPECT_GE(expected, damaged->base_offset) << "time " << time;
        }
      }
      VerifyReport verify;
      (*log)->verify(verify);
      EXPECT_FALSE(verify.clean()) << "verify missed a flipped bit";
    }
    ASSERT_TRUE(file_system->flip_bit(target, position, bit).is_ok());
  }
  EXPECT_EQ(flips, original.size() - format::segment_header_bytes);
  // Restored: clean again.
  auto log = open_log(*file_system, partition);
  ASSERT_TRUE(log.is_ok());
  VerifyReport verify;
  (*log)->verify(verify);
  EXPECT_TRUE(verify.clean()) << describe(verify);
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  EXPECT_TRUE(matches_model(*all, setup.model, 0));
}

TEST(Recovery, DamagedSealedSegmentHeaderIsNeverSilentlyDropped) {
  const SealedSetup setup = make_sealed_setup(11, 4, true);
  const Offset target_base = setup.bases[1];
  const auto target = log_path(target_base);
  for (std::uint64_t position = 0; position < format::segment_header_bytes; ++position) {
    SCOPED_TRACE("byte " + std::to_string(position));
    Snapshot files = setup.files;
    files[target][position] = static_cast<char>(files[target][position] ^ 0x10);
    auto file_system = restore(files);
    RecoveryReport report;
    auto log = open_log(*file_system, partition, {}, nullptr, &report);
    if (!log.is_ok()) {
      // Refusing to open is acceptable; ignoring the damage is not.
      EXPECT_TRUE(log.status().code() == ErrorCode::corruption || log.status().code() == ErrorCode::unsupported_format)
          << log.status().to_string();
      continue;
    }
    EXPECT_FALSE(report.corruption.empty()) << describe(report);
    EXPECT_EQ((*log)->high_watermark(), setup.model.size());
    std::vector<Message> got;
    auto scanned = (*log)->scan(target_base, 1000, 1 << 20, [&](const MessageView& view) {
      got.push_back(to_owned(view));
      return true;
    });
    if (scanned.is_ok()) {
      EXPECT_TRUE(matches_model(got, setup.model, target_base));
    }
  }
}

TEST(Recovery, DamagedActiveSegmentHeaderIsNeverSilentlyDropped) {
  // The checkpoint names the active segment, so its header was durable: damage there is
  // corruption, not a segment whose creation a crash interrupted. Dropping it would lose
  // acknowledged messages and hand their offsets out again.
  const SealedSetup setup = make_sealed_setup(15, 3, true);
  const Offset active_base = setup.bases.back();
  ASSERT_LT(active_base, setup.model.size());
  const auto target = log_path(active_base);
  for (std::uint64_t position = 0; position < format::segment_header_bytes; ++position) {
    SCOPED_TRACE("byte " + std::to_string(position));
    Snapshot files = setup.files;
    files[target][position] = static_cast<char>(files[target][position] ^ 0x01);
    auto file_system = restore(files);
    RecoveryReport report;
    auto log = open_log(*file_system, partition, {}, nullptr, &report);
    if (!log.is_ok()) {
      EXPECT_TRUE(log.status().code() == ErrorCode::corruption || log.status().code() == ErrorCode::unsupported_format)
          << log.status().to_string();
      EXPECT_TRUE(file_system->exists(target)) << "the damaged segment was deleted";
      continue;
    }
    EXPECT_FALSE(report.corruption.empty()) << describe(report);
    EXPECT_GE((*log)->high_watermark(), setup.model.size()) << "offsets would be reused";
  }
}

// ---------------------------------------------------------------------------------------------
// (4) Damaged or missing index files are rebuilt; lookups equal a full scan.

enum class IndexDamage { remove, random_bytes, zeroed, truncated_to_zero, truncated_in_header, header_only,
                         truncated_mid_entry, drop_last_entry, drop_half, garbage_appended };

const char* damage_name(IndexDamage damage) {
  switch (damage) {
    case IndexDamage::remove: return "removed";
    case IndexDamage::random_bytes: return "random bytes";
    case IndexDamage::zeroed: return "zeroed";
    case IndexDamage::truncated_to_zero: return "empty";
    case IndexDamage::truncated_in_header: return "cut inside the header";
    case IndexDamage::header_only: return "header only";
    case IndexDamage::truncated_mid_entry: return "cut inside an entry";
    case IndexDamage::drop_last_entry: return "last entry dropped";
    case IndexDamage::drop_half: return "half the entries dropped";
    case IndexDamage::garbage_appended: return "garbage appended";
  }
  return "?";
}

// Applies `damage` to `files[path]`; returns false if it does not apply (file too short).
bool damage_index(Snapshot& files, const std::filesystem::path& path, IndexDamage damage, std::mt19937_64& random) {
  auto found = files.find(path);
  if (found == files.end()) return false;
  std::string& bytes = found->second;
  const std::size_t entries = bytes.size() >= format::index_header_bytes
                                  ? (bytes.size() - format::index_header_bytes) / format::index_entry_bytes
                                  : 0;
  switch (damage) {
    case IndexDamage::remove: files.erase(found); return true;
    case IndexDamage::random_bytes:
      for (char& c : bytes) c = static_cast<char>(random());
      return true;
    case IndexDamage::zeroed: std::fill(bytes.begin(), bytes.end(), '\0'); return true;
    case IndexDamage::truncated_to_zero: bytes.clear(); return true;
    case IndexDamage::truncated_in_header: bytes.resize(format::index_header_bytes / 2); return true;
    case IndexDamage::header_only: bytes.resize(format::index_header_bytes); return entries > 0;
    case IndexDamage::truncated_mid_entry:
      if (entries == 0) return false;
      bytes.resize(bytes.size() - format::index_entry_bytes / 2);
      return true;
    case IndexDamage::drop_last_entry:
      if (entries == 0) return false;
      bytes.resize(bytes.size() - format::index_entry_bytes);
      return true;
    case IndexDamage::drop_half:
      if (entries < 2) return false;
      bytes.resize(format::index_header_bytes + (entries / 2) * format::index_entry_bytes);
      return true;
    case IndexDamage::garbage_appended:
      for (int i = 0; i < 40; ++i) bytes.push_back(static_cast<char>(random()));
      return true;
  }
  return false;
}

::testing::AssertionResult every_offset_reads_right(const PartitionLog& log, const std::vector<Record>& model) {
  for (Offset offset = log.log_start_offset(); offset < log.high_watermark(); ++offset) {
    std::vector<Message> got;
    auto scanned = log.scan(offset, 1, 1 << 20, [&](const MessageView& view) {
      got.push_back(to_owned(view));
      return true;
    });
    if (!scanned.is_ok()) return ::testing::AssertionFailure() << "offset " << offset << ": " << scanned.status().to_string();
    if (got.size() != 1 || *scanned != offset + 1) return ::testing::AssertionFailure() << "offset " << offset << ": no message";
    auto same_message = matches_model(got, model, offset);
    if (!same_message) return same_message;
  }
  return ::testing::AssertionSuccess();
}

TEST(Recovery, DamagedIndexesAreRebuiltAndLookupsEqualAFullScan) {
  std::mt19937_64 random(12);
  const std::vector<IndexDamage> damages = {
      IndexDamage::remove, IndexDamage::random_bytes, IndexDamage::zeroed, IndexDamage::truncated_to_zero,
      IndexDamage::truncated_in_header, IndexDamage::header_only, IndexDamage::truncated_mid_entry,
      IndexDamage::drop_last_entry, IndexDamage::drop_half, IndexDamage::garbage_appended};
  for (bool monotonic : {true, false}) {
    SCOPED_TRACE(monotonic ? "monotonic timestamps" : "random timestamps");
    const SealedSetup setup = make_sealed_setup(monotonic ? 13 : 14, 4, monotonic);
    for (std::size_t segment = 0; segment < setup.bases.size(); ++segment) {
      for (auto kind : {SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
        for (IndexDamage damage : damages) {
          SCOPED_TRACE("segment " + std::to_string(setup.bases[segment]) +
                       (kind == SegmentFileKind::offset_index ? " offset index " : " time index ") + damage_name(damage));
          Snapshot files = setup.files;
          if (!damage_index(files, segment_file_path(partition, setup.bases[segment], kind), damage, random)) continue;
          auto file_system = restore(files);
          for (int round = 0; round < 2; ++round) {
            // Round 1 checks what round 0 rebuilt and wrote back.
            RecoveryReport report;
            auto log = open_log(*file_system, partition, {}, nullptr, &report);
            ASSERT_TRUE(log.is_ok()) << log.status().to_string();
            EXPECT_TRUE(report.corruption.empty()) << describe(report);
            ASSERT_EQ((*log)->high_watermark(), setup.model.size());
            EXPECT_TRUE(time_lookups_match(**log, setup.model, random, 150));
            EXPECT_TRUE(every_offset_reads_right(**log, setup.model));
            VerifyReport verify;
            (*log)->verify(verify);
            EXPECT_TRUE(verify.clean()) << describe(verify);
            EXPECT_EQ(verify.messages_checked, setup.model.size());
            ASSERT_TRUE((*log)->close().is_ok());
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// (5) Power loss: with fsync=always every acknowledged append survives, and the log reopens.

// Reads [0, end) message by message where needed: returns, per offset, whether it was served
// (and checks it against `attempted`), skipping over offsets the log reports as corrupt.
::testing::AssertionResult read_everything(const PartitionLog& log, const std::vector<Record>& attempted, Offset end,
                                           std::vector<bool>& served) {
  served.assign(end, false);
  Offset next = 0;
  while (next < end) {
    std::vector<Message> got;
    auto scanned = log.scan(next, end - next, 1 << 20, [&](const MessageView& view) {
      got.push_back(to_owned(view));
      return true;
    });
    if (!scanned.is_ok()) {
      if (scanned.status().code() != ErrorCode::corruption) {
        return ::testing::AssertionFailure() << "offset " << next << ": " << scanned.status().to_string();
      }
      ++next;  // not served: step over it
      continue;
    }
    auto same_messages = matches_model(got, attempted, next);
    if (!same_messages) return same_messages;
    for (const Message& message : got) served[message.offset] = true;
    if (*scanned <= next) return ::testing::AssertionFailure() << "no progress at " << next;
    next = *scanned;
  }
  return ::testing::AssertionSuccess();
}

TEST(Recovery, PowerLossKeepsEveryAcknowledgedAppend) {
  // Each seed runs cycles of: reopen, check, a workload (acknowledged appends under
  // fsync=always, unsynced ones under fsync=never, sometimes an injected I/O error), then a
  // power loss that keeps, drops or tears each unsynced write at random.
  constexpr std::uint64_t seeds = 300;
  std::uint64_t reopened_with_damage = 0;
  std::uint64_t lost_unacknowledged = 0;
  std::uint64_t acknowledged_total = 0;
  for (std::uint64_t seed = 0; seed < seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    FaultFileSystem file_system;
    ASSERT_TRUE(file_system.create_directories(partition).is_ok());
    ASSERT_TRUE(file_system.sync_directory("/").is_ok());
    std::vector<Record> attempted;  // what each offset holds if it exists
    std::vector<bool> must_serve;   // acknowledged as durable (or recovered): must stay readable
    bool seen_damage = false;
    LogOptions options;
    options.segment_bytes = 4096;
    for (int cycle = 0; cycle < 4; ++cycle) {
      SCOPED_TRACE("cycle " + std::to_string(cycle));
      file_system.clear_faults();
      RecoveryReport report;
      auto log = open_log(file_system, partition, options, nullptr, &report);
      ASSERT_TRUE(log.is_ok()) << log.status().to_string();
      const Offset high_watermark = (*log)->high_watermark();
      const Offset acknowledged = static_cast<Offset>(
          std::find(must_serve.rbegin(), must_serve.rend(), true).base() - must_serve.begin());
      ASSERT_GE(high_watermark, acknowledged) << "acknowledged appends lost\n" << describe(report);
      ASSERT_LE(high_watermark, attempted.size()) << "offsets that were never written";
      lost_unacknowledged += attempted.size() - high_watermark;
      attempted.resize(high_watermark);
      must_serve.resize(high_watermark, false);
      std::vector<bool> served;
      ASSERT_TRUE(read_everything(**log, attempted, high_watermark, served)) << describe(report);
      for (Offset offset = 0; offset < high_watermark; ++offset) {
        ASSERT_TRUE(served[offset] || !must_serve[offset]) << "acknowledged offset " << offset << " not served\n" << describe(report);
        // What recovery accepted is durable now: it must stay.
        if (served[offset]) must_serve[offset] = true;
      }
      if (!report.corruption.empty()) {
        ++reopened_with_damage;
        seen_damage = true;
      }
      if (!seen_damage) {
        // Without damage the log is whole: verify is clean and time lookups are exact.
        VerifyReport verify;
        (*log)->verify(verify);
        EXPECT_TRUE(verify.clean()) << describe(verify);
        EXPECT_TRUE(time_lookups_match(**log, attempted, random, 30));
      }

      const int appends = 1 + static_cast<int>(random() % 25);
      bool relaxed = false;
      for (int i = 0; i < appends; ++i) {
        if (random() % 6 == 0) {
          relaxed = !relaxed;
          LogOptions changed = options;
          changed.fsync = relaxed ? FsyncPolicy::never : FsyncPolicy::always;
          (*log)->set_options(changed);
        }
        if (random() % 15 == 0) {
          const auto operation = static_cast<FaultFileSystem::Operation>(random() % 6);
          file_system.fail_after(operation, 1 + random() % 4);
        }
        if (random() % 10 == 0) (void)(*log)->maintain();
        const Offset expected_base = attempted.size();
        auto records = random_batch(random, attempted.size(), 1000 + static_cast<TimestampMs>(attempted.size()), 4, 400);
        auto base = append(**log, records);
        attempted.insert(attempted.end(), records.begin(), records.end());
        must_serve.resize(attempted.size(), false);
        if (!base.is_ok()) break;  // the batch may or may not be in the file; the log stopped
        ASSERT_EQ(*base, expected_base);
        if (!relaxed) {
          // Acknowledged under fsync=always: this batch and everything before it is durable.
          acknowledged_total += records.size();
          for (Offset offset = 0; offset < attempted.size(); ++offset) {
            if (offset >= high_watermark) must_serve[offset] = true;
          }
        }
      }
      file_system.simulate_power_loss(seed * 100 + static_cast<std::uint64_t>(cycle), PowerLossMode::random);
    }
  }
  // The seeds exercised both outcomes.
  EXPECT_GT(lost_unacknowledged, 0u);
  EXPECT_GT(acknowledged_total, 1000u);
  std::printf("power loss: %llu acknowledged, %llu unacknowledged lost, %llu reopens reported damage\n",
              static_cast<unsigned long long>(acknowledged_total), static_cast<unsigned long long>(lost_unacknowledged),
              static_cast<unsigned long long>(reopened_with_damage));
}

}  // namespace
}  // namespace msgstore::log
