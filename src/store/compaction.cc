#include "store/compaction.h"

#include <algorithm>
#include <unordered_map>

#include "log/message_policy.h"

namespace msgstore::store {
namespace {

// Bases of the segments (from `summaries`) that hold at least one of `offsets` (sorted).
std::vector<log::SegmentSummary> segments_holding(const std::vector<log::SegmentSummary>& summaries,
                                                  const std::vector<Offset>& offsets) {
  std::vector<log::SegmentSummary> holding;
  for (const log::SegmentSummary& summary : summaries) {
    auto first = std::lower_bound(offsets.begin(), offsets.end(), summary.base_offset);
    if (first != offsets.end() && *first < summary.next_offset) holding.push_back(summary);
  }
  return holding;
}

// Retention (another thread's maintenance pass) may delete a segment between the listing of
// segments and its rewrite: nothing is left to rewrite there.
bool segment_removed_meanwhile(const log::PartitionLog& log, Offset base_offset, const Status& status) {
  return status.code() == ErrorCode::offset_out_of_range && base_offset < log.log_start_offset();
}

}  // namespace

bool is_tombstone(const MessageView& message) {
  if (!message.payload.empty()) return false;
  return std::any_of(message.headers.begin(), message.headers.end(),
                     [](const HeaderView& header) { return header.name == tombstone_header_name; });
}

Status scan_partition(const log::PartitionLog& log, Offset from, Offset until,
                      const std::function<void(const MessageView&)>& visit) {
  Offset next = std::max(from, log.log_start_offset());
  while (next < until) {
    auto scanned = log.scan(next, limits::read_messages_max, limits::read_bytes_max, [&](const MessageView& message) {
      if (message.offset >= until) return false;
      visit(message);
      return true;
    });
    if (!scanned) {
      // Retention moved the log start past `next` meanwhile (another thread's maintenance pass;
      // the new start is durable before readers see it): what lay below it is gone for good.
      const Offset log_start = log.log_start_offset();
      if (scanned.status().code() == ErrorCode::offset_out_of_range && next < log_start) {
        next = log_start;
        continue;
      }
      return scanned.status();
    }
    if (*scanned <= next) break;  // the readable end
    next = *scanned;
  }
  return Status::ok();
}

Status compact_partition(log::PartitionLog& log, const StreamConfig& config, TimestampMs now, std::size_t segments_max,
                         bool force, CompactionState& state, CompactionReport& report) {
  const std::vector<log::SegmentSummary> summaries = log.segment_summaries();
  Offset sealed_end = log.log_start_offset();
  for (const log::SegmentSummary& summary : summaries) {
    if (!summary.active) sealed_end = std::max(sealed_end, summary.next_offset);
  }
  if (state.log != &log) state = CompactionState{.log = &log};
  const bool due = force || !state.ever_run || sealed_end != state.sealed_end_done ||
                   now >= state.next_tombstone_expiry_ms || state.pending;
  if (!due) return Status::ok();

  // Pass 1: the latest offset of every key in the durable part of the log (the active segment
  // included: a newer value there supersedes older ones in sealed segments). Only a durable
  // value may supersede: under fsync=interval/never a newer value not yet synced can vanish at
  // a power loss, and the older one it replaced must still be there (tests/crash/regression_test.cc).
  const Offset superseding_end = std::min(log.high_watermark(), log.durable_offset());
  std::unordered_map<std::string, Offset> latest;
  MSGSTORE_RETURN_IF_ERROR(scan_partition(log, log.log_start_offset(), superseding_end, [&](const MessageView& message) {
    if (message.key) latest[std::string(*message.key)] = message.offset;
  }));
  TimestampMs next_expiry = std::numeric_limits<TimestampMs>::max();
  const TimestampMs expired_before = now - config.tombstone_retention_ms;
  auto keep = [&](const MessageView& message) {
    // Expired by their time to live (Msgstore-TTL-Ms): already hidden from every reader, and
    // gone for good once their segment is rewritten, whatever their key.
    if (log::is_expired(message, now)) return false;
    if (!message.key) return true;  // nothing to compact by: kept (docs/ARCHITECTURE.md)
    auto found = latest.find(std::string(*message.key));
    // Superseded only by a later value pass 1 saw. A message past pass 1's end (a roll sealed it
    // after the scan, or before its append published the high watermark) is newer than
    // anything pass 1 saw: it stays (tests/crash/regression_test.cc).
    if (found != latest.end() && found->second > message.offset) return false;
    if (is_tombstone(message)) {
      if (message.timestamp_ms <= expired_before) return false;
      next_expiry = std::min(next_expiry, message.timestamp_ms + config.tombstone_retention_ms);
    }
    return true;
  };

  // Pass 2: per sealed segment, does the policy drop anything? Rewrite up to segments_max.
  bool pending = false;
  for (const log::SegmentSummary& summary : summaries) {
    if (summary.active) continue;
    std::uint64_t droppable = 0;
    MSGSTORE_RETURN_IF_ERROR(scan_partition(log, summary.base_offset, summary.next_offset, [&](const MessageView& message) {
      if (!keep(message)) ++droppable;
    }));
    if (droppable == 0) continue;
    if (report.segments_rewritten >= segments_max) {
      pending = true;
      ++report.segments_pending;
      continue;
    }
    auto result = log.rewrite_segment(summary.base_offset, keep);
    if (!result && segment_removed_meanwhile(log, summary.base_offset, result.status())) continue;
    if (!result) return result.status();
    if (!result->replaced) continue;
    ++report.segments_rewritten;
    report.messages_removed += result->records_dropped;
    report.bytes_before += result->bytes_before;
    report.bytes_after += result->bytes_after;
  }
  state.ever_run = true;
  state.sealed_end_done = sealed_end;
  state.next_tombstone_expiry_ms = next_expiry;
  state.pending = pending;
  return Status::ok();
}

// ---- Erase ----

Status validate_erase_criteria(const EraseCriteria& criteria) {
  if (criteria.key.has_value() == criteria.header.has_value()) {
    return Status(ErrorCode::invalid_argument, "an erase needs exactly one criterion: a key, or a header name=value");
  }
  if (criteria.key && criteria.key->size() > limits::key_bytes_max) {
    return Status(ErrorCode::invalid_argument, "erase key exceeds " + std::to_string(limits::key_bytes_max) + " bytes");
  }
  if (criteria.header && (criteria.header->name.empty() || criteria.header->name.size() > limits::header_name_bytes_max ||
                          criteria.header->value.size() > limits::header_value_bytes_max)) {
    return Status(ErrorCode::invalid_argument, "erase header name must be 1 to " +
                                                   std::to_string(limits::header_name_bytes_max) + " bytes");
  }
  return Status::ok();
}

bool erase_criteria_match(const EraseCriteria& criteria, const MessageView& message) {
  if (criteria.key) return message.key && *message.key == *criteria.key;
  return std::any_of(message.headers.begin(), message.headers.end(), [&](const HeaderView& header) {
    return header.name == criteria.header->name && header.value == criteria.header->value;
  });
}

Result<std::vector<Offset>> find_erase_matches(const log::PartitionLog& log, const EraseCriteria& criteria) {
  std::vector<Offset> matches;
  bool too_many = false;
  MSGSTORE_RETURN_IF_ERROR(scan_partition(log, log.log_start_offset(), log.high_watermark(), [&](const MessageView& message) {
    if (!erase_criteria_match(criteria, message)) return;
    if (matches.size() >= limits::erase_matches_max) {
      too_many = true;
      return;
    }
    matches.push_back(message.offset);
  }));
  if (too_many) {
    return Status(ErrorCode::limit_exceeded, "an erase may match at most " + std::to_string(limits::erase_matches_max) + " messages");
  }
  return matches;
}

std::string describe_erase_criteria(const EraseCriteria& criteria) {
  if (criteria.key) return "key=" + *criteria.key;
  return "header " + criteria.header->name + "=" + criteria.header->value;
}

void count_pending_erasures(const log::PartitionLog& log, EraseProgress& progress) {
  const auto erased = log.erased_offsets();
  progress.offsets_pending += erased->size();
  if (!erased->empty()) progress.segments_pending += segments_holding(log.segment_summaries(), *erased).size();
}

Status remove_erased(log::PartitionLog& log, std::size_t segments_max, EraseProgress& progress,
                     const std::function<void()>& on_segment) {
  const auto erased = log.erased_offsets();
  if (erased->empty()) return Status::ok();
  // The active segment is rewritten by rolling it first.
  MSGSTORE_RETURN_IF_ERROR(log.seal_through(erased->back() + 1));
  std::size_t rewritten = 0;
  for (const log::SegmentSummary& summary : segments_holding(log.segment_summaries(), *erased)) {
    if (summary.active || rewritten >= segments_max) continue;
    auto result = log.rewrite_segment(summary.base_offset, [](const MessageView&) { return true; });
    if (!result && segment_removed_meanwhile(log, summary.base_offset, result.status())) continue;
    if (!result) return result.status();
    ++rewritten;
    ++progress.segments_rewritten;
    if (on_segment) on_segment();
  }
  return Status::ok();
}

}  // namespace msgstore::store
