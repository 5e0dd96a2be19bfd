// The consumer state log codec, cursors and snapshot (docs/formats/consumer-state.md).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/coding.h"
#include "base/crc32c.h"
#include "consumer/state_log.h"
#include "io/fault_file_system.h"

namespace msgstore::consumer {
namespace {

std::vector<StateRecord> decode_all(const std::string& file, StateLogScan* scan_out = nullptr) {
  std::vector<StateRecord> records;
  auto scan = decode_state_log(file, [&](const StateRecord& record) { records.push_back(record); });
  EXPECT_TRUE(scan.is_ok()) << scan.status().to_string();
  if (scan && scan_out) *scan_out = *scan;
  return records;
}

TEST(StateLogCodec, RoundTripsEveryRecordType) {
  std::string file = encode_state_log_header();
  ASSERT_EQ(file.size(), state_log_header_bytes);
  encode_record({RecordType::ack, 3, 1'000'000'007, 0}, file);
  encode_record({RecordType::delivery, 0, 42, 7}, file);
  encode_record({RecordType::position, 1023, 10, 20}, file);
  StateLogScan scan;
  auto records = decode_all(file, &scan);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].type, RecordType::ack);
  EXPECT_EQ(records[0].partition, 3u);
  EXPECT_EQ(records[0].offset, 1'000'000'007u);
  EXPECT_EQ(records[1].type, RecordType::delivery);
  EXPECT_EQ(records[1].value, 7u);
  EXPECT_EQ(records[2].type, RecordType::position);
  EXPECT_EQ(records[2].partition, 1023u);
  EXPECT_EQ(records[2].offset, 10u);
  EXPECT_EQ(records[2].value, 20u);
  EXPECT_EQ(scan.valid_bytes, file.size());
  EXPECT_EQ(scan.dropped_bytes, 0u);
}

// The worked example of docs/formats/consumer-state.md, byte for byte.
TEST(StateLogCodec, MatchesTheDocumentedExample) {
  std::string record;
  encode_record({RecordType::ack, 0, 300, 0}, record);
  const std::string expected("\x03\x00\x00\x00\x17\x2a\xcf\x23\x01\x00\xac\x02", 12);
  EXPECT_EQ(record, expected);
  const std::string header = encode_state_log_header();
  EXPECT_EQ(header.substr(0, 12), std::string("MSCONSLG\x01\x00\x00\x00", 12));
}

TEST(StateLogCodec, StopsAtATornOrDamagedRecordAndAtZeroFill) {
  std::string file = encode_state_log_header();
  encode_record({RecordType::ack, 0, 1, 0}, file);
  const std::size_t first_end = file.size();
  encode_record({RecordType::ack, 0, 2, 0}, file);
  // Every truncation inside the second record keeps exactly the first.
  for (std::size_t cut = first_end; cut < file.size(); ++cut) {
    StateLogScan scan;
    auto records = decode_all(file.substr(0, cut), &scan);
    ASSERT_EQ(records.size(), 1u) << "cut at " << cut;
    EXPECT_EQ(scan.valid_bytes, first_end);
  }
  // A flipped bit anywhere in the second record ends the log before it.
  for (std::size_t byte = first_end; byte < file.size(); ++byte) {
    std::string damaged = file;
    damaged[byte] = static_cast<char>(damaged[byte] ^ 0x10);
    EXPECT_EQ(decode_all(damaged).size(), 1u) << "byte " << byte;
  }
  // Zero-filled space (preallocation, a hole after a lost write) is the end.
  std::string zeros = file + std::string(64, '\0');
  StateLogScan scan;
  EXPECT_EQ(decode_all(zeros, &scan).size(), 2u);
  EXPECT_EQ(scan.dropped_bytes, 64u);
}

TEST(StateLogCodec, RejectsBadHeadersAndUnknownVersions) {
  EXPECT_EQ(decode_state_log("short", [](const StateRecord&) {}).status().code(), ErrorCode::corruption);
  std::string file = encode_state_log_header();
  file[0] = 'X';
  EXPECT_EQ(decode_state_log(file, [](const StateRecord&) {}).status().code(), ErrorCode::corruption);
  std::string future = encode_state_log_header();
  base::store_u32(future.data() + 8, state_log_version + 1);
  base::store_u32(future.data() + 12, base::crc32c(future.data(), 12));
  EXPECT_EQ(decode_state_log(future, [](const StateRecord&) {}).status().code(), ErrorCode::unsupported_format);
}

TEST(PartitionCursorTest, ReplayRebuildsFloorPendingAndDone) {
  PartitionCursor cursor;
  cursor.ack_floor = 5;
  cursor.delivered_offset = 5;
  cursor.apply({RecordType::delivery, 0, 5, 1});
  cursor.apply({RecordType::delivery, 0, 6, 1});
  cursor.apply({RecordType::delivery, 0, 7, 1});
  cursor.apply({RecordType::delivery, 0, 5, 2});  // redelivered
  cursor.apply({RecordType::ack, 0, 6, 0});
  EXPECT_EQ(cursor.delivered_offset, 8u);
  EXPECT_EQ(cursor.pending.size(), 2u);
  EXPECT_EQ(cursor.pending.at(5).attempts, 2u);
  EXPECT_EQ(cursor.done.count(6), 1u);
  cursor.apply({RecordType::ack, 0, 5, 0});
  EXPECT_TRUE(cursor.advance_floor());
  EXPECT_EQ(cursor.ack_floor, 7u);  // 5 and 6 done, 7 pending
  cursor.apply({RecordType::position, 0, 9, 12});
  EXPECT_EQ(cursor.ack_floor, 9u);
  EXPECT_EQ(cursor.delivered_offset, 12u);
  EXPECT_TRUE(cursor.pending.empty());
  cursor.apply({RecordType::ack, 0, 3, 0});  // below the floor: already done
  EXPECT_TRUE(cursor.done.empty());
}

TEST(SnapshotTest, RoundTripsAndRejectsInconsistentFields) {
  std::vector<PartitionCursor> cursors(2);
  cursors[0].ack_floor = 10;
  cursors[0].delivered_offset = 20;
  cursors[0].done = {12, 15};
  cursors[0].pending[10].attempts = 3;
  cursors[0].pending[11].attempts = 0;  // recovered, not known to be delivered: not in the snapshot
  cursors[1].ack_floor = 7;
  cursors[1].delivered_offset = 7;
  const auto fields = encode_snapshot(4, cursors);
  std::uint64_t generation = 0;
  auto decoded = decode_snapshot(fields, generation);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(generation, 4u);
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_EQ((*decoded)[0].ack_floor, 10u);
  EXPECT_EQ((*decoded)[0].delivered_offset, 20u);
  EXPECT_EQ((*decoded)[0].done, (std::set<Offset>{12, 15}));
  ASSERT_EQ((*decoded)[0].pending.size(), 1u);
  EXPECT_EQ((*decoded)[0].pending.at(10).attempts, 3u);
  EXPECT_EQ((*decoded)[1].ack_floor, 7u);

  auto broken = fields;
  broken["p0.done"] = "12,25";  // beyond the delivered offset
  EXPECT_EQ(decode_snapshot(broken, generation).status().code(), ErrorCode::corruption);
  broken = fields;
  broken["p0.delivered"] = "5";  // below the floor
  EXPECT_EQ(decode_snapshot(broken, generation).status().code(), ErrorCode::corruption);
  broken = fields;
  broken.erase("p1.attempts");
  EXPECT_EQ(decode_snapshot(broken, generation).status().code(), ErrorCode::corruption);
}

TEST(StateLogFile, GroupCommitMakesAppendsDurable) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/c").is_ok());
  file_system.make_all_durable();
  auto log = StateLog::create(file_system, "/c/state.log");
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  std::string records;
  encode_record({RecordType::ack, 0, 1, 0}, records);
  auto end = (*log)->append(records);
  ASSERT_TRUE(end.is_ok());
  EXPECT_TRUE((*log)->has_unsynced());
  EXPECT_EQ(file_system.durable_contents("/c/state.log")->size(), state_log_header_bytes);
  ASSERT_TRUE((*log)->sync_to(*end).is_ok());
  EXPECT_FALSE((*log)->has_unsynced());
  EXPECT_EQ(file_system.durable_contents("/c/state.log")->size(), *end);
  // A failed sync is sticky: nothing more is accepted.
  (void)(*log)->append(records);
  file_system.fail_after(FaultFileSystem::Operation::sync, 1);
  EXPECT_EQ((*log)->sync_all().code(), ErrorCode::log_failed);
  EXPECT_FALSE((*log)->append(records).is_ok());
}

}  // namespace
}  // namespace msgstore::consumer
