// One segment of a partition's log: the log file and its two sparse indexes.
//
// Files (names made only by segment_file_path): <base offset, 20 digits>.v1.log,
// .v1.offset_index and .v1.time_index. The indexes are derived data, appended as batches are
// appended and rebuilt from the log whenever they are missing or fail their checks.
//
// Thread safety: appends, truncation and sealing are serialised by the owning PartitionLog's
// append lock. Readers may call the const lookup methods and read the file concurrently; the
// sizes they see (readable_bytes, next_offset) only grow while they hold a reference.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "log/record_batch.h"
#include "msgstore/file_system.h"
#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore::log {

enum class SegmentFileKind : std::uint8_t { log, offset_index, time_index };
std::filesystem::path segment_file_path(const std::filesystem::path& directory, Offset base_offset, SegmentFileKind kind);
// Parses a segment log file name; nullopt for any other name.
std::optional<Offset> parse_segment_log_name(const std::string& name);
// Parses "<base offset, 20 digits><suffix>" (for files named after a segment, such as the
// message indexes of src/index); nullopt for any other name.
std::optional<Offset> parse_segment_file_name(const std::string& name, std::string_view suffix);

// The 32-byte segment header (docs/formats/segment-log.md). `rewritten` writes version 2 with
// the rewritten flag (a segment produced by log/segment_rewrite.h).
std::string encode_segment_header(Offset base_offset, TimestampMs created_ms, bool rewritten);

inline constexpr TimestampMs no_timestamp = std::numeric_limits<TimestampMs>::min();


struct OffsetIndexEntry {
  std::uint32_t relative_offset = 0;
  std::uint32_t position = 0;
};
struct TimeIndexEntry {
  TimestampMs max_timestamp_ms = 0;  // the largest timestamp of every record up to this batch
  std::uint32_t relative_offset = 0;
};

// Reads batches one after another from a segment file through a buffer.
class BatchScanner {
 public:
  enum class Step : std::uint8_t { batch, end_of_log, damaged, io_error };
  BatchScanner(const File& file, std::uint64_t position, std::uint64_t end_position);
  // Advances to the next batch. With verify_body the body CRC is checked (damaged if wrong).
  Step next(bool verify_body);
  const BatchHeader& header() const { return header_; }
  const char* batch() const { return batch_; }
  std::uint64_t position() const { return position_; }        // start of the current batch
  std::uint64_t next_position() const { return next_position_; }  // just after it
  const Status& error() const { return error_; }

 private:
  bool ensure(std::uint64_t position, std::size_t bytes);
  const File& file_;
  std::uint64_t end_position_;
  std::uint64_t position_ = 0;
  std::uint64_t next_position_;
  std::unique_ptr<char[]> buffer_;  // not zero-filled: every byte used was read into it
  std::size_t buffer_capacity_ = 0;
  std::uint64_t buffer_position_ = 0;
  std::size_t buffer_bytes_ = 0;
  BatchHeader header_;
  const char* batch_ = nullptr;
  Status error_;
};

// A damaged byte range found by recovery, never served.
struct DamagedRange {
  std::uint64_t position_begin = 0;
  std::uint64_t position_end = 0;
  Offset offset_begin = 0;  // first offset that may be inside (from neighbouring valid batches)
  Offset offset_end = 0;    // one past the last offset that may be inside
};

class Segment {
 public:
  // Writes the header of a new, empty segment and syncs it (the caller syncs the directory).
  static Result<std::shared_ptr<Segment>> create(FileSystem& file_system, const std::filesystem::path& directory,
                                                 Offset base_offset, TimestampMs created_ms);
  // Opens an existing segment and checks its header. Indexes are not loaded yet.
  static Result<std::shared_ptr<Segment>> open(FileSystem& file_system, const std::filesystem::path& directory,
                                               Offset base_offset);

  Offset base_offset() const { return base_offset_; }
  std::uint64_t readable_bytes() const { return size_bytes_.load(std::memory_order_acquire); }
  Offset next_offset() const { return next_offset_.load(std::memory_order_acquire); }
  TimestampMs max_timestamp_ms() const { return max_timestamp_ms_.load(std::memory_order_acquire); }
  TimestampMs first_timestamp_ms() const { return first_timestamp_ms_.load(std::memory_order_acquire); }
  TimestampMs created_ms() const { return created_ms_; }
  bool empty() const { return readable_bytes() <= header_bytes(); }
  // Produced by a segment rewrite: offsets may have gaps, also at the end (see format.h).
  bool rewritten() const { return rewritten_; }
  // Called when a rewrite replaces or removes this segment: it never writes its index files
  // again (the paths now belong to the replacement). Readers holding it keep reading its log.
  void retire();
  bool retired() const { return retired_.load(std::memory_order_acquire); }
  const File& log_file() const { return *log_file_; }
  const std::filesystem::path& directory() const { return directory_; }
  static std::uint64_t header_bytes();

  // ---- Recovery (single-threaded, before the segment is shared) ----
  // Loads and checks both index files. corruption if either is missing or fails a check;
  // entries at or past `valid_bytes` are dropped (they describe an unsynced tail).
  Status load_indexes(std::uint64_t valid_bytes);
  // Reads only the final time index entry of a sealed segment: its max timestamp. Cheap.
  Status load_seal_summary(Offset next_offset);
  // Scans from `position` (a batch start, with indexes valid before it) and re-derives
  // indexes, next offset and timestamps. Stops at the first invalid batch and returns its
  // position in `stop_position`, plus what stopped the scan. Unless an I/O error stopped it,
  // the indexes then count as loaded (they were derived from the log).
  BatchScanner::Step scan_from(std::uint64_t position, Offset expected_offset, std::uint64_t& stop_position,
                               Status& error);
  // Starts from an empty index and a rescan from the header (after a failed load_indexes).
  void reset_indexes();
  // Rewrites both index files from the in-memory entries (after a rebuild).
  Status write_index_files();
  // Syncs both index files (after recovery rewrote them: an older durable copy could come back
  // at the next power loss with entries for bytes that now hold other batches).
  Status sync_index_files();
  // Cuts the log file at `position` and syncs it (torn tail). Index entries past it go too.
  Status truncate_to(std::uint64_t position);
  void add_damaged_range(const DamagedRange& range);
  std::vector<DamagedRange> damaged_ranges() const;
  bool indexes_loaded() const { return indexes_loaded_.load(std::memory_order_acquire); }

  // ---- Appending (under the partition's append lock) ----
  // Writes a finished batch at the end. On failure nothing of it remains readable; on
  // no_space the file is cut back (a failure to cut back is reported as io_error).
  //
  // With `preallocate_bytes` > 0 (logs that fsync every append), the file is first extended
  // with zeros that far ahead of the data, so that the fdatasync after most appends
  // rewrites blocks the file already has and changes no metadata: no journal commit, about 40%
  // less time per fdatasync on ext4 here (docs/performance.md). The zeros are never readable:
  // readable_bytes() ends at the data, seal() and trim_preallocation() cut the file back to it,
  // and recovery after a crash cuts them off as a torn tail (nothing valid follows them). An
  // extension that meets a full disk is cut back and only costs the preallocation (the segment
  // appends without zeros from then on; the batch's own write decides); any other failure of it
  // is a failed append, as if the batch's own write had failed.
  Status append(std::string_view batch, const BatchHeader& header, std::uint64_t preallocate_bytes = 0);
  // Cuts the file back to its data if append() extended it with zeros, and syncs (fsync: the
  // size changes). A no-op otherwise.
  Status trim_preallocation();
  // fdatasync of the log file, timed into log::data_sync_latency().
  Status sync_data();
  // Appends the final time index entry, then syncs the log and the indexes.
  Status seal() {
    finish_sealing();
    Status trimmed = trim_preallocation();
    if (!trimmed.is_ok()) return trimmed;
    return sync_sealed();
  }
  // Appends the final time index entry (no sync).
  void finish_sealing();
  // Syncs the log, and the indexes (rewritten from memory if an index write had failed).
  Status sync_sealed();

  // ---- Lookups (any thread) ----
  // Ensures indexes are loaded for a sealed segment (lazy; rebuilds them if damaged, without
  // changing the segment's size or next offset; damage the rebuild meets becomes a damaged range).
  Status ensure_indexes();
  // Position of the last indexed batch whose base offset <= target (the header if none).
  std::uint64_t position_for_offset(Offset target) const;
  // Position from which a forward scan finds the first record with timestamp >= time_ms.
  std::uint64_t position_for_time(TimestampMs time_ms) const;
  std::size_t index_entry_count() const;
  // The latest the batch starting at `position` can end: the next indexed batch's position, or
  // the end of the readable log when none is indexed after it. Nothing while the indexes of a
  // sealed segment are not loaded (see ensure_indexes).
  std::optional<std::uint64_t> batch_end_bound(std::uint64_t position) const;
  std::vector<OffsetIndexEntry> offset_index_snapshot() const;
  std::vector<TimeIndexEntry> time_index_snapshot() const;

 private:
  Segment(FileSystem& file_system, std::filesystem::path directory, Offset base_offset,
          std::unique_ptr<File> log_file, TimestampMs created_ms);
  // `force` indexes this batch even within index_interval_bytes of the last entry.
  void index_batch(const BatchHeader& header, std::uint64_t position, bool write_files, bool force = false);

  FileSystem& file_system_;
  const std::filesystem::path directory_;
  const Offset base_offset_;
  std::unique_ptr<File> log_file_;
  std::unique_ptr<File> offset_index_file_;
  std::unique_ptr<File> time_index_file_;
  bool index_files_healthy_ = false;  // false after an index write failed: rebuilt on next open
  TimestampMs created_ms_;
  bool rewritten_ = false;
  std::atomic<bool> retired_{false};  // set under lazy_load_mutex_

  std::atomic<std::uint64_t> size_bytes_;
  // File size after append() extended it with zeros (0: not extended); under the append lock.
  std::uint64_t preallocated_end_ = 0;
  bool preallocation_failed_ = false;  // a zero extension failed: none again in this segment
  std::atomic<Offset> next_offset_;
  std::atomic<TimestampMs> max_timestamp_ms_{no_timestamp};
  std::atomic<TimestampMs> first_timestamp_ms_{no_timestamp};
  std::atomic<bool> indexes_loaded_{false};

  mutable std::shared_mutex index_mutex_;
  std::vector<OffsetIndexEntry> offset_index_;
  std::vector<TimeIndexEntry> time_index_;
  std::uint64_t last_indexed_position_ = 0;
  bool any_indexed_ = false;
  std::mutex lazy_load_mutex_;
  std::vector<DamagedRange> damaged_ranges_;
};

}  // namespace msgstore::log
