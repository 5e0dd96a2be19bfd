// A consumer's durable state (docs/formats/consumer-state.md): an append-only, checksummed
// state log of small records (acks, deliveries, positions) on top of a snapshot written with
// the atomic metadata-file recipe. This header holds the format constants, the record codec
// (pure functions, fuzzed by tests/fuzz/consumer_state_fuzz.cc), the in-memory state both
// recovery and the live path update, and StateLog, the appending file with group commit.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "io/metadata_file.h"
#include "msgstore/file_system.h"
#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore::consumer {

// ---- Format constants -------------------------------------------------------------------------
inline constexpr char state_log_magic[8] = {'M', 'S', 'C', 'O', 'N', 'S', 'L', 'G'};
inline constexpr std::uint32_t state_log_version = 1;
inline constexpr std::size_t state_log_header_bytes = 16;  // magic, version u32, crc32c u32 of the 12 before
inline constexpr std::size_t record_frame_bytes = 8;        // body length u32, crc32c u32 (type + body)
inline constexpr std::size_t record_body_bytes_max = 64;    // three varints fit in 30

enum class RecordType : std::uint8_t {
  reserved = 0,  // zero-filled space reads as the end of the log
  ack = 1,       // partition, offset: the message is done (acked, dead-lettered, dropped)
  delivery = 2,  // partition, offset, attempts: the message was handed out (attempts-th time)
  position = 3,  // partition, ack floor, delivered offset: every offset below the floor is done
};

struct StateRecord {
  RecordType type = RecordType::reserved;
  std::uint32_t partition = 0;
  Offset offset = 0;            // ack, delivery; the ack floor for position
  std::uint64_t value = 0;      // delivery: attempts; position: delivered offset
};

// Appends one framed record to `out`.
void encode_record(const StateRecord& record, std::string& out);
std::string encode_state_log_header();

struct StateLogScan {
  std::uint64_t valid_bytes = 0;    // header plus every whole, valid record
  std::uint64_t records = 0;
  std::uint64_t dropped_bytes = 0;  // after the first invalid record (a torn or damaged tail)
};
// Decodes a whole state log file. corruption / unsupported_format when the header is bad;
// otherwise calls `visit` for each valid record up to the first invalid one, and stops there.
Result<StateLogScan> decode_state_log(std::string_view file, const std::function<void(const StateRecord&)>& visit);

// ---- In-memory state ------------------------------------------------------------------------
struct Pending {
  std::uint32_t attempts = 0;    // deliveries so far (0: recovered, never known to be delivered)
  bool out = false;              // held by a fetcher until deadline_ms
  std::int64_t deadline_ms = 0;  // out: the ack deadline; otherwise: when it may go out again
  bool dead_lettering = false;   // being appended to the dead-letter stream (or dropped)
};

// One partition's cursor. Invariant (outside recovery): every offset in [ack_floor,
// delivered_offset) is in `pending` or in `done`, and the ack floor is the lowest pending offset
// (delivered_offset when nothing is pending).
struct PartitionCursor {
  Offset ack_floor = 0;
  Offset delivered_offset = 0;
  std::map<Offset, Pending> pending;
  std::set<Offset> done;  // above the floor only

  // Moves the floor over done offsets; true if it moved.
  bool advance_floor();
  // Applies one replayed record (recovery); records for other partitions are the caller's.
  void apply(const StateRecord& record);
};

// Snapshot (state.meta, metadata kind "consumer-state") <-> cursors.
inline constexpr const char* snapshot_kind = "consumer-state";
inline constexpr std::uint32_t snapshot_version = 1;
io::MetadataFields encode_snapshot(std::uint64_t generation, const std::vector<PartitionCursor>& cursors);
Result<std::vector<PartitionCursor>> decode_snapshot(const io::MetadataFields& fields, std::uint64_t& generation);

// "state-<generation 20 digits>.log"
std::string state_log_name(std::uint64_t generation);

// ---- The appending file ---------------------------------------------------------------------
// Appends under its own mutex (callers already serialise per consumer); sync_to() is a group
// commit: one caller runs fdatasync for everything written so far and every caller whose bytes
// it covers returns with it. Any write or sync error is sticky (as in the log: after a failed
// fdatasync the kernel may have dropped the pages, so nothing more is promised until restart).
class StateLog {
 public:
  // Creates (or empties) the file, writes the header and syncs it. The caller syncs the directory.
  static Result<std::shared_ptr<StateLog>> create(FileSystem& file_system, const std::filesystem::path& path);

  // Writes `records` at the end; returns the end position after them.
  Result<std::uint64_t> append(std::string_view records);
  // Returns once everything up to `position` is durable.
  Status sync_to(std::uint64_t position);
  Status sync_all();
  std::uint64_t size() const;
  bool has_unsynced() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  StateLog(std::unique_ptr<File> file, std::filesystem::path path, std::uint64_t size);

  std::unique_ptr<File> file_;
  const std::filesystem::path path_;

  mutable std::mutex append_mutex_;
  std::uint64_t end_ = 0;
  Status failure_;  // sticky; guarded by append_mutex_

  mutable std::mutex sync_mutex_;
  std::condition_variable sync_finished_;
  bool sync_in_progress_ = false;
  std::uint64_t durable_ = 0;  // guarded by sync_mutex_
  Status sync_failure_;        // sticky; guarded by sync_mutex_
};

}  // namespace msgstore::consumer
