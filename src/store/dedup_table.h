// One stream's table of recently published message ids, for duplicate suppression
// (StreamConfig::dedup_window_ms, OutgoingMessage::message_id).
//
// A publisher claims each id before appending. The first claim of an id wins and leaves the
// id pending; once the append is done the winner completes it with where the message landed
// (or abandons it if the append failed, letting the next claimant try). A claim of a pending
// id waits for that outcome, so of concurrent publishers of one id exactly one stores and
// the others get the original position. Completed ids expire window_ms after they were
// stored; the table holds at most `entries_max` ids and refuses new ones beyond that.
//
// Deadlock freedom: a claim waits only for a pending id, and a publisher claims all its ids
// in one ascending order (stream name, then id) before it appends, so waits cannot form a cycle.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "msgstore/message.h"

namespace msgstore::store {

struct DedupOriginal {
  std::uint32_t partition = 0;
  Offset offset = 0;
};

class DedupTable {
 public:
  explicit DedupTable(std::size_t entries_max);

  enum class Outcome : std::uint8_t {
    claimed,     // the caller must append, then complete() or abandon() the id
    duplicate,   // stored within the window: `original` says where
    table_full,  // entries_max ids are inside the window: refuse the publish
  };
  struct Claim {
    Outcome outcome = Outcome::claimed;
    DedupOriginal original;
  };
  // Blocks while another publisher holds the id pending. `now_ms` and `window_ms` decide
  // which completed ids have expired.
  Claim claim(std::string_view id, TimestampMs now_ms, std::int64_t window_ms);
  void complete(std::string_view id, DedupOriginal original, TimestampMs stored_ms);
  void abandon(std::string_view id);

  // Rebuild after open: an id read back from the log, stored at `stored_ms`. Call in
  // ascending stored_ms order; a later record of the same id does not replace the first.
  void insert_recovered(std::string_view id, DedupOriginal original, TimestampMs stored_ms);

  std::size_t size() const;

 private:
  struct Entry {
    bool pending = true;
    TimestampMs stored_ms = 0;
    DedupOriginal original;
  };
  void expire_locked(TimestampMs now_ms, std::int64_t window_ms);

  const std::size_t entries_max_;
  mutable std::mutex mutex_;
  std::condition_variable resolved_;  // a pending id was completed or abandoned
  std::unordered_map<std::string, Entry> entries_;
  // Completed ids in the order they were stored, for expiry. An id appears once per completion;
  // a stale pair (the id expired and was stored again later) is recognised by its time.
  std::deque<std::pair<TimestampMs, std::string>> by_time_;
};

}  // namespace msgstore::store
