// Compaction (cleanup=compact) and erase, on top of the log's segment rewrite
// (log/segment_rewrite.h). Both only drop records; offsets never change.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "log/partition_log.h"
#include "msgstore/store.h"
#include "msgstore/stream.h"

namespace msgstore::store {

// An empty payload with the tombstone header (msgstore/stream.h).
bool is_tombstone(const MessageView& message);

// Calls `visit` for every readable message in [from, until) of `log`, in offset order.
Status scan_partition(const log::PartitionLog& log, Offset from, Offset until,
                      const std::function<void(const MessageView&)>& visit);

// What the background remembers per partition, so a pass only works when something changed.
struct CompactionState {
  const log::PartitionLog* log = nullptr;  // the partition it describes (a recreated stream starts over)
  bool ever_run = false;
  Offset sealed_end_done = 0;  // the sealed part of the log that was compacted
  TimestampMs next_tombstone_expiry_ms = std::numeric_limits<TimestampMs>::max();
  bool pending = false;        // segments were left for a later pass
};

// One partition: keeps, among the sealed segments, the latest message per key (messages
// without a key are always kept), drops tombstones older than config.tombstone_retention_ms,
// and rewrites at most `segments_max` segments. Does nothing if `state` says nothing changed,
// unless `force`.
Status compact_partition(log::PartitionLog& log, const StreamConfig& config, TimestampMs now, std::size_t segments_max,
                         bool force, CompactionState& state, CompactionReport& report);

// ---- Erase ----
Status validate_erase_criteria(const EraseCriteria& criteria);
bool erase_criteria_match(const EraseCriteria& criteria, const MessageView& message);
// The one function that finds an erase's matches (a scan of the partition today; the index
// branch can answer it from its key and header indexes without changing any caller).
Result<std::vector<Offset>> find_erase_matches(const log::PartitionLog& log, const EraseCriteria& criteria);
// "key=<k>" or "header <name>=<value>", for messages and the audit record.
std::string describe_erase_criteria(const EraseCriteria& criteria);

// Rewrites up to `segments_max` segments of `log` that hold erased offsets (rolling the active
// segment first if it holds one); `on_segment` runs after each. Fills `progress`.
Status remove_erased(log::PartitionLog& log, std::size_t segments_max, EraseProgress& progress,
                     const std::function<void()>& on_segment = {});
// Counts what is still pending in `log`, adding to `progress`.
void count_pending_erasures(const log::PartitionLog& log, EraseProgress& progress);

}  // namespace msgstore::store
