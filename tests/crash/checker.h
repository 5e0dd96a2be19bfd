// The crash checker: what every crash test compares the store against.
//
// Each message carries a unique (producer, sequence) in its payload ("p3-s000000123|" and a
// filler derived from both, so a payload is recognised byte for byte). The test records, outside
// the store, what it attempted, what was acknowledged and where (stream, partition, offset), and
// what was refused cleanly. After a restart (or at any quiet moment) check() reads every
// partition back with Store::scan and reports:
//   * lost acknowledged messages, split per producer into prefix / middle / suffix (relative to
//     the producer's acknowledged messages that survived), and which of them the stream's fsync
//     policy allowed (an unsynced per-partition suffix at a power loss under interval/never);
//   * unexpected messages (never attempted, malformed, or refused with a clean error);
//   * duplicates (one message twice in a stream);
//   * inconsistent offsets (an acknowledged or previously read offset now holding another
//     message, or a message read after a restart vanishing later);
//   * per-producer order violations within a partition;
//   * time index answers (resolve_start by time) that differ from a full scan;
//   * retention that left fewer than max_messages (fsync=always streams);
//   * damaged ranges the store reported and verify() problems;
//   * the recovery (reopen) time the caller measured.
//
// Messages below the log start were removed by retention: they are not lost. Compaction and
// erase remove acknowledged messages on purpose; the checker knows what they may remove
// (MessageTraits, erase_started/erase_returned) and reports what they must have removed:
//   * compacted streams (cleanup=compact): a keyed message may be gone once a later message
//     with its key in the same partition is present, or was itself removed by these rules, or
//     is an acknowledged message the fsync policy keeps (a later value lost at a power loss
//     supersedes nothing); a tombstone may be gone once tombstone_retention_ms after its
//     timestamp has passed;
//   * erase: a message matching an erase's criteria may be gone if its publish began before
//     the erase returned (or the erase never returned); one acknowledged (or read back) before
//     an erase began that then returned ok must be gone: present, it is reported as
//     erased_present. Messages published after the erase returned must stay.
//
// Thread safety: attempted/acked/refused may be called from any number of threads; check()
// must not run concurrently with them.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/store.h"

namespace msgstore::crash {

struct MessageId {
  std::uint32_t producer = 0;
  std::uint64_t sequence = 0;
  auto operator<=>(const MessageId&) const = default;
};

// "p<producer>-s<sequence, 9 digits>|" followed by `filler_bytes` bytes derived from the id.
std::string make_payload(MessageId id, std::size_t filler_bytes);
// The id of a payload made by make_payload (filler included); nullopt for anything else.
std::optional<MessageId> parse_payload(std::string_view payload);
std::string to_string(MessageId id);

// A tombstone has an empty payload, so tests that publish tombstones carry the id in this
// header instead (value: make_payload(id, 0)). The checker reads it when the payload is empty.
inline constexpr std::string_view id_header_name = "Crash-Id";
// A header tests may set on messages so that an erase by header can select them.
inline constexpr std::string_view tag_header_name = "Crash-Tag";

// What compaction and erase look at, recorded per attempted message.
struct MessageTraits {
  std::optional<std::string> key;
  std::optional<std::string> tag;  // value of tag_header_name
  bool tombstone = false;
  TimestampMs timestamp_ms = 0;    // explicit timestamp (tombstones); else ignored
};

// What happened since the previous check.
enum class Event : std::uint8_t {
  none,           // nothing: a check of the live store (no loss of any kind is allowed)
  clean_restart,  // close() and reopen
  process_crash,  // kill -9 and reopen: every acknowledged message survives in every mode
  power_loss,     // power loss and reopen: fsync=interval/never may lose an unsynced suffix
};
const char* event_name(Event event);

struct StreamExpectation {
  FsyncPolicy fsync = FsyncPolicy::always;
  std::uint64_t max_messages = 0;  // retention; the floor is the smallest value ever set
  CleanupPolicy cleanup = CleanupPolicy::delete_segments;
  std::int64_t tombstone_retention_ms = 0;  // for cleanup=compact
};
StreamExpectation expectation_of(const StreamConfig& config);

struct CheckReport {
  std::uint64_t partitions = 0;
  std::uint64_t messages_read = 0;
  std::uint64_t acked_checked = 0;      // acknowledged messages at or above the log start
  std::uint64_t retired = 0;            // acknowledged, below the log start (retention)
  std::uint64_t removed = 0;            // gone as compaction or an erase was allowed to remove them
  std::uint64_t erased_present = 0;     // covered by an erase that returned ok, still readable
  std::uint64_t unacked_present = 0;    // attempted, not acknowledged, present (allowed)
  std::uint64_t lost = 0;               // acknowledged and missing, allowed or not
  std::uint64_t lost_allowed = 0;       // ... of which the fsync policy allowed (unsynced suffix)
  std::uint64_t lost_prefix = 0;        // per producer, relative to its surviving acks
  std::uint64_t lost_middle = 0;
  std::uint64_t lost_suffix = 0;
  std::uint64_t unexpected = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t inconsistent_offsets = 0;
  std::uint64_t order_violations = 0;
  std::uint64_t index_checks = 0;
  std::uint64_t index_mismatches = 0;
  std::uint64_t retention_violations = 0;
  std::uint64_t damaged_offsets = 0;    // offsets the store reported as corruption
  std::uint64_t verify_problems = 0;
  std::uint64_t missing_streams = 0;
  std::uint64_t read_errors = 0;        // errors other than corruption while reading back
  double recovery_ms = 0;
  std::vector<std::string> problems;    // details, the first few of each kind

  // No violation of the pass rules (allowed losses and unacked survivors are fine).
  bool ok() const;
  std::uint64_t lost_violations() const { return lost - lost_allowed; }
  std::string summary() const;
};

struct CheckOptions {
  std::size_t time_samples = 12;  // resolve_start(time) probes per partition
  bool verify = true;             // run Store::verify and count its problems
  bool damage_is_violation = true;  // a damaged range (even over unacked data) fails the check
  std::uint64_t sample_seed = 1;
};

class Checker {
 public:
  // Streams the checker knows. expect_stream again after update_stream. A stream may also be
  // declared "maybe gone" (a crash interrupted its deletion): missing is then fine.
  void expect_stream(const std::string& name, StreamExpectation expectation);
  void forget_stream(const std::string& name);
  void stream_may_be_gone(const std::string& name);
  bool knows_stream(const std::string& name) const;

  void attempted(MessageId id);
  // The same, with what compaction and erase look at (key, tag header, tombstone).
  void attempted(MessageId id, MessageTraits traits);
  void acked(const Position& position, MessageId id);
  // Refused with a clean error before anything was written (no_space, validation): must never
  // appear. Only for publishes that had one destination partition.
  void refused(MessageId id);
  // An acknowledged message known to be on stable storage (a sync of its file started after
  // the ack): no fsync policy may lose it any more.
  void mark_durable(const std::string& stream, std::uint32_t partition, Offset offset);

  // An erase of `stream` by `criteria` (a key, or the tag header) is about to be called;
  // returns its ticket for erase_returned. An erase that never returns (a crash) may have
  // removed what it matched, or not.
  std::uint64_t erase_started(const std::string& stream, const EraseCriteria& criteria);
  // The erase returned ok: everything it covered must be gone from now on.
  void erase_returned(std::uint64_t ticket);

  CheckReport check(const Store& store, Event event, double recovery_ms, const CheckOptions& options = {});

  std::uint64_t acked_total() const;

 private:
  struct Known {
    MessageId id;
    bool acked = false;
    bool durable = false;  // read back after a restart: survives any later crash
    std::uint64_t seen_tick = 0;  // clock_ when acknowledged or first read back
  };
  struct Attempt {
    std::uint64_t tick = 0;  // clock_ when attempted (before the publish began)
    MessageTraits traits;
  };
  struct Erase {
    std::string stream;
    EraseCriteria criteria;
    std::uint64_t started_tick = 0;
    std::optional<std::uint64_t> returned_tick;  // ok only
  };
  // May the erases remove `id`, must they have removed it (read or acked at `seen_tick`)?
  bool erase_may_remove(const std::string& stream, MessageId id) const;
  bool erase_must_remove(const std::string& stream, MessageId id, std::uint64_t seen_tick) const;
  bool erase_matches(const Erase& erase, MessageId id) const;
  std::string describe_erases(const std::string& stream, MessageId id) const;
  // For a lost message of a compacted stream: its key and the key's later attempts.
  std::string key_history(const std::string& stream, MessageId id) const;
  const MessageTraits* traits_of(MessageId id) const;
  struct PartitionState {
    std::map<Offset, Known> known;
  };
  struct StreamState {
    StreamExpectation expectation;
    std::uint64_t retention_floor = 0;  // smallest nonzero max_messages ever set (0: none)
    bool may_be_gone = false;
    std::map<std::uint32_t, PartitionState> partitions;
  };

  mutable std::mutex mutex_;
  std::map<std::string, StreamState> streams_;
  std::map<MessageId, Attempt> attempted_;
  std::vector<Erase> erases_;
  std::uint64_t clock_ = 0;  // a logical clock under mutex_: orders attempts, acks and erases
  std::set<MessageId> refused_;
  std::map<std::uint32_t, std::set<std::uint64_t>> acked_by_producer_;  // sequences
  std::set<MessageId> lost_ever_;          // lost at an earlier check (allowed or not)
  std::vector<std::string> conflicts_;     // offsets acknowledged twice, reported by check()
  std::uint64_t acked_total_ = 0;
};

// Accumulated over a test; printed as one "CRASH-FIGURES" line (tests/crash/long.sh sums them).
struct Figures {
  std::string test;
  std::uint64_t seeds = 0;
  std::uint64_t cycles = 0;       // crash (or fault) cycles checked
  std::uint64_t messages_checked = 0;
  std::uint64_t acked = 0;
  std::uint64_t removed = 0;      // acked messages compaction or an erase was allowed to remove
  std::uint64_t lost = 0;         // acked messages lost against the rules
  std::uint64_t lost_allowed = 0; // unsynced suffix lost under fsync=interval/never
  std::uint64_t unexpected = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t inconsistent = 0;
  std::uint64_t order_violations = 0;
  std::uint64_t index_checks = 0;
  std::uint64_t index_mismatches = 0;
  std::uint64_t damaged_offsets = 0;
  std::uint64_t other_violations = 0;  // test-specific rules (acks after an error, ...)
  std::uint64_t failures = 0;          // seeds that failed
  std::uint64_t recoveries = 0;
  double recovery_ms_total = 0;
  double recovery_ms_max = 0;

  explicit Figures(std::string name) : test(std::move(name)) {}
  void add(const CheckReport& report);
  void add_recovery(double milliseconds);
  std::string line() const;
  void print() const;
};

}  // namespace msgstore::crash
