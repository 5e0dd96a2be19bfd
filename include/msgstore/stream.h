// msgstore/stream.h: stream configuration and description.
//
// A stream captures the subjects matching its patterns ("orders.*" matches one token after
// "orders.", "orders.>" matches one or more), spreads them over a fixed number of
// partitions (by key hash, round robin without a key), and keeps them by its retention limits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/limits.h"
#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore {

// When an append is acknowledged.
enum class FsyncPolicy : std::uint8_t {
  always,    // after fdatasync returned (default); concurrent publishers share one sync
  interval,  // after write(); a background sync runs every fsync_interval_ms
  never,     // after write(); the operating system decides when to write back
};

// What removes old data besides the retention limits (which apply under both policies).
enum class CleanupPolicy : std::uint8_t {
  delete_segments,  // "delete" (default): retention removes whole segments, nothing else
  compact,          // "compact": keep only the latest message per key (see Store::compact)
};

// A message with an empty payload and this header (any value) is a tombstone: under
// cleanup=compact it removes its key, and is itself removed tombstone_retention_ms after its
// timestamp, so consumers that read within that delay see the deletion.
inline constexpr std::string_view tombstone_header_name = "Msgstore-Tombstone";

struct StreamConfig {
  std::string name;                   // letters, digits, '.', '_', '-'; 1-255 bytes; not "." or ".."
  std::vector<std::string> subjects;  // patterns; at least one
  std::uint32_t partitions = 1;

  // Retention: whole sealed segments are deleted once any limit is exceeded. 0 = unlimited.
  std::int64_t max_age_ms = 0;
  std::uint64_t max_bytes = 0;
  std::uint64_t max_messages = 0;

  FsyncPolicy fsync = FsyncPolicy::always;
  std::uint32_t fsync_interval_ms = 0;  // for FsyncPolicy::interval

  std::uint64_t max_message_bytes = limits::message_bytes_default;
  std::uint64_t segment_bytes = limits::segment_bytes_default;
  std::int64_t segment_age_ms = limits::segment_age_ms_default;

  // Message indexes (docs/query.md): keys and subjects when enabled, plus the values of these
  // headers (at most limits::indexed_headers_max names). Changing either rebuilds the affected
  // index files from the log on their next use.
  bool indexes_enabled = true;
  std::vector<std::string> indexed_headers;
  // Duplicate suppression: a message id (OutgoingMessage::message_id) seen within this window
  // is not stored again; the publish returns the original Position. 0 = off. At most
  // limits::dedup_window_ms_max. Measured from when the original was appended (after a
  // restart: from its timestamp).
  std::int64_t dedup_window_ms = limits::dedup_window_ms_default;
  CleanupPolicy cleanup = CleanupPolicy::delete_segments;
  std::int64_t tombstone_retention_ms = limits::tombstone_retention_ms_default;  // for compact

  bool operator==(const StreamConfig&) const = default;
};

// "always", "never", "interval:<ms>".
std::string fsync_policy_to_string(FsyncPolicy policy, std::uint32_t interval_ms);
Status parse_fsync_policy(std::string_view text, FsyncPolicy& policy, std::uint32_t& interval_ms);

// "delete", "compact".
std::string cleanup_policy_to_string(CleanupPolicy policy);
Status parse_cleanup_policy(std::string_view text, CleanupPolicy& policy);

// Checks a configuration (name, patterns, limits); the error names the offending field.
Status validate_stream_config(const StreamConfig& config);
Status validate_stream_name(std::string_view name);

struct PartitionInfo {
  std::uint32_t partition = 0;
  Offset first_offset = 0;    // log start: the oldest offset still stored
  Offset next_offset = 0;     // one past the newest readable message (the high watermark)
  std::uint64_t bytes = 0;    // bytes of segment files
  std::uint64_t messages = 0; // next_offset - first_offset (an upper bound: compaction and erase leave gaps)
  std::uint32_t segments = 0;
  TimestampMs first_timestamp_ms = 0;  // 0 when empty
  TimestampMs last_timestamp_ms = 0;
  std::vector<std::string> damage;  // human-readable descriptions of corrupt ranges, if any
};

struct StreamInfo {
  StreamConfig config;
  std::vector<PartitionInfo> partitions;
  std::uint64_t bytes = 0;
  std::uint64_t messages = 0;
};

}  // namespace msgstore
