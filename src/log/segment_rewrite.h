// One crash-safe segment rewrite, shared by compaction and erase.
//
// Given a sealed segment and a filter, the kept records are written at their ORIGINAL offsets
// into "<base>.v1.log.rewrite.tmp" (header version 2, flag "rewritten": offsets may have gaps,
// also at the end), which is synced; then PartitionLog::rewrite_segment swaps it in:
//
//   1. write <base>.v1.log.rewrite.tmp, fsync it
//   2. remove <base>.v1.offset_index and .time_index, fsync the directory
//      (derived files that describe the old bytes must never be read against the new ones)
//   3. rename the .tmp over <base>.v1.log, fsync the directory      <- commit point
//   4. rebuild and write the index files of the new segment (derived; rebuilt if lost)
//   5. swap the Segment in memory; retire the erase-list entries it removed; notify listeners
//
// Recovery rule (PartitionLog::recover): a leftover "*.tmp" is removed (the rewrite is rolled
// back: the old log is intact because rename is atomic); missing index files are rebuilt from
// the log. A crash at any point leaves either the old or the new segment, never a mix.
// Readers that hold the old Segment keep reading its (unlinked) file: a consistent snapshot.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "log/segment.h"
#include "msgstore/file_system.h"
#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore::log {

// true = keep the record.
using RecordFilter = std::function<bool(const MessageView&)>;

enum class SegmentChange : std::uint8_t { replaced, removed };
using SegmentListener = std::function<void(SegmentChange change, Offset base_offset)>;

struct SegmentSummary {
  Offset base_offset = 0;
  Offset next_offset = 0;  // one past the segment's last offset
  std::uint64_t bytes = 0;
  bool active = false;
  bool rewritten = false;
};

struct RewriteResult {
  Offset base_offset = 0;
  bool replaced = false;  // false: the filter dropped nothing, the segment was left alone
  std::uint64_t records_kept = 0;
  std::uint64_t records_dropped = 0;
  std::uint64_t bytes_before = 0;
  std::uint64_t bytes_after = 0;
  std::vector<Offset> dropped_erased;  // erase-list offsets this rewrite removed
};

std::filesystem::path segment_rewrite_path(const std::filesystem::path& directory, Offset base_offset);

// Step 1: reads every batch of `source` (checksums verified; damage stops the rewrite with
// corruption), keeps the records for which `keep` returns true, and writes them, synced, to
// segment_rewrite_path(). Each input batch with a kept record becomes one output batch with
// the same base offset and offset range. Fills `result`; writes nothing if nothing is dropped.
Status write_rewritten_segment(FileSystem& file_system, const Segment& source, const RecordFilter& keep,
                               RewriteResult& result);

}  // namespace msgstore::log
